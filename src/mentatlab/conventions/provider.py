"""Provider vocabulary: producer spellings → OTel ``gen_ai.provider.name`` well-known values.

Tables, not code: :data:`PROVIDER_ALIASES` normalizes what producers write,
:data:`FRAMEWORK_NAMES` lists agent frameworks that producers put in the provider slot
(never a provider), :data:`HOST_SUFFIXES` infers the provider from ``server.address``,
and :data:`MODEL_PREFIXES` from a provider-prefixed model (``openai/gpt-5-mini``).
Well-known values: OTel semconv registry (``gen_ai.provider.name``), plus ``openrouter``.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "FRAMEWORK_NAMES",
    "HOST_SUFFIXES",
    "MODEL_PREFIXES",
    "PROVIDER_ALIASES",
    "infer_provider_from_host",
    "infer_provider_from_model",
    "normalize_provider",
]

PROVIDER_ALIASES: dict[str, str] = {
    # OTel well-known values map to themselves
    **{v: v for v in ("openai", "anthropic", "aws.bedrock", "azure.ai.inference",
                      "azure.ai.openai", "cohere", "deepseek", "gcp.gemini", "gcp.gen_ai",
                      "gcp.vertex_ai", "groq", "ibm.watsonx.ai", "mistral_ai", "perplexity",
                      "xai", "openrouter")},
    # pre-1.37 and vendor spellings
    "az.ai.openai": "azure.ai.openai",
    "az.ai.inference": "azure.ai.inference",
    "azure": "azure.ai.openai",
    "azure_openai": "azure.ai.openai",
    "azure-openai": "azure.ai.openai",
    "vertex_ai": "gcp.vertex_ai",
    "vertexai": "gcp.vertex_ai",
    "vertex": "gcp.vertex_ai",
    "google-vertex": "gcp.vertex_ai",
    "gemini": "gcp.gemini",
    "google_genai": "gcp.gen_ai",
    "google": "gcp.gen_ai",
    "google-genai": "gcp.gen_ai",
    "bedrock": "aws.bedrock",
    "aws": "aws.bedrock",
    "aws_bedrock": "aws.bedrock",
    "amazon-bedrock": "aws.bedrock",
    "amazon_bedrock": "aws.bedrock",
    "mistral": "mistral_ai",
    "mistralai": "mistral_ai",
    "x_ai": "xai",
    "grok": "xai",
    "watsonx": "ibm.watsonx.ai",
    "ibm": "ibm.watsonx.ai",
}
"""Lower-cased producer spelling → canonical provider."""

FRAMEWORK_NAMES: frozenset[str] = frozenset({
    "strands-agents", "strands", "gcp.vertex.agent", "langchain", "langgraph", "llama_index",
    "llamaindex", "crewai", "autogen", "semantic_kernel", "microsoft.semantickernel",
    "pydantic-ai", "pydantic_ai", "haystack", "dspy", "agno", "smolagents", "livekit",
    "litellm", "openai_agents", "openai-agents", "genkit", "mastra", "vercel", "ai",
})
"""Agent frameworks and gateways found in provider attributes: ignored as providers."""

HOST_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("api.openai.com", "openai"),
    (".openai.azure.com", "azure.ai.openai"),
    (".models.ai.azure.com", "azure.ai.inference"),
    (".services.ai.azure.com", "azure.ai.inference"),
    ("aiplatform.googleapis.com", "gcp.vertex_ai"),
    ("generativelanguage.googleapis.com", "gcp.gemini"),
    ("api.anthropic.com", "anthropic"),
    (".amazonaws.com", "aws.bedrock"),
    ("api.mistral.ai", "mistral_ai"),
    ("api.groq.com", "groq"),
    ("api.deepseek.com", "deepseek"),
    ("api.x.ai", "xai"),
    ("api.perplexity.ai", "perplexity"),
    ("api.cohere.com", "cohere"),
    ("api.cohere.ai", "cohere"),
    ("openrouter.ai", "openrouter"),
)
"""``server.address`` suffix → provider (checked in order)."""

MODEL_PREFIXES: dict[str, str] = {
    "openai": "openai", "anthropic": "anthropic", "mistral": "mistral_ai",
    "mistralai": "mistral_ai", "deepseek": "deepseek", "groq": "groq", "xai": "xai",
    "x-ai": "xai", "perplexity": "perplexity", "cohere": "cohere", "googleai": "gcp.gemini",
    "vertexai": "gcp.vertex_ai", "bedrock": "aws.bedrock", "azure": "azure.ai.openai",
    "openrouter": "openrouter",
}
"""Prefix before ``/`` in a provider-prefixed model (Genkit, LiteLLM) → provider.
``google/…`` is absent on purpose: OpenRouter slugs use it for Gemini on any host."""

_BEDROCK_MODEL = re.compile(
    r"^(?:(?:us|eu|apac|global|us-gov)\.)?"
    r"(?:anthropic|amazon|meta|mistral|cohere|ai21|deepseek|writer|qwen|openai)\."
    r"[\w.-]+?(?:-v\d+(?::\d+)?|:\d+)$"
)
"""Bedrock model ids (``anthropic.claude-3-5-sonnet-20241022-v2:0``, with an optional
cross-region profile prefix ``us.``): unambiguous, so they identify ``aws.bedrock``."""


def normalize_provider(value: Any) -> str | None:
    """The canonical provider for a producer's provider string; None for frameworks/empty.

    Unknown values are kept lower-cased (a self-hosted or new provider is still data).
    """
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    if not text or text in FRAMEWORK_NAMES:
        return None
    hit = PROVIDER_ALIASES.get(text)
    if hit is not None:
        return hit
    # Vercel AI SDK ``ai.model.provider``: "openai.chat", "anthropic.messages",
    # "google.generative-ai", "amazon-bedrock" ...
    head = text.split(".", 1)[0]
    if head != text:
        if head == "google":
            return "gcp.vertex_ai" if "vertex" in text else "gcp.gemini"
        hit = PROVIDER_ALIASES.get(head)
        if hit is not None:
            return hit
    return text


def infer_provider_from_host(host: Any) -> str | None:
    """The provider serving ``server.address``, when the host says so unambiguously."""
    if not isinstance(host, str) or not host:
        return None
    host = host.lower()
    for suffix, provider in HOST_SUFFIXES:
        if host.endswith(suffix) or host == suffix.lstrip("."):
            if suffix == ".amazonaws.com" and "bedrock" not in host:
                continue
            return provider
    return None


def infer_provider_from_model(model: str) -> str | None:
    """The provider a model string names unambiguously (prefix or Bedrock id), else None.

    Bare model names (``gpt-4o``) are NOT mapped: the same name is served by gateways,
    Azure and OpenAI alike.
    """
    if not model:
        return None
    if "/" in model:
        return MODEL_PREFIXES.get(model.split("/", 1)[0].lower())
    if _BEDROCK_MODEL.match(model):
        return "aws.bedrock"
    return None
