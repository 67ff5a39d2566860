"""The overview: spend, calls, tokens, success rate and latency of a time range."""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from mentatlab.analytics.query import (
    FINAL_SETTINGS,
    LLM_CALL,
    NOT_ROLLUP,
    QueryParams,
    SqlParts,
    build_where,
)
from mentatlab.analytics.rollup_read import intervals_where, rollup_plan_for, rollup_where
from mentatlab.storage.base import SpanStore
from mentatlab.storage.span_schema import (
    LATENCY_BUCKET_RATIO,
    LATENCY_HIST,
    ROLLUP_SCOPE_DIMENSIONS,
    ROLLUP_SCOPE_TABLE,
    TRACE_SKETCH,
)

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
    tens of thousands of traces, approximate beyond (measured -0.6% at 1.25M traces); the
    same number on the raw and the rollup path."""
    input_tokens: int
    """Prompt tokens, inclusive of cached ones (rollup spans excluded)."""
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


_SQL = f"""
SELECT
    sum(total_cost) AS spend,
    countIf({LLM_CALL}) AS requests,
    count() AS num_spans,
    {TRACE_SKETCH}(trace_id) AS num_traces,
    sumIf(ifNull(input_tokens, 0), {NOT_ROLLUP}) AS input_tokens,
    sumIf(ifNull(output_tokens, 0), {NOT_ROLLUP}) AS output_tokens,
    sumIf(ifNull(cache_read_tokens, 0), {NOT_ROLLUP}) AS cached_tokens,
    countIf(status != 'ok') AS error_spans,
    {LATENCY_HIST} AS latency_hist,
    min(duration_ms) AS min_duration_ms,
    max(duration_ms) AS max_duration_ms
FROM spans FINAL
WHERE {{where}}
{FINAL_SETTINGS}
"""


def percentiles_ms(histogram: Any, lowest_ms: float, highest_ms: float,
                   quantiles: tuple[float, ...] = (0.5, 0.95, 0.99)) -> list[float]:
    """Nearest-rank percentiles (ms) of a latency histogram (``LATENCY_HIST``).

    Each percentile is its bucket's geometric middle (within 1% of the true value),
    clamped to the observed ``[lowest_ms, highest_ms]``. Returns 0.0 for each quantile of
    an empty histogram.
    """
    pairs = histogram.items() if isinstance(histogram, dict) else (histogram or [])
    buckets = sorted((int(k), int(v)) for k, v in pairs)
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


_RAW_STATES = f"""
SELECT
    sum(total_cost) AS total_cost,
    countIf({LLM_CALL}) AS requests,
    count() AS num_spans,
    {TRACE_SKETCH}State(trace_id) AS traces,
    sumIf(ifNull(input_tokens, 0), {NOT_ROLLUP}) AS input_tokens,
    sumIf(ifNull(output_tokens, 0), {NOT_ROLLUP}) AS output_tokens,
    sumIf(ifNull(cache_read_tokens, 0), {NOT_ROLLUP}) AS cached_tokens,
    countIf(status != 'ok') AS error_spans,
    {LATENCY_HIST} AS latency_hist,
    if(count() > 0, min(duration_ms), inf) AS min_duration_ms,
    if(count() > 0, max(duration_ms), -inf) AS max_duration_ms
FROM spans FINAL
WHERE {{raw}}
UNION ALL
SELECT total_cost, requests, num_spans, traces, input_tokens, output_tokens, cached_tokens,
    error_spans, latency_hist, min_duration_ms, max_duration_ms
FROM {ROLLUP_SCOPE_TABLE}
WHERE {{rollup}}
"""

_MERGED_SQL = f"""
SELECT
    sum(total_cost) AS spend,
    sum(requests) AS requests,
    sum(num_spans) AS num_spans,
    {TRACE_SKETCH}Merge(traces) AS num_traces,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cached_tokens) AS cached_tokens,
    sum(error_spans) AS error_spans,
    sumMap(latency_hist) AS latency_hist,
    min(min_duration_ms) AS min_duration_ms,
    max(max_duration_ms) AS max_duration_ms
FROM ({_RAW_STATES})
{FINAL_SETTINGS}
"""


def get_overview(store: SpanStore, params: QueryParams, *, use_rollups: bool = True
                 ) -> Overview:
    """Spend, LLM calls, spans, traces, tokens, success rate and latency percentiles.

    Reads the hourly scope rollup for closed, unchanged whole hours when every filter is
    a trace-level dimension (org, workspace, project, agent, workflow, service), and
    ``spans FINAL`` for the rest: the answer is identical either way (Decimal-exact sums,
    the same deterministic trace-count sketch, percentiles from the same log-bucket
    latency histogram).
    ``use_rollups=False`` reads only ``spans FINAL``.

    Raises:
        QueryTimeout: the query ran past the store's time limit.
        StoreError: the query failed.
    """
    plan = rollup_plan_for(store, params.time_range, set(params.filters),
                           ROLLUP_SCOPE_DIMENSIONS) if use_rollups else None
    if plan is None:
        parts = build_where(params.time_range, params.filters)
        sql = _SQL.format(where=parts.where)
    else:
        parts = SqlParts()
        raw = intervals_where(parts, "start_time", plan.raw)
        raw += " AND " + build_where(None, params.filters, SqlParts(binds=parts.binds)).where
        sql = _MERGED_SQL.format(raw=raw, rollup=rollup_where(parts, plan, params.filters))
    row = store.query_arrow(sql, parts.binds).to_pylist()[0]
    num_spans = int(row["num_spans"])
    latency = percentiles_ms(row["latency_hist"], float(row["min_duration_ms"] or 0),
                             float(row["max_duration_ms"] or 0))
    return Overview(
        spend=Decimal(row["spend"] or 0),
        requests=int(row["requests"]),
        num_spans=num_spans,
        num_traces=int(row["num_traces"]),
        input_tokens=int(row["input_tokens"]),
        output_tokens=int(row["output_tokens"]),
        cached_tokens=int(row["cached_tokens"]),
        error_spans=int(row["error_spans"]),
        success_rate=(num_spans - int(row["error_spans"])) / num_spans if num_spans else 1.0,
        latency_p50_ms=latency[0],
        latency_p95_ms=latency[1],
        latency_p99_ms=latency[2],
    )
