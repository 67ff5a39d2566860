"""The live stream's store feed: commits of any node, each delivered once, through a real
ClickHouse HTTP endpoint (clickhouse-connect over the wire)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from mentatlab.analytics.filters import SpanFilter
from mentatlab.model.schema import spans_to_arrow
from mentatlab.model.span import CanonicalSpan, SpanStatus
from mentatlab.server.live import LiveHub, StoreFeed
from mentatlab.storage.clickhouse_store import ClickHouseSpanStore

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _commit(store: ClickHouseSpanStore, first: int, count: int, stamp_ns: int,
            project: str = "p1") -> None:
    """A commit as a node's writer makes it: every row carries one ingested_at_ns."""
    spans = [CanonicalSpan(
        trace_id=f"{i // 4:032x}", span_id=f"{i:016x}", parent_span_id="", name=f"s{i}",
        kind="client", start_time=T0 + timedelta(seconds=i),
        end_time=T0 + timedelta(seconds=i, milliseconds=5), duration_ms=5.0,
        status=SpanStatus.OK, org_id="org1", project_id=project, request_model="gpt-4o",
        total_cost=Decimal("0.001"), ingested_at_ns=stamp_ns)
        for i in range(first, first + count)]
    store.append_batch(spans_to_arrow(spans))


async def _ids(hub: LiveHub, hub_client: object) -> list[str]:
    assert await hub.settled()  # the hub converts on its own thread (issue 18)
    queue: asyncio.Queue[dict[str, object]] = hub_client.queue  # type: ignore[attr-defined]
    out = []
    while not queue.empty():
        out.append(str(queue.get_nowait()["span_id"]))
    return out


async def test_feed_delivers_commits_of_every_node_once_in_any_visibility_order(
        clickhouse_store: ClickHouseSpanStore) -> None:
    hub = LiveHub()
    hub.bind_loop(asyncio.get_running_loop())
    feed = StoreFeed(hub, clickhouse_store, interval_s=0.1, lookback_s=15.0, limit=1000)
    now = time.time_ns()
    _commit(clickhouse_store, 0, 3, now - 1_000_000_000)  # committed before anyone watched
    assert feed.poll_once() == 0  # primes: what is already there is not replayed
    client = hub.connect(SpanFilter())
    assert feed.poll_once() == 0
    _commit(clickhouse_store, 10, 2, now)  # node A
    assert feed.poll_once() == 2
    # Node B's commit is stamped 2 s earlier (its clock, a slow insert) but becomes
    # visible after A's: a single max-stamp cursor would skip it; the feed does not.
    _commit(clickhouse_store, 20, 3, now - 2_000_000_000)
    assert feed.poll_once() == 3
    assert feed.poll_once() == 0  # nothing twice
    assert sorted(await _ids(hub, client)) == sorted(f"{i:016x}" for i in (10, 11, 20, 21, 22))
    # A commit first visible more than the lookback after its stamp is not shown live
    # (documented); it is stored all the same.
    _commit(clickhouse_store, 30, 1, now - 60_000_000_000)
    assert feed.poll_once() == 0
    total = clickhouse_store.query_arrow("SELECT count() AS n FROM spans").column("n")[0]
    assert total.as_py() == 9


async def test_feed_respects_the_limit_without_splitting_a_commit(
        clickhouse_store: ClickHouseSpanStore) -> None:
    hub = LiveHub()
    hub.bind_loop(asyncio.get_running_loop())
    feed = StoreFeed(hub, clickhouse_store, interval_s=0.1, limit=5)
    feed.poll_once()
    client = hub.connect(SpanFilter({"project_id": "p2"}))
    now = time.time_ns()
    _commit(clickhouse_store, 0, 4, now - 3, project="p2")
    _commit(clickhouse_store, 4, 4, now - 2, project="p2")
    _commit(clickhouse_store, 8, 4, now - 1, project="p1")
    # 12 rows, limit 5: the first poll returns the first commit whole and not a piece of
    # the second; the next polls bring the rest, commit by commit.
    assert feed.poll_once() == 4
    assert feed.poll_once() == 4
    assert feed.poll_once() == 4
    assert feed.poll_once() == 0
    assert len(await _ids(hub, client)) == 8  # the client's filter drops project p1


async def test_no_rows_are_read_while_nobody_watches(
        clickhouse_store: ClickHouseSpanStore) -> None:
    hub = LiveHub()
    hub.bind_loop(asyncio.get_running_loop())
    feed = StoreFeed(hub, clickhouse_store, interval_s=0.1)
    feed.poll_once()
    _commit(clickhouse_store, 0, 5, time.time_ns())
    assert feed.poll_once() == 0  # only stamps were read
    client = hub.connect(SpanFilter())
    assert feed.poll_once() == 0  # and those commits are not replayed to a new client
    _commit(clickhouse_store, 5, 1, time.time_ns())
    assert feed.poll_once() == 1
    assert await _ids(hub, client) == [f"{5:016x}"]
    assert feed.spans_delivered == 1
