"""Reliability over settled traces (trace_facts) gives the raw spans' answer, on both backends.

test_reliability.py's traces plus one spread over two projects and two workspaces of
acme, compared whole (every count, list and cell) with the answer read from raw spans
alone: all settled; some settled and the rest in the unsettled tail; a settled trace
touched again; ranges whose edges cut traces in two; facts rows written before the
reliability columns existed, and no step_counts rows; and filters that are not the
tenancy (raw spans only).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pyarrow as pa
import pytest
from test_reliability import ACME, RANGE, T0, _Trace, build

from mentatlab.analytics import reliability
from mentatlab.analytics.query import QueryParams, TimeRange
from mentatlab.model.schema import spans_to_arrow
from mentatlab.model.span import CanonicalSpan, SpanStatus
from mentatlab.resolver.settle import Settler
from mentatlab.storage.base import SpanStore

S = 1_000_000_000
MINUTE = timedelta(minutes=1)
PARAMS = [
    QueryParams(RANGE, filters=ACME),
    QueryParams(RANGE),
    QueryParams(RANGE, filters={**ACME, "project_id": "p"}),
    QueryParams(RANGE, filters={**ACME, "workspace_id": "w2"}),
    QueryParams(RANGE, filters={**ACME, "tool": "search"}),  # not tenancy: raw spans
    # ranges (whole minutes) whose edges cut T9 and trace 12 in two (see everything())
    QueryParams(TimeRange(T0, T0 + timedelta(minutes=10)), filters=ACME),
    QueryParams(TimeRange(T0 + timedelta(minutes=10), T0 + timedelta(minutes=13))),
    QueryParams(TimeRange(T0 + timedelta(minutes=13), T0 + timedelta(minutes=14))),
]

def spread() -> list[CanonicalSpan]:
    """Trace 12: an agent cycle whose spans are in two projects and two workspaces."""
    trace = _Trace(12)
    a = trace.agent(None, "A", status=SpanStatus.TIMEOUT)
    b = trace.agent(a, "B", is_retry=True)
    trace.agent(b, "A", is_fallback=True)
    trace.tool(a, "h9")
    moved = {1: ("p", "w1"), 2: ("q", "w1"), 3: ("p", "w2"), 4: ("q", "w2")}
    return [replace(s, project_id=moved[n][0], workspace_id=moved[n][1])
            for n, s in enumerate(trace.spans, start=1)]


def later(span: CanonicalSpan) -> CanonicalSpan:
    """``span`` a minute later (into the next minute of the range)."""
    return replace(span, start_time=span.start_time + MINUTE,
                   end_time=span.end_time + MINUTE)


def everything() -> list[CanonicalSpan]:
    """test_reliability.py's traces and trace 12; T9's last span and trace 12's last two
    start a minute later than the rest of their trace (so a range can cut them)."""
    spans = [*build(), *spread()]
    last = {f"{9:032x}": {f"{9:08x}{4:08x}"}, f"{12:032x}": {f"{12:08x}{n:08x}" for n in (3, 4)}}
    return [later(s) if s.span_id in last.get(s.trace_id, ()) else s for s in spans]


def stamped(spans: list[CanonicalSpan], ns: int) -> pa.Table:
    """``spans`` as committed at ``ns`` (the writer stamps every commit)."""
    return spans_to_arrow([replace(s, ingested_at_ns=ns) for s in spans])


def answers(store: SpanStore) -> list[reliability.Reliability]:
    return [reliability.get_reliability(store, p) for p in PARAMS]


def raw_answers(store: SpanStore, monkeypatch: pytest.MonkeyPatch
                ) -> list[reliability.Reliability]:
    """The answers from raw spans alone (as on a store the settle job never ran on)."""
    with monkeypatch.context() as m:
        m.setattr(reliability, "read_settle_state", lambda store: None)
        return answers(store)


def split(store: SpanStore, params: QueryParams) -> reliability._Split | None:
    """Which traces the settled path reads from raw spans (None: raw spans only)."""
    return reliability._split(store, params, reliability._settled(store, params))


def settle(store: SpanStore, now_ns: int) -> None:
    Settler(store, 1.0).run_pass(10**18, now_ns=now_ns)


def test_all_settled(store: SpanStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store.append_batch(stamped(everything(), 10 * S))
    expected = raw_answers(store, monkeypatch)
    settle(store, 20 * S)
    assert answers(store) == expected
    # the facts were read: trace 12 (two projects) and the cut traces come from raw spans
    edges = [split(store, p) for p in PARAMS]
    assert [sorted(e.edge_ids or []) if e else None for e in edges] == [
        [f"{12:032x}"]] * 4 + [None, [f"{9:032x}"], [f"{9:032x}", f"{12:032x}"],
                              [f"{12:032x}"]]
    assert all(e is None or e.tail_ids == [] for e in edges)
    first = expected[0]
    assert first.traces.num_traces == 11 and first.num_cycle_traces == 3  # + trace 12
    assert [c.trace_id for c in first.deadlock_suspects] == [f"{6:032x}", f"{12:032x}"]
    assert expected[3].traces.num_traces == 1  # w2 holds two spans of trace 12


def test_settled_and_unsettled_tail(store: SpanStore, monkeypatch: pytest.MonkeyPatch
                                    ) -> None:
    spans = everything()
    early = [s for s in spans if int(s.trace_id, 16) % 2]
    late = [s for s in spans if not int(s.trace_id, 16) % 2]
    store.append_batch(stamped(early, 10 * S))
    settle(store, 20 * S)
    store.append_batch(stamped(late, 30 * S))  # not settled yet: read from raw spans
    assert answers(store) == raw_answers(store, monkeypatch)


def test_settled_trace_touched_again_counts_once(store: SpanStore,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    spans = everything()
    store.append_batch(stamped(spans, 10 * S))
    settle(store, 20 * S)
    # T7 (a cycle) gains a late span after it settled, a retry that timed out, and T8
    # a late root-less chat: the tail's raw spans decide
    t7 = _Trace(7)
    t7.spans = [s for s in spans if s.trace_id == f"{7:032x}"]
    t7.tool(t7.spans[0].span_id, "h4", status=SpanStatus.TIMEOUT, is_retry=True)
    t8 = _Trace(8)
    t8.spans = [s for s in spans if s.trace_id == f"{8:032x}"]
    t8.add("eeeeeeeeeeeeeeee", "late", is_fallback=True)
    store.append_batch(stamped([t7.spans[-1], t8.spans[-1]], 30 * S))
    expected = raw_answers(store, monkeypatch)
    assert answers(store) == expected
    assert (expected[0].traces.num_with_retry, expected[0].traces.num_with_fallback) == (5, 3)
    settle(store, 40 * S)  # settled again: the same answer from the facts
    assert answers(store) == expected


def test_rows_settled_before_the_reliability_columns_and_table(store: SpanStore,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    store.append_batch(stamped(everything(), 10 * S))
    expected = raw_answers(store, monkeypatch)
    settle(store, 20 * S)
    # what ADD COLUMN leaves in a row settled by older code: zeros (and empty strings)
    store.execute(
        "INSERT INTO trace_facts SELECT * REPLACE (settled_ns + 1 AS settled_ns,"
        " 0 AS last_start_ns, 0 AS num_scopes, 0 AS has_root, '' AS root_status,"
        " '' AS root_error_category, 0 AS has_fallback, 0 AS has_retry,"
        " 0 AS cycle_candidate) FROM trace_facts FINAL")
    assert answers(store) == expected
    store.execute("TRUNCATE TABLE step_counts")  # settled before the table existed
    settled = reliability._settled(store, PARAMS[0])
    assert settled is not None and not settled.step_counts
    assert answers(store) == expected


def test_a_range_with_few_spans_per_facts_row_reads_raw_spans(
        store: SpanStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store.append_batch(stamped(everything(), 10 * S))
    expected = raw_answers(store, monkeypatch)
    settle(store, 20 * S)
    assert split(store, PARAMS[0]) is not None
    monkeypatch.setattr(reliability, "FACTS_MIN_SPANS_PER_ROW", 1000)  # every range is short
    assert split(store, PARAMS[0]) is None
    assert answers(store) == expected
