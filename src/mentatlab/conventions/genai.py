"""OTel GenAI semantic conventions, old and new names (semconv 1.26 → semantic-conventions-genai).

Renames covered: ``gen_ai.system`` → ``gen_ai.provider.name`` (1.37),
``gen_ai.usage.prompt_tokens``/``completion_tokens`` → ``input_tokens``/``output_tokens``
(1.27), ``gen_ai.usage.cache_creation.input_tokens`` → ``cache_write.input_tokens``
(semantic-conventions-genai PR #440). Input counts are INCLUSIVE of cache tokens (1.40);
output counts include reasoning (1.41).
Source: https://github.com/open-telemetry/semantic-conventions-genai
"""

from __future__ import annotations

from typing import Any

from mentatlab.conventions.base import Convention, attr, computed
from mentatlab.conventions.provider import normalize_provider
from mentatlab.model.raw import RawSpan

__all__ = ["CONVENTION", "GENAI_OPERATIONS"]

GENAI_OPERATIONS: frozenset[str] = frozenset({
    "chat", "text_completion", "generate_content", "embeddings", "execute_tool",
    "invoke_agent", "create_agent", "invoke_workflow", "retrieval",
})
"""The ``gen_ai.operation.name`` well-known values."""


def _provider(value: Any, span: RawSpan) -> tuple[tuple[str, Any], ...] | None:
    provider = normalize_provider(value)
    return None if provider is None else (("provider", provider),)


def _operation(value: Any, span: RawSpan) -> tuple[tuple[str, Any], ...] | None:
    if not isinstance(value, str) or not value.strip():
        return None
    return (("operation_name", value.strip().lower()),)


def _tool_implies_execution(value: Any, span: RawSpan) -> tuple[tuple[str, Any], ...] | None:
    # gen_ai.tool.name belongs on execute_tool spans (semconv); Pydantic AI and Strands set
    # it without gen_ai.operation.name.
    return (("operation_name", "execute_tool"),) if isinstance(value, str) and value else None


CONVENTION = Convention(
    name="genai",
    source="OTel GenAI semconv 1.26-1.41 + semantic-conventions-genai",
    rules=(
        computed("gen_ai.provider.name", ("provider",), _provider, "1.37+; frameworks ignored"),
        computed("gen_ai.system", ("provider",), _provider, "<=1.36 name"),
        attr("gen_ai.request.model", "request_model"),
        attr("gen_ai.response.model", "response_model"),
        computed("gen_ai.operation.name", ("operation_name",), _operation),
        attr("gen_ai.usage.input_tokens", "input_tokens", "1.27+, inclusive of cache"),
        attr("gen_ai.usage.prompt_tokens", "input_tokens", "<=1.26"),
        attr("gen_ai.usage.output_tokens", "output_tokens", "1.27+, inclusive of reasoning"),
        attr("gen_ai.usage.completion_tokens", "output_tokens", "<=1.26"),
        attr("gen_ai.usage.total_tokens", "total_tokens", "not in semconv; OpenLIT, Strands"),
        attr("gen_ai.usage.cache_read.input_tokens", "cache_read_tokens", "1.40+"),
        attr("gen_ai.usage.cache_write.input_tokens", "cache_write_tokens", "semconv-genai"),
        attr("gen_ai.usage.cache_creation.input_tokens", "cache_write_tokens", "1.40-1.41"),
        attr("gen_ai.usage.reasoning.output_tokens", "reasoning_tokens", "1.41+"),
        attr("gen_ai.tool.name", "tool_name"),
        computed("gen_ai.tool.name", ("operation_name",), _tool_implies_execution,
                 "a tool name without an operation name means execute_tool"),
        attr("gen_ai.agent.id", "agent_id"),
        attr("gen_ai.agent.name", "agent_id", "when there is no gen_ai.agent.id"),
        attr("gen_ai.agent.version", "agent_version"),
        attr("gen_ai.conversation.id", "session_id"),
        attr("gen_ai.request.stream", "is_streaming", "semconv-genai"),
        attr("error.type", "error_type"),
        # common (non-GenAI) OTel attributes used for tenancy
        attr("user.id", "user_id"),
        attr("enduser.id", "user_id"),
        attr("session.id", "session_id"),
    ),
)
