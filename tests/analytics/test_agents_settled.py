"""Peers and the agent graph over settled traces (trace_agents) give the raw answers.

test_peers.py's and test_graph.py's constructed traces, plus traces that must be read raw
even when settled (a run crossing the range start; a trace in two projects; an agent
call whose parent started beyond the look-back), on both backends: nothing settled (raw
spans only), all settled, some settled and the rest in the unsettled tail, and a settled
trace touched again. Each answer must equal the one from raw spans alone.
"""

from __future__ import annotations

import dataclasses
from dataclasses import replace
from datetime import timedelta
from itertools import count
from typing import Any

import pyarrow as pa
import pytest
import test_graph
import test_peers

from mentatlab.analytics import graph, peers, settled_agents
from mentatlab.analytics.query import QueryParams, SqlParts, TimeRange
from mentatlab.model.schema import spans_to_arrow
from mentatlab.model.span import CanonicalSpan, Operation, SpanStatus
from mentatlab.resolver.settle import Settler
from mentatlab.storage.base import SpanStore

S = 1_000_000_000


@pytest.fixture(autouse=True)
def _settled_whatever_the_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """A few spans per stored row: read settled rows even where raw spans are cheaper."""
    monkeypatch.setattr(settled_agents, "MIN_SPANS_PER_ROW", 0.0)


def _peer_spans() -> list[CanonicalSpan]:
    test_peers._n = count(1)  # its traces numbered from 1, as in test_peers.py
    spans = test_peers.build()
    # a run in two projects of acme: one raw run (its spans' scope differs), counted once
    split = test_peers._run("split", 90, "0.07", 70)
    spans += [split[0], replace(split[1], project_id="q")]
    test_peers._n = count(1)  # and as test_peers.py's own fixture expects
    return spans


def _graph_spans() -> list[CanonicalSpan]:
    test_graph._ids = count(1)
    spans = test_graph.build()
    old = test_graph._Trace(test_graph.T0 - timedelta(days=2))  # beyond the look-back
    old.add(1, None, Operation.AGENT, 0, 3 * 86_400_000, agent="elder", own_agent=True)
    old.add(2, 1, Operation.AGENT, 2 * 86_400_000 + 300_000, 2 * 86_400_000 + 300_100,
            agent="young", own_agent=True)
    two = test_graph._Trace(test_graph.T0 + timedelta(minutes=7))  # in two projects
    two.add(1, None, Operation.AGENT, 0, 100, agent="planner", own_agent=True)
    two.add(2, 1, Operation.TOOL, 10, 20, agent="planner", tool="calc")
    two.spans[1] = replace(two.spans[1], project_id="q")
    test_graph._ids = count(1)
    # test_peers numbers its traces from 1 too: keep the two sets apart
    return [replace(s, trace_id=f"f{s.trace_id[1:]}") for s in spans + old.spans + two.spans]


def _queries() -> list[tuple[str, Any]]:
    """(name, function of a store) of every answer compared."""
    p0, g0 = test_peers.T0, test_graph.T0
    cut = TimeRange(p0 + timedelta(minutes=4, microseconds=500), p0 + timedelta(hours=1))
    out: list[tuple[str, Any]] = []
    for name, params in (("acme", QueryParams(test_peers.RANGE, filters={"org_id": "acme"})),
                         ("all", QueryParams(test_peers.RANGE)),
                         ("cut", QueryParams(cut, filters={"org_id": "acme"})),
                         ("project", QueryParams(test_peers.RANGE, filters={
                             "org_id": "acme", "project_id": "p"})),
                         ("model", QueryParams(test_peers.RANGE, filters={"model": "gpt-4o"}))):
        out.append((f"peers {name}",
                    lambda store, params=params: peers.rank_peers(store, params)))
    for name, params in (("acme", QueryParams(test_graph.RANGE, filters={"org_id": "acme"})),
                         ("all", QueryParams(test_graph.RANGE)),
                         ("wide", QueryParams(TimeRange(g0 - timedelta(days=3),
                                                        g0 + timedelta(days=1)))),
                         ("project", QueryParams(test_graph.RANGE, filters={
                             "org_id": "acme", "project_id": "q"}))):
        out.append((f"graph {name}",
                    lambda store, params=params: graph.get_agent_graph(store, params)))
    return out


def _plain(value: Any) -> Any:
    """``value`` with dataclasses as dicts and floats to 9 significant digits."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float):
        return float(f"{value:.9g}")
    return value


def _answers(store: SpanStore) -> dict[str, Any]:
    return {name: _plain(query(store)) for name, query in _queries()}


def _raw_answers(store: SpanStore, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    with monkeypatch.context() as m:
        m.setattr(peers, "plan_settled_read", lambda *a: None)
        m.setattr(graph, "plan_settled_read", lambda *a: None)
        return _answers(store)


def stamped(spans: list[CanonicalSpan], ns: int) -> pa.Table:
    return spans_to_arrow([replace(s, ingested_at_ns=ns) for s in spans])


def _all() -> list[CanonicalSpan]:
    return _peer_spans() + _graph_spans()


def _rows(store: SpanStore) -> int:
    return int(store.query_arrow("SELECT count() AS n FROM trace_agents FINAL")
               .column("n")[0].as_py())


def test_the_extra_traces_mean_what_they_say(store: SpanStore) -> None:
    store.append_batch(stamped(_all(), 10 * S))
    Settler(store, 1.0).run_pass(10**18, now_ns=20 * S)
    rows = store.query_arrow(
        "SELECT project_id, single_scope, arraySort(run_agent) AS agents FROM trace_agents"
        " FINAL WHERE has(run_agent, 'split') OR has(run_agent, 'young')"
        " ORDER BY project_id, length(run_agent)").to_pylist()
    assert [tuple(r.values()) for r in rows] == [
        ("p", 0, ["split"]), ("p", 1, ["elder", "young"]), ("q", 0, ["split"])]
    now = graph.get_agent_graph(store, QueryParams(test_graph.RANGE))
    assert "agent:young" in {n.id for n in now.nodes}
    assert not [lk for lk in now.links if lk.target == "agent:young"]  # parent too early
    g0 = test_graph.T0
    wide = graph.get_agent_graph(store, QueryParams(TimeRange(g0 - timedelta(days=3),
                                                              g0 + timedelta(days=1))))
    assert [lk.source for lk in wide.links if lk.target == "agent:young"] == ["agent:elder"]
    acme = peers.rank_peers(store, QueryParams(test_peers.RANGE, filters={"org_id": "acme"}))
    assert [(a.num_runs, str(a.total_cost)) for a in acme if a.agent_id == "split"] == [
        (1, "0.070000000000")]


def test_a_range_with_few_spans_reads_raw(store: SpanStore,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    store.append_batch(stamped(_all(), 10 * S))
    Settler(store, 1.0).run_pass(10**18, now_ns=20 * S)
    params = QueryParams(test_peers.RANGE)
    assert settled_agents.plan_settled_read(store, params, SqlParts()) is not None
    monkeypatch.setattr(settled_agents, "MIN_SPANS_PER_ROW", 1e9)
    assert settled_agents.plan_settled_read(store, params, SqlParts()) is None
    empty = QueryParams(TimeRange(test_peers.T0 - timedelta(days=9),
                                  test_peers.T0 - timedelta(days=8)))
    monkeypatch.setattr(settled_agents, "MIN_SPANS_PER_ROW", 1.0)
    assert settled_agents.plan_settled_read(store, empty, SqlParts()) is None


def test_nothing_settled_reads_raw(store: SpanStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store.append_batch(stamped(_all(), 10 * S))
    assert settled_agents.plan_settled_read(store, QueryParams(test_peers.RANGE),
                                            SqlParts()) is None
    assert _answers(store) == _raw_answers(store, monkeypatch)


def test_all_settled(store: SpanStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store.append_batch(stamped(_all(), 10 * S))
    Settler(store, 1.0).run_pass(10**18, now_ns=20 * S)
    assert _rows(store) > 0
    assert _answers(store) == _raw_answers(store, monkeypatch)


def test_settled_and_unsettled_tail(store: SpanStore, monkeypatch: pytest.MonkeyPatch) -> None:
    spans = _all()
    early = [s for s in spans if int(s.trace_id, 16) % 2]
    late = [s for s in spans if not int(s.trace_id, 16) % 2]
    store.append_batch(stamped(early, 10 * S))
    Settler(store, 1.0).run_pass(10**18, now_ns=20 * S)
    store.append_batch(stamped(late, 30 * S))  # not settled yet: read from raw spans
    assert _answers(store) == _raw_answers(store, monkeypatch)


def test_settled_trace_touched_again_counts_once(store: SpanStore,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    spans = _all()
    store.append_batch(stamped(spans, 10 * S))
    Settler(store, 1.0).run_pass(10**18, now_ns=20 * S)
    before = _answers(store)
    first = [s for s in spans if s.trace_id == spans[0].trace_id]
    store.append_batch(stamped(first, 30 * S))  # re-sent: in the tail, counted once
    assert _answers(store) == before
    failed = [replace(s, status=SpanStatus.ERROR) for s in first]
    store.append_batch(stamped(failed, 40 * S))
    changed = _answers(store)
    assert changed == _raw_answers(store, monkeypatch) and changed != before
    Settler(store, 1.0).run_pass(10**18, now_ns=50 * S)  # settled again: same answer
    assert _answers(store) == changed


def test_a_trace_keeps_its_bucket_when_settled_again(store: SpanStore) -> None:
    spans = _all()
    store.append_batch(stamped(spans, 10 * S))
    Settler(store, 1.0).run_pass(10**18, now_ns=20 * S)
    first = spans[0]
    # a late span starting two days earlier: the trace's start moves, its row's key must not
    early = replace(first, span_id="ee" * 8, parent_span_id=first.span_id,
                    start_time=first.start_time - timedelta(days=2),
                    end_time=first.start_time - timedelta(days=2) + timedelta(seconds=1))
    store.append_batch(stamped([early], 30 * S))
    Settler(store, 1.0).run_pass(10**18, now_ns=40 * S)
    rows = store.query_arrow(
        "SELECT bucket, start_time FROM trace_agents FINAL WHERE trace_id = {t:String}",
        {"t": first.trace_id}).to_pylist()
    assert len(rows) == 1
    assert rows[0]["bucket"] == first.start_time.date()
    assert rows[0]["start_time"] == early.start_time
