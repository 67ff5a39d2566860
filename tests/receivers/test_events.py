from __future__ import annotations

import orjson
import pytest

from mentatlab.errors import InvalidBatch, UnsupportedMediaType
from mentatlab.model.raw import StatusCode
from mentatlab.receivers.events import EventPairer, decode_events

T0 = 1_763_000_000_000_000_000
S = 1_000_000_000

BASE = {"org_id": "acme", "project_id": "support", "run_id": "run-1", "agent_id": "triage"}


def ev(type_: str, ts: int, **fields: object) -> dict[str, object]:
    return {"type": type_, "timestamp": ts, **BASE, **fields}


def decode(*events: dict[str, object]) -> list:  # type: ignore[type-arg]
    return decode_events(orjson.dumps(list(events)), "application/json")


def test_json_array_ndjson_and_rfc3339() -> None:
    array = decode(ev("agent.request.started", T0, request_id="r1"))
    ndjson = b"\n".join(orjson.dumps(e) for e in [
        ev("agent.request.started", T0, request_id="r1"),
        {**ev("agent.retry", T0, attempt=2), "timestamp": "2025-11-13T02:13:20.5Z"},
    ]) + b"\n\n"
    events = decode_events(ndjson, "application/x-ndjson; charset=utf-8")
    assert len(array) == 1 and len(events) == 2
    assert events[1].time_ns() == 1_763_000_000_500_000_000
    single = decode_events(orjson.dumps(ev("agent.retry", T0)), "application/json")
    assert single[0].type == "agent.retry"


def test_one_bad_event_refuses_the_batch_listing_every_error() -> None:
    body = orjson.dumps([
        ev("agent.request.started", T0, request_id="r1"),
        ev("agent.step.completed", T0, step_id="s", input_tokens=-3),
        ev("agent.bogus", T0),
        ev("agent.step.started", T0),
        {**ev("agent.retry", 1_700_000_000)},
        ev("agent.retry", T0, tokens=3),
    ])
    with pytest.raises(InvalidBatch) as info:
        decode_events(body, "application/json")
    fields = [e.field for e in info.value.errors]
    assert fields == ["[1].input_tokens", "[2].type", "[3].step_id", "[4].timestamp",
                      "[5].tokens"]


def test_bad_ndjson_line_and_content_type() -> None:
    with pytest.raises(InvalidBatch) as info:
        decode_events(orjson.dumps(ev("agent.retry", T0)) + b"\n{oops\n", "application/x-ndjson")
    assert [e.field for e in info.value.errors] == ["[1]"]
    with pytest.raises(UnsupportedMediaType):
        decode_events(b"[]", "text/csv")
    with pytest.raises(InvalidBatch):
        decode_events(b"[{", "application/json")


def test_invalid_ids_and_naive_timestamp() -> None:
    with pytest.raises(InvalidBatch) as info:
        decode(ev("agent.retry", T0, trace_id="0" * 32), ev("agent.retry", T0, span_id="xyz"),
               {**ev("agent.retry", T0), "timestamp": "2025-11-13T02:13:20"})
    assert [e.field for e in info.value.errors] == ["[0].trace_id", "[1].span_id",
                                                    "[2].timestamp"]


def test_started_then_completed_is_one_span_with_same_ids() -> None:
    pairer = EventPairer(pair_timeout_s=60)
    (opened,) = pairer.add(decode(ev("agent.request.started", T0, request_id="r1",
                                     attributes={"x": 1})))
    assert opened.attributes["mentat.span.open"] is True
    assert opened.start_time_ns == opened.end_time_ns == T0
    assert opened.tenancy == {"org_id": "acme", "project_id": "support"}
    assert opened.kind == "server"
    (done,) = pairer.add(decode(ev("agent.request.completed", T0 + 2 * S, request_id="r1",
                                   input_tokens=10, output_tokens=5, model="gpt-4o",
                                   provider="openai")))
    assert (done.trace_id, done.span_id, done.start_time_ns) == (
        opened.trace_id, opened.span_id, opened.start_time_ns)
    assert done.end_time_ns == T0 + 2 * S
    assert "mentat.span.open" not in done.attributes
    assert done.attributes["x"] == 1
    assert done.attributes["mentat.input_tokens"] == 10
    assert done.attributes["mentat.request_model"] == "gpt-4o"
    assert done.attributes["mentat.run_id"] == "run-1"
    assert done.attributes["mentat.operation"] == "agent"
    assert pairer.open_count == 0
    assert pairer.expire(T0 + 3600 * S) == []


def test_ids_are_deterministic_and_nest() -> None:
    a = EventPairer(60).add(decode(
        ev("agent.request.started", T0, request_id="r1"),
        ev("agent.step.started", T0, request_id="r1", step_id="s1", step=1),
        ev("agent.tool.called", T0 + S, request_id="r1", step_id="s1", tool_name="search",
           tool_call_id="t1", duration_ms=250)))
    b = EventPairer(60).add(decode(ev("agent.request.started", T0, request_id="r1")))
    request, step, tool = a
    assert request.span_id == b[0].span_id and request.trace_id == b[0].trace_id
    assert len({s.trace_id for s in a}) == 1
    assert step.parent_span_id == request.span_id
    assert tool.parent_span_id == step.span_id
    assert step.name == "agent.step 1"
    assert tool.name == "tool search"
    assert tool.start_time_ns == T0 + S - 250_000_000 and tool.end_time_ns == T0 + S
    assert tool.attributes["mentat.operation"] == "tool"
    other_org = EventPairer(60).add(decode({**ev("agent.request.started", T0, request_id="r1"),
                                            "org_id": "other"}))
    assert other_org[0].trace_id != request.trace_id


def test_explicit_w3c_ids_win() -> None:
    (span,) = EventPairer(60).add(decode(ev(
        "agent.retry", T0, trace_id="AB" * 16, span_id="cd" * 8, parent_span_id="ef" * 8,
        attempt=2)))
    assert (span.trace_id, span.span_id, span.parent_span_id) == ("ab" * 16, "cd" * 8, "ef" * 8)
    assert span.attributes["mentat.is_retry"] is True
    assert span.attributes["mentat.attempt"] == 2


def test_unpaired_start_times_out_and_late_completion_keeps_start() -> None:
    pairer = EventPairer(pair_timeout_s=30)
    (opened,) = pairer.add(decode(ev("agent.step.started", T0, step_id="s1")))
    assert pairer.expire(T0 + 29 * S) == []
    (timed_out,) = pairer.expire(T0 + 31 * S)
    assert timed_out.span_id == opened.span_id
    assert timed_out.attributes["mentat.status"] == "timeout"
    assert timed_out.status_code == StatusCode.ERROR
    assert timed_out.end_time_ns == T0 + 30 * S
    assert "mentat.span.open" not in timed_out.attributes
    (late,) = pairer.add(decode(ev("agent.step.completed", T0 + 40 * S, step_id="s1")))
    assert late.start_time_ns == T0 and late.end_time_ns == T0 + 40 * S
    assert "mentat.status" not in late.attributes


def test_completed_without_started_uses_duration() -> None:
    pairer = EventPairer(60)
    (span,) = pairer.add(decode(ev("agent.step.completed", T0 + S, step_id="s9",
                                   duration_ms=500, status="error", error_type="tool_timeout",
                                   error_message="search took too long")))
    assert span.start_time_ns == T0 + S // 2
    assert span.attributes["mentat.span.unpaired"] is True
    assert span.status_code == StatusCode.ERROR
    assert span.status_message == "search took too long"
    # a started arriving after its completion opens nothing
    assert pairer.add(decode(ev("agent.step.started", T0, step_id="s9"))) == []
    assert pairer.open_count == 0


def test_seed_open_after_restart() -> None:
    first = EventPairer(60)
    opened = first.add(decode(ev("agent.request.started", T0, request_id="r1")))
    restarted = EventPairer(60)
    restarted.seed_open(opened)
    (done,) = restarted.add(decode(ev("agent.request.completed", T0 + S, request_id="r1")))
    assert done.start_time_ns == T0
    assert "mentat.span.unpaired" not in done.attributes


def test_single_events_become_spans() -> None:
    spans = EventPairer(60).add(decode(
        ev("agent.fallback.triggered", T0, fallback_from="gpt-4o", fallback_to="gpt-4o-mini"),
        ev("agent.policy.decision", T0, policy_id="no-pii", policy_result="blocked"),
        ev("agent.budget.threshold_hit", T0, budget_id="b1", threshold_percent=80,
           amount="80.10"),
        ev("agent.tool.failed", T0, tool_name="search", error_type="tool_timeout")))
    fallback, policy, budget, failed = spans
    assert fallback.attributes["mentat.is_fallback"] is True
    assert fallback.attributes["mentat.fallback_to"] == "gpt-4o-mini"
    assert policy.attributes["mentat.policy_result"] == "blocked"
    assert policy.attributes["mentat.operation"] == "guardrail"
    assert budget.attributes["mentat.budget_amount"] == "80.10"
    assert failed.status_code == StatusCode.ERROR
    assert failed.attributes["mentat.error_type"] == "tool_timeout"
    assert len({s.span_id for s in spans}) == 4


def test_docs_example_decodes_as_documented() -> None:
    from pathlib import Path

    text = (Path(__file__).parents[2] / "docs" / "events.md").read_text()
    example = text.split("## Example", 1)[1].split("```json", 1)[1].split("```", 1)[0]
    spans = EventPairer(300).add(decode_events(example.encode(), "application/json"))
    assert [s.name for s in spans] == ["agent.request", "agent.step 1", "tool search_kb",
                                       "agent.step 1", "agent.request"]
    request, step, tool = spans[4], spans[3], spans[2]
    assert len({s.trace_id for s in spans}) == 1
    assert request.span_id == spans[0].span_id and step.span_id == spans[1].span_id
    assert step.parent_span_id == request.span_id and tool.parent_span_id == step.span_id
    assert request.end_time_ns - request.start_time_ns == 1_300_000_000
    assert step.attributes["mentat.cache_read_tokens"] == 1024
    assert request.tenancy == {"org_id": "acme", "project_id": "support"}


def test_resent_completion_after_backpressure_pairs_again() -> None:
    pairer = EventPairer(60)
    pairer.add(decode(ev("agent.step.started", T0, step_id="s1")))
    completion = decode(ev("agent.step.completed", T0 + S, step_id="s1"))
    first = pairer.add(completion)  # imagine the store answered 503 and the client resends
    again = pairer.add(completion)
    assert first == again
    assert again[0].start_time_ns == T0
