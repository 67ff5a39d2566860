"""The span writer: one thread owns every insert; requests wait on futures (group commit).

Ingest hands an Arrow table to :meth:`SpanWriter.submit` and gets its answer only once
the rows are committed (durable), so a 2xx never acknowledges what is not stored. While
one insert runs, later tables wait in a bounded buffer; the thread then takes all waiting
tables up to ``max_batch_spans`` rows, inserts them as ONE batch, and resolves every
waiting future. When the buffer would exceed ``max_buffer_spans``, ``submit`` raises
:class:`~mentatlab.errors.Backpressure` at once: the queue is never unbounded.

Re-sent ``(trace_id, span_id)`` keys are dropped through a bounded cache of recently
committed keys (``ReplacingMergeTree`` + ``FINAL`` is the backstop for older ones).
Every committed row is stamped with ``ingested_at_ns`` (the commit time, strictly
increasing per batch), which makes the newest version win and lets the live tail poll.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from mentatlab.errors import Backpressure, StoreError, StoreUnavailable
from mentatlab.storage.base import SpanStore

__all__ = ["LATENCY_BUCKETS_S", "LatencyHistogram", "SpanWriter", "Subscriber"]

_log = logging.getLogger(__name__)

LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Upper bounds (s) of the write-latency histogram buckets (plus +Inf)."""

Subscriber = Callable[[pa.Table], None]
"""Called on the writer thread with each committed table (rows after dedup)."""


@dataclass(frozen=True, slots=True)
class LatencyHistogram:
    """Commit latency of batches, in seconds (Prometheus-style, non-cumulative counts)."""

    buckets_s: tuple[float, ...]
    counts: tuple[int, ...]
    """One count per bucket, plus a last one for +Inf."""
    sum_s: float
    count: int


@dataclass(slots=True)
class _Item:
    table: pa.Table
    dedup: bool
    resolve: Callable[[int | None, BaseException | None], None]
    enqueued_s: float = field(default_factory=time.monotonic)
    after_ns: int | None = None
    """Set for a solo commit of new versions: stamp above this, commit alone."""


class _KeyCache:
    """Bounded FIFO set of recently committed span keys (hashes of trace_id + span_id)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._keys: set[int] = set()
        self._order: collections.deque[int] = collections.deque()

    def __contains__(self, key: int) -> bool:
        return key in self._keys

    def add_all(self, keys: list[int]) -> None:
        if self.capacity <= 0:
            return
        for key in keys:
            if key not in self._keys:
                self._keys.add(key)
                self._order.append(key)
        while len(self._order) > self.capacity:
            self._keys.discard(self._order.popleft())

    def __len__(self) -> int:
        return len(self._keys)


def _span_keys(table: pa.Table) -> list[int]:
    # A 64-bit hash per key: a false "seen" needs a collision among ~1e6 keys (p ~ 3e-8).
    joined = pc.binary_join_element_wise(table.column("trace_id"), table.column("span_id"), ":")
    return [hash(k) for k in joined.to_pylist()]


class SpanWriter:
    """Single writer thread with a bounded buffer, group commit and ingest dedup.

    Args:
        store: the span store (its ``append_batch`` is called only from the writer thread).
        max_buffer_spans: most spans waiting for the writer; beyond it submit raises
            Backpressure (a lone table larger than this is accepted when nothing waits).
        max_batch_spans: most spans committed in one insert (a bigger lone table goes alone).
        dedup_cache_spans: recent keys remembered to drop re-sent spans; 0 disables.
        retry_after_s: the delay (s) carried by Backpressure.
        max_buffer_bytes: most Arrow bytes (``Table.nbytes``) waiting for the writer, the
            bound that holds memory whatever the span size; beyond it submit raises
            Backpressure like ``max_buffer_spans``. 0: no byte bound.

    Attributes (read from any thread, for metrics): ``spans_written``, ``spans_deduplicated``,
    ``batches``, ``failed_batches``, ``buffer_depth``, ``last_write_latency_s``.
    """

    def __init__(self, store: SpanStore, max_buffer_spans: int = 200_000,
                 max_batch_spans: int = 50_000, dedup_cache_spans: int = 1_000_000,
                 retry_after_s: int = 1, max_buffer_bytes: int = 0) -> None:
        self.store = store
        self.max_buffer_spans = max_buffer_spans
        self.max_buffer_bytes = max_buffer_bytes
        self._buffered_bytes = 0
        self.max_batch_spans = max_batch_spans
        self.retry_after_s = retry_after_s
        self.spans_written = 0
        self.spans_deduplicated = 0
        self.batches = 0
        self.failed_batches = 0
        self.subscriber_errors = 0
        self.last_write_latency_s = 0.0
        self._hist_counts = [0] * (len(LATENCY_BUCKETS_S) + 1)
        self._hist_sum_s = 0.0
        self._cache = _KeyCache(dedup_cache_spans)
        self._pending: collections.deque[_Item] = collections.deque()
        self._depth = 0
        self._cond = threading.Condition()
        self._closing = False
        self._last_ingested_ns = 0
        self._committed_ns = 0
        self._inflight_ns = 0
        self._busy = False
        self._subscribers: list[Subscriber] = []
        self._thread = threading.Thread(target=self._run, name="mentatlab-span-writer",
                                        daemon=True)
        self._thread.start()

    # --- public API ------------------------------------------------------------------

    @property
    def buffer_depth(self) -> int:
        """Spans waiting for the writer (not yet being inserted)."""
        return self._depth

    def is_alive(self) -> bool:
        """Whether the writer thread runs (False once closed or crashed)."""
        return self._thread.is_alive()

    @property
    def last_committed_ns(self) -> int:
        """Stamp (``ingested_at_ns``) of the newest committed batch; 0 before the first."""
        return self._committed_ns

    def committed_through_ns(self) -> int:
        """A stamp up to which every commit of this writer is visible in the store (ns).

        While a batch is being inserted, just below its stamp; when idle, now (every
        later commit is stamped above it). A watermark for readers of new commits.
        """
        with self._cond:
            if self._busy:
                return self._inflight_ns - 1
            return max(self._committed_ns, time.time_ns() - 1)

    async def submit(self, table: pa.Table, *, dedup: bool = True) -> int:
        """Queue a table of N spans (``SPAN_SCHEMA``); return once committed.

        Args:
            table: Arrow table with schema ``SPAN_SCHEMA``.
            dedup: drop rows whose ``(trace_id, span_id)`` was recently committed or repeats
                within this batch; False writes every row (repricing writes new versions).

        Returns:
            Rows written after dedup.

        Raises:
            Backpressure: the buffer would exceed ``max_buffer_spans``; nothing was queued.
            StoreUnavailable: the writer is closed or the store cannot take the write.
            StoreError: the insert failed.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()

        def resolve(rows: int | None, error: BaseException | None) -> None:
            loop.call_soon_threadsafe(_settle, future, rows, error)

        self._enqueue(_Item(table, dedup, resolve), wait_s=None)
        return await future

    def write(self, table: pa.Table, *, dedup: bool = True, wait_s: float | None = 60.0) -> int:
        """Synchronous :meth:`submit` for CLI and tools: waits for buffer room, then commit.

        Args:
            table: Arrow table with schema ``SPAN_SCHEMA``.
            dedup: as in :meth:`submit`.
            wait_s: longest wait for buffer room, in s (None waits forever).

        Returns:
            Rows written after dedup.

        Raises:
            Backpressure: no room within ``wait_s``.
            StoreUnavailable: the writer is closed.
            StoreError: the insert failed.
        """
        return self._wait_for(table, dedup, None, wait_s)

    def write_versions(self, table: pa.Table, after_ns: int, wait_s: float | None = 60.0) -> int:
        """Commit new versions of stored spans, alone, stamped above ``after_ns``.

        For jobs that rewrite rows (the attribution resolver): never deduplicated, never
        merged with other requests into one commit, so the commit's stamp is theirs alone.

        Args:
            table: Arrow table with schema ``SPAN_SCHEMA``.
            after_ns: the newest ``ingested_at_ns`` among the versions being replaced.
            wait_s: longest wait for buffer room, in s (None waits forever).

        Returns:
            The stamp (``ingested_at_ns``) of the commit.

        Raises:
            Backpressure: no room within ``wait_s``.
            StoreUnavailable: the writer is closed.
            StoreError: the insert failed.
        """
        return self._wait_for(table, False, after_ns, wait_s)

    def _wait_for(self, table: pa.Table, dedup: bool, after_ns: int | None,
                  wait_s: float | None) -> int:
        """Queue an item and block until it is committed; its rows, or its stamp."""
        future: concurrent.futures.Future[int] = concurrent.futures.Future()

        def resolve(value: int | None, error: BaseException | None) -> None:
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(value or 0)

        # _enqueue: None = never wait (async path), < 0 = wait without a deadline.
        self._enqueue(_Item(table, dedup, resolve, after_ns=after_ns),
                      wait_s=wait_s if wait_s is not None else -1)
        return future.result()

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(table)`` on the writer thread after each commit.

        The table holds the rows just committed (after dedup, with ``ingested_at_ns``).
        A callback must be quick and must not block (hand off with
        ``loop.call_soon_threadsafe``); its exceptions are logged and counted.

        Returns:
            A function that removes the subscription.
        """
        with self._cond:
            self._subscribers = [*self._subscribers, callback]

        def unsubscribe() -> None:
            with self._cond:
                self._subscribers = [s for s in self._subscribers if s is not callback]

        return unsubscribe

    def latency_histogram(self) -> LatencyHistogram:
        """Snapshot of the batch commit latency histogram."""
        with self._cond:
            return LatencyHistogram(LATENCY_BUCKETS_S, tuple(self._hist_counts),
                                    self._hist_sum_s, sum(self._hist_counts))

    def flush(self, wait_s: float | None = None) -> bool:
        """Block until everything queued so far is committed; True if it was in time."""
        deadline = None if wait_s is None else time.monotonic() + wait_s
        with self._cond:
            while self._pending or self._busy:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def close(self, wait_s: float | None = 30.0) -> None:
        """Commit what is queued, then stop the thread; later submits raise StoreUnavailable.

        Does not close the store (its owner does).
        """
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(wait_s)

    # --- internals -------------------------------------------------------------------

    def _full(self, rows: int, nbytes: int) -> bool:
        return self._depth > 0 and (
            self._depth + rows > self.max_buffer_spans
            or 0 < self.max_buffer_bytes < self._buffered_bytes + nbytes)

    def _enqueue(self, item: _Item, wait_s: float | None) -> None:
        rows = item.table.num_rows
        nbytes = item.table.nbytes
        with self._cond:
            if self._closing:
                raise StoreUnavailable("The span writer is closed")
            deadline = None if wait_s is None or wait_s < 0 else time.monotonic() + wait_s
            while self._full(rows, nbytes):
                if wait_s is None:
                    raise Backpressure(self.retry_after_s)
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise Backpressure(self.retry_after_s)
                self._cond.wait(remaining)
                if self._closing:
                    raise StoreUnavailable("The span writer is closed")
            self._pending.append(item)
            self._depth += rows
            self._buffered_bytes += nbytes
            self._cond.notify_all()

    def _take_batch(self) -> list[_Item] | None:
        with self._cond:
            while not self._pending and not self._closing:
                self._cond.wait()
            if not self._pending:
                return None
            items = [self._pending.popleft()]
            rows = items[0].table.num_rows
            while (items[0].after_ns is None and self._pending
                   and self._pending[0].after_ns is None
                   and rows + self._pending[0].table.num_rows <= self.max_batch_spans):
                item = self._pending.popleft()
                rows += item.table.num_rows
                items.append(item)
            self._depth -= rows
            self._buffered_bytes -= sum(i.table.nbytes for i in items)
            self._busy = True
            # The stamp is chosen here, under the lock, so committed_through_ns never
            # reports a stamp that an insert in flight is about to use.
            self._inflight_ns = max(time.time_ns(), self._last_ingested_ns + 1,
                                    (items[0].after_ns or 0) + 1)
            self._last_ingested_ns = self._inflight_ns
            self._cond.notify_all()
            return items

    def _run(self) -> None:
        while True:
            items = self._take_batch()
            if items is None:
                return
            try:
                self._commit(items)
            except BaseException as exc:  # noqa: BLE001 - every waiter must get an answer
                _log.exception("span writer batch of %s tables failed", len(items))
                self.failed_batches += 1
                error = exc if isinstance(exc, StoreError) else StoreError(
                    f"Span insert failed: {exc}")
                for item in items:
                    item.resolve(None, error)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _select_rows(self, items: list[_Item]) -> tuple[list[pa.Table], list[int], list[int]]:
        """Dedup: the tables to insert, rows kept per item, and the keys to remember."""
        tables: list[pa.Table] = []
        kept: list[int] = []
        new_keys: list[int] = []
        seen: set[int] = set()
        for item in items:
            if not item.dedup or item.table.num_rows == 0:
                tables.append(item.table)
                kept.append(item.table.num_rows)
                continue
            keys = _span_keys(item.table)
            mask = []
            for key in keys:
                fresh = key not in seen and key not in self._cache
                mask.append(fresh)
                if fresh:
                    seen.add(key)
                    new_keys.append(key)
            table = item.table if all(mask) else item.table.filter(pa.array(mask, pa.bool_()))
            tables.append(table)
            kept.append(table.num_rows)
        return tables, kept, new_keys

    def _stamp(self, table: pa.Table) -> pa.Table:
        index = table.schema.get_field_index("ingested_at_ns")
        column = pa.repeat(pa.scalar(self._inflight_ns, pa.int64()), table.num_rows)
        return table.set_column(index, table.schema.field(index), column)

    def _commit(self, items: list[_Item]) -> None:
        tables, kept, new_keys = self._select_rows(items)
        nonempty = [t for t in tables if t.num_rows]
        batch: pa.Table | None = None
        started_s = time.monotonic()
        if nonempty:
            batch = self._stamp(pa.concat_tables(nonempty).combine_chunks())
            self.store.append_batch(batch)
            self._cache.add_all(new_keys)
        latency_s = time.monotonic() - started_s
        total = sum(kept)
        with self._cond:
            self._committed_ns = self._inflight_ns
            self.spans_written += total
            self.spans_deduplicated += sum(i.table.num_rows for i in items) - total
            self.batches += 1
            self.last_write_latency_s = latency_s
            self._hist_counts[bisect.bisect_left(LATENCY_BUCKETS_S, latency_s)] += 1
            self._hist_sum_s += latency_s
            subscribers = self._subscribers
        if batch is not None:
            # Subscribers run before the waiters are answered: a client that saw its 2xx
            # can count on the live stream having been handed its spans.
            for callback in subscribers:
                try:
                    callback(batch)
                except Exception:  # noqa: BLE001 - a subscriber never breaks the writer
                    self.subscriber_errors += 1
                    _log.exception("span writer subscriber %r failed", callback)
        for item, rows in zip(items, kept, strict=True):
            item.resolve(self._inflight_ns if item.after_ns is not None else rows, None)


def _settle(future: asyncio.Future[Any], rows: int | None, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(rows or 0)
