"""Cost broken down by any group-by columns and an optional time bucket."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from mentatlab.analytics.query import (
    BUCKETS,
    FINAL_SETTINGS,
    GROUP_BY_COLUMNS,
    QueryParams,
    SqlParts,
    build_where,
    group_keys_of,
)
from mentatlab.analytics.rollup_read import (
    ROLLUP_BUCKETS,
    intervals_where,
    rollup_plan_for,
    rollup_where,
)
from mentatlab.storage.base import SpanStore
from mentatlab.storage.rollup import ROLLUP_SUMS, SUMS_SQL
from mentatlab.storage.span_schema import ROLLUP_DIMENSIONS, ROLLUP_TABLE

__all__ = ["CostRow", "cost_by"]

_MONEY = ("token_cost", "cpu_cost", "memory_cost", "gpu_cost", "network_cost", "storage_cost",
          "discount", "total_cost")


@dataclass(frozen=True, slots=True)
class CostRow:
    """Cost of one group (and bucket); money in the spans' currency (USD by default)."""

    keys: dict[str, str]
    """Group-by values by name, in the query's group-by order (empty without group-by)."""
    bucket_start: datetime | None
    """Start of the time bucket (UTC), or None without a bucket."""
    token_cost: Decimal
    cpu_cost: Decimal
    memory_cost: Decimal
    gpu_cost: Decimal
    network_cost: Decimal
    storage_cost: Decimal
    discount: Decimal
    total_cost: Decimal
    requests: int
    """LLM calls (spans with a model, not rollups)."""
    num_spans: int
    input_tokens: int
    output_tokens: int
    cached_tokens: int

    @property
    def infra_cost(self) -> Decimal:
        """CPU + memory + GPU + network + storage cost."""
        return (self.cpu_cost + self.memory_cost + self.gpu_cost + self.network_cost
                + self.storage_cost)

    @property
    def tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens


def cost_by(store: SpanStore, params: QueryParams, *, limit: int = 10_000,
            use_rollups: bool = True) -> list[CostRow]:
    """Cost per group-by key (and time bucket), ordered by bucket then cost (highest first).

    Reads the hourly rollup for closed, unchanged whole hours when every filter and
    group-by is a rollup dimension and the bucket is not ``minute``, and ``spans FINAL``
    for the rest; the answer is the same to the last Decimal digit either way.

    Args:
        store: the span store.
        params: time range, filters, group-by names and bucket.
        limit: most rows returned.
        use_rollups: False reads only ``spans FINAL`` (for checks and comparisons).

    Raises:
        QueryTimeout: the query ran past the store's time limit.
        StoreError: the query failed.
    """
    names = {*params.filters, *params.group_by}
    plan = None if params.bucket == "minute" or not use_rollups else rollup_plan_for(
        store, params.time_range, names, ROLLUP_DIMENSIONS)
    parts = SqlParts()
    keys = [f"g_{name}" for name in params.group_by]
    if params.bucket is not None:
        keys.insert(0, "bucket_start")
    group = f" GROUP BY {', '.join(keys)}" if keys else ""
    order = (" ORDER BY " + ("bucket_start, " if params.bucket else "") + "total_cost DESC"
             + (", " + ", ".join(k for k in keys if k != "bucket_start")
                if params.group_by else ""))
    if plan is None:
        build_where(params.time_range, params.filters, parts)
        raw_where = parts.where
    else:
        raw_where = intervals_where(parts, "start_time", plan.raw)
        filters = build_where(None, params.filters, SqlParts(binds=parts.binds))
        raw_where += f" AND {filters.where}"
    select = [f"{GROUP_BY_COLUMNS[name]} AS g_{name}" for name in params.group_by]
    if params.bucket is not None:
        select.append(f"{BUCKETS[params.bucket]} AS bucket_start")
    raw = f"SELECT {', '.join([*select, SUMS_SQL])} FROM spans FINAL WHERE {raw_where}{group}"
    if plan is None:
        sql = f"{raw}{order} LIMIT {parts.bind(limit, 'UInt32')} {FINAL_SETTINGS}"
    else:
        rolled = [f"{name} AS g_{name}" for name in params.group_by]
        if params.bucket is not None:
            rolled.append(f"{ROLLUP_BUCKETS[params.bucket]} AS bucket_start")
        rolled += list(ROLLUP_SUMS)
        side = (f"SELECT {', '.join(rolled)} FROM {ROLLUP_TABLE}"
                f" WHERE {rollup_where(parts, plan, params.filters)}")
        sums = ", ".join(f"sum({c}) AS {c}" for c in ROLLUP_SUMS)
        sql = (f"SELECT {', '.join([*keys, sums])} FROM ({raw} UNION ALL {side}){group}{order}"
               f" LIMIT {parts.bind(limit, 'UInt32')} {FINAL_SETTINGS}")
    rows = store.query_arrow(sql, parts.binds).to_pylist()
    out: list[CostRow] = []
    for row in rows:
        if not keys and int(row["num_spans"]) == 0:
            continue  # an aggregate without GROUP BY answers one row even over no spans
        bucket = row.get("bucket_start")
        if isinstance(bucket, datetime) and bucket.tzinfo is None:
            bucket = bucket.replace(tzinfo=UTC)
        out.append(CostRow(
            keys=group_keys_of(row, params.group_by),
            bucket_start=bucket,
            **{name: Decimal(row[name] or 0) for name in _MONEY},
            requests=int(row["requests"]), num_spans=int(row["num_spans"]),
            input_tokens=int(row["input_tokens"]), output_tokens=int(row["output_tokens"]),
            cached_tokens=int(row["cached_tokens"]),
        ))
    return out
