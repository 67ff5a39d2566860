"""The overview: spend, calls, tokens, success rate and latency of a time range."""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from mentatlab.analytics.aggregate_read import Side, plan_read
from mentatlab.analytics.query import FINAL_SETTINGS, QueryParams, SqlParts
from mentatlab.storage.aggregates import (
    LATENCY_BUCKET_RATIO,
    LATENCY_HIST,
    MEASURES,
    TRACE_SKETCH,
)
from mentatlab.storage.base import SpanStore

__all__ = ["Overview", "get_overview"]


@dataclass(frozen=True, slots=True)
class Overview:
    """Totals over the spans that match a query (group-by and bucket are ignored)."""

    spend: Decimal
    """Sum of ``total_cost`` (in the spans' currency, USD by default)."""
    requests: int
    """LLM calls: spans with a model that are not usage rollups."""
    num_spans: int
    num_traces: int
    """Distinct trace ids, APPROXIMATE: ClickHouse ``uniq`` (``TRACE_SKETCH``), exact up to
    tens of thousands of traces, approximate beyond (measured -0.6% at 1.25M traces). The
    aggregates' sketch only grows, so under a filter on an inherited field (agent,
    workflow) a trace whose spans were re-attributed since they arrived is also counted
    under the value they arrived with (usually empty); spend, spans and tokens never are."""
    input_tokens: int
    """Prompt tokens of LLM calls, inclusive of cached ones (roll-up spans excluded)."""
    output_tokens: int
    cached_tokens: int
    """Cache-read tokens (a part of ``input_tokens``)."""
    error_spans: int
    """Spans with status ``error`` or ``timeout``."""
    success_rate: float
    """Share of spans with status ``ok`` (1.0 when there are no spans)."""
    latency_p50_ms: float
    """Span duration percentiles in ms (nearest rank over a log-bucket histogram: within 1%
    of the exact value); 0 when there are no spans."""
    latency_p95_ms: float
    latency_p99_ms: float


def percentiles_ms(histogram: Any, lowest_ms: float, highest_ms: float,
                   quantiles: tuple[float, ...] = (0.5, 0.95, 0.99)) -> list[float]:
    """Nearest-rank percentiles (ms) of a latency histogram (``LATENCY_HIST``).

    Each percentile is its bucket's geometric middle (within 1% of the true value),
    clamped to the observed ``[lowest_ms, highest_ms]``. Returns 0.0 for each quantile of
    an empty histogram.
    """
    pairs = histogram.items() if isinstance(histogram, dict) else (histogram or [])
    buckets = sorted((int(k), int(v)) for k, v in pairs if int(v) > 0)
    total = sum(v for _, v in buckets)
    out: list[float] = []
    for q in quantiles:
        if total == 0:
            out.append(0.0)
            continue
        rank = max(1, math.ceil(q * total))
        seen = 0
        for bucket, count in buckets:
            seen += count
            if seen >= rank:
                middle = 0.0 if bucket == 0 else 0.001 * LATENCY_BUCKET_RATIO ** (bucket - 0.5)
                out.append(min(max(middle, lowest_ms), highest_ms))
                break
    return out


_MEASURES = ("total_cost", "requests", "num_spans", "input_tokens", "output_tokens",
             "cached_tokens", "error_spans")
_RAW_EXPR = {m.name: m.expr for m in MEASURES}


def _side_sql(side: Side, params: QueryParams, parts: SqlParts) -> str:
    where = side.where(parts, params.filters)
    if side.raw:
        sums = ", ".join(f"{_RAW_EXPR[m]} AS {m}" for m in _MEASURES)
        return (f"SELECT {sums}, {TRACE_SKETCH}State(trace_id) AS traces,"
                f" {LATENCY_HIST} AS latency_hist,"
                " if(count() > 0, min(duration_ms), inf) AS min_duration_ms,"
                " if(count() > 0, max(duration_ms), -inf) AS max_duration_ms"
                f" FROM spans FINAL WHERE {where}")
    return (f"SELECT {', '.join(_MEASURES)}, traces, latency_hist, min_duration_ms,"
            f" max_duration_ms FROM {side.table} WHERE {where}")


_MERGED = (", ".join(f"sum({m}) AS {m}" for m in _MEASURES)
           + f", {TRACE_SKETCH}Merge(traces) AS num_traces, sumMap(latency_hist) AS latency_hist,"
           " min(min_duration_ms) AS min_duration_ms, max(max_duration_ms) AS max_duration_ms")


def get_overview(store: SpanStore, params: QueryParams, *, use_aggregates: bool = True
                 ) -> Overview:
    """Spend, LLM calls, spans, traces, tokens, success rate and latency percentiles.

    Whole hours and minutes come from the ``scope`` aggregate when every filter is one of
    its dimensions (org, workspace, project, agent, workflow, service), the rest from
    ``spans FINAL``: the same answer either way (Decimal-exact sums, one trace-count
    sketch, percentiles from one log-bucket latency histogram).
    ``use_aggregates=False`` reads only ``spans FINAL``.

    Raises:
        QueryTimeout: the query ran past the store's time limit.
        StoreError: the query failed.
    """
    time_range = params.time_range
    plan = plan_read(store, time_range.start, time_range.end, set(params.filters),
                     overview=True) if use_aggregates else None
    sides = plan.sides if plan is not None else (
        Side("spans", "start_time", ((time_range.start, time_range.end),)),)
    parts = SqlParts()
    inner = " UNION ALL ".join(_side_sql(side, params, parts) for side in sides)
    sql = f"SELECT {_MERGED} FROM ({inner}) {FINAL_SETTINGS}"
    row = store.query_arrow(sql, parts.binds).to_pylist()[0]
    num_spans = int(row["num_spans"] or 0)
    latency = percentiles_ms(row["latency_hist"], float(row["min_duration_ms"] or 0),
                             float(row["max_duration_ms"] or 0))
    return Overview(
        spend=Decimal(row["total_cost"] or 0),
        requests=int(row["requests"] or 0),
        num_spans=num_spans,
        num_traces=int(row["num_traces"] or 0),
        input_tokens=int(row["input_tokens"] or 0),
        output_tokens=int(row["output_tokens"] or 0),
        cached_tokens=int(row["cached_tokens"] or 0),
        error_spans=int(row["error_spans"] or 0),
        success_rate=(num_spans - int(row["error_spans"] or 0)) / num_spans if num_spans else 1.0,
        latency_p50_ms=latency[0],
        latency_p95_ms=latency[1],
        latency_p99_ms=latency[2],
    )
