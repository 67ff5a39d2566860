"""Hourly rollups on both backends: answers identical to the raw query through every change."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

from dataset import T0, build_spans
from rollup_scenario import run

from mentatlab.analytics import QueryParams, TimeRange, cost_by
from mentatlab.model.schema import spans_to_arrow
from mentatlab.storage.base import SpanStore
from mentatlab.storage.rollup import plan_rollup, rollup_loop


def test_rollup_answers_equal_raw_through_resend_reprice_and_late_spans(store: SpanStore
                                                                        ) -> None:
    run(store)


async def test_rollup_loop_builds_in_the_background_and_stops_on_cancel(store: SpanStore
                                                                         ) -> None:
    store.append_batch(spans_to_arrow(build_spans()))  # ingested_at_ns=1: long ago
    time_range = TimeRange(T0, T0 + timedelta(days=3))
    task = asyncio.create_task(rollup_loop(store, 0.05))
    for _ in range(200):
        if plan_rollup(store, time_range.start, time_range.end) is not None:
            break
        await asyncio.sleep(0.05)
    plan = plan_rollup(store, time_range.start, time_range.end)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert plan is not None and plan.rollup == ((time_range.start, time_range.end),)
    params = QueryParams(time_range, group_by=["model"])
    assert cost_by(store, params) == cost_by(store, params, use_rollups=False)
    await rollup_loop(store, 0)  # interval 0: the job is off and returns at once
