"""The analytics queries give the same answers on a ClickHouse server as on chDB."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from chkit import T0, make_span

from mentatlab.analytics.cost import cost_by
from mentatlab.analytics.overview import get_overview
from mentatlab.analytics.query import QueryParams, TimeRange
from mentatlab.analytics.spans import iter_spans, list_spans_since
from mentatlab.analytics.traces import get_trace, list_traces
from mentatlab.analytics.unpriced import list_unpriced
from mentatlab.model.schema import spans_to_arrow
from mentatlab.model.span import CanonicalSpan, SpanStatus
from mentatlab.storage.base import SpanStore
from mentatlab.storage.chdb_store import ChdbSpanStore
from mentatlab.storage.clickhouse_store import ClickHouseSpanStore

RANGE = TimeRange(T0 - timedelta(hours=1), T0 + timedelta(days=2))


def _workload() -> list[list[CanonicalSpan]]:
    """Three commits: 40 spans over 8 traces and 2 days, then 5 re-sent with new costs."""
    models = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4", "my-finetune"]
    first = [make_span(i, trace=i % 8, start=T0 + timedelta(hours=i),
                       request_model=models[i % 4],
                       price_source="unpriced" if i % 4 == 3 else "genai-prices@x:openai/m",
                       duration_ms=float(10 * i + 1), ingested_at_ns=1_000)
             for i in range(40)]
    second = [make_span(i, trace=i % 8, start=T0 + timedelta(hours=i),
                        request_model=models[i % 4], status=SpanStatus.OK,
                        duration_ms=float(10 * i + 1), total_cost=Decimal("0.5"),
                        ingested_at_ns=2_000) for i in range(5)]
    return [first[:20], first[20:], second]


@pytest.fixture(scope="module")
def both_stores(clickhouse_server: dict[str, Any], tmp_path_factory: pytest.TempPathFactory,
                ) -> Iterator[tuple[SpanStore, SpanStore]]:
    """The same commits in a chDB store and on the ClickHouse server (read-only after)."""
    database = f"mentat_parity_{uuid.uuid4().hex[:12]}"
    server = ClickHouseSpanStore(
        database=database, **{k: v for k, v in clickhouse_server.items() if k != "endpoint"})
    chdb = ChdbSpanStore(tmp_path_factory.mktemp("parity") / "spans")
    try:
        chdb.migrate()
        server.migrate()
        for batch in _workload():
            chdb.append_batch(spans_to_arrow(batch))
            server.append_batch(spans_to_arrow(batch))
        yield chdb, server
    finally:
        chdb.close()
        server.execute(f"DROP DATABASE IF EXISTS `{database}`")
        server.close()


def test_overview_matches(both_stores: tuple[SpanStore, SpanStore]) -> None:
    chdb, server = both_stores
    params = QueryParams(RANGE)
    expected = get_overview(chdb, params)
    assert expected.num_spans == 40
    assert get_overview(server, params) == expected


@pytest.mark.parametrize(("group_by", "bucket", "filters"), [
    ((), None, {}),
    (("model",), "day", {}),
    (("org_id", "model"), "hour", {"project_id": "p1"}),
])
def test_cost_by_matches(both_stores: tuple[SpanStore, SpanStore], group_by: tuple[str, ...],
                         bucket: str | None, filters: dict[str, str]) -> None:
    chdb, server = both_stores
    params = QueryParams(RANGE, filters=filters, group_by=group_by, bucket=bucket)  # type: ignore[arg-type]
    expected = cost_by(chdb, params)
    assert expected
    assert cost_by(server, params) == expected


def test_traces_match(both_stores: tuple[SpanStore, SpanStore]) -> None:
    chdb, server = both_stores
    params = QueryParams(RANGE)
    expected = list_traces(chdb, params, limit=5, offset=1)
    assert len(expected) == 5
    assert list_traces(server, params, limit=5, offset=1) == expected
    assert list_traces(server, params, min_cost=Decimal("0.4")) == list_traces(
        chdb, params, min_cost=Decimal("0.4"))
    trace_id = f"{3:032x}"
    detail = get_trace(chdb, trace_id, RANGE)
    assert detail is not None
    assert get_trace(server, trace_id, RANGE) == detail
    assert get_trace(server, f"{99:032x}") is None


def test_unpriced_and_span_pages_match(both_stores: tuple[SpanStore, SpanStore]) -> None:
    chdb, server = both_stores
    params = QueryParams(RANGE)
    assert list_unpriced(server, params) == list_unpriced(chdb, params)
    page_chdb = list_spans_since(chdb, 1_500, limit=100)
    page_server = list_spans_since(server, 1_500, limit=100)
    assert page_chdb.table.num_rows == 5
    assert page_server.next_ingested_after_ns == page_chdb.next_ingested_after_ns
    assert page_server.table.sort_by("span_id").equals(page_chdb.table.sort_by("span_id"))
    rows_chdb = [t for t in iter_spans(chdb, RANGE.start, RANGE.end, batch_rows=7)]
    rows_server = [t for t in iter_spans(server, RANGE.start, RANGE.end, batch_rows=7)]
    assert [t.num_rows for t in rows_server] == [t.num_rows for t in rows_chdb]
    assert all(a.equals(b) for a, b in zip(rows_server, rows_chdb, strict=True))
