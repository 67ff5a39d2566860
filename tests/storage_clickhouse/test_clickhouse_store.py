"""ClickHouseSpanStore through clickhouse-connect against a ClickHouse HTTP server."""

from __future__ import annotations

import socket
import threading
from datetime import timedelta
from decimal import Decimal, localcontext
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from chkit import T0, make_span

from clickhouse_endpoint import EndpointProcess
from mentatlab.errors import ConfigError, QueryTimeout, StoreError, StoreUnavailable
from mentatlab.model.schema import SPAN_COLUMNS, SPAN_SCHEMA, arrow_to_spans, spans_to_arrow
from mentatlab.storage.base import SpanStore
from mentatlab.storage.chdb_store import open_span_store
from mentatlab.storage.clickhouse_store import ClickHouseSpanStore, parse_clickhouse_url
from mentatlab.storage.span_schema import MIGRATIONS, applied_versions

_ALL = ", ".join(f"`{c.name}`" for c in SPAN_COLUMNS)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_is_a_span_store(clickhouse_store: ClickHouseSpanStore) -> None:
    store: SpanStore = clickhouse_store
    assert store is clickhouse_store


def test_migrate_creates_the_shared_schema_and_is_idempotent(
        clickhouse_store: ClickHouseSpanStore) -> None:
    assert applied_versions(clickhouse_store) == {m.version for m in MIGRATIONS}
    clickhouse_store.migrate()
    rows = clickhouse_store.query_arrow(
        "SELECT version, count() AS n FROM schema_migrations GROUP BY version ORDER BY version")
    assert rows.column("n").to_pylist() == [1] * len(MIGRATIONS)
    columns = clickhouse_store.query_arrow(
        "SELECT name, type FROM system.columns WHERE database = currentDatabase()"
        " AND table = {t:String} ORDER BY position", {"t": "spans"}).to_pylist()
    assert [(c["name"], c["type"]) for c in columns] == [
        (c.name, c.clickhouse) for c in SPAN_COLUMNS]
    engine = clickhouse_store.query_arrow(
        "SELECT engine FROM system.tables WHERE database = currentDatabase() AND name = 'spans'")
    assert engine.column("engine").to_pylist() == ["ReplacingMergeTree"]


def test_round_trip_keeps_every_digit_nanosecond_and_null(
        clickhouse_store: ClickHouseSpanStore) -> None:
    spans = [make_span(i, start=T0 + timedelta(microseconds=1)) for i in range(12)]
    table = spans_to_arrow(spans)
    # a nanosecond the Python datetime cannot hold must survive too
    ns = table.column("start_time").cast(pa.int64()).to_pylist()
    ns[0] += 7
    table = table.set_column(5, SPAN_SCHEMA.field("start_time"),
                             pa.array(ns, pa.int64()).cast(SPAN_SCHEMA.field("start_time").type))
    clickhouse_store.append_batch(table)
    back = clickhouse_store.query_arrow(f"SELECT {_ALL} FROM spans ORDER BY span_id")
    assert back.num_rows == 12
    assert back.column("start_time").cast(pa.int64()).to_pylist() == ns
    assert back.column("total_cost").to_pylist()[1] == Decimal("12345678901234567890.123456789012")
    assert back.column("input_tokens").to_pylist()[3] is None
    assert back.column("is_streaming").to_pylist()[:3] == [None, True, False]
    assert arrow_to_spans(back)[1:] == spans[1:]


def test_query_params_mean_the_same_as_on_chdb(clickhouse_store: ClickHouseSpanStore) -> None:
    spans = [make_span(i, name=name) for i, name in
             enumerate(["plain", "O'Brien", "back\\slash", "tab\there", "naïve ✓",
                                      "line\nbreak", "not\\na newline"])]
    clickhouse_store.append_batch(spans_to_arrow(spans))
    for span in spans:
        got = clickhouse_store.query_arrow(
            "SELECT span_id FROM spans WHERE name = {n:String}", {"n": span.name})
        assert got.column("span_id").to_pylist() == [span.span_id], span.name
    got = clickhouse_store.query_arrow(
        "SELECT name FROM spans WHERE name IN {names:Array(String)} ORDER BY name",
        {"names": ["O'Brien", "back\\slash", "missing"]})
    assert got.column("name").to_pylist() == ["O'Brien", "back\\slash"]
    # datetimes bind with nanosecond digits, not truncated to seconds
    got = clickhouse_store.query_arrow(
        "SELECT count() AS n FROM spans WHERE start_time >= {t:DateTime64(9, 'UTC')}",
        {"t": spans[2].start_time})
    assert got.column("n").to_pylist() == [len(spans) - 2]
    got = clickhouse_store.query_arrow(
        "SELECT sum(total_cost) AS c FROM spans WHERE total_cost > {m:Decimal(38, 12)}",
        {"m": Decimal("0.000500000001")})
    with localcontext() as ctx:
        ctx.prec = 38  # Decimal(38, 12) holds 38 digits; Python's default context has 28
        expected = sum((s.total_cost for s in spans if s.total_cost > Decimal("0.000500000001")),
                       Decimal(0))
    assert got.column("c").to_pylist() == [expected]


def test_resent_spans_collapse_to_the_newest_version_with_final(
        clickhouse_store: ClickHouseSpanStore) -> None:
    first = [make_span(i) for i in range(5)]
    clickhouse_store.append_batch(spans_to_arrow(first))
    resent = [make_span(i, ingested_at_ns=10_000 + i, total_cost=Decimal("1.5")) for i in range(3)]
    clickhouse_store.append_batch(spans_to_arrow(resent))
    raw = clickhouse_store.query_arrow("SELECT count() AS n FROM spans")
    assert raw.column("n").to_pylist() == [8]
    final = clickhouse_store.query_arrow(
        "SELECT count() AS n, sum(total_cost) AS c FROM spans FINAL")
    expected = Decimal("4.5") + first[3].total_cost + first[4].total_cost
    assert final.to_pylist() == [{"n": 5, "c": expected}]


def test_empty_batch_is_a_no_op(clickhouse_store: ClickHouseSpanStore) -> None:
    clickhouse_store.append_batch(spans_to_arrow([]))
    assert clickhouse_store.query_arrow("SELECT count() AS n FROM spans").to_pylist() == [{"n": 0}]


def test_bad_sql_is_a_store_error_not_unavailable(clickhouse_store: ClickHouseSpanStore) -> None:
    with pytest.raises(StoreError, match="62") as info:
        clickhouse_store.query_arrow("SELEC 1")
    assert not isinstance(info.value, StoreUnavailable)
    with pytest.raises(StoreError, match="UNKNOWN_TABLE|60"):
        clickhouse_store.execute("ALTER TABLE no_such_table DELETE WHERE 1")
    with pytest.raises(StoreError) as insert_info:
        clickhouse_store.append_batch(pa.table({"nope": [1]}))
    assert not isinstance(insert_info.value, StoreUnavailable)


def test_a_query_past_the_time_limit_is_a_query_timeout(
        clickhouse_server: dict[str, Any], clickhouse_database: str) -> None:
    args = {k: v for k, v in clickhouse_server.items() if k != "endpoint"}
    with ClickHouseSpanStore(database="default", query_timeout_s=0.5, **args) as store:
        with pytest.raises(QueryTimeout):
            store.query_arrow("SELECT count() FROM numbers(100000000000) WHERE sipHash64(number)"
                              " = 7 SETTINGS max_threads = 1")


def test_nothing_listening_is_store_unavailable() -> None:
    store = ClickHouseSpanStore("127.0.0.1", _free_port(), connect_timeout_s=2)
    with pytest.raises(StoreUnavailable, match="refused|Connection"):
        store.query_arrow("SELECT 1")
    with pytest.raises(StoreUnavailable):
        store.append_batch(spans_to_arrow([make_span(0)]))
    with pytest.raises(StoreUnavailable):
        store.migrate()


def test_closed_store_refuses_calls(clickhouse_store: ClickHouseSpanStore) -> None:
    clickhouse_store.close()
    clickhouse_store.close()
    with pytest.raises(StoreError, match="closed"):
        clickhouse_store.query_arrow("SELECT 1")


def test_migrate_creates_a_missing_database(clickhouse_server: dict[str, Any],
                                            clickhouse_database: str) -> None:
    args = {k: v for k, v in clickhouse_server.items() if k != "endpoint"}
    with ClickHouseSpanStore(database=clickhouse_database, **args) as store:
        store.migrate()
        got = store.query_arrow("SELECT currentDatabase() AS db")
        assert got.column("db").to_pylist() == [clickhouse_database]
        store.execute(f"DROP DATABASE `{clickhouse_database}`")


def test_retention_sets_a_datetime64_ttl(clickhouse_server: dict[str, Any],
                                         clickhouse_database: str) -> None:
    args = {k: v for k, v in clickhouse_server.items() if k != "endpoint"}
    with ClickHouseSpanStore(database=clickhouse_database, retention_days=30, **args) as store:
        store.migrate()
        ddl = store.query_arrow(
            "SELECT create_table_query AS q FROM system.tables"
            " WHERE database = currentDatabase() AND name = 'spans'").column("q").to_pylist()[0]
        assert "TTL start_time + toIntervalDay(30)" in ddl
        store.execute(f"DROP DATABASE `{clickhouse_database}`")


def test_open_span_store_factory_opens_this_backend(clickhouse_server: dict[str, Any],
                                                    clickhouse_database: str) -> None:
    if "endpoint" not in clickhouse_server:
        pytest.fail("needs the endpoint's host and port")
    url = (f"clickhouse://default@{clickhouse_server['host']}:{clickhouse_server['port']}/"
           f"{clickhouse_database}?compress=false")
    store = open_span_store(url)
    try:
        assert isinstance(store, ClickHouseSpanStore)
        store.migrate()
        store.append_batch(spans_to_arrow([make_span(0)]))
        assert store.query_arrow("SELECT count() AS n FROM spans").to_pylist() == [{"n": 1}]
        store.execute(f"DROP DATABASE `{clickhouse_database}`")
    finally:
        store.close()


@pytest.mark.parametrize(("url", "expected"), [
    ("clickhouse://localhost", {"host": "localhost", "port": 8123, "username": "default",
                                "password": "", "database": "default", "secure": False,
                                "compress": False, "cluster": None}),
    ("clickhouses://u%40x:p%3Aw@ch.example:9443/spans_db?compress=zstd&cluster=main",
     {"host": "ch.example", "port": 9443, "username": "u@x", "password": "p:w",
      "database": "spans_db", "secure": True, "compress": "zstd", "cluster": "main"}),
    ("clickhouse://h/db?secure=true&compress=true&connect_timeout_s=2.5&verify=false",
     {"host": "h", "port": 8443, "username": "default", "password": "", "database": "db",
      "secure": True, "compress": True, "cluster": None, "connect_timeout_s": 2.5,
      "verify": False}),
])
def test_parse_clickhouse_url(url: str, expected: dict[str, Any]) -> None:
    assert parse_clickhouse_url(url) == expected


@pytest.mark.parametrize("url", [
    "chdb:///tmp/x", "clickhouse://h/db?compress=maybe", "clickhouse://h/db?shards=3",
    "clickhouse://h/db?connect_timeout_s=soon",
])
def test_parse_clickhouse_url_refuses_bad_urls(url: str) -> None:
    with pytest.raises(ConfigError):
        parse_clickhouse_url(url)


def test_outage_is_unavailable_then_the_same_store_recovers(tmp_path: Path) -> None:
    endpoint = EndpointProcess(tmp_path / "endpoint").start()
    try:
        store = ClickHouseSpanStore(endpoint.host, endpoint.port, database="outage",
                                    connect_timeout_s=2)
        store.migrate()
        store.append_batch(spans_to_arrow([make_span(0)]))
        endpoint.stop()
        with pytest.raises(StoreUnavailable):
            store.append_batch(spans_to_arrow([make_span(1)]))
        with pytest.raises(StoreUnavailable):
            store.query_arrow("SELECT count() FROM spans")
        endpoint.start()  # same folder, same port
        store.append_batch(spans_to_arrow([make_span(1)]))
        got = store.query_arrow("SELECT span_id FROM spans ORDER BY span_id")
        assert got.column("span_id").to_pylist() == [make_span(0).span_id, make_span(1).span_id]
        store.close()
    finally:
        endpoint.stop()


def test_concurrent_writers_and_readers_share_one_store(
        clickhouse_store: ClickHouseSpanStore) -> None:
    errors: list[BaseException] = []

    def write(trace: int) -> None:
        try:
            for batch in range(5):
                clickhouse_store.append_batch(spans_to_arrow(
                    [make_span(batch * 10 + i, trace=trace) for i in range(10)]))
        except BaseException as exc:  # surfaced by the assert below
            errors.append(exc)

    def read() -> None:
        try:
            for _ in range(10):
                clickhouse_store.query_arrow("SELECT count() AS n FROM spans FINAL")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(t,)) for t in range(3)]
    threads.append(threading.Thread(target=read))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    got = clickhouse_store.query_arrow("SELECT count() AS n FROM spans FINAL")
    assert got.to_pylist() == [{"n": 150}]
