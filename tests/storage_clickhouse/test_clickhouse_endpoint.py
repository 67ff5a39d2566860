"""The chDB-backed ClickHouse HTTP endpoint speaks the interface clickhouse-connect uses."""

from __future__ import annotations

import json
from typing import Any

import clickhouse_connect
import httpx
import pyarrow as pa
import pytest


@pytest.fixture
def endpoint_url(clickhouse_server: dict[str, Any]) -> str:
    if "endpoint" not in clickhouse_server:
        pytest.fail("these tests check the test endpoint itself; unset CLICKHOUSE_URL")
    return str(clickhouse_server["endpoint"].url)


def test_ping(endpoint_url: str) -> None:
    answer = httpx.get(f"{endpoint_url}/ping")
    assert (answer.status_code, answer.text) == (200, "Ok.\n")


def test_query_in_url_and_body_with_headers(endpoint_url: str) -> None:
    answer = httpx.post(endpoint_url, params={"query": "SELECT 1 AS a,"},
                        content=b"'x' AS b FORMAT JSONEachRow")
    assert answer.status_code == 200
    assert json.loads(answer.text) == {"a": 1, "b": "x"}
    assert answer.headers["X-ClickHouse-Format"] == "JSONEachRow"
    assert answer.headers["X-ClickHouse-Timezone"] == "UTC"
    assert answer.headers["X-ClickHouse-Query-Id"]
    assert json.loads(answer.headers["X-ClickHouse-Summary"])["read_rows"] == "1"


def test_default_format_params_and_database(endpoint_url: str) -> None:
    answer = httpx.post(endpoint_url, params={
        "default_format": "TabSeparated", "param_x": "41", "param_s": "a\\tb",
        "database": "system"}, content=b"SELECT {x:UInt8} + 1, length({s:String}), "
                                        b"currentDatabase()")
    assert answer.text == "42\t3\tsystem\n"


def test_settings_apply_to_one_request_only(endpoint_url: str) -> None:
    sql = b"SELECT value FROM system.settings WHERE name = 'max_threads' FORMAT TabSeparated"
    with_setting = httpx.post(endpoint_url, params={"max_threads": "1"}, content=sql)
    without = httpx.post(endpoint_url, content=sql)
    assert with_setting.text == "1\n"
    assert without.text != "1\n"


def test_errors_are_500_with_the_exception_code(endpoint_url: str) -> None:
    answer = httpx.post(endpoint_url, content=b"SELECT * FROM no_such_table")
    assert answer.status_code == 500
    assert answer.headers["X-ClickHouse-Exception-Code"] == "60"
    assert answer.text.startswith("Code: 60. DB::Exception:")


def test_clickhouse_connect_inserts_and_reads_arrow(endpoint_url: str) -> None:
    host, port = endpoint_url.removeprefix("http://").split(":")
    client = clickhouse_connect.get_client(host=host, port=int(port), compress=False)
    try:
        assert client.ping()
        assert client.server_version.count(".") == 3
        client.command("CREATE TABLE IF NOT EXISTS endpoint_t (a UInt64, s LowCardinality(String))"
                       " ENGINE = MergeTree ORDER BY a")
        client.command("TRUNCATE TABLE endpoint_t")
        client.insert_arrow("endpoint_t", pa.table({"a": pa.array([1, 2], pa.uint64()),
                                                    "s": ["x", "y"]}))
        got = client.query_arrow("SELECT a, s FROM endpoint_t WHERE a > {m:UInt64}",
                                 parameters={"m": 1})
        assert got.to_pylist() == [{"a": 2, "s": "y"}]
        client.command("DROP TABLE endpoint_t")
    finally:
        client.close()
