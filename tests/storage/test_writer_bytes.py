"""The writer's buffer is bounded by bytes as well as by spans (issue 18: footprint)."""

from __future__ import annotations

import asyncio

import pytest
from spanfactory import GatedStore, make_table

from mentatlab.errors import Backpressure
from mentatlab.storage.base import SpanStore
from mentatlab.storage.writer import SpanWriter, arrow_bytes


async def test_a_full_byte_budget_refuses_what_the_span_budget_would_take(
        store: SpanStore) -> None:
    gated = GatedStore(store)
    one = arrow_bytes(make_table(range(100, 120)))  # bytes of 20 spans
    # room for 10,000 spans but only for two 20-span tables by bytes
    writer = SpanWriter(gated, max_buffer_spans=10_000, max_batch_spans=60,  # type: ignore[arg-type]
                        dedup_cache_spans=0, retry_after_s=2, max_buffer_bytes=2 * one + 1)
    try:
        first = asyncio.create_task(writer.submit(make_table(range(10))))
        await asyncio.to_thread(gated.entered.wait, 5)  # the writer holds batch 1 mid-insert
        waiting = [asyncio.create_task(writer.submit(make_table(range(s, s + 20))))
                   for s in (100, 200)]
        await asyncio.sleep(0.05)
        assert writer.buffer_depth == 40
        with pytest.raises(Backpressure) as info:
            await writer.submit(make_table(range(300, 320)))
        assert info.value.retry_after_s == 2
        gated.gate.set()
        assert await first == 10
        assert await asyncio.gather(*waiting) == [20, 20]
        # the budget is given back once committed: the refused table now fits
        assert await writer.submit(make_table(range(300, 320))) == 20
        assert writer.buffer_depth == 0
    finally:
        gated.gate.set()
        writer.close()


async def test_a_lone_table_larger_than_the_byte_budget_still_goes(store: SpanStore) -> None:
    writer = SpanWriter(store, max_buffer_bytes=1, dedup_cache_spans=0)
    try:
        assert await writer.submit(make_table(range(50))) == 50
    finally:
        writer.close()
