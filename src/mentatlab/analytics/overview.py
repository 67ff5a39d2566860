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
    build_where,
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
    """Span duration percentiles (t-digest estimates), in ms; 0 when there are no spans."""
    latency_p95_ms: float
    latency_p99_ms: float


_SQL = f"""
SELECT
    sum(total_cost) AS spend,
    countIf({LLM_CALL}) AS requests,
    count() AS num_spans,
    uniqExact(trace_id) AS num_traces,
    sumIf(ifNull(input_tokens, 0), {NOT_ROLLUP}) AS input_tokens,
    sumIf(ifNull(output_tokens, 0), {NOT_ROLLUP}) AS output_tokens,
    sumIf(ifNull(cache_read_tokens, 0), {NOT_ROLLUP}) AS cached_tokens,
    countIf(status != 'ok') AS error_spans,
    quantilesTDigest(0.5, 0.95, 0.99)(duration_ms) AS latency_ms
FROM spans FINAL
WHERE {{where}}
{FINAL_SETTINGS}
"""


def _ms(values: list[Any], i: int) -> float:
    value = float(values[i]) if values and len(values) > i else 0.0
    return 0.0 if math.isnan(value) else value


def get_overview(store: SpanStore, params: QueryParams) -> Overview:
    """Spend, LLM calls, spans, traces, tokens, success rate and latency percentiles.

    Raises:
        QueryTimeout: the query ran past the store's time limit.
        StoreError: the query failed.
    """
    parts = build_where(params.time_range, params.filters)
    row = store.query_arrow(_SQL.format(where=parts.where), parts.binds).to_pylist()[0]
    num_spans = int(row["num_spans"])
    latency = list(row["latency_ms"] or []) if num_spans else []
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
        latency_p50_ms=_ms(latency, 0),
        latency_p95_ms=_ms(latency, 1),
        latency_p99_ms=_ms(latency, 2),
    )
