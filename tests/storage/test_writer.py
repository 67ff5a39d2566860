from __future__ import annotations

import asyncio
from decimal import Decimal

import pyarrow as pa
import pytest
from spanfactory import GatedStore, make_table

from mentatlab.errors import Backpressure, StoreError, StoreUnavailable
from mentatlab.storage.base import SpanStore
from mentatlab.storage.writer import SpanWriter


def count(store: SpanStore, final: bool = False) -> int:
    sql = "SELECT count() AS n FROM spans" + (" FINAL" if final else "")
    return int(store.query_arrow(sql).column("n")[0].as_py())


async def test_submit_commits_before_returning(store: SpanStore) -> None:
    writer = SpanWriter(store, max_buffer_spans=1000, max_batch_spans=500, dedup_cache_spans=100)
    try:
        assert await writer.submit(make_table(range(50))) == 50
        assert count(store) == 50  # visible the moment submit returned
        assert writer.spans_written == 50 and writer.batches == 1
        assert writer.latency_histogram().count == 1
        assert writer.last_write_latency_s > 0
    finally:
        writer.close()


async def test_resent_spans_are_dropped_at_ingest(store: SpanStore) -> None:
    writer = SpanWriter(store, max_buffer_spans=1000, max_batch_spans=500, dedup_cache_spans=100)
    try:
        assert await writer.submit(make_table(range(10))) == 10
        assert await writer.submit(make_table(range(5, 15))) == 5  # 5..9 were re-sent
        dup_in_batch = pa.concat_tables([make_table(range(20, 23)), make_table(range(20, 23))])
        assert await writer.submit(dup_in_batch) == 3
        assert count(store) == 18
        assert writer.spans_deduplicated == 8
        # dedup=False writes a new version (repricing); FINAL still counts it once.
        assert await writer.submit(make_table(range(3), total_cost=Decimal(1)), dedup=False) == 3
        assert count(store) == 21 and count(store, final=True) == 18
        t = store.query_arrow(
            "SELECT sum(total_cost) AS c FROM spans FINAL WHERE span_id <= {s:String}",
            {"s": f"{2:016x}"})
        assert t.column("c").to_pylist() == [Decimal(3)]
    finally:
        writer.close()


async def test_dedup_cache_is_bounded_and_final_is_the_backstop(store: SpanStore) -> None:
    writer = SpanWriter(store, max_buffer_spans=1000, max_batch_spans=500, dedup_cache_spans=5)
    try:
        await writer.submit(make_table(range(20)))
        assert len(writer._cache) == 5
        assert await writer.submit(make_table(range(20))) == 15  # only the last 5 remembered
        assert count(store) == 35 and count(store, final=True) == 20
    finally:
        writer.close()


async def test_group_commit_and_backpressure(store: SpanStore) -> None:
    gated = GatedStore(store)
    writer = SpanWriter(gated, max_buffer_spans=100, max_batch_spans=60, dedup_cache_spans=0,  # type: ignore[arg-type]
                        retry_after_s=3)
    try:
        first = asyncio.create_task(writer.submit(make_table(range(10))))
        await asyncio.to_thread(gated.entered.wait, 5)  # the writer holds batch 1 mid-insert
        waiting = [asyncio.create_task(writer.submit(make_table(range(s, s + 20))))
                   for s in range(100, 200, 20)]
        await asyncio.sleep(0.05)
        assert writer.buffer_depth == 100
        with pytest.raises(Backpressure) as info:
            await writer.submit(make_table(range(500, 501)))
        assert info.value.retry_after_s == 3
        gated.gate.set()
        assert await first == 10
        assert await asyncio.gather(*waiting) == [20] * 5
        # 1 insert for the first table, then the 5 waiting ones in 2 group commits (60 + 40).
        assert gated.batch_rows == [10, 60, 40]
        assert writer.batches == 3 and writer.buffer_depth == 0
        assert count(store) == 110
    finally:
        gated.gate.set()
        writer.close()


async def test_subscribers_get_committed_rows_with_ingest_stamp(store: SpanStore) -> None:
    writer = SpanWriter(store, max_buffer_spans=1000, max_batch_spans=500, dedup_cache_spans=100)
    got: list[pa.Table] = []
    unsubscribe = writer.subscribe(got.append)
    writer.subscribe(lambda t: 1 / 0)  # a failing subscriber never breaks the writer
    try:
        await writer.submit(make_table(range(5)))
        await writer.submit(make_table(range(3)))  # all re-sent: nothing committed, no callback
        unsubscribe()
        await writer.submit(make_table(range(10, 12)))
        assert [t.num_rows for t in got] == [5]
        stamps = got[0].column("ingested_at_ns").to_pylist()
        assert len(set(stamps)) == 1 and stamps[0] > 0
        assert writer.subscriber_errors == 2
        stored = store.query_arrow(
            "SELECT DISTINCT ingested_at_ns AS v FROM spans WHERE span_id < {s:String}",
            {"s": f"{5:016x}"})
        assert stored.column("v").to_pylist() == stamps[:1]
    finally:
        writer.close()


async def test_failed_insert_reaches_every_waiter_and_writer_survives(store: SpanStore) -> None:
    writer = SpanWriter(store, max_buffer_spans=1000, max_batch_spans=500, dedup_cache_spans=100)
    try:
        bad = make_table(range(3)).drop_columns(["attributes"])
        with pytest.raises(StoreError):
            await writer.submit(bad)
        assert writer.failed_batches == 1
        assert await writer.submit(make_table(range(3))) == 3  # keys of the failed batch not cached
    finally:
        writer.close()


def test_sync_write_and_close(store: SpanStore) -> None:
    writer = SpanWriter(store, max_buffer_spans=1000, max_batch_spans=500, dedup_cache_spans=100)
    assert writer.write(make_table(range(7))) == 7
    writer.close()
    with pytest.raises(StoreUnavailable):
        writer.write(make_table(range(8, 9)))
    assert count(store) == 7
