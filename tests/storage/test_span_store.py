"""The SpanStore protocol, run on both backends: chDB and a ClickHouse server over HTTP."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext

import pyarrow as pa
import pytest
from spanfactory import T0, make_span, make_table

from mentatlab.errors import ConfigError, QueryTimeout, StoreError, StoreUnavailable
from mentatlab.model.schema import SPAN_COLUMNS, SPAN_SCHEMA, arrow_to_spans, spans_to_arrow
from mentatlab.pipeline.price import Price
from mentatlab.resolver.resolver import Resolver
from mentatlab.storage.base import SpanStore
from mentatlab.storage.span_schema import (
    HOUR_SORTING_KEY,
    MIGRATIONS,
    SPANS_SORTING_KEY,
    SchemaOptions,
    applied_versions,
    migrate_span_store,
    spans_table_ddl,
)

_DDL_SQL = ("SELECT create_table_query AS q FROM system.tables"
            " WHERE database = currentDatabase() AND name = 'spans'")


def _count(store: SpanStore, final: bool = False) -> int:
    sql = "SELECT count() AS n FROM spans" + (" FINAL" if final else "")
    return int(store.query_arrow(sql).column("n")[0].as_py())


def test_migrate_is_idempotent_and_creates_the_shared_schema(store: SpanStore) -> None:
    assert migrate_span_store(store) == []
    store.migrate()
    assert applied_versions(store) == {m.version for m in MIGRATIONS}
    counts = store.query_arrow(
        "SELECT version, count() AS n FROM schema_migrations GROUP BY version")
    assert set(counts.column("n").to_pylist()) == {1}
    columns = store.query_arrow(
        "SELECT name, type FROM system.columns WHERE database = currentDatabase()"
        " AND table = {t:String} ORDER BY position", {"t": "spans"}).to_pylist()
    assert [(c["name"], c["type"]) for c in columns] == [
        (c.name, c.clickhouse) for c in SPAN_COLUMNS]
    engine = store.query_arrow(
        "SELECT engine, sorting_key FROM system.tables WHERE database = currentDatabase()"
        " AND name = 'spans'").to_pylist()
    assert engine == [{"engine": "ReplacingMergeTree", "sorting_key": SPANS_SORTING_KEY}]


def test_a_store_sorted_by_hour_still_migrates_and_answers(
        open_span_store: Callable[[], SpanStore]) -> None:
    """Stores created before issue 13 keep ``spans`` sorted by hour: migrations leave the
    table alone and it deduplicates as before."""
    store = open_span_store()
    migrate_span_store(store)
    store.execute("DROP TABLE spans")
    store.execute(spans_table_ddl(SchemaOptions(), HOUR_SORTING_KEY))
    store.append_batch(make_table(range(3)))
    store.append_batch(make_table(range(2)))  # re-sent
    assert migrate_span_store(store) == []
    key = store.query_arrow("SELECT sorting_key FROM system.tables WHERE"
                            " database = currentDatabase() AND name = 'spans'")
    assert key.column("sorting_key")[0].as_py() == HOUR_SORTING_KEY
    assert _count(store, final=True) == 3


def test_round_trip_keeps_every_digit_nanosecond_and_null(store: SpanStore) -> None:
    spans = [make_span(1, start_time=T0 + timedelta(microseconds=123457), input_tokens=None,
                       token_cost=Decimal("0.000000000001"),
                       total_cost=Decimal("12345678901234567890.123456789012"),
                       is_streaming=None, attributes='{"a": "é", "b": "\\\\n"}'),
             make_span(2, is_streaming=True), make_span(3, is_streaming=False)]
    table = spans_to_arrow(spans)
    store.append_batch(table)
    cols = ", ".join(f"`{name}`" for name in SPAN_SCHEMA.names)
    back = store.query_arrow(f"SELECT {cols} FROM spans ORDER BY span_id")
    assert arrow_to_spans(back) == spans
    # A nanosecond that a Python datetime cannot hold survives too.
    field = SPAN_SCHEMA.field("start_time")
    ns = [int(v) + 7 for v in table.column("start_time").cast(pa.int64()).to_pylist()]
    shifted = table.set_column(SPAN_SCHEMA.get_field_index("start_time"), field,
                               pa.array(ns, pa.int64()).cast(field.type))
    shifted = shifted.set_column(SPAN_SCHEMA.get_field_index("trace_id"),
                                 SPAN_SCHEMA.field("trace_id"),
                                 pa.array(["f" * 32] * 3, SPAN_SCHEMA.field("trace_id").type))
    store.append_batch(shifted)
    got = store.query_arrow("SELECT start_time FROM spans WHERE trace_id = {t:String}"
                            " ORDER BY span_id", {"t": "f" * 32})
    assert got.column("start_time").cast(pa.int64()).to_pylist() == ns


def test_empty_batch_is_a_no_op(store: SpanStore) -> None:
    store.append_batch(spans_to_arrow([]))
    assert _count(store) == 0


def test_query_params_are_bound_not_interpolated(store: SpanStore) -> None:
    names = ["plain", "O'Brien", "back\\slash", "tab\there", "naïve ✓", "line\nbreak",
             "not\\na newline", "x' OR 1=1 --"]
    store.append_batch(make_table(range(20)))
    store.append_batch(spans_to_arrow([make_span(100 + i, name=n) for i, n in enumerate(names)]))
    t = store.query_arrow("SELECT count() AS n FROM spans WHERE name = {n:String}",
                          {"n": "x' OR 1=1 --"})
    assert t.column("n").to_pylist() == [1]
    for i, name in enumerate(names):
        got = store.query_arrow("SELECT span_id FROM spans WHERE name = {n:String}", {"n": name})
        assert got.column("span_id").to_pylist() == [f"{100 + i:016x}"], name
    got = store.query_arrow(
        "SELECT name FROM spans WHERE name IN {names:Array(String)} ORDER BY name",
        {"names": ["O'Brien", "back\\slash", "missing"]})
    assert got.column("name").to_pylist() == ["O'Brien", "back\\slash"]
    # datetimes bind with every digit: 15 s + 1 µs after T0 excludes span 15
    t = store.query_arrow(
        "SELECT count() AS n FROM spans WHERE start_time >= {t:DateTime64(9, 'UTC')}"
        " AND start_time < {e:DateTime64(9, 'UTC')} AND total_cost >= {c:Decimal(38, 12)}",
        {"t": T0 + timedelta(seconds=15, microseconds=1), "e": T0 + timedelta(seconds=20),
         "c": Decimal("0.001")})
    assert t.column("n").to_pylist() == [4]


def test_decimal_parameters_and_sums_keep_38_digits(store: SpanStore) -> None:
    big = Decimal("12345678901234567890.123456789012")
    costs = [big, Decimal("0.000250000001"), Decimal("0.000500000002"), Decimal("0.000750000003")]
    store.append_batch(spans_to_arrow([make_span(i, total_cost=c) for i, c in enumerate(costs)]))
    got = store.query_arrow(
        "SELECT sum(total_cost) AS c FROM spans WHERE total_cost > {m:Decimal(38, 12)}",
        {"m": Decimal("0.000500000001")})
    with localcontext() as ctx:
        ctx.prec = 38  # Decimal(38, 12) holds 38 digits; Python's default context has 28
        expected = big + Decimal("0.000500000002") + Decimal("0.000750000003")
    assert got.column("c").to_pylist() == [expected]


def test_resent_spans_collapse_to_the_newest_version_with_final(store: SpanStore) -> None:
    store.append_batch(make_table(range(10), ingested_at_ns=1))
    store.append_batch(make_table(range(3), ingested_at_ns=2, total_cost=Decimal("0.5")))
    assert _count(store) == 13
    t = store.query_arrow("SELECT count() AS n, sum(total_cost) AS c FROM spans FINAL")
    assert t.column("n").to_pylist() == [10]
    assert t.column("c").to_pylist() == [Decimal("1.507000000000")]


def test_errors_are_mapped(store: SpanStore, open_span_store: Callable[..., SpanStore]) -> None:
    with pytest.raises(StoreError, match="UNKNOWN_IDENTIFIER|nope") as unknown:
        store.query_arrow("SELECT nope FROM spans")
    with pytest.raises(StoreError, match="SYNTAX_ERROR|62") as syntax:
        store.query_arrow("SELEC 1")
    with pytest.raises(StoreError, match="UNKNOWN_TABLE|60") as table:
        store.execute("ALTER TABLE no_such_table DELETE WHERE 1")
    with pytest.raises(StoreError) as insert:
        store.append_batch(pa.table({"nope": [1]}))
    for info in (unknown, syntax, table, insert):
        assert not isinstance(info.value, StoreUnavailable), info.value
    store.close()  # chDB opens one folder per process
    slow = open_span_store(query_timeout_s=0.5)
    with pytest.raises(QueryTimeout):
        slow.query_arrow("SELECT count() FROM numbers(100000000000)"
                         " WHERE sipHash64(number) % 7 = 1 SETTINGS max_threads = 1")


def test_an_insert_missing_a_column_is_refused(store: SpanStore) -> None:
    """A missing column would be filled with its default: data lost without a word."""
    with pytest.raises(StoreError) as info:
        store.append_batch(make_table(range(3)).drop_columns(["total_cost"]))
    assert not isinstance(info.value, StoreUnavailable)
    assert _count(store) == 0


def test_retention_ttl_set_and_removed(store: SpanStore) -> None:
    migrate_span_store(store, retention_days=7)
    ddl = store.query_arrow(_DDL_SQL)
    assert "TTL start_time + toIntervalDay(7)" in ddl.column("q")[0].as_py()
    recent = datetime.now(UTC) - timedelta(days=1)
    store.append_batch(make_table(range(3)))  # T0: weeks old, past the TTL
    store.append_batch(make_table(range(3, 5), start_time=recent, end_time=recent))
    store.execute("OPTIMIZE TABLE spans FINAL")
    assert _count(store) == 2
    # 100 years: DateTime64 arithmetic, no DateTime wrap to 1987 that would delete everything.
    migrate_span_store(store, retention_days=36500)
    store.append_batch(make_table(range(5, 8)))
    store.execute("OPTIMIZE TABLE spans FINAL")
    assert _count(store) == 5
    migrate_span_store(store, retention_days=0)
    ddl = store.query_arrow(_DDL_SQL)
    assert " TTL " not in ddl.column("q")[0].as_py()
    with pytest.raises(ConfigError):
        migrate_span_store(store, retention_days=-1)


def test_a_store_opened_with_retention_sets_the_ttl_on_migrate(
        open_span_store: Callable[..., SpanStore]) -> None:
    store = open_span_store(retention_days=30)
    store.migrate()
    ddl = store.query_arrow(_DDL_SQL).column("q").to_pylist()[0]
    assert "TTL start_time + toIntervalDay(30)" in ddl


def test_closed_store_raises(store: SpanStore) -> None:
    store.close()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.query_arrow("SELECT 1")
    with pytest.raises(StoreError, match="closed"):
        store.execute("SELECT 1")
    with pytest.raises(StoreError, match="closed"):
        store.append_batch(make_table(range(1)))


def test_inserts_queries_and_resolver_passes_run_side_by_side(store: SpanStore) -> None:
    """Regression: INSERT ... FROM Python() beside a query on another thread hung for good."""
    stop_s = time.monotonic() + 4.0
    done: dict[str, int] = {"insert": 0, "query": 0, "resolve": 0}
    resolver = Resolver(store, Price())
    errors: list[BaseException] = []

    def insert() -> None:
        i = 0
        while time.monotonic() < stop_s:
            store.append_batch(make_table(range(i * 50, i * 50 + 50)))
            done["insert"] += 1
            i += 1

    def query() -> None:
        while time.monotonic() < stop_s:
            store.query_arrow("SELECT count() AS n FROM spans FINAL")
            done["query"] += 1

    def resolve() -> None:
        while time.monotonic() < stop_s:
            resolver.run_pass(time.time_ns())
            done["resolve"] += 1

    def guarded(f: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                f()
            except BaseException as exc:  # surfaced by the assert below
                errors.append(exc)
        return run

    threads = [threading.Thread(target=guarded(f), daemon=True) for f in (insert, query, resolve)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), f"hung after {done}"
    assert errors == []
    assert min(done.values()) > 0
    assert _count(store, final=True) == done["insert"] * 50


def test_concurrent_writers_and_readers_share_one_store(store: SpanStore) -> None:
    errors: list[BaseException] = []

    def write(trace: int) -> None:
        try:
            for batch in range(5):
                store.append_batch(make_table(range(trace * 100 + batch * 10,
                                                    trace * 100 + batch * 10 + 10)))
        except BaseException as exc:  # surfaced by the assert below
            errors.append(exc)

    def read() -> None:
        try:
            for _ in range(10):
                store.query_arrow("SELECT count() AS n FROM spans FINAL")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(t,)) for t in range(3)]
    threads.append(threading.Thread(target=read))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert _count(store, final=True) == 150
