"""Normalize: RawSpan → CanonicalSpan, applying the attribute conventions.

The first pipeline stage (a :class:`~mentatlab.pipeline.processor.Normalizer`). It reads
every convention table (:mod:`mentatlab.conventions.registry`), fixes token meaning to
the one documented in :mod:`mentatlab.model.span` (input inclusive of cache, output
inclusive of reasoning, None ≠ 0), infers the provider where the span leaves it out,
and keeps everything that arrived as JSON text. Costs stay zero (pricing is later).

Rejected spans (not stored): a mapped token count that is negative, non-numeric or over
:data:`~mentatlab.conventions.base.MAX_TOKENS_PER_SPAN`; a negative or non-numeric
metered resource; an end time before the start time. Each yields one
``FieldError(field="<span_id>:<attribute key>", reason=...)``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from mentatlab.conventions.base import BadValue
from mentatlab.conventions.operation import OPERATION_CLASS, ROLLUP_OPERATIONS
from mentatlab.conventions.provider import infer_provider_from_host, infer_provider_from_model
from mentatlab.conventions.registry import extract_fields, extract_resource_fields
from mentatlab.errors import FieldError
from mentatlab.model.raw import RawSpan, StatusCode
from mentatlab.model.span import CanonicalSpan, Operation, SpanStatus
from mentatlab.pipeline.processor import BatchResult

__all__ = ["TRUNCATED_ATTRIBUTES_KEY", "Normalize"]

logger = logging.getLogger(__name__)

TRUNCATED_ATTRIBUTES_KEY = "mentat.truncated_attributes"
"""Span attribute listing the keys whose string values were truncated."""

_PASSTHROUGH = frozenset({
    "org_id", "workspace_id", "project_id", "user_id", "customer_id", "department",
    "service_name", "agent_id", "agent_version", "runtime", "workflow_id", "workflow_version",
    "flow_id", "run_id", "session_id", "step", "prompt_version", "attempt", "is_retry",
    "is_fallback", "is_streaming", "request_model", "response_model", "output_tokens",
    "cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "total_tokens",
    "cpu_core_seconds", "memory_gb_seconds", "gpu_seconds", "network_bytes_in",
    "network_bytes_out", "storage_bytes", "error_type", "policy_id", "policy_result",
})
"""Extracted fields copied to the CanonicalSpan as they are."""
_TENANCY = frozenset({
    "org_id", "workspace_id", "project_id", "user_id", "customer_id", "department",
    "service_name", "agent_id", "agent_version", "runtime", "workflow_id", "workflow_version",
    "flow_id", "run_id", "session_id", "step", "prompt_version",
})
"""``RawSpan.tenancy`` keys honoured (canonical names); others are ignored."""
_STATUS_VALUES = {s.value: s for s in SpanStatus}
_TIMEOUT_MARKERS = ("timeout", "timedout", "deadlineexceeded", "deadline_exceeded")


def _time(ns: int) -> datetime:
    # Exact to the microsecond: fromtimestamp rounds half-even, and whole microseconds
    # since the epoch fit a double's 53-bit mantissa until the year 2255.
    return datetime.fromtimestamp((ns // 1000) / 1e6, UTC)


def _dumps(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # ints over 64 bits, exotic types
        return json.dumps(value, default=str, ensure_ascii=False)


def _truncate(attributes: Mapping[str, Any], limit_bytes: int) -> Mapping[str, Any]:
    """``attributes`` with string values over ``limit_bytes`` cut (UTF-8 safe) and listed."""
    cut: list[str] = []
    out: dict[str, Any] | None = None
    quarter = limit_bytes // 4
    for key, value in attributes.items():
        if type(value) is str and len(value) > quarter:
            encoded = value.encode()
            if len(encoded) > limit_bytes:
                if out is None:
                    out = dict(attributes)
                out[key] = encoded[:limit_bytes].decode("utf-8", "ignore")
                cut.append(key)
    if out is None:
        return attributes
    out[TRUNCATED_ATTRIBUTES_KEY] = cut
    return out


class Normalize:
    """Turns raw spans into canonical spans (a ``Normalizer``).

    Args:
        max_attribute_value_bytes: longer string attribute values are truncated to this many
            bytes (UTF-8) and their keys listed in ``mentat.truncated_attributes``.

    Raises:
        ValueError: ``max_attribute_value_bytes`` < 16.
    """

    def __init__(self, max_attribute_value_bytes: int = 65536) -> None:
        if max_attribute_value_bytes < 16:
            raise ValueError(
                f"Expected max_attribute_value_bytes >= 16, got {max_attribute_value_bytes}")
        self.max_attribute_value_bytes = max_attribute_value_bytes

    def __call__(self, raw: Sequence[RawSpan]) -> BatchResult:
        """Normalize a batch of N raw spans; len(spans) + len(rejected) == N.

        Returns:
            The accepted spans in input order, and one FieldError per rejected span.
        """
        now_ns = time.time_ns()
        spans: list[CanonicalSpan] = []
        rejected: list[FieldError] = []
        resources: dict[int, tuple[dict[str, str], str]] = {}
        for span in raw:
            try:
                spans.append(self._one(span, now_ns, resources))
            except BadValue as exc:
                rejected.append(FieldError(f"{span.span_id}:{exc.key}", exc.reason))
        if rejected:
            logger.info("normalize rejected %s of %s spans", len(rejected), len(raw))
        return BatchResult(spans, rejected)

    def _resource(self, span: RawSpan,
                  cache: dict[int, tuple[dict[str, str], str]]) -> tuple[dict[str, str], str]:
        # Receivers share one resource dict between the spans of a ResourceSpans; the
        # batch holds every dict alive, so id() is a safe key for the batch's duration.
        key = id(span.resource)
        hit = cache.get(key)
        if hit is None:
            hit = (extract_resource_fields(span.resource), _dumps(span.resource))
            cache[key] = hit
        return hit

    def _one(self, span: RawSpan, now_ns: int,
             resources: dict[int, tuple[dict[str, str], str]]) -> CanonicalSpan:
        if span.end_time_ns < span.start_time_ns:
            raise BadValue(f"Expected end time >= start time {span.start_time_ns}, got "
                           f"{span.end_time_ns}", "endTimeUnixNano")
        found = extract_fields(span)
        resource_fields, resource_json = self._resource(span, resources)
        values: dict[str, Any] = {**resource_fields, **{
            field: value for field, value in found.items() if field in _PASSTHROUGH}}
        if span.tenancy:
            values.update((k, v) for k, v in span.tenancy.items() if k in _TENANCY and v)

        # tokens: input inclusive of cache (add back what cache-exclusive producers left out)
        input_tokens = found.get("input_tokens")
        excluded = found.get("input_cache_excluded_tokens")
        if excluded and input_tokens is not None:
            input_tokens += excluded
        values["input_tokens"] = input_tokens

        # operation
        operation_name: str = found.get("operation_name", "")
        operation = OPERATION_CLASS.get(operation_name, Operation.OTHER)
        if operation is Operation.OTHER and not operation_name and (
                values.get("request_model") or values.get("response_model")):
            operation = Operation.CHAT
        if operation is not Operation.TOOL:
            values.pop("tool_name", None)
        else:
            tool_name = found.get("tool_name")
            if tool_name:
                values["tool_name"] = tool_name
        rollup = found.get("usage_is_rollup")
        if rollup is None:
            rollup = operation_name in ROLLUP_OPERATIONS and span.kind != "client"

        # provider: attribute, else server.address, else an unambiguous model string
        provider = found.get("provider") or infer_provider_from_host(
            span.attributes.get("server.address"))
        if not provider:
            provider = infer_provider_from_model(
                values.get("response_model") or values.get("request_model") or "")

        attempt = values.get("attempt") or 1
        values["attempt"] = attempt
        if attempt > 1 and "is_retry" not in values:
            values["is_retry"] = True

        start_time = _time(span.start_time_ns)
        attributes: Mapping[str, Any] = span.attributes
        if attributes:
            attributes = _truncate(attributes, self.max_attribute_value_bytes)
        return CanonicalSpan(
            trace_id=span.trace_id,
            span_id=span.span_id,
            parent_span_id=span.parent_span_id,
            name=span.name,
            kind=span.kind,
            start_time=start_time,
            end_time=start_time if span.end_time_ns == span.start_time_ns
            else _time(span.end_time_ns),
            duration_ms=(span.end_time_ns - span.start_time_ns) / 1e6,
            status=self._status(span, found),
            status_message=span.status_message,
            operation=operation,
            operation_name=operation_name,
            provider=provider or "",
            usage_is_rollup=bool(rollup),
            attributes=_dumps(attributes) if attributes else "{}",
            events=_dumps(span.events) if span.events else "[]",
            resource=resource_json,
            scope_name=span.scope_name,
            ingested_at_ns=now_ns,
            **values,
        )

    @staticmethod
    def _status(span: RawSpan, found: Mapping[str, Any]) -> SpanStatus:
        if "status" in found:
            explicit = _STATUS_VALUES.get(str(found["status"]).lower())
            if explicit is not None:
                return explicit
        if span.status_code != StatusCode.ERROR and found.get("error_hint") != "error":
            return SpanStatus.OK
        error_type = str(found.get("error_type", "")).lower().replace(" ", "")
        if any(marker in error_type for marker in _TIMEOUT_MARKERS):
            return SpanStatus.TIMEOUT
        return SpanStatus.ERROR
