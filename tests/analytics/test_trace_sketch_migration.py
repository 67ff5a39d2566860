"""Migration 4: the scope rollup's exact trace-id sets become a ``uniq`` sketch."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from dataset import NUM_TRACES, T0, build_spans

from mentatlab.analytics import QueryParams, TimeRange
from mentatlab.analytics.overview import get_overview
from mentatlab.model.schema import spans_to_arrow
from mentatlab.storage import span_schema
from mentatlab.storage.base import SpanStore
from mentatlab.storage.rollup import plan_rollup, refresh_rollups
from mentatlab.storage.span_schema import (
    ROLLUP_BUILDS_TABLE,
    ROLLUP_SCOPE_TABLE,
    SchemaOptions,
    applied_versions,
)


def _traces_type(store: SpanStore) -> str:
    table = store.query_arrow(
        "SELECT type FROM system.columns WHERE database = currentDatabase()"
        " AND table = {t:String} AND name = 'traces'", {"t": ROLLUP_SCOPE_TABLE})
    return str(table.column("type").to_pylist()[0])


def _count(store: SpanStore, table: str) -> int:
    return int(store.query_arrow(f"SELECT count() AS n FROM {table}").column("n")[0].as_py())


def test_migration_4_replaces_exact_rollups_and_the_rebuild_matches_raw(
        open_span_store: Callable[..., SpanStore], monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_span_store()
    # A store of the previous release: migrations 1-3 and a built exact-state rollup.
    monkeypatch.setattr(span_schema, "MIGRATIONS", span_schema.MIGRATIONS[:3])
    store.migrate()
    monkeypatch.undo()
    assert _traces_type(store) == "AggregateFunction(uniqExact, String)"
    store.append_batch(spans_to_arrow(build_spans()))
    store.execute(
        f"INSERT INTO {ROLLUP_SCOPE_TABLE} (build_id, hour, org_id, traces)"
        " SELECT 1, toStartOfHour(min(start_time)), 'org', uniqExactState(trace_id)"
        " FROM spans")
    store.execute(
        f"INSERT INTO {ROLLUP_BUILDS_TABLE} (hour, build_id, source_max_ns, closed_before,"
        " built_at) VALUES (toDateTime(0, 'UTC'), 1, 0, now(), now64(3))")

    assert store_migrate(store) == [4]
    assert _traces_type(store) == "AggregateFunction(uniq, String)"
    assert _count(store, ROLLUP_SCOPE_TABLE) == _count(store, ROLLUP_BUILDS_TABLE) == 0
    time_range = TimeRange(T0, T0 + timedelta(days=4))  # the dataset ends on day 4
    assert plan_rollup(store, time_range.start, time_range.end) is None  # rebuild first

    # Rerunning the migration's statements (a crash before it was recorded) is safe.
    for statement in span_schema.MIGRATIONS[3].render(SchemaOptions()):
        store.execute(statement)
    assert store_migrate(store) == []

    report = refresh_rollups(store, now=datetime(2030, 1, 1, tzinfo=UTC))
    assert report.hours_built > 0
    assert plan_rollup(store, time_range.start, time_range.end) is not None
    params = QueryParams(time_range)
    rolled = get_overview(store, params)
    assert rolled == get_overview(store, params, use_rollups=False)
    assert rolled.num_traces == NUM_TRACES  # below the sketch's exact range


def store_migrate(store: SpanStore) -> list[int]:
    before = applied_versions(store)
    store.migrate()
    return sorted(applied_versions(store) - before)
