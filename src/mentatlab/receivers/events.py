"""The native event API: decode event batches and turn events into :class:`RawSpan` s.

A batch is all or nothing: one invalid event refuses the request (:class:`InvalidBatch`,
HTTP 422 listing every error), because events pair up (``*.started``/``*.completed``)
and a partly accepted batch would leave the producer unsure what to resend.
``docs/events.md`` documents the schema, the ids and the spans produced.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import pydantic

from mentatlab.errors import FieldError, InvalidBatch, UnsupportedMediaType
from mentatlab.model.raw import RawSpan, StatusCode
from mentatlab.receivers.base import MAX_TIME_NS
from mentatlab.receivers.event_schema import EVENT_TYPES, Event, EventType

__all__ = ["EVENT_TYPES", "Event", "EventPairer", "EventType", "decode_events"]

_JSON_TYPES = ("application/json",)
_NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl",
                 "application/x-jsonlines")
_EVENTS_ADAPTER = pydantic.TypeAdapter(Event)
_OPEN_ATTR = "mentat.span.open"
_RECENT_CLOSED_MAX = 100_000


def _loc(index: int, loc: Iterable[int | str]) -> str:
    return f"[{index}]" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)


def _requirements(event: Event) -> str | None:
    """The field a type-specific rule needs and the reason, as ``field: reason``."""
    kind = event.type
    if not (event.trace_id or event.run_id or event.flow_id or event.request_id):
        return "trace_id: needs trace_id, run_id, flow_id or request_id to place the span"
    if kind.startswith("agent.request.") and not (event.request_id or event.span_id):
        return f"request_id: {kind} needs request_id or span_id"
    if kind.startswith("agent.step.") and not (event.step_id or event.span_id):
        return f"step_id: {kind} needs step_id or span_id"
    if kind.startswith("agent.tool.") and not event.tool_name:
        return f"tool_name: {kind} needs tool_name"
    if kind == "agent.policy.decision" and not (event.policy_id and event.policy_result):
        return "policy_id: agent.policy.decision needs policy_id and policy_result"
    if kind == "agent.budget.threshold_hit" and not event.budget_id:
        return "budget_id: agent.budget.threshold_hit needs budget_id"
    return None


def decode_events(body: bytes, content_type: str | None) -> list[Event]:
    """Decode a batch of events: a JSON array (or one object), or NDJSON.

    Args:
        body: the uncompressed request body.
        content_type: ``application/json`` or ``application/x-ndjson`` (also
            ``application/ndjson``, ``application/jsonl``); parameters ignored.

    Returns:
        The events, in the order sent.

    Raises:
        UnsupportedMediaType: another content type.
        InvalidBatch: any event is invalid; lists every error with its field path such as
            ``[3].input_tokens`` (``[i]`` is the event's 0-based position).
    """
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    docs: list[Any] = []
    errors: list[FieldError] = []
    if media_type in _JSON_TYPES:
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise InvalidBatch([FieldError("", f"invalid JSON: {exc}")]) from None
        docs = parsed if isinstance(parsed, list) else [parsed]
    elif media_type in _NDJSON_TYPES:
        for line in body.splitlines():
            if not line.strip():
                continue
            try:
                docs.append(orjson.loads(line))
            except orjson.JSONDecodeError as exc:
                errors.append(FieldError(f"[{len(docs)}]", f"invalid JSON: {exc}"))
                docs.append(None)
    else:
        raise UnsupportedMediaType("Content-Type", content_type,
                                   ", ".join(_JSON_TYPES + _NDJSON_TYPES))
    events: list[Event] = []
    for index, doc in enumerate(docs):
        if doc is None and errors and errors[-1].field == f"[{index}]":
            continue
        try:
            event = _EVENTS_ADAPTER.validate_python(doc)
        except pydantic.ValidationError as exc:
            errors.extend(FieldError(_loc(index, e["loc"]), e["msg"]) for e in exc.errors())
            continue
        problem = _requirements(event)
        if problem:
            field, reason = problem.split(": ", 1)
            errors.append(FieldError(f"[{index}].{field}", reason))
        events.append(event)
    if errors:
        raise InvalidBatch(errors)
    return events


def _hash_hex(nbytes: int, *parts: str) -> str:
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=nbytes).hexdigest()


def _family(kind: EventType) -> str:
    return ".".join(kind.split(".")[:2])  # agent.request.started -> agent.request


def _trace_id(event: Event) -> str:
    if event.trace_id:
        return event.trace_id
    key = event.run_id or event.flow_id or event.request_id or ""
    scope = "run" if event.run_id else "flow" if event.flow_id else "request"
    return _hash_hex(16, "trace", event.org_id or "", event.project_id or "", scope, key)


def _derived_span_id(trace_id: str, family: str, key: str) -> str:
    return _hash_hex(8, "span", trace_id, family, key)


def _span_id(event: Event, trace_id: str, time_ns: int) -> str:
    if event.span_id:
        return event.span_id
    kind = event.type
    if kind.startswith("agent.request."):
        return _derived_span_id(trace_id, "agent.request", event.request_id or "")
    if kind.startswith("agent.step."):
        return _derived_span_id(trace_id, "agent.step", event.step_id or "")
    key = event.event_id or event.tool_call_id or f"{event.step_id}|{time_ns}|{event.attempt}"
    return _derived_span_id(trace_id, kind, key)


def _parent_id(event: Event, trace_id: str) -> str:
    if event.parent_span_id:
        return event.parent_span_id
    if event.step_id and not event.type.startswith("agent.step."):
        return _derived_span_id(trace_id, "agent.step", event.step_id)
    if event.request_id and not event.type.startswith("agent.request."):
        return _derived_span_id(trace_id, "agent.request", event.request_id)
    return ""


_ATTR_FIELDS = ("agent_id", "agent_version", "runtime", "workflow_id", "workflow_version",
                "flow_id", "run_id", "session_id", "prompt_version", "provider",
                "response_model", "input_tokens", "output_tokens", "cache_read_tokens",
                "cache_write_tokens", "reasoning_tokens", "tool_name", "error_type",
                "attempt", "policy_id", "policy_result", "budget_id", "threshold_percent",
                "fallback_from", "fallback_to", "request_id", "step_id", "tool_call_id",
                "event_id")
_TENANCY_FIELDS = ("org_id", "workspace_id", "project_id", "user_id", "customer_id",
                   "department")
_OPERATION = {"agent.request": "agent", "agent.tool": "tool", "agent.policy": "guardrail"}
_KIND = {"agent.request": "server"}


def _attributes(event: Event) -> dict[str, Any]:
    attrs: dict[str, Any] = dict(event.attributes)
    attrs["mentat.event_type"] = event.type
    for name in _ATTR_FIELDS:
        value = getattr(event, name)
        if value is not None:
            attrs[f"mentat.{name}"] = value
    if event.step is not None:
        attrs["mentat.step"] = str(event.step)
    if event.model is not None:
        attrs["mentat.request_model"] = event.model
    if event.amount is not None:
        attrs["mentat.budget_amount"] = str(event.amount)
    if event.type == "agent.retry":
        attrs["mentat.is_retry"] = True
    elif event.type == "agent.fallback.triggered":
        attrs["mentat.is_fallback"] = True
    operation = _OPERATION.get(_family(event.type))
    if operation:
        attrs.setdefault("mentat.operation", operation)
    if event.status == "timeout":
        attrs["mentat.status"] = "timeout"
    return attrs


def _default_name(event: Event) -> str:
    if event.name:
        return event.name
    if event.type.startswith("agent.step."):
        return f"agent.step {event.step}" if event.step is not None else "agent.step"
    if event.type.startswith("agent.tool."):
        return f"tool {event.tool_name}"
    return _family(event.type) if event.type.endswith((".started", ".completed")) else event.type


def _status(event: Event) -> int:
    failed = event.status in ("error", "timeout") or event.type == "agent.tool.failed"
    return StatusCode.ERROR if failed or event.error_type else (
        StatusCode.OK if event.status == "ok" else StatusCode.UNSET)


@dataclass(slots=True)
class _Open:
    span: RawSpan
    deadline_ns: int


class EventPairer:
    """Turns events into spans, pairing ``*.started`` with ``*.completed`` (not thread-safe).

    * ``*.started`` → an open span (``end == start``, attribute ``mentat.span.open``) to
      store at once, so a crash loses nothing;
    * ``*.completed`` → the full span with the SAME ids and start time, which replaces the
      open version in the store; without a known start it starts ``duration_ms`` before
      the event (or at it) and carries ``mentat.span.unpaired``;
    * a ``*.started`` still open ``pair_timeout_s`` after its start → a span with
      ``mentat.status=timeout`` from :meth:`expire`;
    * every other event → one finished span ending at its timestamp.

    Args:
        pair_timeout_s: how long a started span waits for its completion, in s.
    """

    def __init__(self, pair_timeout_s: float) -> None:
        self._timeout_ns = int(pair_timeout_s * 1e9)
        self._open: dict[tuple[str, str], _Open] = {}
        self._closed: OrderedDict[tuple[str, str], RawSpan | None] = OrderedDict()
        """Recently closed keys with their open span, so a late or re-sent completion
        (after a 503) still gets its start time."""

    @property
    def open_count(self) -> int:
        """Started spans waiting for their completion."""
        return len(self._open)

    def seed_open(self, spans: Iterable[RawSpan]) -> None:
        """Reload open spans after a restart (spans carrying ``mentat.span.open``)."""
        for span in spans:
            if span.attributes.get(_OPEN_ATTR):
                self._open[(span.trace_id, span.span_id)] = _Open(
                    span, self._deadline_ns(span.start_time_ns))

    def add(self, events: Sequence[Event], received_ns: int | None = None) -> list[RawSpan]:
        """Turn a batch of events into spans to store, in order.

        Args:
            events: decoded events.
            received_ns: arrival time for events without a timestamp, unix ns.
        """
        out: list[RawSpan] = []
        for event in events:
            span = self._one(event, received_ns)
            if span is not None:
                out.append(span)
        return out

    def _one(self, event: Event, received_ns: int | None) -> RawSpan | None:
        time_ns = event.time_ns(received_ns)
        trace_id = _trace_id(event)
        span_id = _span_id(event, trace_id, time_ns)
        key = (trace_id, span_id)
        attrs = _attributes(event)
        start_ns = time_ns - int((event.duration_ms or 0) * 1e6)
        span = RawSpan(
            trace_id, span_id, _parent_id(event, trace_id), _default_name(event),
            start_ns, time_ns, kind=_KIND.get(_family(event.type), "internal"),
            status_code=_status(event), status_message=event.error_message or "",
            attributes=attrs, resource={"service.name": event.agent_id} if event.agent_id else {},
            scope_name="mentatlab.events",
            tenancy={n: v for n in _TENANCY_FIELDS if (v := getattr(event, n))},
        )
        if event.type.endswith(".started"):
            if key in self._closed:
                return None  # its completion already arrived: nothing left to open
            span.start_time_ns = span.end_time_ns = time_ns
            attrs[_OPEN_ATTR] = True
            self._open[key] = _Open(span, self._deadline_ns(time_ns))
        elif event.type.endswith(".completed"):
            opened = self._open.pop(key, None)
            first = opened.span if opened is not None else self._closed.get(key)
            self._remember_closed(key, first)  # a re-sent completion pairs the same way
            if first is not None:
                first_attrs = {k: v for k, v in first.attributes.items() if k != _OPEN_ATTR}
                span.attributes = {**first_attrs, **attrs}
                span.start_time_ns = first.start_time_ns
                span.end_time_ns = max(time_ns, first.start_time_ns)
                span.parent_span_id = span.parent_span_id or first.parent_span_id
                span.name = event.name or first.name
                span.tenancy = {**first.tenancy, **span.tenancy}
                span.resource = span.resource or first.resource
            else:
                attrs["mentat.span.unpaired"] = True
        return span

    def _deadline_ns(self, start_ns: int) -> int:
        """When a span started at ``start_ns`` expires; never past what the store holds."""
        return min(start_ns + self._timeout_ns, MAX_TIME_NS)

    def _remember_closed(self, key: tuple[str, str], span: RawSpan | None) -> None:
        self._closed[key] = span
        self._closed.move_to_end(key)
        if len(self._closed) > _RECENT_CLOSED_MAX:
            self._closed.popitem(last=False)

    def expire(self, now_ns: int) -> list[RawSpan]:
        """Close started spans whose completion did not come in time.

        Args:
            now_ns: the current time, unix ns.

        Returns:
            One span per expired start: ``end = start + pair_timeout_s``, status error,
            attribute ``mentat.status=timeout``.
        """
        expired = [key for key, item in self._open.items() if item.deadline_ns <= now_ns]
        out: list[RawSpan] = []
        for key in expired:
            item = self._open.pop(key)
            first = item.span
            self._remember_closed(key, first)
            attrs = {k: v for k, v in first.attributes.items() if k != _OPEN_ATTR}
            attrs["mentat.status"] = "timeout"
            out.append(RawSpan(
                first.trace_id, first.span_id, first.parent_span_id, first.name,
                first.start_time_ns, item.deadline_ns, first.kind, StatusCode.ERROR,
                f"no completion within {self._timeout_ns / 1e9:g} s", attrs, list(first.events),
                list(first.links), first.resource, first.scope_name, first.scope_version,
                dict(first.tenancy)))
        return out
