"""The live tail never holds up the commit path (issue 18, item 3).

A real writer over a real store, with the server's :class:`LiveHub` subscribed: the hub's
conversion to rows is made to wait on an event, so "acks are not delayed" is checked by
order of events (every submit returns while the conversion is still stuck), not by timing.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pyarrow as pa
from spanfactory import make_table

from mentatlab.analytics.filters import SpanFilter
from mentatlab.server.live import LiveHub
from mentatlab.storage.base import SpanStore
from mentatlab.storage.writer import SpanWriter


class GatedConvert:
    """A conversion that blocks until ``gate`` is set (a slow live consumer)."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.started = threading.Event()
        self.calls = 0

    def __call__(self, table: pa.Table) -> list[dict[str, Any]]:
        self.calls += 1
        self.started.set()
        assert self.gate.wait(60), "the test never opened the gate"
        rows: list[dict[str, Any]] = table.to_pylist()
        return rows


async def receive(queue: asyncio.Queue[dict[str, Any]], n: int) -> list[str]:
    return [(await asyncio.wait_for(queue.get(), 30))["span_id"] for _ in range(n)]


async def test_slow_live_conversion_does_not_delay_acks(store: SpanStore) -> None:
    convert = GatedConvert()
    hub = LiveHub(convert=convert)
    hub.bind_loop(asyncio.get_running_loop())
    client = hub.connect(SpanFilter())
    writer = SpanWriter(store, max_buffer_spans=10_000, max_batch_spans=10)
    writer.subscribe(hub.publish)
    try:
        for n in range(5):  # each table is its own commit (max_batch_spans=10)
            assert await writer.submit(make_table(range(n * 10, n * 10 + 10))) == 10
        # Every batch was acknowledged although the first conversion has not finished.
        assert convert.started.wait(30)
        assert not convert.gate.is_set() and client.queue.empty()
        assert writer.batches == 5
        convert.gate.set()
        assert await receive(client.queue, 50) == [f"{i:016x}" for i in range(50)]
        assert hub.spans_dropped == 0 and hub.spans_published == 50
    finally:
        convert.gate.set()
        writer.close()
        hub.close()


async def test_a_live_consumer_that_falls_behind_loses_the_oldest_batches(
        store: SpanStore) -> None:
    convert = GatedConvert()
    hub = LiveHub(max_pending_spans=20, convert=convert)
    hub.bind_loop(asyncio.get_running_loop())
    client = hub.connect(SpanFilter())
    writer = SpanWriter(store, max_buffer_spans=10_000, max_batch_spans=10)
    writer.subscribe(hub.publish)
    try:
        await writer.submit(make_table(range(10)))
        assert convert.started.wait(30)  # the converter holds batch 0
        for n in range(1, 5):
            await writer.submit(make_table(range(n * 10, n * 10 + 10)))
        # Batches 1-4 wait (40 spans > 20): 1 and 2 were dropped, never the writer blocked.
        assert hub.spans_dropped == 20 and hub.pending_spans == 20
        convert.gate.set()
        expected = [f"{i:016x}" for i in [*range(10), *range(30, 50)]]
        assert await receive(client.queue, 30) == expected
        assert writer.spans_written == 50
    finally:
        convert.gate.set()
        writer.close()
        hub.close()


async def test_without_clients_nothing_is_queued_or_converted(store: SpanStore) -> None:
    convert = GatedConvert()
    convert.gate.set()
    hub = LiveHub(convert=convert)
    hub.bind_loop(asyncio.get_running_loop())
    writer = SpanWriter(store)
    writer.subscribe(hub.publish)
    try:
        await writer.submit(make_table(range(10)))
        assert hub.pending_spans == 0 and convert.calls == 0
    finally:
        writer.close()
        hub.close()
