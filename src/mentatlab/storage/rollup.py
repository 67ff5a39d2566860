"""Hourly rollups of the span table, exact under re-sends and repricing.

A materialized view would see inserts, so a re-sent or repriced span would count twice.
Instead a job (:func:`refresh_rollups`, run by the server every
``MENTATLAB_ROLLUP_INTERVAL_S``) aggregates CLOSED hours from ``spans FINAL`` into
``span_rollup_hourly`` (cost sums per fine dimensions) and ``span_rollup_scope_hourly``
(overview sums, trace-count sketch and latency states per trace-level dimensions); tables in
:mod:`mentatlab.storage.span_schema`.

How it stays exact:

* Every build of a set of hours writes its rows under a new ``build_id``, then records
  ``(hour, build_id)`` in ``span_rollup_builds``; readers take only the largest build id of
  each hour, so a rebuild replaces an hour atomically (superseded rows are deleted
  lazily).
* Change detection uses ``ingested_at_ns``, which the writer stamps with the commit time.
  A run starting at ``now`` covers every commit stamped up to ``G = now -``
  :data:`SKEW_MARGIN_NS` (a commit is visible well within the margin). It rebuilds every
  closed hour holding a span stamped after the previous run's ``G`` (late, re-sent and
  repriced spans alike) and every hour that closed since; a sentinel row (hour 0) records
  ``G`` and the closed horizon last.
* Readers (:func:`plan_rollup`) never trust a rollup hour holding a span stamped after
  ``G``: those hours, the open hours and partial hours at the range ends are read from
  ``spans FINAL``. So a query is exact at any moment, not just after a run (the minmax
  skip index on ``ingested_at_ns`` keeps that check to a few granules).

Inserts that bypass the writer must stamp ``ingested_at_ns`` with the commit time too;
with several servers writing, their clocks must agree within :data:`SKEW_MARGIN_NS`.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from mentatlab.storage.base import SpanStore
from mentatlab.storage.control.leader import LeaderLock, run_periodic
from mentatlab.storage.span_schema import (
    LATENCY_HIST,
    ROLLUP_BUILDS_TABLE,
    ROLLUP_DIMENSIONS,
    ROLLUP_MONEY,
    ROLLUP_SCOPE_DIMENSIONS,
    ROLLUP_SCOPE_TABLE,
    ROLLUP_TABLE,
    TRACE_SKETCH,
)

__all__ = [
    "CLOSE_DELAY_S",
    "SKEW_MARGIN_NS",
    "RollupPlan",
    "RollupReport",
    "plan_rollup",
    "refresh_rollups",
    "rollup_loop",
]

_log = logging.getLogger(__name__)

SKEW_MARGIN_NS = 300 * 10**9
"""A run covers only commits stamped this many ns before it started (slow commits, clock
skew between servers); hours touched later are read raw until a later run. 300 s."""
CLOSE_DELAY_S = 300
"""An hour is closed (rolled up) this many s after it ends."""

_HOUR = timedelta(hours=1)
_MODEL_EXPR = "if(response_model != '', response_model, request_model)"
_NOT_ROLLUP = "NOT usage_is_rollup"
_FINAL_SETTINGS = "SETTINGS do_not_merge_across_partitions_select_final = 1"
_DIM_EXPR = {d: (_MODEL_EXPR if d == "model" else d) for d in ROLLUP_DIMENSIONS}


def _sums() -> str:
    money = ", ".join(f"sum({m}) AS {m}" for m in ROLLUP_MONEY)
    return (f"{money}, countIf({_MODEL_EXPR} != '' AND {_NOT_ROLLUP}) AS requests,"
            " count() AS num_spans, countIf(status != 'ok') AS error_spans,"
            f" sumIf(ifNull(input_tokens, 0), {_NOT_ROLLUP}) AS input_tokens,"
            f" sumIf(ifNull(output_tokens, 0), {_NOT_ROLLUP}) AS output_tokens,"
            f" sumIf(ifNull(cache_read_tokens, 0), {_NOT_ROLLUP}) AS cached_tokens")


ROLLUP_SUMS = (*ROLLUP_MONEY, "requests", "num_spans", "error_spans", "input_tokens",
               "output_tokens", "cached_tokens")
"""Additive columns of both rollup tables."""
SUMS_SQL = _sums()
"""``sum(...) AS <column>`` of every additive rollup column, over raw spans."""


@dataclass(frozen=True, slots=True)
class RollupReport:
    """What one :func:`refresh_rollups` run did."""

    build_id: int
    hours_built: int
    source_max_ns: int
    """Every commit stamped up to this ``ingested_at_ns`` is in the build."""
    closed_before: datetime
    duration_s: float


@dataclass(frozen=True, slots=True)
class RollupPlan:
    """Which part of a time range comes from rollups and which from raw spans."""

    rollup: tuple[tuple[datetime, datetime], ...]
    """Whole hours ``[start, end)`` read from the rollups (current builds only)."""
    raw: tuple[tuple[datetime, datetime], ...]
    """Intervals ``[start, end)`` read from ``spans FINAL``."""


def _floor_hour(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _ceil_hour(ts: datetime) -> datetime:
    floor = _floor_hour(ts)
    return floor if floor == ts else floor + _HOUR


def _state(store: SpanStore) -> tuple[int, datetime] | None:
    """(newest covered stamp G, closed horizon) of the last complete run, or None."""
    rows = store.query_arrow(
        "SELECT argMax(source_max_ns, build_id) AS g,"
        " toUnixTimestamp(argMax(closed_before, build_id)) AS wm,"
        f" count() AS n FROM {ROLLUP_BUILDS_TABLE} WHERE hour = toDateTime(0, 'UTC')"
    ).to_pylist()[0]
    if not rows["n"]:
        return None
    return int(rows["g"]), datetime.fromtimestamp(int(rows["wm"]), UTC)


def _hours(store: SpanStore, sql: str, params: dict[str, object]) -> set[datetime]:
    table = store.query_arrow(sql, params)
    return {datetime.fromtimestamp(int(h), UTC) for h in table.column("h").to_pylist()}


def refresh_rollups(store: SpanStore, now: datetime | None = None) -> RollupReport:
    """Build the rollups of every closed hour that is new or changed since the last run.

    Args:
        store: a migrated span store.
        now: the current time (UTC); hours ending ``CLOSE_DELAY_S`` s before it are closed.

    Returns:
        What was built.

    Raises:
        StoreError: a query or insert failed (the next run redoes the work).
    """
    started_s = time.monotonic()
    now = (now or datetime.now(UTC)).astimezone(UTC)
    closed_before = _floor_hour(now - timedelta(seconds=CLOSE_DELAY_S))
    build_id = time.time_ns()
    previous = _state(store)
    ts = "DateTime64(9, 'UTC')"
    h_expr = "toUnixTimestamp(toStartOfHour(start_time))"
    # Commits stamped up to G are visible now (a commit takes far less than the margin).
    source_max_ns = int(now.timestamp() * 10**9) - SKEW_MARGIN_NS
    if previous is None:
        todo = _hours(store, f"SELECT DISTINCT {h_expr} AS h FROM spans"
                      f" WHERE start_time < {{c:{ts}}}", {"c": closed_before})
    else:
        last_ns, last_closed = previous
        source_max_ns = max(source_max_ns, last_ns)
        todo = _hours(store, f"SELECT DISTINCT {h_expr} AS h FROM spans"
                      f" WHERE ingested_at_ns > {{s:Int64}} AND start_time < {{c:{ts}}}",
                      {"s": last_ns, "c": closed_before})
        if closed_before > last_closed:
            todo |= _hours(store, f"SELECT DISTINCT {h_expr} AS h FROM spans"
                           f" WHERE start_time >= {{a:{ts}}} AND start_time < {{c:{ts}}}",
                           {"a": last_closed, "c": closed_before})
    hours = sorted(todo)
    for chunk in _chunks(hours, 24 * 7):
        _build(store, build_id, chunk, source_max_ns, closed_before)
    store.execute(
        f"INSERT INTO {ROLLUP_BUILDS_TABLE} (hour, build_id, source_max_ns, closed_before,"
        " built_at) VALUES (toDateTime(0, 'UTC'), {b:UInt64}, {g:Int64},"
        " toDateTime({c:UInt32}, 'UTC'), now64(3))",
        {"b": build_id, "g": source_max_ns, "c": int(closed_before.timestamp())})
    if previous is not None and hours:
        _drop_superseded(store, hours)
    report = RollupReport(build_id, len(hours), source_max_ns, closed_before,
                          time.monotonic() - started_s)
    _log.info("span rollups: %s hours built (build %s, closed before %s) in %.3f s",
              report.hours_built, build_id, closed_before.isoformat(), report.duration_s)
    return report


def _chunks(hours: list[datetime], size: int) -> list[list[datetime]]:
    return [hours[i:i + size] for i in range(0, len(hours), size)]


def _build(store: SpanStore, build_id: int, hours: list[datetime], source_max_ns: int,
           closed_before: datetime) -> None:
    """Insert the rows of ``hours`` under ``build_id``, then make that build current."""
    params: dict[str, object] = {"b": build_id, "hours": _epochs(hours), "g": source_max_ns,
                                 "c": int(closed_before.timestamp())}
    where = ("toUnixTimestamp(toStartOfHour(start_time)) IN {hours:Array(UInt32)}"
             " AND start_time >= {lo:DateTime64(9, 'UTC')}"
             " AND start_time < {hi:DateTime64(9, 'UTC')}")
    params["lo"] = hours[0]
    params["hi"] = hours[-1] + _HOUR
    hour = "toDateTime(toStartOfHour(start_time), 'UTC') AS hour"
    fine = ", ".join(f"{_DIM_EXPR[d]} AS {d}" for d in ROLLUP_DIMENSIONS)
    store.execute(
        f"INSERT INTO {ROLLUP_TABLE} (build_id, hour, {', '.join(ROLLUP_DIMENSIONS)},"
        f" {', '.join(ROLLUP_SUMS)}) SELECT {{b:UInt64}}, {hour}, {fine}, {SUMS_SQL}"
        f" FROM spans FINAL WHERE {where} GROUP BY hour, {', '.join(ROLLUP_DIMENSIONS)}"
        f" {_FINAL_SETTINGS}", params)
    scope = ", ".join(ROLLUP_SCOPE_DIMENSIONS)
    store.execute(
        f"INSERT INTO {ROLLUP_SCOPE_TABLE} (build_id, hour, {scope}, {', '.join(ROLLUP_SUMS)},"
        f" traces, latency_hist, min_duration_ms, max_duration_ms)"
        f" SELECT {{b:UInt64}}, {hour}, {scope}, {SUMS_SQL}, {TRACE_SKETCH}State(trace_id),"
        f" {LATENCY_HIST}, min(duration_ms), max(duration_ms)"
        f" FROM spans FINAL WHERE {where} GROUP BY hour, {scope} {_FINAL_SETTINGS}", params)
    store.execute(
        f"INSERT INTO {ROLLUP_BUILDS_TABLE} (hour, build_id, source_max_ns, closed_before,"
        " built_at) SELECT toDateTime(arrayJoin({hours:Array(UInt32)}), 'UTC'), {b:UInt64},"
        " {g:Int64}, toDateTime({c:UInt32}, 'UTC'), now64(3)", params)


def _drop_superseded(store: SpanStore, hours: list[datetime]) -> None:
    """Delete rollup rows of ``hours`` that belong to an older build (a lazy cleanup)."""
    current = (f"(hour, build_id) NOT IN (SELECT hour, max(build_id) FROM {ROLLUP_BUILDS_TABLE}"
               " WHERE toUnixTimestamp(hour) IN {hours:Array(UInt32)} GROUP BY hour)")
    for table in (ROLLUP_TABLE, ROLLUP_SCOPE_TABLE):
        store.execute(f"ALTER TABLE {table} DELETE WHERE toUnixTimestamp(hour) IN"
                      " {hours:Array(UInt32)} AND " + current, {"hours": _epochs(hours)})


def _epochs(hours: list[datetime]) -> list[int]:
    return [int(h.timestamp()) for h in hours]


def plan_rollup(store: SpanStore, start: datetime, end: datetime) -> RollupPlan | None:
    """Split ``[start, end)`` into rollup hours and raw intervals; None when no rollup helps.

    Rollup hours are whole hours inside the range, closed at the last run, and without a
    span stamped after the last run's covered stamp.

    Raises:
        StoreError: a query failed.
    """
    state = _state(store)
    if state is None:
        return None
    last_ns, closed_before = state
    first = _ceil_hour(start)
    stop = min(_floor_hour(end), closed_before)
    if stop <= first:
        return None
    ts = "DateTime64(9, 'UTC')"
    dirty = _hours(store, "SELECT DISTINCT toUnixTimestamp(toStartOfHour(start_time)) AS h"
                   f" FROM spans WHERE ingested_at_ns > {{s:Int64}} AND start_time >= {{a:{ts}}}"
                   f" AND start_time < {{b:{ts}}}",
                   {"s": last_ns, "a": first, "b": stop})
    rollup: list[tuple[datetime, datetime]] = []
    cursor = first
    for hour in sorted(dirty):
        if hour > cursor:
            rollup.append((cursor, hour))
        cursor = max(cursor, hour + _HOUR)
    if stop > cursor:
        rollup.append((cursor, stop))
    if not rollup:
        return None
    raw: list[tuple[datetime, datetime]] = []
    cursor = start
    for lo, hi in rollup:
        if lo > cursor:
            raw.append((cursor, lo))
        cursor = hi
    if end > cursor:
        raw.append((cursor, end))
    return RollupPlan(tuple(rollup), tuple(raw))



async def rollup_loop(store: SpanStore, interval_s: float,
                      leader: LeaderLock | None = None,
                      on_leadership: Callable[[bool], None] | None = None) -> None:
    """Run :func:`refresh_rollups` now and then every ``interval_s`` s, until cancelled.

    Each run goes to a worker thread (the event loop keeps serving); a failed run is
    logged and simply redone by the next one. ``interval_s <= 0`` returns at once. With
    ``leader`` (several nodes on one span store), only the node holding the lock runs it
    (:func:`~mentatlab.storage.control.leader.run_periodic`).
    """
    await run_periodic(functools.partial(refresh_rollups, store), interval_s,
                       name="span rollup", leader=leader, on_leadership=on_leadership)
