"""MentatLab's own attributes: ``mentat.<canonical field>`` and ``mentat.resource.<field>``.

Highest precedence (docs/decisions/0001-contracts.md). Valid on the span and on the
resource; the span wins. Units are in the names (``_tokens``, ``_seconds``, ``_bytes``).
"""

from __future__ import annotations

from typing import Any

from mentatlab.conventions.base import Convention, attr, computed
from mentatlab.conventions.provider import normalize_provider
from mentatlab.model.raw import RawSpan

__all__ = ["CONVENTION", "OPERATION_NAMES", "RESOURCE_FIELDS", "SPAN_FIELDS"]

SPAN_FIELDS: tuple[str, ...] = (
    # tenancy
    "org_id", "workspace_id", "project_id", "user_id", "customer_id", "department",
    # agent
    "service_name", "agent_id", "agent_version", "runtime", "workflow_id", "workflow_version",
    "flow_id", "run_id", "session_id", "step", "prompt_version",
    # operation
    "operation_name", "tool_name", "attempt", "is_retry", "is_fallback", "is_streaming",
    # model
    "provider", "request_model", "response_model",
    # tokens
    "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
    "reasoning_tokens", "total_tokens", "usage_is_rollup",
    # outcome
    "error_type", "policy_id", "policy_result",
)
"""Canonical fields a producer may set as ``mentat.<field>``."""

RESOURCE_FIELDS: tuple[str, ...] = (
    "cpu_core_seconds", "memory_gb_seconds", "gpu_seconds",
    "network_bytes_in", "network_bytes_out", "storage_bytes",
)
"""Metered resources, set as ``mentat.resource.<field>``."""

OPERATION_NAMES: dict[str, str] = {
    "chat": "chat", "completion": "text_completion", "embeddings": "embeddings",
    "tool": "execute_tool", "agent": "invoke_agent", "retrieval": "retrieval",
    "guardrail": "guardrail",
}
"""``mentat.operation`` (the coarse :class:`~mentatlab.model.span.Operation` value, as the
native event receiver sets it) → operation name."""


def _operation(value: Any, span: RawSpan) -> tuple[tuple[str, Any], ...] | None:
    # A native agent event's tokens are what the producer metered for that span, not a sum
    # of children: never a roll-up unless mentat.usage_is_rollup (an earlier row) says so.
    name = OPERATION_NAMES.get(value) if isinstance(value, str) else None
    return None if name is None else (("operation_name", name), ("usage_is_rollup", False))


def _provider(value: Any, span: RawSpan) -> tuple[tuple[str, Any], ...] | None:
    provider = normalize_provider(value)
    return None if provider is None else (("provider", provider),)


CONVENTION = Convention(
    name="mentat",
    source="docs/decisions/0001-contracts.md",
    rules=(
        attr("mentat.status", "status", "ok, error or timeout (native events: timeout)"),
        computed("mentat.provider", ("provider",), _provider, "normalized like any provider"),
        *(attr(f"mentat.{field}", field) for field in SPAN_FIELDS if field != "provider"),
        computed("mentat.operation", ("operation_name", "usage_is_rollup"), _operation,
                 "coarse value: chat, completion, embeddings, tool, agent, retrieval, guardrail"),
        *(attr(f"mentat.resource.{field}", field) for field in RESOURCE_FIELDS),
    ),
)
