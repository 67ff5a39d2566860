"""Hypothesis properties of the native event API (``receivers/events.py``).

* any body, any content type: :func:`decode_events` returns events or raises one of its
  documented errors (:class:`InvalidBatch`, :class:`UnsupportedMediaType`), nothing else;
* every accepted batch turns into spans without error, one per event (a ``*.started``
  whose completion already came is the one documented exception), each a span the
  store can hold: hex ids of the right length, ``0 < start <= end <= MAX_TIME_NS``, expired
  starts included.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import example, given, seed, settings
from hypothesis import strategies as st

from mentatlab.errors import InvalidBatch, UnsupportedMediaType
from mentatlab.receivers.base import MAX_TIME_NS
from mentatlab.receivers.events import EVENT_TYPES, EventPairer, decode_events

pytestmark = pytest.mark.fuzz

CONTENT_TYPES = ["application/json", "application/x-ndjson", "text/plain", None,
                 "application/json; charset=utf-8"]
json_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
    st.text(max_size=20), st.sampled_from([
        "", "0", "1e400", "-1", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z",
        "1970-01-01T00:00:00Z", "2026-11-22T10:00:00.5+14:00", "18446744073709551616",
        "0" * 32, "f" * 32, "F" * 16, "not-hex", "NaN", "Infinity"]))
json_value = st.recursive(json_scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8)
FIELDS = ["timestamp", "duration_ms", "name", "event_id", "trace_id", "span_id",
          "parent_span_id", "request_id", "step_id", "tool_call_id", "org_id", "project_id",
          "agent_id", "run_id", "step", "model", "provider", "input_tokens", "output_tokens",
          "cache_read_tokens", "reasoning_tokens", "status", "tool_name", "error_type",
          "error_message", "attempt", "threshold_percent", "amount", "attributes",
          "budget_id", "policy_id", "policy_result", "fallback_from", "fallback_to"]
odd_number = st.one_of(st.integers(), st.floats(), st.sampled_from(
    [0, -1, 2**63, 2**64, 10**17, 1e308, 1.7976931348623157e308, float("inf")]))
event = st.fixed_dictionaries(
    {"type": st.one_of(st.sampled_from(EVENT_TYPES), json_scalar)},
    optional={name: st.one_of(json_value, odd_number) for name in FIELDS})
"""An event object: a known type (mostly) with any subset of fields holding odd values."""
placed_event = st.builds(
    lambda kind, extra: {"type": kind, "run_id": "run-1", "tool_name": "search",
                         "step_id": "s1", "request_id": "q1", **extra},
    st.sampled_from(EVENT_TYPES),
    st.dictionaries(st.sampled_from(FIELDS), st.one_of(json_scalar, odd_number), max_size=3))
"""An event with the ids every type needs, and a few fields holding odd values: it gets
past the type-specific rules, so the odd values reach the span builder."""


def _spans_of(events: list[Any]) -> None:
    pairer = EventPairer(pair_timeout_s=60)
    spans = pairer.add(events, received_ns=1_800_000_000_000_000_000)
    assert len(spans) <= len(events)
    spans += pairer.expire(MAX_TIME_NS)
    for span in spans:
        assert len(span.trace_id) == 32 and int(span.trace_id, 16) >= 0
        assert len(span.span_id) == 16 and int(span.span_id, 16) >= 0
        assert span.parent_span_id == "" or len(span.parent_span_id) == 16
        assert 0 < span.start_time_ns <= span.end_time_ns <= MAX_TIME_NS, (
            span.start_time_ns, span.end_time_ns)
    assert pairer.open_count == 0


@seed(14)
@example(batch=[{"type": "agent.tool.called", "run_id": "r", "duration_ms": 1e308}],
         content_type="application/json", ndjson=False)
@example(batch=[{"type": "agent.retry", "run_id": "r", "timestamp": "9999-12-31T23:59:59Z"}],
         content_type="application/json", ndjson=False)
@example(batch=[{"type": "agent.step.started", "run_id": "r", "step_id": "s",
                 "timestamp": 9_223_372_036_000_000_000}],
         content_type="application/json", ndjson=False)
@settings(max_examples=400, deadline=None, database=None)
@given(batch=st.lists(st.one_of(event, placed_event), min_size=1, max_size=4),
       content_type=st.sampled_from(CONTENT_TYPES), ndjson=st.booleans())
def test_events_decode_or_refuse_and_become_storable_spans(
        batch: list[dict[str, Any]], content_type: str | None, ndjson: bool) -> None:
    body = ("\n".join(json.dumps(e) for e in batch) if ndjson else json.dumps(batch)).encode()
    try:
        events = decode_events(body, content_type)
    except (InvalidBatch, UnsupportedMediaType):
        return
    assert len(events) == len(batch)
    _spans_of(events)


@seed(14)
@settings(max_examples=300, deadline=None, database=None)
@given(body=st.binary(max_size=200), content_type=st.sampled_from(CONTENT_TYPES))
def test_any_bytes_are_events_or_a_documented_error(body: bytes,
                                                    content_type: str | None) -> None:
    try:
        events = decode_events(body, content_type)
    except (InvalidBatch, UnsupportedMediaType):
        return
    _spans_of(events)
