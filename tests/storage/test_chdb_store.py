"""chDB itself: its insert files, URLs, close during a query, per-session parameters.

Everything that goes through the SpanStore protocol is in test_span_store.py and runs on
both backends.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from spanfactory import make_table

from mentatlab.errors import ConfigError, StoreError
from mentatlab.storage.chdb_store import ChdbSpanStore, open_span_store


def test_insert_files_are_removed_and_stale_ones_cleared_on_open(tmp_path: Path) -> None:
    with ChdbSpanStore(tmp_path / "s") as s:
        s.migrate()
        s.append_batch(make_table(range(50)))
        assert not list((tmp_path / "s" / "_ingest").iterdir())  # batch file removed
    (tmp_path / "s" / "_ingest" / "left-by-kill.arrows").write_bytes(b"x")
    with ChdbSpanStore(tmp_path / "s") as s:
        assert not list((tmp_path / "s" / "_ingest").iterdir())
        assert s.query_arrow("SELECT count() AS n FROM spans").column("n").to_pylist() == [50]


def test_a_schema_mismatch_is_refused_before_the_insert(chdb_store: ChdbSpanStore) -> None:
    with pytest.raises(StoreError, match="SPAN_SCHEMA"):
        chdb_store.append_batch(make_table(range(3)).drop_columns(["attributes"]))


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
        chdb_store: ChdbSpanStore) -> None:
    """chDB binds parameters per session: without the store's guard, threads swap values."""
    wrong: list[tuple[int, int]] = []

    def ask(k: int) -> None:
        for i in range(150):
            want = k * 1000 + i
            got = chdb_store.query_arrow("SELECT {v:UInt32} AS x FROM numbers(2000) LIMIT 1",
                                         {"v": want}).column("x")[0].as_py()
            if got != want:
                wrong.append((want, got))

    threads = [threading.Thread(target=ask, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert wrong == []
