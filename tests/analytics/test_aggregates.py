"""The resolver's aggregates on both backends: answers equal raw ``spans FINAL`` throughout.

The generated dataset (recent, so the minute tier serves partial hours) is loaded with
re-sent copies, resolved (children inherit their root's agent), then changed three ways
(repriced versions, late spans into earlier hours, re-sends past the dedup cache) and
resolved again; after every pass, the aggregate-backed answers of every query shape equal
the raw answers exactly (latency percentiles too: both paths use one histogram), and
totals equal independent sums over the Python spans.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pyarrow as pa
import pytest
from dataset import NUM_TRACES, build_spans

from mentatlab.analytics import QueryParams, TimeRange, cost_by, get_overview, list_traces
from mentatlab.analytics.aggregate_read import plan_read
from mentatlab.model.schema import spans_to_arrow
from mentatlab.model.span import CanonicalSpan
from mentatlab.pipeline.price import Price
from mentatlab.resolver.resolver import Resolver, read_resolver_state, rebuild_aggregates
from mentatlab.storage.base import SpanStore

# Recent, on a day boundary: minute-tier rows exist for its partial hours.
T0 = (datetime.now(UTC) - timedelta(days=4)).replace(hour=0, minute=0, second=0, microsecond=0)
# Partial hours at both ends (and seconds, which queries round out to whole minutes).
RANGE = TimeRange(T0 - timedelta(minutes=30, seconds=17), T0 + timedelta(days=3, minutes=7,
                                                                          seconds=41))
RANGE_MINUTES = TimeRange(T0 - timedelta(minutes=31), T0 + timedelta(days=3, minutes=8))
WHOLE_DAYS = TimeRange(T0, T0 + timedelta(days=3))
INSIDE = TimeRange(T0 + timedelta(hours=5, minutes=3, seconds=9),
                   T0 + timedelta(hours=5, minutes=48, seconds=2))


def queries() -> list[QueryParams]:
    """Every shape the aggregates serve, and some they must hand to the raw path."""
    out = []
    for time_range in (RANGE, WHOLE_DAYS, INSIDE):
        out += [
            QueryParams(time_range),
            QueryParams(time_range, group_by=["model"], bucket="day"),
            QueryParams(time_range, group_by=["org_id", "project_id"]),
            QueryParams(time_range, group_by=["provider", "operation", "status"], bucket="hour"),
            QueryParams(time_range, filters={"org_id": "acme"}, group_by=["agent_id"]),
            QueryParams(time_range, filters={"model": "gpt-4o"}, bucket="day"),
            QueryParams(time_range, group_by=["tool_name", "service_name"]),
            QueryParams(time_range, filters={"project_id": "p1"}),
            QueryParams(time_range, filters={"agent_id": "agent1"}),
            QueryParams(time_range, group_by=["user_id", "customer_id"]),  # principal
            QueryParams(time_range, group_by=["model"], bucket="minute"),  # minute tier
            # Not aggregate dimensions: raw.
            QueryParams(time_range, filters={"price_source": "unpriced"}),
            QueryParams(time_range, filters={"department": ""}),
        ]
    return out


def assert_same(store: SpanStore) -> None:
    """Aggregate-backed answers equal raw answers for every query shape."""
    for params in queries():
        assert cost_by(store, params) == cost_by(store, params, use_aggregates=False), params
        assert get_overview(store, params) == get_overview(
            store, params, use_aggregates=False), params


def stamped(spans: list[CanonicalSpan], stamp_ns: int) -> pa.Table:
    return spans_to_arrow([replace(s, ingested_at_ns=stamp_ns) for s in spans])


def agent_of(trace: int) -> str:
    return f"agent{trace % 4}"


def expected_cost_by_agent(spans: list[CanonicalSpan], time_range: TimeRange
                           ) -> dict[str, Decimal]:
    """Every span's cost under its trace root's agent (what inheritance must give)."""
    out: dict[str, Decimal] = {}
    for span in spans:
        if not time_range.start <= span.start_time < time_range.end:
            continue
        agent = agent_of(int(span.trace_id, 16) - 1)
        out[agent] = out.get(agent, Decimal(0)) + span.total_cost
    return out


@pytest.fixture
def spans() -> list[CanonicalSpan]:
    return build_spans(T0)


def test_aggregates_equal_raw_through_resolution_reprice_and_late_spans(
        store: SpanStore, spans: list[CanonicalSpan]) -> None:
    stamp = time.time_ns() - 10**12
    half = len(spans) // 2
    store.append_batch(stamped(spans[:half], stamp))
    store.append_batch(stamped(spans[half:], stamp + 1))
    store.append_batch(stamped(spans[::5], stamp + 2))  # re-sent copies: count once
    assert plan_read(store, RANGE.start, RANGE.end, set()) is None  # never resolved: raw
    resolver = Resolver(store, Price())
    report = resolver.run_pass(time.time_ns())
    assert report.backfill and report.num_traces == NUM_TRACES
    # every child inherited its root's agent (the roots carry theirs)
    assert report.num_versions == len(spans) - NUM_TRACES
    plan = plan_read(store, RANGE_MINUTES.start, RANGE_MINUTES.end, set(), overview=True)
    assert plan is not None and [s.table for s in plan.sides] == [
        "agg_scope_hour", "agg_scope_minute"]  # no raw read at all
    assert_same(store)
    by_agent = {r.keys["agent_id"]: r.total_cost for r in cost_by(
        store, QueryParams(WHOLE_DAYS, group_by=["agent_id"]))}
    assert by_agent == expected_cost_by_agent(spans, WHOLE_DAYS)
    assert QueryParams(RANGE).time_range == RANGE_MINUTES
    before = cost_by(store, QueryParams(RANGE))[0].total_cost
    assert before == sum((s.total_cost for s in spans
                          if RANGE_MINUTES.start <= s.start_time < RANGE_MINUTES.end), Decimal(0))

    # Reprice: a new version of every tool span of the first day, as the reprice route
    # writes it; late spans into earlier hours (new LLM calls of existing and new traces);
    # a re-send of some late spans past the dedup cache.
    now_ns = time.time_ns()
    repriced = [replace(s, total_cost=s.total_cost + Decimal("0.000000000007"),
                        cpu_cost=s.cpu_cost + Decimal("0.000000000007"), revision=1)
                for s in spans if s.tool_name and s.start_time < T0 + timedelta(days=1)]
    store.append_batch(stamped(repriced, now_ns))
    late = [replace(s, span_id=f"{i:016x}", trace_id=f"{NUM_TRACES + 1 + i % 3:032x}"
                    if i % 2 else s.trace_id, total_cost=Decimal("0.25"), duration_ms=5000.0)
            for i, s in enumerate(spans[1::12])]
    store.append_batch(stamped(late, now_ns + 1))
    store.append_batch(stamped(late[:5], now_ns + 2))
    report = resolver.run_pass(time.time_ns())
    assert not report.backfill
    assert report.num_traces == len({s.trace_id for s in [*repriced, *late]})
    assert_same(store)
    expected = before + Decimal("0.000000000007") * len(repriced) + Decimal("0.25") * sum(
        1 for s in late if RANGE_MINUTES.start <= s.start_time < RANGE_MINUTES.end)
    assert cost_by(store, QueryParams(RANGE))[0].total_cost == expected

    # A pass with nothing new changes nothing; so does rebuilding everything from scratch.
    answers = [cost_by(store, p) for p in queries()]
    report = resolver.run_pass(time.time_ns())
    assert (report.num_traces, report.num_versions) == (0, 0)
    rebuilt = rebuild_aggregates(store, Price())
    assert rebuilt.backfill and rebuilt.num_versions == 0
    assert [cost_by(store, p) for p in queries()] == answers
    state = read_resolver_state(store)
    assert state is not None and state.complete


def test_the_trace_list_reads_the_trace_summary_like_raw(
        store: SpanStore, spans: list[CanonicalSpan]) -> None:
    store.append_batch(stamped(spans, time.time_ns() - 10**12))
    Resolver(store, Price()).run_pass(time.time_ns())
    for kwargs in ({}, {"status": "error"}, {"min_cost": Decimal("0.01")},
                   {"min_duration_ms": 1050.0}, {"offset": 7, "limit": 9},
                   {"sort": "cost"}, {"sort": "cost", "status": "error", "limit": 5}):
        for time_range in (WHOLE_DAYS, RANGE, INSIDE):
            params = QueryParams(time_range)
            assert list_traces(store, params, **kwargs) == list_traces(  # type: ignore[arg-type]
                store, params, use_aggregates=False, **kwargs), (time_range, kwargs)


def test_a_trace_crossing_orgs_lists_only_the_asking_orgs_spans(
        store: SpanStore, spans: list[CanonicalSpan]) -> None:
    """A trace whose context went from an acme service to a globex one: acme's list shows
    acme's spans of it only (count, cost, root), from the raw path and the aggregates alike.
    """
    trace = [s for s in spans if s.trace_id == spans[0].trace_id]
    assert {s.org_id for s in trace} == {"acme"} and len(trace) == 4
    crossing = [replace(s, org_id="globex", project_id="g", name=f"globex {s.name}",
                        total_cost=Decimal("5")) if s.parent_span_id else s for s in trace[2:]]
    mixed = trace[:2] + crossing
    store.append_batch(stamped(mixed, time.time_ns() - 10**12))
    Resolver(store, Price()).run_pass(time.time_ns())
    acme_spans = [s for s in mixed if s.org_id == "acme"]
    params = QueryParams(WHOLE_DAYS, filters={"org_id": "acme"})
    for use_aggregates in (True, False):
        (summary,) = list_traces(store, params, use_aggregates=use_aggregates)
        assert summary.num_spans == len(acme_spans) == 2, use_aggregates
        assert summary.total_cost == sum(s.total_cost for s in acme_spans), use_aggregates
    globex = list_traces(store, QueryParams(WHOLE_DAYS, filters={"org_id": "globex"}),
                         use_aggregates=False)
    assert [t.num_spans for t in globex] == [2]
    assert globex[0].total_cost == Decimal("10")
