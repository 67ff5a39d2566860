"""WebSocket live stats: traffic aggregates pushed once per interval, computed on the server.

``WS /api/v1/live/stats?filter=...&interval_s=5`` sends, once per interval, the spans and
LLM requests that ended in it, their errors, spend and latency percentiles
(:func:`mentatlab.analytics.live_stats.list_interval_stats`), after a first message that
carries the last :data:`BACKFILL_INTERVALS` intervals, so a chart opens full. The browser
never derives these numbers from the span feed (which drops spans under load).

An interval is first sent :data:`GRACE_S` after it closes. Spans reach the server after
they end (exporters batch for seconds), so each message also carries, under ``revised``,
the earlier intervals of the last :data:`REVISE_S` seconds whose numbers late spans
changed; a client replaces those points.

Subscribers with the same scoped filter and interval share one computation
(:class:`StatsHub`): one query per interval whatever the number of open dashboards.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from mentatlab.analytics.live_stats import IntervalStats, check_interval_s, list_interval_stats
from mentatlab.errors import MentatLabError, StoreError
from mentatlab.server.auth import authorize
from mentatlab.server.deps import scoped_filter
from mentatlab.server.live import pump, send_refusal
from mentatlab.server.metrics import ServerMetrics
from mentatlab.server.serialize import jsonable
from mentatlab.server.state import server_state
from mentatlab.storage.base import SpanStore

__all__ = ["BACKFILL_INTERVALS", "GRACE_S", "REVISE_S", "StatsHub", "interval_to_json",
           "router"]

_log = logging.getLogger(__name__)
GRACE_S = 2.0
"""Seconds after an interval's end before it is first read and sent."""
REVISE_S = 30
"""Seconds after an interval's end during which late spans revise it (re-read each tick)."""
BACKFILL_INTERVALS = 60
"""Intervals sent in the first message (5 minutes at 5 s, an hour at 60 s)."""
_QUEUE_MESSAGES = 100
"""Messages a slow client may fall behind by before the oldest are dropped."""
_NS = 1_000_000_000

_GroupKey = tuple[tuple[tuple[str, str], ...], int]


def interval_to_json(stats: IntervalStats) -> dict[str, Any]:
    """One interval as the stream sends it: counts, rates per second, percentiles, spend."""
    length_s = stats.interval_s
    return {
        "start": jsonable(stats.start), "end": jsonable(stats.end),
        "num_spans": stats.num_spans, "requests": stats.requests,
        "error_spans": stats.error_spans, "error_rate": stats.error_rate,
        "spans_per_s": stats.num_spans / length_s, "requests_per_s": stats.requests / length_s,
        "latency_p50_ms": stats.latency_p50_ms, "latency_p95_ms": stats.latency_p95_ms,
        "latency_p99_ms": stats.latency_p99_ms,
        "spend": jsonable(stats.spend), "currency": "USD",
    }


@dataclass(eq=False)
class _Group:
    """One filter and interval: its history, its subscribers' queues and its timer task."""

    filters: dict[str, str]
    interval_s: int
    history: collections.OrderedDict[str, dict[str, Any]] = field(
        default_factory=collections.OrderedDict)
    """The last intervals by start (ISO-8601), oldest first."""
    queues: set[asyncio.Queue[dict[str, Any]]] = field(default_factory=set)
    members: int = 0
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    error: MentatLabError | None = None
    task: asyncio.Task[None] | None = None

    def revise(self, interval: dict[str, Any]) -> bool:
        """Replace a held interval; whether its numbers changed."""
        changed = self.history.get(interval["start"], interval) != interval
        if interval["start"] in self.history:
            self.history[interval["start"]] = interval
        return changed

    def publish(self, interval: dict[str, Any], revised: list[dict[str, Any]]) -> None:
        self.history[interval["start"]] = interval
        while len(self.history) > BACKFILL_INTERVALS:
            self.history.popitem(last=False)
        message = {"ok": True, "type": "interval", **interval, "revised": revised}
        for queue in self.queues:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(message)


@dataclass(frozen=True, slots=True)
class Subscription:
    """A subscriber's place in a group: the backfill it starts from and its message queue."""

    group: _Group
    backfill: list[dict[str, Any]]
    """The last intervals (oldest first), as :func:`interval_to_json` objects."""
    queue: asyncio.Queue[dict[str, Any]]
    """Each new interval, as the ``{"ok": true, "type": "interval", ...}`` message."""


class StatsHub:
    """Shares one interval computation between the subscribers of one filter and interval.

    Lives on the server's event loop; the store reads run in worker threads.

    Args:
        metrics: counts queries and subscribers (``mentatlab_live_stats_*``), if given.
        grace_s: seconds after an interval's end before it is read.
    """

    def __init__(self, metrics: ServerMetrics | None = None, grace_s: float = GRACE_S) -> None:
        self.metrics = metrics
        self.grace_ns = int(grace_s * _NS)
        self.num_queries = 0
        """Store reads so far (one per group and interval, plus one backfill per group)."""
        self._groups: dict[_GroupKey, _Group] = {}

    @property
    def num_groups(self) -> int:
        """Distinct (filter, interval) computations running."""
        return len(self._groups)

    async def subscribe(self, store: SpanStore, filters: Mapping[str, str], interval_s: int
                        ) -> Subscription:
        """Join (or start) the group of ``filters`` and ``interval_s``; wait for its backfill.

        Raises:
            StoreError: the backfill read failed (the next subscriber tries again).
        """
        key: _GroupKey = (tuple(sorted(filters.items())), interval_s)
        group = self._groups.get(key)
        if group is None:
            group = _Group(dict(filters), interval_s)
            self._groups[key] = group
            group.task = asyncio.create_task(self._run(group, store))
        group.members += 1
        try:
            await group.ready.wait()
        except BaseException:
            self._leave(key, group)
            raise
        if group.error is not None:
            self._leave(key, group)
            raise group.error
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=_QUEUE_MESSAGES)
        # no await between the snapshot and joining: no interval is missed or sent twice
        backfill = list(group.history.values())
        group.queues.add(queue)
        if self.metrics is not None:
            self.metrics.live_stats_clients.inc()
        return Subscription(group, backfill, queue)

    def unsubscribe(self, subscription: Subscription) -> None:
        """Leave the group; the last one out stops its computation."""
        group = subscription.group
        group.queues.discard(subscription.queue)
        if self.metrics is not None:
            self.metrics.live_stats_clients.dec()
        self._leave((tuple(sorted(group.filters.items())), group.interval_s), group)

    def _leave(self, key: _GroupKey, group: _Group) -> None:
        group.members -= 1
        if group.members <= 0:
            if self._groups.get(key) is group:
                del self._groups[key]
            if group.task is not None:
                group.task.cancel()

    async def _read(self, group: _Group, store: SpanStore, first_ns: int, count: int
                    ) -> list[IntervalStats]:
        self.num_queries += 1
        if self.metrics is not None:
            self.metrics.live_stats_queries.inc()
        return await asyncio.to_thread(list_interval_stats, store, group.filters,
                                       group.interval_s, first_ns, count)

    async def _run(self, group: _Group, store: SpanStore) -> None:
        """Read each interval once closed, and again while late spans may change it.

        New intervals are published with the earlier ones whose numbers changed.
        """
        step_ns = group.interval_s * _NS
        num_revised = min(BACKFILL_INTERVALS - 1, -(-REVISE_S // group.interval_s))
        next_ns = (time.time_ns() - self.grace_ns) // step_ns * step_ns \
            - BACKFILL_INTERVALS * step_ns
        while True:
            closed_ns = (time.time_ns() - self.grace_ns) // step_ns * step_ns
            if closed_ns > next_ns:
                # fallen behind (a slow or failed read): skip what the history cannot hold
                first_ns = max(min(next_ns, closed_ns - (num_revised + 1) * step_ns),
                               closed_ns - BACKFILL_INTERVALS * step_ns)
                try:
                    stats = await self._read(group, store, first_ns,
                                             (closed_ns - first_ns) // step_ns)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 — logged, retried next interval
                    _log.warning("live stats read failed; retrying", exc_info=True)
                    if not group.ready.is_set():
                        group.error = exc if isinstance(exc, MentatLabError) else StoreError(
                            f"Live stats read failed: {type(exc).__name__}")
                        group.ready.set()
                        return
                else:
                    self._publish(group, stats, next_ns)
                    next_ns = closed_ns
                    group.ready.set()
            wake_ns = closed_ns + step_ns + self.grace_ns
            await asyncio.sleep(max(0.0, (wake_ns - time.time_ns()) / _NS))


    @staticmethod
    def _publish(group: _Group, stats: list[IntervalStats], next_ns: int) -> None:
        """Revise the held intervals before ``next_ns``, publish the others (new)."""
        revised: list[dict[str, Any]] = []
        new: list[dict[str, Any]] = []
        for interval in stats:
            data = interval_to_json(interval)
            if int(interval.start.timestamp()) * _NS < next_ns:
                if group.revise(data):
                    revised.append(data)
            else:
                new.append(data)
        for i, data in enumerate(new):
            group.publish(data, revised if i == len(new) - 1 else [])


router = APIRouter(tags=["live"])


@router.websocket("/api/v1/live/stats")
async def live_stats(websocket: WebSocket) -> None:
    """Push the traffic of each interval matching ``?filter=`` as one JSON message.

    ``?interval_s=`` is the interval in whole seconds, 1 to 60 (default 5). The first
    message is ``{"ok": true, "type": "backfill", "subscribed", "interval_s", "grace_s",
    "revise_s", "intervals": [...]}``, then one ``{"ok": true, "type": "interval", ...,
    "revised": [...]}`` per interval (the earlier intervals late spans changed).
    A bad filter or interval, a missing credential or a filter outside the caller's scope
    gets one JSON error message in the REST error shape, then close code 1008. Needs
    ``read_usage``.
    """
    await websocket.accept()
    state = server_state(websocket)
    try:
        caller = await authorize(websocket)
        flt = scoped_filter(caller, websocket.query_params.get("filter"))
        interval_s = check_interval_s(websocket.query_params.get("interval_s"))
    except MentatLabError as exc:
        await send_refusal(websocket, exc)
        return
    if state.live_stats is None:
        state.live_stats = StatsHub(state.metrics)
    hub = state.live_stats
    try:
        subscription = await hub.subscribe(state.store, flt.equals, interval_s)
    except MentatLabError as exc:
        await send_refusal(websocket, exc)
        return
    try:
        await websocket.send_json({
            "ok": True, "type": "backfill", "subscribed": dict(flt.equals),
            "interval_s": interval_s, "grace_s": hub.grace_ns / _NS, "revise_s": REVISE_S,
            "intervals": subscription.backfill})
        await pump(websocket, subscription.queue, lambda message: message)
    except WebSocketDisconnect:
        pass
    finally:
        hub.unsubscribe(subscription)
