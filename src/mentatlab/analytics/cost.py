"""Cost broken down by any group-by columns and an optional time bucket."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from mentatlab.analytics.aggregate_read import Side, plan_read
from mentatlab.analytics.query import (
    BUCKETS,
    FINAL_SETTINGS,
    GROUP_BY_COLUMNS,
    QueryParams,
    SqlParts,
    bucket_sql,
    group_keys_of,
)
from mentatlab.analytics.zone import bucket_cuts, parse_zone
from mentatlab.storage.aggregates import MEASURES
from mentatlab.storage.base import SpanStore

__all__ = ["CostRow", "cost_by"]

_MONEY = tuple(m.name for m in MEASURES if m.type.startswith("Decimal"))
_COUNTS = tuple(m.name for m in MEASURES if m.type == "Int64")
_RAW_MEASURES = ", ".join(f"{m.expr} AS {m.name}" for m in MEASURES)
_SUMS = ", ".join(f"sum({m.name}) AS {m.name}" for m in MEASURES)


@dataclass(frozen=True, slots=True)
class CostRow:
    """Cost of one group (and bucket); money in the spans' currency (USD by default)."""

    keys: dict[str, str]
    """Group-by values by name, in the query's group-by order (empty without group-by)."""
    bucket_start: datetime | None
    """Start of the time bucket as a UTC instant (of the local bucket start when the query
    names a time zone), or None without a bucket."""
    token_cost: Decimal
    """Price of the LLM calls' tokens."""
    cpu_cost: Decimal
    memory_cost: Decimal
    gpu_cost: Decimal
    network_cost: Decimal
    storage_cost: Decimal
    unattributed_cost: Decimal
    """Price of usage reported by agent/workflow spans that no LLM call below them carries."""
    discount: Decimal
    total_cost: Decimal
    """token + unattributed + infrastructure - discount."""
    requests: int
    """LLM calls (spans with a model, not roll-ups)."""
    num_spans: int
    error_spans: int
    """Spans with status ``error`` or ``timeout``."""
    timeout_spans: int
    input_tokens: int
    """Prompt tokens of LLM calls, inclusive of cache reads and writes."""
    output_tokens: int
    """Completion tokens of LLM calls, inclusive of reasoning."""
    cached_tokens: int
    """Cache-read tokens (part of ``input_tokens``)."""
    cache_write_tokens: int
    """Cache-write tokens (part of ``input_tokens``)."""
    reasoning_tokens: int
    """Reasoning tokens (part of ``output_tokens``)."""
    unattributed_input_tokens: int
    """Input tokens behind ``unattributed_cost`` (not in ``input_tokens``)."""
    unattributed_output_tokens: int
    """Output tokens behind ``unattributed_cost`` (not in ``output_tokens``)."""
    input_cost: Decimal = Decimal(0)
    """Part of ``token_cost``: uncached input tokens (docs/decisions/0012-token-kind-costs.md)."""
    cache_read_cost: Decimal = Decimal(0)
    """Part of ``token_cost``: cache-read tokens."""
    cache_write_cost: Decimal = Decimal(0)
    """Part of ``token_cost``: cache-write tokens."""
    output_cost: Decimal = Decimal(0)
    """Part of ``token_cost``: output tokens other than reasoning."""
    reasoning_cost: Decimal = Decimal(0)
    """Part of ``token_cost``: reasoning tokens."""
    request_cost: Decimal = Decimal(0)
    """Part of ``token_cost``: per-request fees."""
    cache_savings: Decimal = Decimal(0)
    """Cache-read tokens at the uncached input price minus ``cache_read_cost``."""

    @property
    def infra_cost(self) -> Decimal:
        """CPU + memory + GPU + network + storage cost."""
        return (self.cpu_cost + self.memory_cost + self.gpu_cost + self.network_cost
                + self.storage_cost)

    @property
    def tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens


def _bucket_expr(side: Side, bucket: str, time_zone: str) -> str:
    if time_zone != "UTC" and bucket != "minute":
        # the plan keeps hour-tier rows inside one local bucket (zone.bucket_cuts)
        return bucket_sql(side.time_column, bucket, time_zone)
    if side.raw:
        return BUCKETS[bucket]
    time = side.time_column
    if bucket == "minute" or (bucket == "hour" and time == "hour"):
        return f"toDateTime64({time}, 0, 'UTC')"
    start_of = "toStartOfHour" if bucket == "hour" else "toStartOfDay"
    return f"toDateTime64({start_of}({time}), 0, 'UTC')"


def _side_sql(side: Side, params: QueryParams, parts: SqlParts) -> str:
    select = [f"{GROUP_BY_COLUMNS[g] if side.raw else g} AS g_{g}" for g in params.group_by]
    if params.bucket is not None:
        select.append(f"{_bucket_expr(side, params.bucket, params.time_zone)} AS bucket_start")
    where = side.where(parts, params.filters)
    if side.raw:
        keys = [f"g_{g}" for g in params.group_by]
        if params.bucket is not None:
            keys.append("bucket_start")
        group = f" GROUP BY {', '.join(keys)}" if keys else ""
        return (f"SELECT {', '.join([*select, _RAW_MEASURES])} FROM spans FINAL"
                f" WHERE {where}{group}")
    columns = ", ".join(m.name for m in MEASURES)
    return f"SELECT {', '.join([*select, columns])} FROM {side.table} WHERE {where}"


def cost_by(store: SpanStore, params: QueryParams, *, limit: int = 10_000,
            use_aggregates: bool = True) -> list[CostRow]:
    """Cost per group-by key (and time bucket), ordered by bucket then cost (highest first).

    Whole hours and minutes of the range come from the first aggregate whose dimensions
    cover every filter and group-by name (``storage/aggregates.py``), the seconds at its
    ends and anything no aggregate covers from ``spans FINAL``; the answer is the same to
    the last Decimal digit either way. Hour and day buckets follow ``params.time_zone``:
    where its bucket starts are not whole UTC hours (``Asia/Kolkata``), the UTC hours
    around them come from the minute tier or raw spans, the rest from the hour tier.
    Groups whose spans all moved away (re-attributed) are left out.

    Args:
        store: the span store.
        params: time range, filters, group-by names and bucket.
        limit: most rows returned.
        use_aggregates: False reads only ``spans FINAL`` (for checks and comparisons).

    Raises:
        QueryTimeout: the query ran past the store's time limit.
        StoreError: the query failed.
    """
    names = {*params.filters, *params.group_by}
    start, end = params.time_range.start, params.time_range.end
    cuts = bucket_cuts(start, end, params.bucket, parse_zone(params.time_zone))
    plan = plan_read(store, start, end, names, minute_buckets=params.bucket == "minute",
                     cuts=cuts) if use_aggregates else None
    parts = SqlParts()
    keys = [f"g_{name}" for name in params.group_by]
    if params.bucket is not None:
        keys.insert(0, "bucket_start")
    group = f" GROUP BY {', '.join(keys)}" if keys else ""
    order = (" ORDER BY " + ("bucket_start, " if params.bucket else "") + "total_cost DESC"
             + (", " + ", ".join(k for k in keys if k != "bucket_start")
                if params.group_by else ""))
    if plan is None:
        side = Side("spans", "start_time", ((params.time_range.start, params.time_range.end),))
        inner = _side_sql(side, params, parts)
    else:
        inner = " UNION ALL ".join(_side_sql(side, params, parts) for side in plan.sides)
    sql = (f"SELECT {', '.join([*keys, _SUMS])} FROM ({inner}){group}"
           f" HAVING num_spans != 0{order} LIMIT {parts.bind(limit, 'UInt32')} {FINAL_SETTINGS}")
    rows = store.query_arrow(sql, parts.binds).to_pylist()
    out: list[CostRow] = []
    for row in rows:
        bucket = row.get("bucket_start")
        if isinstance(bucket, datetime) and bucket.tzinfo is None:
            bucket = bucket.replace(tzinfo=UTC)
        values: dict[str, Any] = {name: Decimal(row[name] or 0) for name in _MONEY}
        values.update({name: int(row[name] or 0) for name in _COUNTS})
        out.append(CostRow(keys=group_keys_of(row, params.group_by), bucket_start=bucket,
                           **values))
    return out
