"""Reliability on constructed traces, on both backends; every answer worked out by hand.

Org acme, trace n starting at minute n (spans a few ms apart):

* T1 ok: agent ``run`` → chat, and tool ``search`` called 3x with args ``h1`` (a loop).
* T2 ok: chat fails (rate_limit), its retry succeeds.
* T3 error: root fails (no category), chat fails (context_length_exceeded), its retry too.
* T4 ok: chat fails (upstream_error), a fallback chat succeeds.
* T5 ok, near-misses of a loop: ``search`` with h2, h3, h2 and a *retry* with h2 (2
  non-retry h2 calls), ``lookup`` with h2 once, ``search`` without arguments 3x.
* T6 timeout (deadlock suspect): agent A (times out) → B → tool → A.
* T7 ok, cycle: A → B → A, where B's span carries A's agent id only inherited.
* T8 error with root category ``timeout``: A → A → A (direct recursion, no cycle).
* T9 ok: A → B → C and A → B again (B repeated as a sibling: no cycle).
* T10 no root (its parent never arrived): a chat step ``generate`` times out, a tool
  step ``retrieve``.
* A globex trace: ``search`` 3x with h1 and a failed chat (outside acme's scope).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mentatlab.analytics.query import QueryParams, TimeRange
from mentatlab.analytics.reliability import (
    LOOP_MIN_CALLS,
    auto_bucket,
    find_agent_cycle,
    get_reliability,
)
from mentatlab.errors import ValidationError
from mentatlab.model.span import CanonicalSpan, Operation, SpanStatus
from mentatlab.storage.base import SpanStore

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
RANGE = TimeRange(T0, T0 + timedelta(hours=1))
ACME = {"org_id": "acme"}
MISSING_PARENT = "ffffffffffffffff"


class _Trace:
    def __init__(self, t: int, org: str = "acme") -> None:
        self.t, self.org, self.spans = t, org, []  # type: list[CanonicalSpan]

    def add(self, parent: str | None, name: str, op: Operation = Operation.CHAT, *,
            status: SpanStatus = SpanStatus.OK, **kw: Any) -> str:
        n = len(self.spans) + 1
        span_id = f"{self.t:08x}{n:08x}"
        start = T0 + timedelta(minutes=self.t, milliseconds=n)
        self.spans.append(CanonicalSpan(
            trace_id=f"{self.t:032x}", span_id=span_id, parent_span_id=parent or "",
            name=name, kind="internal", start_time=start,
            end_time=start + timedelta(milliseconds=5), duration_ms=5.0, status=status,
            operation=op, org_id=self.org, project_id="p", service_name="svc",
            ingested_at_ns=1, **kw))
        return span_id

    def fail(self, parent: str | None, name: str, category: str, cls: str,
             op: Operation = Operation.CHAT, status: SpanStatus = SpanStatus.ERROR,
             **kw: Any) -> str:
        return self.add(parent, name, op, status=status, error_type=category,
                        error_category=category, error_class=cls, **kw)

    def agent(self, parent: str | None, agent: str, **kw: Any) -> str:
        return self.add(parent, agent, Operation.AGENT, agent_id=agent, **kw)

    def tool(self, parent: str | None, args: str, name: str = "search", **kw: Any) -> str:
        return self.add(parent, name, Operation.TOOL, tool_name=name, tool_args_hash=args,
                        **kw)


def build() -> list[CanonicalSpan]:
    traces = [_Trace(t) for t in range(1, 11)]
    t1, t2, t3, t4, t5, t6, t7, t8, t9, t10 = traces
    root = t1.add(None, "run", Operation.AGENT, agent_id="planner")
    t1.add(root, "chat")
    for _ in range(3):
        t1.tool(root, "h1")

    root = t2.add(None, "run", Operation.AGENT, agent_id="planner")
    t2.fail(root, "chat", "rate_limit", "provider")
    t2.add(root, "chat", is_retry=True, attempt=2)

    root = t3.add(None, "run", Operation.AGENT, agent_id="planner", status=SpanStatus.ERROR,
                  error_type="RuntimeError")  # classified before error_category existed: ""
    t3.fail(root, "chat", "context_length_exceeded", "model")
    t3.fail(root, "chat", "context_length_exceeded", "model", is_retry=True, attempt=2)

    root = t4.add(None, "run", Operation.AGENT, agent_id="planner")
    t4.fail(root, "chat", "upstream_error", "provider")
    t4.add(root, "chat", is_fallback=True)

    root = t5.add(None, "run", Operation.AGENT, agent_id="planner")
    for args in ("h2", "h3", "h2"):
        t5.tool(root, args)
    t5.tool(root, "h2", is_retry=True, attempt=2)
    t5.tool(root, "h2", name="lookup")
    for _ in range(3):
        t5.tool(root, "")  # no arguments recorded

    a = t6.fail(None, "A", "timeout", "provider", Operation.AGENT, SpanStatus.TIMEOUT,
                agent_id="A")
    b = t6.agent(a, "B")
    call = t6.tool(b, "", name="call_agent")
    t6.agent(call, "A")

    a = t7.agent(None, "A")
    b = t7.add(a, "B", Operation.AGENT, agent_id="A", inherited=1)  # A's id, inherited
    t7.agent(b, "A")

    a = t8.fail(None, "A", "timeout", "provider", Operation.AGENT, agent_id="A")
    t8.agent(t8.agent(a, "A"), "A")

    a = t9.agent(None, "A")
    t9.agent(t9.agent(a, "B"), "C")
    t9.agent(a, "B")

    t10.fail(MISSING_PARENT, "chat", "timeout", "provider", status=SpanStatus.TIMEOUT,
             step="generate")
    t10.tool(MISSING_PARENT, "", step="retrieve")

    globex = _Trace(11, org="globex")
    root = globex.add(None, "run", Operation.AGENT, agent_id="planner")
    for _ in range(3):
        globex.tool(root, "h1")
    globex.fail(root, "chat", "rate_limit", "provider")
    return [s for tr in [*traces, globex] for s in tr.spans]


@pytest.fixture(scope="module")
def spans() -> list[CanonicalSpan]:
    """Overrides the conftest dataset: ``loaded`` holds these spans (and resent copies)."""
    return build()


def test_rates_worked_out_by_hand(loaded: SpanStore) -> None:
    r = get_reliability(loaded, QueryParams(RANGE, filters=ACME))
    # spans: 5 + 3 + 3 + 3 + 9 + 4 + 3 + 3 + 4 + 2; failed: T2 1, T3 3, T4 1, T6 1, T8 1, T10 1
    assert (r.num_spans, r.num_failed) == (39, 8)
    assert r.span_success_rate == pytest.approx(31 / 39)
    t = r.traces
    # ok: T1 T2 T4 T5 T7 T9; error: T3 T8; timeout: T6, T10 (no root, a span timed out)
    assert (t.num_traces, t.num_ok, t.num_error, t.num_timeout) == (10, 6, 2, 2)
    assert t.num_ended_in_timeout == 3  # + T8, whose root failed with category timeout
    assert t.success_rate == pytest.approx(0.6)
    assert (t.num_with_fallback, t.fallback_rate) == (1, pytest.approx(0.1))
    assert t.num_with_retry == 3  # T2, T3, T5
    # retries: T2's succeeded, T3's failed, T5's tool call succeeded
    assert (r.num_retries, r.num_retries_ok) == (3, 2)
    assert r.retry_rate == pytest.approx(3 / 39)
    assert r.retry_success_rate == pytest.approx(2 / 3)
    assert r.num_fallback_spans == 1


def test_success_per_operation_and_step(loaded: SpanStore) -> None:
    r = get_reliability(loaded, QueryParams(RANGE, filters=ACME))
    assert [(o.operation, o.num_spans, o.num_failed) for o in r.operations] == [
        ("agent", 18, 3), ("chat", 8, 5), ("tool", 13, 0)]
    assert r.operations[1].success_rate == pytest.approx(3 / 8)
    # most failures first, then most spans, then operation and step; step = name unless set
    assert [(s.operation, s.step, s.num_spans, s.num_failed) for s in r.steps] == [
        ("chat", "chat", 7, 4), ("agent", "A", 8, 2), ("agent", "run", 5, 1),
        ("chat", "generate", 1, 1), ("tool", "search", 10, 0), ("agent", "B", 4, 0),
        ("agent", "C", 1, 0), ("tool", "call_agent", 1, 0), ("tool", "lookup", 1, 0),
        ("tool", "retrieve", 1, 0)]
    assert r.steps[1].success_rate == pytest.approx(6 / 8) and not r.steps_truncated


def test_error_rate_by_class_and_category(loaded: SpanStore) -> None:
    r = get_reliability(loaded, QueryParams(RANGE, filters=ACME))
    assert [(e.error_class, e.error_category, e.num_failed) for e in r.errors_by_category] == [
        ("provider", "timeout", 3), ("model", "context_length_exceeded", 2),
        ("provider", "rate_limit", 1), ("provider", "upstream_error", 1),
        ("unknown", "unknown", 1)]  # T3's root: no category stored reads as unknown
    assert [(e.error_class, e.num_failed) for e in r.errors_by_class] == [
        ("provider", 5), ("model", 2), ("unknown", 1)]
    provider = r.errors_by_class[0]
    assert provider.error_rate == pytest.approx(5 / 39) and provider.share == pytest.approx(
        5 / 8)


def test_loops_and_near_misses(loaded: SpanStore) -> None:
    r = get_reliability(loaded, QueryParams(RANGE, filters=ACME))
    assert LOOP_MIN_CALLS == 3 and r.loop_min_calls == 3
    # only T1; T5's 2 h2 calls (+ a retry), its lookup and its argument-less calls are not
    assert [(x.trace_id, x.tool_name, x.tool_args_hash, x.num_calls) for x in r.loops] == [
        (f"{1:032x}", "search", "h1", 3)]
    assert r.loops[0].span_ids == [f"{1:08x}{n:08x}" for n in (3, 4, 5)]
    assert (r.num_loop_traces, r.loop_rate) == (1, pytest.approx(0.1))
    everyone = get_reliability(loaded, QueryParams(RANGE))
    assert everyone.num_loop_traces == 2  # globex's trace loops too


def test_cycles_and_deadlock_suspects(loaded: SpanStore) -> None:
    r = get_reliability(loaded, QueryParams(RANGE, filters=ACME))
    # T6 (through a tool span) and T7 (B known by name: its agent id is inherited);
    # not T8 (A → A → A) nor T9 (A → B → C, B twice as siblings)
    assert [(c.trace_id, c.agents, c.span_id, c.timed_out) for c in r.cycles] == [
        (f"{6:032x}", ["A", "B", "A"], f"{6:08x}{4:08x}", True),
        (f"{7:032x}", ["A", "B", "A"], f"{7:08x}{3:08x}", False)]
    assert r.num_cycle_traces == 2 and not r.cycles_truncated
    assert [c.trace_id for c in r.deadlock_suspects] == [f"{6:032x}"]
    assert r.num_deadlock_suspects == 1


@pytest.mark.parametrize(("edges", "expected"), [
    ({"a1": ("", "A"), "b": ("a1", "B"), "a2": ("b", "A")}, (["A", "B", "A"], "a2")),
    ({"a1": ("", "A"), "a2": ("a1", "A")}, None),  # direct recursion: not a cycle
    ({"a1": ("", "A"), "a2": ("a1", "A"), "b": ("a2", "B"), "a3": ("b", "A")},
     (["A", "B", "A"], "a3")),  # recursion, then through B: a cycle
    ({"a": ("", "A"), "b": ("a", "B"), "c": ("b", "C")}, None),
    ({"a": ("", "A"), "b": ("a", "B"), "c": ("b", "C"), "a2": ("c", "A")},
     (["A", "B", "C", "A"], "a2")),
    ({"a": ("", "A"), "t": ("a", ""), "b": ("t", "B"), "a2": ("b", "A")},
     (["A", "B", "A"], "a2")),  # a non-agent span between
    ({"x": ("y", "A"), "y": ("x", "B")}, None),  # parent links that loop: the walk stops
])
def test_find_agent_cycle(edges: dict[str, tuple[str, str]],
                          expected: tuple[list[str], str] | None) -> None:
    parents = {k: p for k, (p, _) in edges.items()}
    agents = {k: a for k, (_, a) in edges.items() if a}
    assert find_agent_cycle(parents, agents) == expected


def test_heatmap_of_failing_steps(loaded: SpanStore) -> None:
    r = get_reliability(loaded, QueryParams(RANGE, filters=ACME))
    h = r.heatmap
    assert h.bucket == "minute"  # a 1 h range
    assert h.steps == ["chat/chat", "agent/A", "agent/run", "chat/generate"]
    chat = {c["bucket"]: (c["num_spans"], c["num_failed"]) for c in h.cells
            if c["step"] == "chat/chat"}
    assert chat == {T0 + timedelta(minutes=1): (1, 0), T0 + timedelta(minutes=2): (2, 1),
                    T0 + timedelta(minutes=3): (2, 2), T0 + timedelta(minutes=4): (2, 1)}
    hourly = get_reliability(loaded, QueryParams(RANGE, filters=ACME), bucket="hour")
    assert {(c["step"], c["num_failed"]) for c in hourly.heatmap.cells} == {
        ("chat/chat", 4), ("agent/A", 2), ("agent/run", 1), ("chat/generate", 1)}


def test_filters_pick_spans_and_traces(loaded: SpanStore) -> None:
    r = get_reliability(loaded, QueryParams(RANGE, filters={**ACME, "tool": "search"}))
    assert (r.num_spans, r.num_failed) == (11, 0)  # search spans only (T10's step too)
    # T1, T5 and T10, each judged by all its spans: T10 timed out
    assert (r.traces.num_traces, r.traces.num_ok, r.traces.num_timeout) == (3, 2, 1)
    assert r.num_loop_traces == 1 and r.cycles == []
    nothing = get_reliability(loaded, QueryParams(RANGE, filters={"org_id": "nobody"}))
    assert (nothing.num_spans, nothing.traces.num_traces) == (0, 0)
    assert nothing.span_success_rate is None and nothing.traces.success_rate is None
    assert nothing.errors_by_class == [] and nothing.heatmap.cells == []


def test_bad_bucket_names_the_field(loaded: SpanStore) -> None:
    with pytest.raises(ValidationError) as err:
        get_reliability(loaded, QueryParams(RANGE, filters=ACME), bucket="week")
    assert err.value.field == "bucket"


def test_auto_bucket() -> None:
    assert auto_bucket(timedelta(hours=3)) == "minute"
    assert auto_bucket(timedelta(hours=25)) == "hour"
    assert auto_bucket(timedelta(days=8)) == "hour"
    assert auto_bucket(timedelta(days=8, minutes=1)) == "day"
