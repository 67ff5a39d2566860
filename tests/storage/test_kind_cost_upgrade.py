"""A store created before the per-kind token costs gains them on migrate, on both backends.

The "old" store is made by migrating with the column, measure and migration lists as they
were before issue 16; migrating again with the current lists must add the span columns,
the aggregate columns and views (migration 6), after which the resolver moves the new
spans' per-kind costs into the aggregates and they answer like raw spans.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from mentatlab.analytics.aggregate_read import plan_read
from mentatlab.analytics.cost import cost_by
from mentatlab.analytics.query import QueryParams, TimeRange
from mentatlab.model.schema import SPAN_COLUMNS, TOKEN_KIND_COST_COLUMNS, spans_to_arrow
from mentatlab.model.span import CanonicalSpan, SpanStatus
from mentatlab.pipeline.price import Price
from mentatlab.pricing.pricing_file import ModelRate, PricingConfig
from mentatlab.resolver.resolver import Resolver
from mentatlab.storage import aggregates, span_schema
from mentatlab.storage.base import SpanStore

T0 = (datetime.now(UTC) - timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
PRICE = Price(pricing=PricingConfig(models=(
    ModelRate("*", "m", Decimal(2), Decimal(8), cache_read_per_mtok=Decimal("0.5")),)))


def _columns(store: SpanStore, table: str) -> list[str]:
    rows = store.query_arrow("SELECT name FROM system.columns WHERE database ="
                             " currentDatabase() AND table = {t:String}", {"t": table})
    return [str(v) for v in rows.column("name").to_pylist()]


def test_an_old_store_gains_the_kind_costs_and_its_aggregates_answer_them(
        open_span_store: Callable[[], SpanStore], monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_span_store()
    with monkeypatch.context() as old:
        old.setattr(span_schema, "SPAN_COLUMNS", tuple(
            c for c in SPAN_COLUMNS if c.name not in TOKEN_KIND_COST_COLUMNS))
        old.setattr(span_schema, "MIGRATIONS", span_schema.MIGRATIONS[:5])
        old.setattr(span_schema, "SETTLED_TABLES", ())  # migration 7's, not there yet
        old.setattr(aggregates, "MEASURES", tuple(
            m for m in aggregates.MEASURES if m.name not in TOKEN_KIND_COST_COLUMNS))
        assert span_schema.migrate_span_store(store) == [1, 2, 3, 4, 5]
    assert "input_cost" not in _columns(store, "spans")
    assert "input_cost" not in _columns(store, "agg_cost_hour")

    assert span_schema.migrate_span_store(store) == [
        m.version for m in span_schema.MIGRATIONS[5:]]  # 6, 7, 8 and the later ones
    for table in ("spans", "span_ledger", "agg_cost_hour", "agg_scope_minute",
                  "agg_principal_hour"):
        assert set(TOKEN_KIND_COST_COLUMNS) <= set(_columns(store, table)), table
    assert span_schema.migrate_span_store(store) == []

    spans = PRICE([CanonicalSpan(
        trace_id=f"{i:032x}", span_id=f"{i:016x}", parent_span_id="", name="chat",
        kind="client", start_time=T0 + timedelta(minutes=i), end_time=T0 + timedelta(minutes=i),
        duration_ms=1.0, status=SpanStatus.OK, org_id="acme", provider="x", request_model="m",
        input_tokens=10_000, cache_read_tokens=4_000, output_tokens=1_000, ingested_at_ns=1)
        for i in range(3)])
    store.append_batch(spans_to_arrow(spans))
    Resolver(store, PRICE).run_pass(time.time_ns())
    params = QueryParams(TimeRange(T0, T0 + timedelta(hours=1)), group_by=["model"])
    plan = plan_read(store, params.time_range.start, params.time_range.end, {"model"})
    assert plan is not None and [s.table for s in plan.sides] == ["agg_cost_hour"]
    (row,) = cost_by(store, params)
    assert row == cost_by(store, params, use_aggregates=False)[0]
    # per span: 6000 x $2/M, 4000 x $0.5/M, 1000 x $8/M; saving 4000 x $1.5/M
    assert (row.input_cost, row.cache_read_cost, row.output_cost, row.cache_savings) == (
        Decimal("0.036"), Decimal("0.006"), Decimal("0.024"), Decimal("0.018"))
