"""Span-store migration 11: the measured column codecs (docs/decisions/0023), both backends.

The "old" store is migrated through migration 10 with the codecs of before (``_OLD_CODECS``
on a few columns, the server's default on the rest) and holds spans with message
payloads; migrating again must set every column's codec without touching the parts on
disk (they change at their next merge) and without changing what the store answers.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pytest
from spanfactory import make_table

from mentatlab.model.schema import SPAN_COLUMNS, Column
from mentatlab.resolver.settle import Settler
from mentatlab.storage import span_schema
from mentatlab.storage.base import SpanStore

S = 1_000_000_000  # 1 s in ns
_OLD_CODECS = {
    "start_time": "CODEC(Delta, ZSTD(1))", "end_time": "CODEC(Delta, ZSTD(1))",
    "ingested_at_ns": "CODEC(Delta, ZSTD(1))", "duration_ms": "CODEC(Gorilla, ZSTD(1))",
    "trace_id": "CODEC(ZSTD(1))", "span_id": "CODEC(ZSTD(1))",
    "parent_span_id": "CODEC(ZSTD(1))", "attributes": "CODEC(ZSTD(3))",
    "events": "CODEC(ZSTD(3))", "resource": "CODEC(ZSTD(3))",
    "pii_findings": "CODEC(ZSTD(3))", "status_message": "CODEC(ZSTD(3))"}
"""The codecs of stores created before migration 11."""


def _old_codec(column: Column) -> str:
    return _OLD_CODECS.get(column.name, "")


def _codecs(store: SpanStore) -> dict[str, str]:
    rows = store.query_arrow(
        "SELECT name, compression_codec FROM system.columns WHERE database = currentDatabase()"
        " AND table = 'spans'").to_pylist()
    # ClickHouse spells out Gorilla's default width: Gorilla(8)
    return {r["name"]: str(r["compression_codec"]).replace(" ", "").replace("Gorilla(8)", "Gorilla")
            for r in rows}


def _expected() -> dict[str, str]:
    return {c.name: span_schema.column_codec(c).replace(" ", "") for c in SPAN_COLUMNS}


def _derived_codecs(store: SpanStore) -> dict[tuple[str, str], str]:
    rows = store.query_arrow(
        "SELECT table, name, compression_codec FROM system.columns WHERE database ="
        " currentDatabase() AND table IN {t:Array(String)} AND type NOT LIKE '%AggregateFunction%'",
        {"t": list(span_schema.DERIVED_CODEC_TABLES)}).to_pylist()
    return {(r["table"], r["name"]): str(r["compression_codec"]).replace(" ", "").replace(
        "Gorilla(8)", "Gorilla") for r in rows}


def _derived_expected(store: SpanStore) -> dict[tuple[str, str], str]:
    rows = store.query_arrow(
        "SELECT table, name, type FROM system.columns WHERE database = currentDatabase()"
        " AND table IN {t:Array(String)} AND type NOT LIKE '%AggregateFunction%'",
        {"t": list(span_schema.DERIVED_CODEC_TABLES)}).to_pylist()
    assert {r["table"] for r in rows} == set(span_schema.DERIVED_CODEC_TABLES)
    return {(r["table"], r["name"]): span_schema.column_codec(
        Column(r["name"], pa.string(), r["type"])).replace(" ", "") for r in rows}


def _derived_rows(store: SpanStore) -> dict[str, int]:
    """Rows and a hash of every row per derived table (current versions)."""
    out = {}
    for table in span_schema.DERIVED_CODEC_TABLES:
        final = "" if table == "span_ledger" else " FINAL"
        row = store.query_arrow(
            f"SELECT toUInt64(count()) AS n, groupBitXor(cityHash64(*)) AS h FROM {table}{final}"
        ).to_pylist()[0]
        out[table] = (int(row["n"]), int(row["h"]))
    return out


def _parts(store: SpanStore) -> list[str]:
    rows = store.query_arrow(
        "SELECT name FROM system.parts WHERE database = currentDatabase() AND table = 'spans'"
        " AND active ORDER BY name").to_pylist()
    return [str(r["name"]) for r in rows]


def _spans(store: SpanStore) -> list[dict[str, Any]]:
    return store.query_arrow("SELECT * FROM spans FINAL ORDER BY trace_id, span_id").to_pylist()


def _payload(i: int) -> str:
    return json.dumps({"gen_ai.input.messages": [
        {"role": "system", "parts": [{"type": "text", "content": "You are a support agent."}]},
        {"role": "user", "parts": [{"type": "text", "content": f"Where is order #{i}?"}]}],
        "gen_ai.output.messages": [{"role": "assistant", "parts": [
            {"type": "text", "content": f"Order #{i} ships on day {i % 28 + 1}."}]}]})


def test_migration_11_sets_the_measured_codecs_and_keeps_every_span(
        open_span_store: Callable[[], SpanStore], monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_span_store()
    before = tuple(m for m in span_schema.MIGRATIONS if m.version < 11)
    with monkeypatch.context() as old:
        old.setattr(span_schema, "MIGRATIONS", before)
        old.setattr(span_schema, "column_codec", _old_codec)
        old.setattr(span_schema, "DERIVED_CODEC_TABLES", ())
        assert span_schema.migrate_span_store(store) == [m.version for m in before]
    codecs = _codecs(store)
    assert codecs["attributes"] == "CODEC(ZSTD(3))"
    assert codecs["input_tokens"] == ""  # the server's default (LZ4)
    assert codecs != _expected()
    for first in (0, 300):  # two inserts: two parts of one day
        store.append_batch(_table(first))
    stored, parts = _spans(store), _parts(store)
    assert len(stored) == 600 and len(parts) == 2
    # committed at 100 s and 101 s: settled (quiet for 10 s) at 300 s
    report = Settler(store, 10.0).run_pass(10**18, now_ns=300 * S)  # the derived tables
    assert report.num_spans == 600
    derived = _derived_rows(store)
    assert all(derived.values()) and _derived_codecs(store) != _derived_expected(store)

    assert span_schema.migrate_span_store(store) == [11]
    assert _codecs(store) == _expected()
    assert _derived_codecs(store) == _derived_expected(store)
    assert _parts(store) == parts  # metadata only: the parts on disk are not rewritten
    assert _spans(store) == stored
    assert _derived_rows(store) == derived

    store.execute("OPTIMIZE TABLE spans FINAL")  # what compaction does to a closed day
    merged = _parts(store)
    assert len(merged) == 1 and merged[0] not in parts  # rewritten with the new codecs
    assert _spans(store) == stored
    store.append_batch(_table(600))  # a new part, written with the new codecs
    assert len(_spans(store)) == 900
    assert span_schema.migrate_span_store(store) == []
    assert _derived_rows(store) == derived


def _table(first: int) -> pa.Table:
    """Spans ``first`` to ``first + 299`` (one day), each with message payloads."""
    table = make_table(range(first, first + 300), ingested_at_ns=(100 + first // 300) * S)
    column = table.schema.get_field_index("attributes")
    return table.set_column(column, table.schema.field(column),
                            pa.array([_payload(i) for i in range(first, first + 300)],
                                     pa.string()))


def test_a_new_store_is_created_with_the_measured_codecs(store: SpanStore) -> None:
    assert _codecs(store) == _expected()
    assert span_schema.applied_versions(store) >= {11}


def test_column_codecs_follow_the_measured_rules() -> None:
    by_name = {c.name: span_schema.column_codec(c) for c in SPAN_COLUMNS}
    assert by_name["attributes"] == "CODEC(ZSTD(1))"
    assert by_name["events"] == by_name["resource"] == "CODEC(ZSTD(3))"
    assert by_name["start_time"] == by_name["end_time"] == "CODEC(T64, ZSTD(1))"
    assert by_name["input_tokens"] == "CODEC(T64, ZSTD(1))"  # Nullable(UInt64)
    assert by_name["policy_versions"] == "CODEC(T64, ZSTD(1))"  # Array(UInt32)
    assert by_name["duration_ms"] == "CODEC(Gorilla, ZSTD(1))"
    assert by_name["total_cost"] == "CODEC(ZSTD(1))"  # Decimal: T64 does not take it
    assert by_name["provider"] == "CODEC(ZSTD(1))"  # LowCardinality(String)
    assert by_name["ingested_at_ns"] == "CODEC(ZSTD(1))"
    assert all(by_name.values())  # no column left to the server's default
