"""The settle job on both backends: quiet period, late spans, idempotence, trace facts.

Spans carry their commit stamps (``ingested_at_ns``) and each pass is given ``now``, so
the quiet period is exercised without sleeping. Critical-path times are bottleneck_traces.py's.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from bottleneck_traces import T0, build, span

from mentatlab.errors import StoreError
from mentatlab.model.schema import spans_to_arrow
from mentatlab.model.span import Operation, SpanStatus
from mentatlab.resolver.settle import Settler, read_settle_state
from mentatlab.storage.base import SpanStore
from mentatlab.storage.span_schema import migrate_span_store

S = 1_000_000_000  # 1 s in ns
QUIET_S = 10.0


def timing(store: SpanStore, trace: int) -> dict[str, tuple[float, float, int]]:
    rows = store.query_arrow(
        "SELECT name, self_time_ms, critical_path_ms, on_critical_path FROM span_timing FINAL"
        " WHERE trace_id = {t:String}", {"t": f"{trace:032x}"}).to_pylist()
    return {r["name"]: (r["self_time_ms"], r["critical_path_ms"], r["on_critical_path"])
            for r in rows}


def facts(store: SpanStore) -> list[dict[str, Any]]:
    return store.query_arrow("SELECT * FROM trace_facts FINAL ORDER BY trace_id").to_pylist()


def test_quiet_period_is_respected(store: SpanStore) -> None:
    store.append_batch(spans_to_arrow(build(stamp=100 * S)))
    settler = Settler(store, QUIET_S)
    # 9 s after the last span: not quiet yet (cut-off 99 s < 100 s)
    assert settler.run_pass(10**18, now_ns=109 * S).num_traces == 0
    assert timing(store, 1) == {} and facts(store) == []
    # 10 s after: settled; the watermark is the cut-off
    report = settler.run_pass(10**18, now_ns=110 * S)
    assert (report.num_traces, report.num_spans, report.through_ns) == (4, 12, 100 * S)
    assert read_settle_state(store) == 100 * S
    # trace 1 by hand: run self 1000 - (union [100,400] ∪ [400,900]) = 200, on path 200
    assert timing(store, 1) == {"run": (200.0, 200.0, 1), "search": (300.0, 300.0, 1),
                                "fetch": (200.0, 0.0, 0), "llm": (500.0, 500.0, 1)}


def test_commit_watermark_bounds_the_cut_off(store: SpanStore) -> None:
    store.append_batch(spans_to_arrow(build(stamp=100 * S)))
    settler = Settler(store, QUIET_S)
    # quiet long ago, but commits are only known visible up to 99 s
    assert settler.run_pass(99 * S, now_ns=500 * S).num_traces == 0
    assert settler.state.through_ns == 99 * S
    assert settler.run_pass(100 * S, now_ns=500 * S).num_traces == 4


def test_active_trace_waits_and_late_span_resettles(store: SpanStore) -> None:
    t1 = T0.replace(minute=5)
    first = [s for s in build(stamp=100 * S) if s.trace_id == f"{1:032x}"]
    store.append_batch(spans_to_arrow(first[:2]))  # run, search at 100 s
    store.append_batch(spans_to_arrow(first[2:]))
    settler = Settler(store, QUIET_S)
    late_llm = span(1, 3, 0, "llm", t1, 400, 900, stamp=120 * S, operation=Operation.CHAT,
                    request_model="gpt-4o", status=SpanStatus.ERROR)
    store.append_batch(spans_to_arrow([late_llm]))  # a newer version of llm, at 120 s
    # at 125 s the cut-off (115 s) lies before the trace's newest span: not settled
    assert settler.run_pass(10**18, now_ns=125 * S).num_traces == 0
    assert settler.run_pass(10**18, now_ns=130 * S).num_traces == 1
    assert facts(store)[0]["status"] == "error" and facts(store)[0]["num_spans"] == 4
    # a late child of llm arrives at 200 s: [400, 900] → llm now waits on "tool" [450, 850]
    store.append_batch(spans_to_arrow([span(
        1, 9, 3, "tool", t1, 450, 850, stamp=200 * S, operation=Operation.TOOL,
        tool_name="calc")]))
    assert settler.run_pass(10**18, now_ns=205 * S).num_traces == 0
    assert settler.run_pass(10**18, now_ns=210 * S).num_traces == 1
    # llm: self 500 - 400 = 100, on the path [850, 900] + [400, 450] = 100; tool 400
    got = timing(store, 1)
    assert got["llm"] == (100.0, 100.0, 1) and got["tool"] == (400.0, 400.0, 1)
    assert got["run"] == (200.0, 200.0, 1)
    rows = facts(store)
    assert len(rows) == 1 and rows[0]["num_spans"] == 5  # replaced, not added
    n = store.query_arrow("SELECT count() AS n FROM span_timing FINAL").column("n")[0].as_py()
    assert n == 5


def test_settling_again_changes_nothing(store: SpanStore) -> None:
    store.append_batch(spans_to_arrow(build(stamp=100 * S)))
    settler = Settler(store, QUIET_S)
    settler.run_pass(10**18, now_ns=200 * S)
    before = (facts(store), [timing(store, t) for t in (1, 2, 3, 4)])
    ids = [f"{t:032x}" for t in (1, 2, 3, 4)]
    assert settler.settle(ids) == 12
    assert settler.settle(ids) == 12
    after_facts = facts(store)
    for row in (*before[0], *after_facts):
        row.pop("settled_ns")
    assert after_facts == before[0] and [timing(store, t) for t in (1, 2, 3, 4)] == before[1]
    # a new settler reads the persisted watermark and has nothing to do
    assert Settler(store, QUIET_S).run_pass(10**18, now_ns=200 * S).num_traces == 0


def test_trace_facts_worked_by_hand(store: SpanStore) -> None:
    spans = build(stamp=100 * S)
    # trace 2's llm carries versions, a user and a session; trace 2's search fails
    spans[5] = span(2, 1, 0, "llm", T0.replace(hour=11), 0, 1500, stamp=100 * S,
                    operation=Operation.CHAT, provider="openai", request_model="gpt-4o",
                    input_tokens=100, output_tokens=10, total_cost=Decimal("0.01"),
                    prompt_version="p7", agent_version="a2", user_id="u1", session_id="s1",
                    customer_id="c1")
    spans[6] = span(2, 2, 0, "search", T0.replace(hour=11), 1500, 2000, stamp=100 * S,
                    operation=Operation.TOOL, tool_name="web_search",
                    status=SpanStatus.TIMEOUT)
    store.append_batch(spans_to_arrow(spans))
    Settler(store, QUIET_S).run_pass(10**18, now_ns=200 * S)
    by_trace = {r["trace_id"]: r for r in facts(store)}
    assert len(by_trace) == 4
    one, two = by_trace[f"{1:032x}"], by_trace[f"{2:032x}"]
    assert (one["duration_ms"], one["status"], one["num_spans"], one["error_spans"]) == (
        1000.0, "ok", 4, 0)
    assert (one["total_cost"], one["input_tokens"], one["output_tokens"]) == (
        Decimal("0.01"), 100, 10)
    assert (one["root_name"], one["root_agent_id"], one["root_operation"]) == (
        "run", "planner", "agent")
    assert one["primary_model"] == "gpt-4o" and one["models"] == ["gpt-4o"]
    assert (two["duration_ms"], two["status"], two["timeout_spans"]) == (2000.0, "timeout", 1)
    assert (two["prompt_version"], two["prompt_versions"], two["agent_version"]) == (
        "p7", ["p7"], "a2")
    assert (two["user_id"], two["session_id"], two["customer_id"]) == ("u1", "s1", "c1")
    assert by_trace[f"{4:032x}"]["org_id"] == "globex"


def test_bad_arguments(store: SpanStore) -> None:
    with pytest.raises(ValueError, match="quiet_s"):
        Settler(store, 0)
    with pytest.raises(StoreError, match="append_batch"):  # spans only through the writer
        store.insert_table("spans", spans_to_arrow(build()))


def test_span_retention_applies_to_the_settled_tables(store: SpanStore) -> None:
    def ttls() -> list[bool]:
        rows = store.query_arrow(
            "SELECT name, create_table_query AS q FROM system.tables WHERE database ="
            " currentDatabase() AND name IN ('span_timing', 'trace_facts') ORDER BY name"
        ).to_pylist()
        return [" TTL start_time + toIntervalDay(7)" in r["q"] for r in rows]

    migrate_span_store(store, retention_days=7)
    assert ttls() == [True, True]
    migrate_span_store(store, retention_days=0)
    assert ttls() == [False, False]


def test_a_long_pass_persists_its_progress_step_by_step(
        store: SpanStore, monkeypatch: pytest.MonkeyPatch) -> None:
    # ten traces of two spans, committed 1 s apart: trace k at (100 + k) s; its child span
    # of trace 3 comes late, at 108 s
    spans = []
    for k in range(10):
        start = T0 + timedelta(minutes=k)
        spans += [span(100 + k, 0, None, "run", start, 0, 100, stamp=(100 + k) * S),
                  span(100 + k, 1, 0, "step", start, 10, 50,
                       stamp=(108 if k == 3 else 100 + k) * S)]
    store.append_batch(spans_to_arrow(spans))
    settler = Settler(store, QUIET_S, step_spans=4)  # 20 spans: about 5 steps
    watermarks: list[int] = []
    real = settler._settle_touched

    def settle_then_fail(after_ns: int, cutoff_ns: int) -> tuple[int, int]:
        if len(watermarks) == 2:
            raise StoreError("the third step fails")
        watermarks.append(cutoff_ns)
        return real(after_ns, cutoff_ns)

    monkeypatch.setattr(settler, "_settle_touched", settle_then_fail)
    with pytest.raises(StoreError):
        settler.run_pass(10**18, now_ns=500 * S)
    # the two steps done are kept: the watermark is the second cut-off, and every trace
    # whose spans are all stamped up to it is settled (trace 3 is not: its child is late)
    assert 100 * S < watermarks[0] < watermarks[1] < 109 * S
    assert read_settle_state(store) == watermarks[1]
    done = {int(f["trace_id"], 16) - 100 for f in facts(store)}
    assert done == {k for k in range(10) if k != 3 and (100 + k) * S <= watermarks[1]}

    monkeypatch.undo()
    again = Settler(store, QUIET_S, step_spans=4)
    report = again.run_pass(10**18, now_ns=500 * S)
    assert report.through_ns == read_settle_state(store) == 490 * S  # now - Q
    assert [int(f["trace_id"], 16) - 100 for f in facts(store)] == list(range(10))
    assert all(f["num_spans"] == 2 for f in facts(store))
