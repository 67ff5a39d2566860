"""ClickHouseSpanStore through clickhouse-connect against a ClickHouse HTTP server."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
from chkit import make_span

from clickhouse_endpoint import EndpointProcess
from mentatlab.errors import ConfigError, StoreUnavailable
from mentatlab.model.schema import SPAN_COLUMNS, spans_to_arrow
from mentatlab.storage.base import SpanStore
from mentatlab.storage.chdb_store import open_span_store
from mentatlab.storage.clickhouse_store import ClickHouseSpanStore, parse_clickhouse_url

_ALL = ", ".join(f"`{c.name}`" for c in SPAN_COLUMNS)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_is_a_span_store(clickhouse_store: ClickHouseSpanStore) -> None:
    store: SpanStore = clickhouse_store
    assert store is clickhouse_store


def test_nothing_listening_is_store_unavailable() -> None:
    store = ClickHouseSpanStore("127.0.0.1", _free_port(), connect_timeout_s=2)
    with pytest.raises(StoreUnavailable, match="refused|Connection"):
        store.query_arrow("SELECT 1")
    with pytest.raises(StoreUnavailable):
        store.append_batch(spans_to_arrow([make_span(0)]))
    with pytest.raises(StoreUnavailable):
        store.migrate()


def test_migrate_creates_a_missing_database(clickhouse_server: dict[str, Any],
                                            clickhouse_database: str) -> None:
    args = {k: v for k, v in clickhouse_server.items() if k != "endpoint"}
    with ClickHouseSpanStore(database=clickhouse_database, **args) as store:
        store.migrate()
        got = store.query_arrow("SELECT currentDatabase() AS db")
        assert got.column("db").to_pylist() == [clickhouse_database]
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
