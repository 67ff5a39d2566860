"""Rollup-vs-raw scenario shared by the chDB and ClickHouse-server tests.

The generated dataset is stamped like the writer would stamp it, rolled up, then changed
three ways (re-sent spans, repriced versions, late spans into closed hours); after every
step the rollup-backed answers must equal the raw ``spans FINAL`` answers exactly
(latency percentiles too: both paths use the same histogram).
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pyarrow as pa
from dataset import NUM_TRACES, T0, build_spans

from mentatlab.analytics import QueryParams, TimeRange, cost_by, get_overview
from mentatlab.model.schema import spans_to_arrow
from mentatlab.model.span import CanonicalSpan
from mentatlab.storage.base import SpanStore
from mentatlab.storage.rollup import plan_rollup, refresh_rollups
from mentatlab.storage.span_schema import ROLLUP_TABLE

# Partial hours at both ends: the merge of raw edges and rollup middle is exercised.
RANGE = TimeRange(T0 - timedelta(minutes=30), T0 + timedelta(days=3, minutes=30))
FULL_DAYS = TimeRange(T0, T0 + timedelta(days=3))
MINUTE = 60 * 10**9


def queries() -> list[QueryParams]:
    """Every shape the rollup serves, and some it must hand to the raw path."""
    out = []
    for time_range in (RANGE, FULL_DAYS):
        out += [
            QueryParams(time_range),
            QueryParams(time_range, group_by=["model"], bucket="day"),
            QueryParams(time_range, group_by=["org_id", "project_id"]),
            QueryParams(time_range, group_by=["provider", "operation", "status"], bucket="hour"),
            QueryParams(time_range, filters={"org_id": "acme"}, group_by=["agent_id"]),
            QueryParams(time_range, filters={"model": "gpt-4o"}, bucket="day"),
            QueryParams(time_range, group_by=["tool_name", "service_name"]),
            QueryParams(time_range, filters={"project_id": "p1"}),
            # Not rollup dimensions / bucket: raw path.
            QueryParams(time_range, group_by=["user_id"]),
            QueryParams(time_range, filters={"price_source": "unpriced"}),
            QueryParams(time_range, group_by=["model"], bucket="minute"),
        ]
    return out


def stamped(spans: list[CanonicalSpan], ingested_at_ns: int) -> pa.Table:
    return spans_to_arrow([replace(s, ingested_at_ns=ingested_at_ns) for s in spans])


def later() -> datetime:
    """The time of a rollup run 10 minutes from now (commits so far are then covered)."""
    return datetime.now(UTC) + timedelta(minutes=10)


def assert_same(store: SpanStore) -> None:
    """Rollup-backed answers equal raw answers for every query shape."""
    for params in queries():
        assert cost_by(store, params) == cost_by(store, params, use_rollups=False), params
        assert get_overview(store, params) == get_overview(store, params, use_rollups=False), (
            params)


def rollup_hours(store: SpanStore) -> int:
    plan = plan_rollup(store, RANGE.start, RANGE.end)
    if plan is None:
        return 0
    return sum(int((hi - lo).total_seconds()) // 3600 for lo, hi in plan.rollup)


def run(store: SpanStore) -> None:
    """The whole scenario on a migrated, empty store."""
    spans = build_spans()
    base_ns = time.time_ns() - 60 * MINUTE
    half = len(spans) // 2
    store.append_batch(stamped(spans[:half], base_ns))
    store.append_batch(stamped(spans[half:], base_ns + 1))
    store.append_batch(stamped(spans[::5], base_ns + 2))  # re-sent copies: count once
    assert plan_rollup(store, RANGE.start, RANGE.end) is None  # nothing built yet
    report = refresh_rollups(store, now=later())
    assert report.hours_built == len({s.start_time.replace(minute=0, second=0, microsecond=0)
                                      for s in spans})
    total_hours = 3 * 24
    assert rollup_hours(store) == total_hours  # every whole hour of the range
    assert_same(store)
    before = cost_by(store, QueryParams(RANGE), use_rollups=False)[0].total_cost
    assert before > 0

    # Rows of a superseded or unfinished build must never be read.
    store.execute(
        f"INSERT INTO {ROLLUP_TABLE} (build_id, hour, org_id, total_cost, num_spans)"
        " VALUES (1, toDateTime({h:UInt32}, 'UTC'), 'acme', 1000, 7),"
        " (18446744073709551615, toDateTime({h:UInt32}, 'UTC'), 'acme', 1000, 7)",
        {"h": int((T0 + timedelta(hours=1)).timestamp())})
    assert_same(store)

    # Repricing: new versions of every tool span of the first day, with new costs,
    # committed after the run.
    now_ns = report.source_max_ns + MINUTE
    repriced = [replace(s, total_cost=s.total_cost + Decimal("0.000000000007"),
                        cpu_cost=s.cpu_cost + Decimal("0.000000000007"))
                for s in spans if s.tool_name and s.start_time < T0 + timedelta(days=1)]
    store.append_batch(stamped(repriced, now_ns))
    # Late spans into closed hours: new LLM calls of existing and of new traces.
    late = [replace(s, span_id=f"{i:016x}", trace_id=f"{NUM_TRACES + 1 + i % 3:032x}"
                    if i % 2 else s.trace_id, total_cost=Decimal("0.25"),
                    duration_ms=5000.0)
            for i, s in enumerate(spans[1::12])]
    store.append_batch(stamped(late, now_ns + 1))
    store.append_batch(stamped(late[:5], now_ns + 2))  # and a re-send of some of them
    touched = {s.start_time.replace(minute=0, second=0, microsecond=0)
               for s in [*repriced, *late]}
    # Before any rebuild: the touched hours are read raw, so answers are exact already.
    assert rollup_hours(store) == total_hours - len(touched), (
        rollup_hours(store), total_hours, len(touched))
    assert_same(store)
    after = cost_by(store, QueryParams(RANGE))[0].total_cost
    expected = before + Decimal("0.000000000007") * len(repriced) + Decimal("0.25") * len(late)
    assert after == expected

    report = refresh_rollups(store, now=later() + timedelta(minutes=10))
    assert report.hours_built == len(touched)
    assert rollup_hours(store) == total_hours
    assert_same(store)
    assert cost_by(store, QueryParams(RANGE))[0].total_cost == expected

    # A run with nothing new builds nothing and keeps serving the rollup.
    report = refresh_rollups(store, now=later() + timedelta(minutes=11))
    assert report.hours_built == 0
    assert rollup_hours(store) == total_hours
    assert_same(store)
