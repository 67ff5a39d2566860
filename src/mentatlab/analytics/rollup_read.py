"""SQL pieces for reading the hourly rollups next to raw spans (see storage.rollup).

A query that can use the rollups is one SQL text: a ``UNION ALL`` of the rollup rows of
the planned whole hours (current builds only) and the same aggregate over
``spans FINAL`` for the rest of the range, re-aggregated outside. Sums are Decimal-exact;
trace counts merge ``uniq`` states (approximate beyond tens of thousands); latency merges
log-bucket histograms (within 1% of the exact nearest-rank value, as on the raw path).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from mentatlab.analytics.query import SqlParts, TimeRange
from mentatlab.storage.base import SpanStore
from mentatlab.storage.rollup import RollupPlan, plan_rollup
from mentatlab.storage.span_schema import ROLLUP_BUILDS_TABLE

__all__ = ["ROLLUP_BUCKETS", "current_builds", "intervals_where", "rollup_plan_for",
           "rollup_where"]

ROLLUP_BUCKETS: Mapping[str, str] = {
    "hour": "toDateTime64(hour, 0, 'UTC')",
    "day": "toDateTime64(toStartOfDay(hour), 0, 'UTC')",
}
"""Time buckets over the rollup ``hour`` column (same types as the raw ``BUCKETS``)."""

_TS = "DateTime64(9, 'UTC')"


def intervals_where(parts: SqlParts, column: str,
                    intervals: Sequence[tuple[datetime, datetime]]) -> str:
    """``(column in [a, b) OR ...)`` with bound ends; ``0`` for no interval."""
    if not intervals:
        return "0"
    ors = [f"({column} >= {parts.bind(lo, _TS)} AND {column} < {parts.bind(hi, _TS)})"
           for lo, hi in intervals]
    return "(" + " OR ".join(ors) + ")"


def current_builds(parts: SqlParts, plan: RollupPlan) -> str:
    """Condition keeping only rollup rows of the current build of each planned hour."""
    hours = intervals_where(parts, "hour", plan.rollup)
    return (f"(hour, build_id) IN (SELECT hour, max(build_id) FROM {ROLLUP_BUILDS_TABLE}"
            f" WHERE {hours} GROUP BY hour)")


def rollup_where(parts: SqlParts, plan: RollupPlan, filters: Mapping[str, str]) -> str:
    """WHERE of the rollup side: planned hours, current builds, equality filters."""
    conditions = [intervals_where(parts, "hour", plan.rollup), current_builds(parts, plan)]
    conditions += [f"{name} = {parts.bind(str(value), 'String')}"
                   for name, value in filters.items()]
    return " AND ".join(conditions)


def rollup_plan_for(store: SpanStore, time_range: TimeRange, names: set[str],
                    dimensions: Sequence[str]) -> RollupPlan | None:
    """The rollup plan when every filter/group-by name is a rollup dimension, else None.

    Raises:
        StoreError: a query failed.
    """
    if not names <= set(dimensions):
        return None
    return plan_rollup(store, time_range.start, time_range.end)
