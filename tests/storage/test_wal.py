"""The write-ahead log (issue 18, decision 0022): frames, torn tails, idempotent replay,
acknowledgement before the insert, and its byte limits (Backpressure)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from spanfactory import GatedStore, make_table

from mentatlab.errors import Backpressure
from mentatlab.model.schema import SPAN_SCHEMA
from mentatlab.storage.base import SpanStore
from mentatlab.storage.chdb_store import ChdbSpanStore
from mentatlab.storage.wal import WriteAheadLog, read_segment, replay_into
from mentatlab.storage.writer import SpanWriter


def stamped(indices: range, stamp_ns: int) -> pa.Table:
    table = make_table(indices)
    index = table.schema.get_field_index("ingested_at_ns")
    return table.set_column(index, table.schema.field(index),
                            pa.repeat(pa.scalar(stamp_ns, pa.int64()), table.num_rows))


def count(store: SpanStore, final: bool = False) -> int:
    sql = "SELECT count() AS n FROM spans" + (" FINAL" if final else "")
    return int(store.query_arrow(sql).column("n")[0].as_py())



def test_frames_read_back_in_order(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path / "wal")
    for n in range(3):
        assert wal.append(100 + n, stamped(range(n * 10, n * 10 + 10), 100 + n)) > 0
    wal.close()
    [segment] = wal.segment_paths()
    records, torn = read_segment(segment)
    assert not torn and [r.stamp_ns for r in records] == [100, 101, 102]
    assert records[2].table.equals(stamped(range(20, 30), 102))
    assert wal.disk_bytes == segment.stat().st_size


@pytest.mark.parametrize("damage", ["cut_payload", "cut_header", "flipped_byte", "garbage"])
def test_a_torn_tail_is_detected_and_ignored(tmp_path: Path, damage: str) -> None:
    wal = WriteAheadLog(tmp_path / "wal")
    wal.append(1, stamped(range(10), 1))
    wal.append(2, stamped(range(10, 20), 2))
    whole = wal.segment_paths()[0].stat().st_size
    wal.append(3, stamped(range(20, 30), 3))
    wal.close()
    path = wal.segment_paths()[0]
    data = bytearray(path.read_bytes())
    if damage == "cut_payload":
        data = data[:len(data) - 100]
    elif damage == "cut_header":
        data = data[:whole + 7]
    elif damage == "flipped_byte":
        data[len(data) - 50] ^= 0xFF
    else:
        data += b"MWAL\x00\x00\x00\x10garbage"
    path.write_bytes(bytes(data))
    records, torn = read_segment(path)
    assert torn
    expected = [1, 2, 3] if damage == "garbage" else [1, 2]
    assert [r.stamp_ns for r in records] == expected


def test_replay_inserts_each_logged_span_exactly_once(chdb_store: ChdbSpanStore,
                                                      tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path / "wal", segment_bytes=1)  # one segment per batch
    tables = [stamped(range(n * 10, n * 10 + 10), 1_000 + n) for n in range(4)]
    for n, table in enumerate(tables):
        wal.append(1_000 + n, table)
    wal.close()
    # The crash came after batch 0 was inserted and half of batch 1 (two day partitions
    # are two parts), before the log was trimmed.
    chdb_store.append_batch(tables[0])
    chdb_store.append_batch(tables[1].slice(0, 5))
    report = replay_into(chdb_store, WriteAheadLog(tmp_path / "wal"), SPAN_SCHEMA)
    assert (report.spans_inserted, report.spans_already_stored) == (25, 15)
    assert report.last_stamp_ns == 1_003
    assert count(chdb_store) == 40 == count(chdb_store, final=True)  # raw rows: no duplicate
    assert not list((tmp_path / "wal").glob("wal-*.log"))
    again = replay_into(chdb_store, WriteAheadLog(tmp_path / "wal"), SPAN_SCHEMA)
    assert again.spans_inserted == 0 and count(chdb_store) == 40


async def test_ingest_is_acknowledged_once_logged_then_inserted(chdb_store: ChdbSpanStore,
                                                                tmp_path: Path) -> None:
    gated = GatedStore(chdb_store)
    wal = WriteAheadLog(tmp_path / "wal")
    writer = SpanWriter(gated, max_buffer_spans=10_000, max_batch_spans=100, wal=wal,  # type: ignore[arg-type]
                        insert_interval_s=0.05)
    got: list[pa.Table] = []
    writer.subscribe(got.append)
    try:
        for n in range(3):
            assert await writer.submit(make_table(range(n * 10, n * 10 + 10))) == 10
        # Answered while nothing reached the store: the spans are in the log.
        assert count(chdb_store) == 0 and got == []
        logged = [r for p in wal.segment_paths() for r in read_segment(p)[0]]
        assert sum(r.table.num_rows for r in logged) == 30
        assert writer.committed_through_ns() < logged[0].stamp_ns
        gated.gate.set()
        assert await asyncio.to_thread(writer.flush, 30)
        assert count(chdb_store) == 30 and sum(t.num_rows for t in got) == 30
        assert writer.committed_through_ns() >= logged[-1].stamp_ns
        assert not wal.segment_paths()  # trimmed once stored
        # A job's write still returns only once inserted.
        assert await asyncio.to_thread(writer.write, make_table(range(100, 105))) == 5
        assert count(chdb_store) == 35
    finally:
        gated.gate.set()
        writer.close()
    assert not wal.segment_paths()


async def test_the_log_memory_limit_answers_backpressure(chdb_store: ChdbSpanStore,
                                                         tmp_path: Path) -> None:
    gated = GatedStore(chdb_store)
    first = make_table(range(200))
    writer = SpanWriter(gated, wal=WriteAheadLog(tmp_path / "wal"),  # type: ignore[arg-type]
                        insert_interval_s=0.01, max_wal_memory_bytes=first.nbytes + 1,
                        retry_after_s=2)
    try:
        await writer.submit(first)
        assert await asyncio.to_thread(gated.entered.wait, 30)  # the inserter holds it
        with pytest.raises(Backpressure) as info:
            await writer.submit(make_table(range(200, 400)))
        assert info.value.retry_after_s == 2
        gated.gate.set()
        deadline = time.monotonic() + 30
        while writer.wal_pending_bytes and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert await writer.submit(make_table(range(200, 400))) == 200  # room again
    finally:
        gated.gate.set()
        writer.close()
    assert count(chdb_store) == 400


async def test_the_log_disk_limit_answers_backpressure(chdb_store: ChdbSpanStore,
                                                       tmp_path: Path) -> None:
    gated = GatedStore(chdb_store)
    writer = SpanWriter(gated, wal=WriteAheadLog(tmp_path / "wal"),  # type: ignore[arg-type]
                        insert_interval_s=0.01, max_wal_disk_bytes=1)
    try:
        await writer.submit(make_table(range(10)))
        with pytest.raises(Backpressure):
            await writer.submit(make_table(range(10, 20)))
        gated.gate.set()
        assert await asyncio.to_thread(writer.flush, 30)
        assert await writer.submit(make_table(range(10, 20))) == 10
    finally:
        gated.gate.set()
        writer.close()
    stored = chdb_store.query_arrow("SELECT span_id FROM spans ORDER BY span_id")
    assert pc.count(stored.column("span_id")).as_py() == 20


async def test_a_clickhouse_store_gets_no_log(clickhouse_store: SpanStore,
                                              tmp_path: Path) -> None:
    from mentatlab.server import components
    from mentatlab.settings import load_settings

    settings = load_settings(data_dir=tmp_path, wal=True,
                             span_store="clickhouse://default@127.0.0.1:8123/default")
    writer = components.open_writer(settings, clickhouse_store)
    try:
        assert writer.wal is None  # nodes stay stateless: acknowledged after the insert
        assert await writer.submit(make_table(range(10))) == 10
        assert count(clickhouse_store) == 10  # in the store when submit returned
    finally:
        writer.close()
    assert not list(tmp_path.rglob("wal-*.log"))


def test_the_server_logs_only_when_asked(chdb_store: ChdbSpanStore, tmp_path: Path) -> None:
    from mentatlab.server import components
    from mentatlab.settings import load_settings

    for wal, expected in ((False, None), (True, chdb_store.path / "_wal")):
        settings = load_settings(data_dir=tmp_path, wal=wal)
        writer = components.open_writer(settings, chdb_store)
        try:
            assert (writer.wal.directory if writer.wal else None) == expected
        finally:
            writer.close()
