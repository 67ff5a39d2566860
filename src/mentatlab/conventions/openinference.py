"""OpenInference (Arize): ``llm.*``, ``embedding.*``, ``tool.*``, ``openinference.span.kind``.

``llm.token_count.prompt`` is inclusive of cache details; ``completion`` includes
reasoning/audio details. ``llm.model_name`` is the model used (response if known, else
request); embedding spans use ``embedding.model_name`` and deliberately omit
``llm.system``/``llm.provider``. ``llm.provider`` is the host (``azure``, ``aws``...),
``llm.system`` the API family; the host wins.
Source: https://github.com/Arize-ai/openinference/blob/main/spec/semantic_conventions.md
"""

from __future__ import annotations

from typing import Any

from mentatlab.conventions.base import (
    Convention,
    Extract,
    attr,
    computed,
    json_blob,
    load_json,
    mapped,
)
from mentatlab.conventions.provider import normalize_provider
from mentatlab.model.raw import RawSpan

__all__ = ["CONVENTION", "SPAN_KIND_OPERATION"]

_MODELS = ("request_model", "response_model")

SPAN_KIND_OPERATION: dict[str, str] = {
    "LLM": "chat",
    "EMBEDDING": "embeddings",
    "TOOL": "execute_tool",
    "AGENT": "invoke_agent",
    "RETRIEVER": "retrieval",
    "RERANKER": "retrieval",
    "GUARDRAIL": "guardrail",
}
"""``openinference.span.kind`` → operation name (CHAIN, EVALUATOR, UNKNOWN: none)."""


def _model_name(params_key: str) -> Extract:
    """Split a model-name attribute into request and response model.

    ``llm.model_name`` / ``embedding.model_name`` is the model used (the response's model
    when the instrumentation saw one); when the invocation parameters under ``params_key``
    name the requested model, that one is the request model and the attribute the response
    model (OpenAI answers with a dated snapshot of the requested model).
    """

    def extract(value: Any, span: RawSpan) -> tuple[tuple[str, Any], ...] | None:
        if not isinstance(value, str) or not value.strip():
            return None
        used = value.strip()
        params = load_json(span.attributes.get(params_key))
        requested = params.get("model") if isinstance(params, dict) else None
        if isinstance(requested, str) and requested.strip():
            return (("request_model", requested.strip()), ("response_model", used))
        return (("request_model", used),)

    return extract


def _provider(value: Any, span: RawSpan) -> tuple[tuple[str, Any], ...] | None:
    provider = normalize_provider(value)
    return None if provider is None else (("provider", provider),)


CONVENTION = Convention(
    name="openinference",
    source="OpenInference semantic conventions (Arize-ai/openinference spec)",
    rules=(
        mapped("openinference.span.kind", "operation_name", SPAN_KIND_OPERATION),
        computed("llm.provider", ("provider",), _provider, "host: azure, aws, google..."),
        computed("llm.system", ("provider",), _provider, "API family: openai, anthropic..."),
        attr("llm.request.model_name", "request_model"),
        attr("llm.response.model_name", "response_model"),
        computed("llm.model_name", _MODELS, _model_name("llm.invocation_parameters"),
                 "model used; request model from llm.invocation_parameters"),
        computed("embedding.model_name", _MODELS, _model_name("embedding.invocation_parameters"),
                 "model used; request model from embedding.invocation_parameters"),
        attr("llm.token_count.prompt", "input_tokens", "inclusive of cache details"),
        attr("llm.token_count.completion", "output_tokens", "inclusive of reasoning"),
        attr("llm.token_count.total", "total_tokens"),
        attr("llm.token_count.prompt_details.cache_read", "cache_read_tokens"),
        attr("llm.token_count.prompt_details.cache_write", "cache_write_tokens"),
        attr("llm.token_count.completion_details.reasoning", "reasoning_tokens"),
        json_blob("llm.invocation_parameters", {"is_streaming": ("stream",)}),
        attr("tool.name", "tool_name"),
        attr("agent.name", "agent_id"),
        attr("graph.node.id", "step"),
        attr("llm.prompt_template.version", "prompt_version"),
    ),
)
