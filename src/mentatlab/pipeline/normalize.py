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

import dataclasses
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
from mentatlab.governance.policies import decision_action
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
    "network_bytes_out", "storage_bytes", "error_type",
})
"""Extracted fields copied to the CanonicalSpan as they are."""
_TENANCY = frozenset({
    "org_id", "workspace_id", "project_id", "user_id", "customer_id", "department",
    "service_name", "agent_id", "agent_version", "runtime", "workflow_id", "workflow_version",
    "flow_id", "run_id", "session_id", "step", "prompt_version",
})
"""``RawSpan.tenancy`` keys honoured (canonical names); others are ignored."""
_STATUS_VALUES = {s.value: s for s in SpanStatus}
_FIELDS = dataclasses.fields(CanonicalSpan)
_INDEX = {f.name: i for i, f in enumerate(_FIELDS)}
_TEMPLATE: tuple[Any, ...] = tuple(
    None if f.default is dataclasses.MISSING else f.default for f in _FIELDS)
"""A CanonicalSpan row of defaults (required fields None until set)."""
_PASSTHROUGH_INDEX = {name: _INDEX[name] for name in _PASSTHROUGH}
_TENANCY_INDEX = {name: _INDEX[name] for name in _TENANCY}
_I_TRACE_ID = _INDEX["trace_id"]
_I_STATUS_MESSAGE = _INDEX["status_message"]
_I_INPUT_TOKENS = _INDEX["input_tokens"]
_I_REQUEST_MODEL = _INDEX["request_model"]
_I_RESPONSE_MODEL = _INDEX["response_model"]
_I_TOOL_NAME = _INDEX["tool_name"]
_I_ATTEMPT = _INDEX["attempt"]
_I_IS_RETRY = _INDEX["is_retry"]
_I_OPERATION = _INDEX["operation"]
_I_OPERATION_NAME = _INDEX["operation_name"]
_I_PROVIDER = _INDEX["provider"]
_I_USAGE_IS_ROLLUP = _INDEX["usage_is_rollup"]
_I_ATTRIBUTES = _INDEX["attributes"]
_I_EVENTS = _INDEX["events"]
_I_RESOURCE = _INDEX["resource"]
_I_SCOPE_NAME = _INDEX["scope_name"]
_I_INGESTED_AT_NS = _INDEX["ingested_at_ns"]
_I_POLICY_IDS = _INDEX["policy_ids"]
_I_POLICY_VERSIONS = _INDEX["policy_versions"]
_I_POLICY_ACTIONS = _INDEX["policy_actions"]
assert _I_STATUS_MESSAGE - _I_TRACE_ID == 9, "identity fields must stay contiguous"
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


def _base_row(found: Mapping[str, Any], resource_fields: Mapping[str, str],
              tenancy: Mapping[str, str]) -> list[Any]:
    """A row of defaults with the resource fields, then the span's, then the receiver's."""
    row = list(_TEMPLATE)
    for field, value in resource_fields.items():
        row[_INDEX[field]] = value
    for field, value in found.items():
        index = _PASSTHROUGH_INDEX.get(field)
        if index is not None:
            row[index] = value
    policy_id = found.get("policy_id")
    if policy_id:  # a producer's own decision: one entry of the decision arrays
        row[_I_POLICY_IDS] = (str(policy_id),)
        row[_I_POLICY_VERSIONS] = (0,)
        row[_I_POLICY_ACTIONS] = (decision_action(str(found.get("policy_result") or "")),)
    if tenancy:
        for field, value in tenancy.items():
            index = _TENANCY_INDEX.get(field)
            if index is not None and value:
                row[index] = value
    return row


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
        # The row is built positionally from a template: ~3x cheaper than ~30 keyword
        # arguments to a 70-field dataclass, and this runs once per ingested span.
        row = _base_row(found, resource_fields, span.tenancy)

        # tokens: input inclusive of cache (add back what cache-exclusive producers left out)
        input_tokens = found.get("input_tokens")
        excluded = found.get("input_cache_excluded_tokens")
        if excluded and input_tokens is not None:
            input_tokens += excluded
        row[_I_INPUT_TOKENS] = input_tokens

        # operation
        operation_name: str = found.get("operation_name", "")
        operation = OPERATION_CLASS.get(operation_name, Operation.OTHER)
        if operation is Operation.OTHER and not operation_name and (
                row[_I_REQUEST_MODEL] or row[_I_RESPONSE_MODEL]):
            operation = Operation.CHAT
        if operation is Operation.TOOL:
            tool_name = found.get("tool_name")
            if tool_name:
                row[_I_TOOL_NAME] = tool_name
        rollup = found.get("usage_is_rollup")
        if rollup is None:
            rollup = operation_name in ROLLUP_OPERATIONS and span.kind != "client"

        # provider: attribute, else server.address, else an unambiguous model string
        provider = found.get("provider") or infer_provider_from_host(
            span.attributes.get("server.address"))
        if not provider:
            provider = infer_provider_from_model(
                row[_I_RESPONSE_MODEL] or row[_I_REQUEST_MODEL] or "")

        attempt = row[_I_ATTEMPT] or 1
        row[_I_ATTEMPT] = attempt
        if attempt > 1 and "is_retry" not in found:
            row[_I_IS_RETRY] = True

        start_ns = span.start_time_ns
        end_ns = span.end_time_ns
        start_time = _time(start_ns)
        row[_I_TRACE_ID:_I_STATUS_MESSAGE + 1] = (
            span.trace_id, span.span_id, span.parent_span_id, span.name, span.kind,
            start_time, start_time if end_ns == start_ns else _time(end_ns),
            (end_ns - start_ns) / 1e6, self._status(span, found), span.status_message)
        row[_I_OPERATION] = operation
        row[_I_OPERATION_NAME] = operation_name
        row[_I_PROVIDER] = provider or ""
        row[_I_USAGE_IS_ROLLUP] = bool(rollup)
        attributes = span.attributes
        if attributes:
            row[_I_ATTRIBUTES] = self._attributes_json(attributes)
        if span.events:
            row[_I_EVENTS] = _dumps(span.events)
        row[_I_RESOURCE] = resource_json
        row[_I_SCOPE_NAME] = span.scope_name
        row[_I_INGESTED_AT_NS] = now_ns
        return CanonicalSpan(*row)

    def _attributes_json(self, attributes: Mapping[str, Any]) -> str:
        """Attributes as JSON text, long string values truncated (see ``_truncate``).

        No string value can be longer than the whole JSON text, so when the text fits in
        ``max_attribute_value_bytes`` nothing needs cutting and the per-value scan is skipped.
        """
        limit_bytes = self.max_attribute_value_bytes
        try:
            encoded = orjson.dumps(attributes)
        except TypeError:  # ints over 64 bits, exotic types
            return _dumps(_truncate(attributes, limit_bytes))
        if len(encoded) <= limit_bytes:
            return encoded.decode()
        truncated = _truncate(attributes, limit_bytes)
        return encoded.decode() if truncated is attributes else _dumps(truncated)

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
