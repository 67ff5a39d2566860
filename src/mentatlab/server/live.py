"""WebSocket live tail: committed spans fanned out to clients, filtered on the server.

``?filter=`` is the filter expression of every read (:mod:`mentatlab.analytics.filters`),
with ``min_cost`` allowed; the caller's org/project scope is fixed in it.

Where the spans come from: on the embedded store (one process), the writer hands every
commit to the hub directly. When several nodes share a ClickHouse span store, a node's
writer sees only its own commits, so :class:`StoreFeed` polls the store instead — every
``live_poll_interval_s`` — and delivers each commit once, whichever node wrote it.
Polling ClickHouse (rather than PostgreSQL ``LISTEN/NOTIFY``) needs no second write path
and no payload limit, works with any control store, and also shows spans written by
bulk loads and ``mentatctl migrate``; it costs one indexed query per interval per node.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from mentatlab.analytics.filters import SpanFilter
from mentatlab.analytics.spans import list_commit_stamps_since, list_commits_since
from mentatlab.errors import MentatLabError
from mentatlab.server.auth import authorize
from mentatlab.server.deps import scoped_filter
from mentatlab.server.errors import ApiError, field_errors, status_for
from mentatlab.server.serialize import span_to_json
from mentatlab.server.state import server_state
from mentatlab.storage.base import SpanStore

__all__ = ["LiveHub", "StoreFeed", "pump", "router", "send_refusal"]

_log = logging.getLogger(__name__)
_QUEUE_SPANS = 10_000
"""Spans a slow client may fall behind by before the oldest are dropped."""
_PENDING_SPANS = 50_000
"""Committed spans that may wait for conversion to rows before the oldest are dropped."""


class _Client:
    def __init__(self, flt: SpanFilter) -> None:
        self.filter = flt
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=_QUEUE_SPANS)
        self.num_dropped = 0

    def offer(self, row: dict[str, Any]) -> None:
        if not self.filter.matches(row):
            return
        if self.queue.full():
            self.queue.get_nowait()
            self.num_dropped += 1
        self.queue.put_nowait(row)


class LiveHub:
    """Fans out committed batches to live clients; publish from any thread.

    :meth:`publish` only appends the committed Arrow table (a reference, no copy) to a
    bounded queue and returns: the writer thread that calls it after each commit is never
    held up by the live stream (issue 18). A converter thread owned by the hub, started by
    the first publish while a client is connected, turns each table into rows and hands
    them to the clients on the event loop, in commit order. When more than
    ``max_pending_spans`` spans wait for it (a slow converter or a burst), the oldest
    tables are dropped and counted in :attr:`spans_dropped`
    (``mentatlab_live_dropped_spans_total``); the newest table is always kept.

    Args:
        max_pending_spans: most spans waiting to be converted before the oldest are dropped.
        convert: turns a committed table into one dict per row (default
            ``pa.Table.to_pylist``); tests pass a slow one.
    """

    def __init__(self, max_pending_spans: int = _PENDING_SPANS,
                 convert: Callable[[pa.Table], list[dict[str, Any]]] | None = None) -> None:
        self._clients: set[_Client] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.max_pending_spans = max_pending_spans
        self._convert = convert or pa.Table.to_pylist
        self._pending: collections.deque[pa.Table] = collections.deque()
        self._pending_rows = 0
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closing = False
        self.spans_dropped = 0
        """Spans dropped before conversion because the converter fell behind."""
        self.spans_published = 0
        """Spans handed to the clients (after conversion)."""
        self._tables_queued = 0
        self._tables_done = 0

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Remember the event loop the clients' queues live on."""
        self._loop = loop

    @property
    def num_clients(self) -> int:
        """Connected clients."""
        return len(self._clients)

    @property
    def pending_spans(self) -> int:
        """Spans published and not yet converted."""
        return self._pending_rows

    def publish(self, table: pa.Table) -> None:
        """Queue a committed Arrow batch for every client (thread-safe, never blocks).

        A no-op while no client is connected. Takes a lock for a few appends only; the
        conversion to rows runs on the hub's own thread.
        """
        if not self._clients or self._loop is None or table.num_rows == 0:
            return
        with self._cond:
            if self._closing:
                return
            self._pending.append(table)
            self._pending_rows += table.num_rows
            self._tables_queued += 1
            while self._pending_rows > self.max_pending_spans and len(self._pending) > 1:
                dropped = self._pending.popleft()
                self._pending_rows -= dropped.num_rows
                self.spans_dropped += dropped.num_rows
                self._tables_done += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="mentatlab-live-hub",
                                                daemon=True)
                self._thread.start()
            self._cond.notify()

    async def settled(self, wait_s: float = 30.0) -> bool:
        """Wait until every table published so far reached the clients or was dropped.

        Runs on the hub's event loop; True if it happened within ``wait_s`` s.
        """
        deadline = time.monotonic() + wait_s
        while True:
            with self._cond:
                done = self._tables_done >= self._tables_queued
            if done:
                return True
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.005)

    def close(self, wait_s: float = 5.0) -> None:
        """Stop the converter thread; what waits for it is dropped.

        The hub can be used again (an app whose lifespan runs twice): the next publish
        while a client is connected starts a new thread.
        """
        with self._cond:
            self._closing = True
            self._pending.clear()
            self._pending_rows = 0
            self._tables_done = self._tables_queued
            self._cond.notify_all()
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(wait_s)
        with self._cond:
            self._closing = False

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                if self._closing:
                    return
                table = self._pending.popleft()
                self._pending_rows -= table.num_rows
            try:
                rows = self._convert(table)
            except Exception:  # noqa: BLE001 - the live stream must outlive a bad batch
                _log.exception("converting a committed batch for the live stream failed")
                rows = []
            loop = self._loop
            try:
                if loop is None or loop.is_closed():
                    raise RuntimeError("no loop")
                loop.call_soon_threadsafe(self._deliver, rows)
            except RuntimeError:  # no loop, or it closed meanwhile (shutdown)
                with self._cond:
                    self._tables_done += 1

    def _deliver(self, rows: list[dict[str, Any]]) -> None:
        with self._cond:
            self._tables_done += 1
        self.spans_published += len(rows)
        for client in list(self._clients):
            for row in rows:
                client.offer(row)

    def connect(self, flt: SpanFilter) -> _Client:
        """Register a client with its filter."""
        client = _Client(flt)
        self._clients.add(client)
        return client

    def disconnect(self, client: _Client) -> None:
        """Forget a client."""
        self._clients.discard(client)


class StoreFeed:
    """Feeds a :class:`LiveHub` from the span store, for nodes that share one store.

    Each commit carries one ``ingested_at_ns`` stamp (the committing node's clock).
    Commits of several nodes become visible out of stamp order, so rather than a single
    cursor the feed remembers the stamps it has seen within the last ``lookback_s`` and
    asks for the rows of the others. A commit first visible more than ``lookback_s`` after
    its stamp (nodes' clocks that disagree by more, or an insert slower than that) is not
    shown live; it is stored and queryable as usual. While no client is connected only
    the stamps are read, so a client sees what is committed after it connects.

    Args:
        hub: the hub to publish to.
        store: the shared span store.
        interval_s: seconds between polls.
        lookback_s: the window of stamps remembered, in seconds.
        limit: most rows fetched per poll (the rest come next poll).
    """

    def __init__(self, hub: LiveHub, store: SpanStore, interval_s: float,
                 lookback_s: float = 15.0, limit: int = 50_000) -> None:
        self.hub = hub
        self.store = store
        self.interval_s = interval_s
        self.lookback_ns = int(lookback_s * 1e9)
        self.limit = limit
        self.spans_delivered = 0
        self._seen: set[int] = set()
        self._primed = False

    def poll_once(self) -> int:
        """One poll (blocking): publish the commits not seen yet; return their span count.

        Raises:
            StoreError: the store query failed (the next poll retries).
        """
        floor_ns = time.time_ns() - self.lookback_ns
        self._seen = {stamp for stamp in self._seen if stamp > floor_ns}
        if not self._primed or self.hub.num_clients == 0:
            self._seen.update(list_commit_stamps_since(self.store, floor_ns))
            self._primed = True
            return 0
        table = list_commits_since(self.store, floor_ns, sorted(self._seen), self.limit)
        if table.num_rows == 0:
            return 0
        stamps = table.column("ingested_at_ns")
        if table.num_rows >= self.limit:
            # The last commit may be cut: leave it whole for the next poll when possible.
            earlier = table.filter(pc.less(stamps, pc.max(stamps)))
            if earlier.num_rows:
                table, stamps = earlier, earlier.column("ingested_at_ns")
        self._seen.update(int(v) for v in pc.unique(stamps).to_pylist())
        self.hub.publish(table)
        self.spans_delivered += table.num_rows
        return int(table.num_rows)

    async def run(self) -> None:
        """Poll every ``interval_s`` until cancelled; failures are logged and retried."""
        while True:
            try:
                await asyncio.to_thread(self.poll_once)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 — keep polling; the store may come back
                _log.warning("live feed poll failed; retrying", exc_info=True)
            await asyncio.sleep(self.interval_s)


router = APIRouter(tags=["live"])


async def send_refusal(websocket: WebSocket, exc: MentatLabError) -> None:
    """Send ``exc`` as one JSON message in the REST error shape, then close with 1008."""
    await websocket.send_json({"ok": False, "status": status_for(exc),
                               "error": exc.error if isinstance(exc, ApiError) else str(exc),
                               "errors": [{"field": e.field, "reason": e.reason}
                                          for e in field_errors(exc)]})
    await websocket.close(code=1008)


async def pump(websocket: WebSocket, queue: asyncio.Queue[Any],
               encode: Callable[[Any], Any]) -> None:
    """Send ``encode(item)`` (JSON) for each item of ``queue`` until the client leaves.

    Messages from the client are read and ignored, so a disconnect is seen at once.
    """
    receive = asyncio.ensure_future(websocket.receive())
    try:
        while True:
            get = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({get, receive}, return_when=asyncio.FIRST_COMPLETED)
            if receive in done:
                get.cancel()
                if receive.result().get("type") == "websocket.disconnect":
                    return
                receive = asyncio.ensure_future(websocket.receive())
                continue
            await websocket.send_json(encode(get.result()))
    except WebSocketDisconnect:
        return
    finally:
        receive.cancel()


@router.websocket("/api/v1/live")
async def live_tail(websocket: WebSocket) -> None:
    """Push each newly committed span matching ``?filter=`` as one JSON text message.

    A bad filter, a missing credential or a filter outside the caller's scope closes the
    socket with code 1008 (policy violation) after one JSON error message in the REST
    error shape. Needs ``read_spans``.
    """
    await websocket.accept()
    state = server_state(websocket)
    try:
        caller = await authorize(websocket)
        flt = scoped_filter(caller, websocket.query_params.get("filter"), allow_min_cost=True)
    except MentatLabError as exc:
        await send_refusal(websocket, exc)
        return
    client = state.live.connect(flt)
    state.metrics.live_clients.inc()
    try:
        await websocket.send_json({"ok": True, "subscribed": dict(flt.equals),
                                   "min_cost": None if flt.min_cost is None else str(flt.min_cost)})
        await pump(websocket, client.queue, span_to_json)
    except WebSocketDisconnect:
        pass
    finally:
        state.live.disconnect(client)
        state.metrics.live_clients.dec()
