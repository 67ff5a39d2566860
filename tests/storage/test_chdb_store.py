from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from spanfactory import T0, make_span, make_table

from mentatlab.errors import ConfigError, QueryTimeout, StoreError
from mentatlab.model.schema import SPAN_SCHEMA, arrow_to_spans
from mentatlab.storage.chdb_store import ChdbSpanStore, open_span_store
from mentatlab.storage.rollup import refresh_rollups
from mentatlab.storage.span_schema import MIGRATIONS, applied_versions, migrate_span_store


def test_migrate_is_idempotent_and_records_versions(store: ChdbSpanStore) -> None:
    assert migrate_span_store(store) == []
    store.migrate()
    assert applied_versions(store) == {m.version for m in MIGRATIONS}
    counts = store.query_arrow(
        "SELECT version, count() AS n FROM schema_migrations GROUP BY version")
    assert set(counts.column("n").to_pylist()) == {1}


def test_round_trip_keeps_decimals_nanoseconds_and_nulls(store: ChdbSpanStore) -> None:
    span = make_span(1, start_time=T0 + timedelta(microseconds=123457), input_tokens=None,
                     token_cost=Decimal("0.000000000001"), total_cost=Decimal("12345.678901234567"),
                     is_streaming=None, attributes='{"a": "é"}')
    from mentatlab.model.schema import spans_to_arrow

    store.append_batch(spans_to_arrow([span]))
    cols = ", ".join(SPAN_SCHEMA.names)
    back = arrow_to_spans(store.query_arrow(f"SELECT {cols} FROM spans"))
    assert back == [span]


def test_query_params_are_bound_not_interpolated(store: ChdbSpanStore) -> None:
    store.append_batch(make_table(range(20)))
    evil = "x' OR 1=1 --"
    t = store.query_arrow("SELECT count() AS n FROM spans WHERE name = {n:String}", {"n": evil})
    assert t.column("n").to_pylist() == [0]
    t = store.query_arrow(
        "SELECT count() AS n FROM spans WHERE start_time >= {t:DateTime64(9, 'UTC')}"
        " AND total_cost >= {c:Decimal(38, 12)}",
        {"t": T0 + timedelta(seconds=15), "c": Decimal("0.001")})
    assert t.column("n").to_pylist() == [5]


def test_resent_spans_collapse_with_final(store: ChdbSpanStore) -> None:
    store.append_batch(make_table(range(10), ingested_at_ns=1))
    store.append_batch(make_table(range(10), ingested_at_ns=2, total_cost=Decimal("0.5")))
    t = store.query_arrow("SELECT count() AS n, sum(total_cost) AS c FROM spans FINAL")
    assert t.column("n").to_pylist() == [10]
    assert t.column("c").to_pylist() == [Decimal("5.000000000000")]


def test_inserts_queries_and_rollups_run_side_by_side(tmp_path: Path) -> None:
    """Regression: INSERT ... FROM Python() beside a query on another thread hung for good."""
    with ChdbSpanStore(tmp_path / "s") as s:
        s.migrate()
        stop_s = time.monotonic() + 4.0
        done: dict[str, int] = {"insert": 0, "query": 0, "rollup": 0}

        def insert() -> None:
            i = 0
            while time.monotonic() < stop_s:
                s.append_batch(make_table(range(i * 50, i * 50 + 50)))
                done["insert"] += 1
                i += 1

        def query() -> None:
            while time.monotonic() < stop_s:
                s.query_arrow("SELECT count() AS n FROM spans FINAL")
                done["query"] += 1

        def rollup() -> None:
            while time.monotonic() < stop_s:
                refresh_rollups(s, datetime.now(UTC) + timedelta(days=400))
                done["rollup"] += 1

        threads = [threading.Thread(target=f, daemon=True) for f in (insert, query, rollup)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not any(t.is_alive() for t in threads), f"hung after {done}"
        assert min(done.values()) > 0
        n = s.query_arrow("SELECT count() AS n FROM spans FINAL").column("n")[0].as_py()
        assert n == done["insert"] * 50
        assert not list((tmp_path / "s" / "_ingest").iterdir())  # batch files removed


def test_errors_are_mapped(store: ChdbSpanStore) -> None:
    with pytest.raises(StoreError, match="UNKNOWN_IDENTIFIER|nope"):
        store.query_arrow("SELECT nope FROM spans")
    store.execute("SET max_execution_time = 0.001")
    with pytest.raises(QueryTimeout):
        store.query_arrow(
            "SELECT count() FROM numbers(10000000000) WHERE sipHash64(number) % 7 = 1")


_DDL_SQL = "SELECT create_table_query AS q FROM system.tables WHERE name = 'spans'"


def test_retention_ttl_set_and_removed(store: ChdbSpanStore) -> None:
    migrate_span_store(store, retention_days=7)
    ddl = store.query_arrow(_DDL_SQL)
    assert "TTL start_time + toIntervalDay(7)" in ddl.column("q")[0].as_py()
    recent = datetime.now(UTC) - timedelta(days=1)
    store.append_batch(make_table(range(3)))  # T0: weeks old, past the TTL
    store.append_batch(make_table(range(3, 5), start_time=recent, end_time=recent))
    store.execute("OPTIMIZE TABLE spans FINAL")
    assert store.query_arrow("SELECT count() AS n FROM spans").column("n").to_pylist() == [2]
    # 100 years: DateTime64 arithmetic, no DateTime wrap to 1987 that would delete everything.
    migrate_span_store(store, retention_days=36500)
    store.append_batch(make_table(range(5, 8)))
    store.execute("OPTIMIZE TABLE spans FINAL")
    assert store.query_arrow("SELECT count() AS n FROM spans").column("n").to_pylist() == [5]
    migrate_span_store(store, retention_days=0)
    ddl = store.query_arrow(_DDL_SQL)
    assert " TTL " not in ddl.column("q")[0].as_py()
    with pytest.raises(ConfigError):
        migrate_span_store(store, retention_days=-1)


def test_closed_store_raises(tmp_path: Path) -> None:
    s = ChdbSpanStore(tmp_path / "c")
    s.close()
    s.close()
    with pytest.raises(StoreError, match="closed"):
        s.query_arrow("SELECT 1")


def test_open_span_store_urls(tmp_path: Path) -> None:
    s = open_span_store(f"chdb://{tmp_path / 'u'}")
    try:
        assert isinstance(s, ChdbSpanStore) and s.path == tmp_path / "u"
    finally:
        s.close()
    with pytest.raises(ConfigError, match="scheme"):
        open_span_store("mysql://x/y")
    with pytest.raises(ConfigError):
        open_span_store("chdb://")


def test_close_waits_for_a_running_query(tmp_path: Path) -> None:
    import threading
    import time

    s = ChdbSpanStore(tmp_path / "w")
    results: list[object] = []

    def slow() -> None:
        try:
            t = s.query_arrow("SELECT count() AS n FROM numbers(30000000) WHERE sleepEachRow(0) = 0"
                              " AND sipHash64(number) % 3 = 0")
            results.append(t.column("n")[0].as_py())
        except Exception as exc:  # recorded for the assertion below
            results.append(exc)

    worker = threading.Thread(target=slow)
    worker.start()
    deadline = time.monotonic() + 10
    while s._num_inflight == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert s._num_inflight == 1
    s.close()  # must not pull the session from under the running query
    worker.join(30)
    assert len(results) == 1 and isinstance(results[0], int) and results[0] > 0
    with pytest.raises(StoreError, match="closed"):
        s.execute("SELECT 1")


def test_parameterized_queries_on_several_threads_get_their_own_values(
        store: ChdbSpanStore) -> None:
    """chDB binds parameters per session: without the store's guard, threads swap values."""
    wrong: list[tuple[int, int]] = []

    def ask(k: int) -> None:
        for i in range(150):
            want = k * 1000 + i
            got = store.query_arrow("SELECT {v:UInt32} AS x FROM numbers(2000) LIMIT 1",
                                    {"v": want}).column("x")[0].as_py()
            if got != want:
                wrong.append((want, got))

    threads = [threading.Thread(target=ask, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert wrong == []
