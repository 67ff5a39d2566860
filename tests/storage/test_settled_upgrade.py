"""A store settled before migration 8 gains the new settled facts and is settled again.

The "old" store is made by migrating with the settled schema of migration 7 (trace_facts
without its later columns, no version_sightings or step_counts) and a settle watermark
as the old job left it; migrating again must add the columns and tables and put the
watermark back to 0, so readers take every trace from raw spans until the next settle
pass, which then settles every stored trace again, new facts included. Both backends.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from spanfactory import make_table

from mentatlab.resolver.settle import Settler, read_settle_state
from mentatlab.storage import settled, span_schema
from mentatlab.storage.aggregates import RESOLVER_STATE_TABLE
from mentatlab.storage.base import SpanStore

S = 1_000_000_000  # 1 s in ns


def _columns(store: SpanStore, table: str) -> list[str]:
    rows = store.query_arrow("SELECT name FROM system.columns WHERE database ="
                             " currentDatabase() AND table = {t:String}", {"t": table})
    return [str(v) for v in rows.column("name").to_pylist()]


def test_migration_8_adds_the_facts_and_has_every_trace_settled_again(
        open_span_store: Callable[[], SpanStore], monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_span_store()
    with monkeypatch.context() as old:
        old.setattr(span_schema, "MIGRATIONS", span_schema.MIGRATIONS[:7])
        old.setattr(settled, "TRACE_FACTS_LATER_COLUMNS", ())
        old.setattr(span_schema, "SETTLED_TABLES", settled.SETTLED_TABLES[:2])
        assert span_schema.migrate_span_store(store) == [1, 2, 3, 4, 5, 6, 7]
    assert "has_root" not in _columns(store, "trace_facts")
    assert _columns(store, "step_counts") == []
    # two traces of 10 spans, committed at 100 s, which the old job had settled
    store.append_batch(make_table(range(20), ingested_at_ns=100 * S))
    store.execute(f"INSERT INTO {RESOLVER_STATE_TABLE} (name, through_ns, complete, version)"
                  " VALUES ('settle', {w:Int64}, 1, 1)", {"w": 200 * S})
    assert read_settle_state(store) == 200 * S

    # and the later migrations (10: llm_calls, tests/storage/test_llm_calls_upgrade.py)
    assert span_schema.migrate_span_store(store) == [
        m.version for m in span_schema.MIGRATIONS[7:]]
    assert [n for n, _ in settled.TRACE_FACTS_LATER_COLUMNS] == \
        _columns(store, "trace_facts")[-len(settled.TRACE_FACTS_LATER_COLUMNS):]
    for table in ("version_sightings", "step_counts", "trace_agents"):
        assert _columns(store, table), table
    assert read_settle_state(store) == 0
    assert span_schema.migrate_span_store(store) == []

    report = Settler(store, 10.0).run_pass(10**18, now_ns=300 * S)
    assert (report.num_traces, report.num_spans) == (2, 20)
    facts = store.query_arrow("SELECT trace_id, has_root, num_scopes"
                              " FROM trace_facts FINAL ORDER BY trace_id").to_pylist()
    # make_span: every span a root (no parent), all in one scope
    assert [(f["has_root"], f["num_scopes"]) for f in facts] == [(1, 1), (1, 1)]
    steps = store.query_arrow("SELECT toInt64(sum(num_spans)) AS n FROM step_counts FINAL")
    assert steps.to_pylist() == [{"n": 20}]
