"""MentatLab's own attributes: ``mentat.<canonical field>`` and ``mentat.resource.<field>``.

Highest precedence (docs/decisions/0001-contracts.md). Valid on the span and on the
resource; the span wins. Units are in the names (``_tokens``, ``_seconds``, ``_bytes``).
"""

from __future__ import annotations

from mentatlab.conventions.base import Convention, attr

__all__ = ["CONVENTION", "RESOURCE_FIELDS", "SPAN_FIELDS"]

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
    "error_type",
)
"""Canonical fields a producer may set as ``mentat.<field>``."""

RESOURCE_FIELDS: tuple[str, ...] = (
    "cpu_core_seconds", "memory_gb_seconds", "gpu_seconds",
    "network_bytes_in", "network_bytes_out", "storage_bytes",
)
"""Metered resources, set as ``mentat.resource.<field>``."""

CONVENTION = Convention(
    name="mentat",
    source="docs/decisions/0001-contracts.md",
    rules=(
        attr("mentat.status", "status", "ok, error or timeout (native events: timeout)"),
        *(attr(f"mentat.{field}", field) for field in SPAN_FIELDS),
        *(attr(f"mentat.resource.{field}", field) for field in RESOURCE_FIELDS),
    ),
)
