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

from mentatlab.conventions.base import Convention, attr, computed, json_blob, mapped
from mentatlab.conventions.provider import normalize_provider
from mentatlab.model.raw import RawSpan

__all__ = ["CONVENTION", "SPAN_KIND_OPERATION"]

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
        attr("llm.model_name", "request_model", "model used (response if known)"),
        attr("llm.request.model_name", "request_model"),
        attr("llm.response.model_name", "response_model"),
        attr("embedding.model_name", "request_model"),
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
