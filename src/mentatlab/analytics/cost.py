"""Cost broken down by any group-by columns and an optional time bucket."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from mentatlab.analytics.query import (
    BUCKETS,
    FINAL_SETTINGS,
    GROUP_BY_COLUMNS,
    LLM_CALL,
    NOT_ROLLUP,
    QueryParams,
    build_where,
    group_keys_of,
)
from mentatlab.storage.base import SpanStore

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


def cost_by(store: SpanStore, params: QueryParams, *, limit: int = 10_000) -> list[CostRow]:
    """Cost per group-by key (and time bucket), ordered by bucket then cost (highest first).

    Args:
        store: the span store.
        params: time range, filters, group-by names and bucket.
        limit: most rows returned.

    Raises:
        QueryTimeout: the query ran past the store's time limit.
        StoreError: the query failed.
    """
    parts = build_where(params.time_range, params.filters)
    select = [f"{GROUP_BY_COLUMNS[name]} AS g_{name}" for name in params.group_by]
    keys = [f"g_{name}" for name in params.group_by]
    if params.bucket is not None:
        select.append(f"{BUCKETS[params.bucket]} AS bucket_start")
        keys.insert(0, "bucket_start")
    money = [f"sum({name}) AS {name}" for name in _MONEY]
    sql = (
        "SELECT " + ", ".join([*select, *money,
                               f"countIf({LLM_CALL}) AS requests", "count() AS num_spans",
                               f"sumIf(ifNull(input_tokens, 0), {NOT_ROLLUP}) AS input_tokens",
                               f"sumIf(ifNull(output_tokens, 0), {NOT_ROLLUP}) AS output_tokens",
                               f"sumIf(ifNull(cache_read_tokens, 0), {NOT_ROLLUP}) AS cached"])
        + f" FROM spans FINAL WHERE {parts.where}"
        + (f" GROUP BY {', '.join(keys)}" if keys else "")
        + " ORDER BY " + ("bucket_start, " if params.bucket else "") + "total_cost DESC"
        + (", " + ", ".join(k for k in keys if k != "bucket_start") if params.group_by else "")
        + f" LIMIT {parts.bind(limit, 'UInt32')} {FINAL_SETTINGS}"
    )
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
            cached_tokens=int(row["cached"]),
        ))
    return out
