"""Langfuse SDK (OTel-based) attributes: ``langfuse.observation.*``, ``langfuse.trace.*``.

Usage and cost are JSON strings (``usage_details``, ``cost_details``). Langfuse's usage
``input`` bucket is the UNCACHED remainder: its cache buckets are added back to reach the
inclusive input. Langfuse's own key names also appear under ``gen_ai.usage.*``
(``input_cached_tokens``, ``input_cache_creation``). ``level=ERROR`` marks a failure;
``WARNING`` does not.
Source: https://langfuse.com/docs/opentelemetry/get-started (property mapping)
"""

from __future__ import annotations

from typing import Any

from mentatlab.conventions.base import Convention, attr, computed, json_blob, mapped
from mentatlab.model.raw import RawSpan

__all__ = ["CONVENTION", "OBSERVATION_TYPES"]

OBSERVATION_TYPES: dict[str, str] = {
    "generation": "chat",
    "embedding": "embeddings",
    "tool": "execute_tool",
    "agent": "invoke_agent",
    "retriever": "retrieval",
    "guardrail": "guardrail",
    "chain": "invoke_workflow",
}
"""``langfuse.observation.type`` → operation name (span, event: none)."""


def _level(value: Any, span: RawSpan) -> tuple[tuple[str, Any], ...] | None:
    return (("error_hint", "error"),) if value == "ERROR" else None


CONVENTION = Convention(
    name="langfuse",
    source="Langfuse SDK v3 OTel attributes",
    rules=(
        mapped("langfuse.observation.type", "operation_name", OBSERVATION_TYPES),
        attr("langfuse.observation.model.name", "request_model"),
        json_blob(
            "langfuse.observation.usage_details",
            {
                "input_tokens": ("input_tokens", "prompt_tokens"),
                "output_tokens": ("output_tokens", "output", "completion_tokens"),
                "total_tokens": ("total", "total_tokens"),
                "cache_read_tokens": ("input_cached_tokens", "cache_read_input_tokens",
                                      "input_cache_read"),
                "cache_write_tokens": ("input_cache_creation", "cache_creation_input_tokens",
                                       "input_cache_write"),
                "reasoning_tokens": ("output_reasoning_tokens", "output_reasoning"),
            },
            "'input' is the uncached remainder: cache buckets are added back",
            sums={"input_tokens": ("input", "input_cached_tokens", "input_cache_read",
                                   "input_cache_creation", "input_cache_write")},
        ),
        attr("gen_ai.usage.input_cached_tokens", "cache_read_tokens", "Langfuse key name"),
        attr("gen_ai.usage.input_cache_creation", "cache_write_tokens", "Langfuse key name"),
        computed("langfuse.observation.level", ("error_hint",), _level, "ERROR only"),
        attr("langfuse.observation.prompt.version", "prompt_version"),
        attr("langfuse.user.id", "user_id"),
        attr("langfuse.session.id", "session_id"),
        attr("langfuse.release", "agent_version"),
    ),
)
