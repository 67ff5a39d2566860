"""Models seen without a price (``price_source = 'unpriced'``): what to add to pricing.toml."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from mentatlab.analytics.query import FINAL_SETTINGS, MODEL_EXPR, QueryParams, build_where
from mentatlab.storage.base import SpanStore

__all__ = ["UNPRICED", "UnpricedModel", "list_unpriced"]

UNPRICED = "unpriced"
"""The ``price_source`` of a span whose model has no known price."""


@dataclass(frozen=True, slots=True)
class UnpricedModel:
    """A (provider, model) that was called but could not be priced."""

    provider: str
    model: str
    num_spans: int
    input_tokens: int
    output_tokens: int
    first_seen: datetime
    last_seen: datetime


def list_unpriced(store: SpanStore, params: QueryParams, *, limit: int = 1000
                  ) -> list[UnpricedModel]:
    """Unpriced models in the time range (and filters), most used first.

    Unpriced spans are few, so the ``FINAL`` read (one current version per span) is
    narrowed to the traces where any version of a matching span was unpriced: a plain scan
    of ``price_source`` finds them, and the ``trace_id`` bloom-filter index lets ``FINAL``
    merge only their granules (``use_skip_indexes_if_final``, exact mode: every version of
    a span shares its trace id). Measured at 10M spans over 30 days: about 1 s → see
    bench/RESULTS.md, "Unpriced models".

    Raises:
        StoreError: the query failed.
    """
    parts = build_where(params.time_range, {**params.filters, "price_source": UNPRICED})
    sql = f"""
SELECT provider, {MODEL_EXPR} AS model, count() AS num_spans,
    sum(ifNull(input_tokens, 0)) AS input_tokens, sum(ifNull(output_tokens, 0)) AS output_tokens,
    min(start_time) AS first_seen, max(start_time) AS last_seen
FROM spans FINAL
WHERE {parts.where} AND NOT usage_is_rollup
    AND trace_id IN (SELECT trace_id FROM spans WHERE {parts.where} AND NOT usage_is_rollup)
GROUP BY provider, model
ORDER BY num_spans DESC, provider, model
LIMIT {parts.bind(limit, 'UInt32')}
{FINAL_SETTINGS}"""
    out: list[UnpricedModel] = []
    for r in store.query_arrow(sql, parts.binds).to_pylist():
        first: datetime = r["first_seen"]
        last: datetime = r["last_seen"]
        out.append(UnpricedModel(
            provider=r["provider"], model=r["model"], num_spans=int(r["num_spans"]),
            input_tokens=int(r["input_tokens"]), output_tokens=int(r["output_tokens"]),
            first_seen=first if first.tzinfo else first.replace(tzinfo=UTC),
            last_seen=last if last.tzinfo else last.replace(tzinfo=UTC)))
    return out
