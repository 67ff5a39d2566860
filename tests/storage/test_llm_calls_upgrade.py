"""A store settled before migration 10 gains ``llm_calls`` and is settled again, both backends.

The "old" store is migrated without migration 10 (no ``llm_calls``) and has a settle
watermark as the old job left it; migrating again must create the table and put the
watermark back to 0, so provider x model reads every call from raw spans (all in the
unsettled tail) until the next settle pass fills the table, with the same answer.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from spanfactory import T0, make_table

from mentatlab.analytics import settled_calls
from mentatlab.analytics.cost_views import provider_models
from mentatlab.analytics.query import QueryParams, TimeRange
from mentatlab.resolver.settle import Settler, read_settle_state
from mentatlab.storage import settled, span_schema
from mentatlab.storage.aggregates import RESOLVER_STATE_TABLE
from mentatlab.storage.base import SpanStore

S = 1_000_000_000  # 1 s in ns


def _columns(store: SpanStore, table: str) -> list[str]:
    rows = store.query_arrow("SELECT name FROM system.columns WHERE database ="
                             " currentDatabase() AND table = {t:String}", {"t": table})
    return [str(v) for v in rows.column("name").to_pylist()]


def test_migration_11_adds_llm_calls_and_has_every_trace_settled_again(
        open_span_store: Callable[[], SpanStore], monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_span_store()
    before = tuple(m for m in span_schema.MIGRATIONS if m.version < 10)
    with monkeypatch.context() as old:
        old.setattr(span_schema, "MIGRATIONS", before)
        old.setattr(span_schema, "SETTLED_TABLES",
                    tuple(t for t in settled.SETTLED_TABLES if t != settled.LLM_CALLS_TABLE))
        assert span_schema.migrate_span_store(store) == [m.version for m in before]
    assert _columns(store, settled.LLM_CALLS_TABLE) == []
    # two traces of 10 spans, committed at 100 s, which the old job had settled
    store.append_batch(make_table(range(20), ingested_at_ns=100 * S))
    store.execute(f"INSERT INTO {RESOLVER_STATE_TABLE} (name, through_ns, complete, version)"
                  " VALUES ('settle', {w:Int64}, 1, 1)", {"w": 200 * S})
    params = QueryParams(TimeRange(T0, T0 + timedelta(days=1)))
    with monkeypatch.context() as old:  # the old code read raw spans only
        old.setattr(settled_calls, "read_settle_state", lambda _store: None)
        raw = provider_models(store, params)
    assert raw

    assert span_schema.migrate_span_store(store) == [  # 10 and the later ones (11: codecs)
        m.version for m in span_schema.MIGRATIONS if m.version >= 10]
    assert _columns(store, settled.LLM_CALLS_TABLE)[:3] == ["org_id", "workspace_id",
                                                           "project_id"]
    assert read_settle_state(store) == 0
    assert span_schema.migrate_span_store(store) == []
    assert provider_models(store, params) == raw  # every trace in the tail: raw spans

    report = Settler(store, 10.0).run_pass(10**18, now_ns=300 * S)
    assert (report.num_traces, report.num_spans) == (2, 20)
    rows = store.query_arrow(f"SELECT count() AS n FROM {settled.LLM_CALLS_TABLE} FINAL"
                             " WHERE llm").to_pylist()
    assert rows == [{"n": sum(r.requests for r in raw)}]
    assert provider_models(store, params) == raw  # settled: the same answer
