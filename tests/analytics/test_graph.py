"""The agent graph on constructed traces, on both backends, answers worked out by hand.

Range: T0 .. T0 + 1 h. Org acme unless said (times in ms from the trace's start)::

    trace 1  s1 agent planner (own)        0..1000
               s2 chat (planner, inherited)    10..100
               s3 tool search                100..300   ok
               s4 step (other)               300..900
                 s5 agent writer (own)       310..800          planner → writer (skips s4)
                   s6 tool search            320..420   error  writer → search
                   s7 agent planner (own)    500..700          writer → planner (a cycle)
                     s8 tool calc            510..540          planner → calc
    trace 2  t1 agent planner (own)        0..500
               t2 tool search                  0..100   ok
               t3 tool search                100..400   timeout
               t4 agent step, planner INHERITED 400..450       (not a call)
                 t5 tool calc                400..420          planner → calc
    trace 3  globex: agent planner → tool search  (another org)
    trace 4  tool calc without an agent, 0..50            (a node, no link)
    trace 5  b1 agent boss, starting 10 min BEFORE the range (its parent found by look-back)
               b2 agent writer               0..200            boss → writer
    trace 6  tool search of planner, 2 h after T0 (outside the range)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count

import pytest

from mentatlab.analytics.graph import (
    GraphLink,
    get_agent_graph,
    mark_back_edges,
)
from mentatlab.analytics.query import QueryParams, TimeRange
from mentatlab.errors import ValidationError
from mentatlab.model.span import CanonicalSpan, Operation, SpanStatus
from mentatlab.storage.base import SpanStore

T0 = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)
RANGE = TimeRange(T0, T0 + timedelta(hours=1))
ACME = {"org_id": "acme"}
_ids = count(1)


class _Trace:
    def __init__(self, start: datetime, org: str = "acme") -> None:
        self.number = next(_ids)
        self.start, self.org = start, org
        self.spans: list[CanonicalSpan] = []

    def add(self, n: int, parent: int | None, op: Operation, begin_ms: int, end_ms: int, *,
            agent: str = "", own_agent: bool = False, tool: str = "",
            status: SpanStatus = SpanStatus.OK) -> None:
        t = self.number
        self.spans.append(CanonicalSpan(
            trace_id=f"{t:032x}", span_id=f"{t:08x}{n:08x}",
            parent_span_id="" if parent is None else f"{t:08x}{parent:08x}", name=f"s{n}",
            kind="internal", start_time=self.start + timedelta(milliseconds=begin_ms),
            end_time=self.start + timedelta(milliseconds=end_ms),
            duration_ms=float(end_ms - begin_ms), status=status, operation=op,
            agent_id=agent, inherited=0 if own_agent or not agent else 1, tool_name=tool,
            org_id=self.org, project_id="p", service_name="svc", ingested_at_ns=1))


def build() -> list[CanonicalSpan]:
    A, T, OT, C = Operation.AGENT, Operation.TOOL, Operation.OTHER, Operation.CHAT
    one = _Trace(T0 + timedelta(minutes=1))
    one.add(1, None, A, 0, 1000, agent="planner", own_agent=True)
    one.add(2, 1, C, 10, 100, agent="planner")
    one.add(3, 1, T, 100, 300, agent="planner", tool="search")
    one.add(4, 1, OT, 300, 900, agent="planner")
    one.add(5, 4, A, 310, 800, agent="writer", own_agent=True)
    one.add(6, 5, T, 320, 420, agent="writer", tool="search", status=SpanStatus.ERROR)
    one.add(7, 5, A, 500, 700, agent="planner", own_agent=True)
    one.add(8, 7, T, 510, 540, agent="planner", tool="calc")
    two = _Trace(T0 + timedelta(minutes=2))
    two.add(1, None, A, 0, 500, agent="planner", own_agent=True)
    two.add(2, 1, T, 0, 100, agent="planner", tool="search")
    two.add(3, 1, T, 100, 400, agent="planner", tool="search", status=SpanStatus.TIMEOUT)
    two.add(4, 1, A, 400, 450, agent="planner")  # inherited id: a step, not a call
    two.add(5, 4, T, 400, 420, agent="planner", tool="calc")
    three = _Trace(T0 + timedelta(minutes=3), org="globex")
    three.add(1, None, A, 0, 100, agent="planner", own_agent=True)
    three.add(2, 1, T, 0, 50, agent="planner", tool="search")
    four = _Trace(T0 + timedelta(minutes=4))
    four.add(1, None, T, 0, 50, tool="calc")
    five = _Trace(T0 - timedelta(minutes=10))
    five.add(1, None, A, 0, 20 * 60_000, agent="boss", own_agent=True)
    five.add(2, 1, A, 15 * 60_000, 15 * 60_000 + 200, agent="writer", own_agent=True)
    six = _Trace(T0 + timedelta(hours=2))
    six.add(1, None, T, 0, 10, agent="planner", tool="search")
    return [s for t in (one, two, three, four, five, six) for s in t.spans]


@pytest.fixture(scope="module")
def spans() -> list[CanonicalSpan]:
    """Overrides the conftest dataset: ``loaded`` holds these spans (and resent copies)."""
    return build()


def test_nodes_worked_out_by_hand(loaded: SpanStore) -> None:
    graph = get_agent_graph(loaded, QueryParams(RANGE, filters=ACME))
    nodes = {n.id: n for n in graph.nodes}
    # most calls first; ties by kind ("agent" < "tool"); the caller-only boss last
    assert [n.id for n in graph.nodes] == [
        "tool:search", "agent:planner", "tool:calc", "agent:writer", "agent:boss"]
    assert graph.num_nodes == 4
    planner = nodes["agent:planner"]  # s1 1000, s7 200, t1 500 (t4 inherits: no call)
    assert (planner.kind, planner.name, planner.calls, planner.errors) == (
        "agent", "planner", 3, 0)
    # [200, 500, 1000]: rank 0.5*2 = 1 → 500; 0.95*2 = 1.9 → 500 + 0.9*500
    assert (planner.p50_ms, planner.p95_ms, planner.mean_ms) == pytest.approx(
        (500, 950, 1700 / 3))
    search = nodes["tool:search"]  # s3 200 ok, s6 100 error, t2 100 ok, t3 300 timeout
    assert (search.calls, search.errors, search.error_rate) == (4, 2, 0.5)
    # [100, 100, 200, 300]: rank 1.5 → 150; rank 2.85 → 200 + 0.85*100
    assert (search.p50_ms, search.p95_ms, search.mean_ms) == pytest.approx((150, 285, 175))
    calc = nodes["tool:calc"]  # s8 30, t5 20, trace 4's lone 50
    assert (calc.calls, calc.errors) == (3, 0)
    assert (calc.p50_ms, calc.p95_ms) == pytest.approx((30, 48))
    writer = nodes["agent:writer"]  # s5 490, b2 200
    assert (writer.calls, writer.p50_ms, writer.p95_ms) == pytest.approx((2, 345, 475.5))
    boss = nodes["agent:boss"]  # started before the range: only a caller
    assert (boss.calls, boss.errors, boss.p50_ms) == (0, 0, 0)


def test_links_worked_out_by_hand(loaded: SpanStore) -> None:
    graph = get_agent_graph(loaded, QueryParams(RANGE, filters=ACME))
    got = {(link.source, link.target): link for link in graph.links}
    # most calls first, ties by caller, kind, name
    assert [(link.source, link.target, link.count) for link in graph.links] == [
        ("agent:planner", "tool:search", 3), ("agent:planner", "tool:calc", 2),
        ("agent:boss", "agent:writer", 1), ("agent:planner", "agent:writer", 1),
        ("agent:writer", "agent:planner", 1), ("agent:writer", "tool:search", 1)]
    assert graph.num_links == 6
    search = got["agent:planner", "tool:search"]  # s3 200, t2 100, t3 300 timeout
    assert (search.errors, search.error_rate) == (1, pytest.approx(1 / 3))
    assert (search.p50_ms, search.p95_ms, search.mean_ms) == pytest.approx((200, 290, 200))
    calc = got["agent:planner", "tool:calc"]  # s8 30, t5 20
    assert (calc.p50_ms, calc.p95_ms, calc.mean_ms) == pytest.approx((25, 29.5, 25))
    assert got["agent:writer", "tool:search"].error_rate == 1.0
    assert got["agent:planner", "agent:writer"].p50_ms == 490  # through the step s4
    # DFS from search, planner (→ search, → calc, → writer (→ planner: on the stack))
    assert [link for link in got if got[link].back_edge] == [("agent:writer", "agent:planner")]


def test_filter_applies_to_the_called_span(loaded: SpanStore) -> None:
    graph = get_agent_graph(loaded, QueryParams(RANGE, filters={**ACME, "agent_id": "writer"}))
    # calls whose agent is writer: s5 and b2 (writer itself), s6 (its tool)
    assert [(n.id, n.calls) for n in graph.nodes] == [
        ("agent:writer", 2), ("tool:search", 1), ("agent:boss", 0), ("agent:planner", 0)]
    assert sorted((lk.source, lk.target) for lk in graph.links) == [
        ("agent:boss", "agent:writer"), ("agent:planner", "agent:writer"),
        ("agent:writer", "tool:search")]


def test_other_org_and_limit(loaded: SpanStore) -> None:
    globex = get_agent_graph(loaded, QueryParams(RANGE, filters={"org_id": "globex"}))
    assert [(n.id, n.calls) for n in globex.nodes] == [("agent:planner", 1), ("tool:search", 1)]
    assert [(lk.source, lk.target, lk.count) for lk in globex.links] == [
        ("agent:planner", "tool:search", 1)]
    top = get_agent_graph(loaded, QueryParams(RANGE, filters=ACME), limit=1)
    assert [(n.id, n.calls) for n in top.nodes] == [
        ("tool:search", 4), ("agent:planner", 0), ("agent:writer", 0)]
    assert [(lk.source, lk.target) for lk in top.links] == [
        ("agent:planner", "tool:search"), ("agent:writer", "tool:search")]
    assert (top.num_nodes, top.num_links) == (4, 6)


def test_empty_range_and_bad_limit(loaded: SpanStore) -> None:
    empty = TimeRange(T0 + timedelta(days=3), T0 + timedelta(days=4))
    graph = get_agent_graph(loaded, QueryParams(empty, filters=ACME))
    assert (graph.nodes, graph.links, graph.num_nodes, graph.num_links) == ((), (), 0, 0)
    with pytest.raises(ValidationError) as err:
        get_agent_graph(loaded, QueryParams(RANGE), limit=0)
    assert err.value.errors[0].field == "limit"


def _link(source: str, target: str) -> GraphLink:
    return GraphLink(source, target, 1, 0, 0.0, 0.0, 0.0, 0.0)


def test_back_edges_break_every_cycle() -> None:
    # a → b → c → a, c → c, a → c (forward), d → b (cross)
    links = [_link("a", "b"), _link("b", "c"), _link("c", "a"), _link("c", "c"),
             _link("a", "c"), _link("d", "b")]
    marked = mark_back_edges(["a", "b", "c", "d"], links)
    assert [lk.back_edge for lk in marked] == [False, False, True, True, False, False]
    # starting from c instead: c → a → b → c closes at b → c, and a → c too (c on the stack)
    marked = mark_back_edges(["c", "a", "b", "d"], links)
    assert [(lk.source, lk.target) for lk in marked if lk.back_edge] == [
        ("b", "c"), ("c", "c"), ("a", "c")]
