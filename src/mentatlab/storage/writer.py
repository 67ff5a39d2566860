"""The span writer: one thread owns every insert; requests wait on futures (group commit).

Ingest hands an Arrow table to :meth:`SpanWriter.submit` and gets its answer only once
the rows are committed (durable), so a 2xx never acknowledges what is not stored. While
one insert runs, later tables wait in a bounded buffer; the thread then takes all waiting
tables up to ``max_batch_spans`` rows, inserts them as ONE batch, and resolves every
waiting future. When the buffer would exceed ``max_buffer_spans``, ``submit`` raises
:class:`~mentatlab.errors.Backpressure` at once: the queue is never unbounded.

With a write-ahead log (``wal``, embedded store only: decision 0022), ingest requests
(:meth:`SpanWriter.submit`) are answered once their group commit is appended to the log,
and a second thread, the inserter, inserts the logged batches into the store in large
batches (every ``insert_interval_s`` or ``insert_bytes``), then calls the subscribers and
trims the log. :meth:`SpanWriter.write` and :meth:`SpanWriter.write_versions` (jobs, CLI)
still return only once inserted. The log and the batches waiting for the inserter are
bounded (``max_wal_disk_bytes``, ``max_wal_memory_bytes``): beyond them submit raises
:class:`~mentatlab.errors.Backpressure`.

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
from mentatlab.model.schema import SPAN_SCHEMA
from mentatlab.storage.base import SpanStore
from mentatlab.storage.wal import WriteAheadLog

__all__ = ["LATENCY_BUCKETS_S", "InsertHealth", "LatencyHistogram", "SpanWriter", "Subscriber",
           "arrow_bytes"]

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


@dataclass(frozen=True, slots=True)
class InsertHealth:
    """How the write-ahead log's inserter fares: a reading for readiness checks."""

    num_consecutive_failures: int
    """Failed inserts since the last one that succeeded (each is retried)."""
    last_error: str
    """Message of the newest of those failures; ``""`` when there is none."""
    oldest_pending_s: float
    """How long the oldest logged batch not yet inserted has waited, in s; 0 when none."""
    pending_bytes: int
    """Arrow bytes logged and not yet inserted."""


@dataclass(slots=True)
class _Item:
    table: pa.Table
    dedup: bool
    resolve: Callable[[int | None, BaseException | None], None]
    enqueued_s: float = field(default_factory=time.monotonic)
    after_ns: int | None = None
    """Set for a solo commit of new versions: stamp above this, commit alone."""
    ack_on_log: bool = False
    """With a write-ahead log: answer once logged (ingest), not once inserted."""
    nbytes: int = field(init=False)
    """The table's :func:`arrow_bytes`, read once (the buffer checks need it several times)."""

    def __post_init__(self) -> None:
        self.nbytes = arrow_bytes(self.table)


@dataclass(slots=True)
class _Logged:
    """A group commit appended to the log, waiting for the inserter."""

    stamp_ns: int
    table: pa.Table
    waiters: list[tuple[_Item, int]]
    """Items answered only once inserted, with their rows kept."""
    logged_s: float = field(default_factory=time.monotonic)
    nbytes: int = field(init=False)
    """The table's :func:`arrow_bytes`, read once."""

    def __post_init__(self) -> None:
        self.nbytes = arrow_bytes(self.table)


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


def arrow_bytes(table: pa.Table) -> int:
    """Bytes of the Arrow buffers ``table`` holds, each counted once, in bytes.

    What the byte limits (``max_buffer_bytes``, ``max_wal_memory_bytes``, ``insert_bytes``)
    count. ``Table.get_total_buffer_size`` rather than ``Table.nbytes``: a sliced buffer
    counts whole (it is what the table keeps alive), and it costs ~6 µs for a 500-span
    table against ~0.26 ms for ``nbytes``, which works out the bytes each slice uses.
    """
    return int(table.get_total_buffer_size())


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
        wal: a write-ahead log (already replayed): ingest is acknowledged once logged and
            a background thread inserts behind it; None inserts before acknowledging.
        insert_interval_s: with a log, the longest a logged batch waits for the insert, s.
        insert_bytes: with a log, insert as soon as this many bytes wait (Arrow bytes).
        max_wal_memory_bytes: with a log, most Arrow bytes logged and not yet inserted;
            beyond it submit raises Backpressure.
        max_wal_disk_bytes: with a log, most bytes of log segments on disk; beyond it
            submit raises Backpressure.
        start_after_ns: every commit is stamped above this (the newest replayed stamp).
        max_buffer_bytes: most Arrow bytes (:func:`arrow_bytes`) waiting for the writer, the
            bound that holds memory whatever the span size; beyond it submit raises
            Backpressure like ``max_buffer_spans``. 0: no byte bound.

    Attributes (read from any thread, for metrics): ``spans_written``, ``spans_deduplicated``,
    ``batches``, ``failed_batches``, ``buffer_depth``, ``last_write_latency_s``.
    """

    def __init__(self, store: SpanStore, max_buffer_spans: int = 200_000,
                 max_batch_spans: int = 50_000, dedup_cache_spans: int = 1_000_000,
                 retry_after_s: int = 1, max_buffer_bytes: int = 0, *,
                 wal: WriteAheadLog | None = None,
                 insert_interval_s: float = 0.5, insert_bytes: int = 32 * 1024 * 1024,
                 max_wal_memory_bytes: int = 256 * 1024 * 1024,
                 max_wal_disk_bytes: int = 1024 * 1024 * 1024,
                 start_after_ns: int = 0) -> None:
        self.store = store
        self.wal = wal
        self.insert_interval_s = insert_interval_s
        self.insert_bytes = insert_bytes
        self.max_wal_memory_bytes = max_wal_memory_bytes
        self.max_wal_disk_bytes = max_wal_disk_bytes
        self.insert_failures = 0
        """Failed inserts of logged batches (each is retried until it succeeds)."""
        self._consecutive_failures = 0
        self._last_insert_error = ""
        self._inserting_since_s: float | None = None
        """Monotonic time the batches being inserted now were logged (the oldest)."""
        self._logged: collections.deque[_Logged] = collections.deque()
        self._logged_bytes = 0
        self._uninserted: collections.deque[int] = collections.deque()
        """Stamps of group commits taken (with a log) and not yet inserted, in order."""
        self._hurry = False
        self._inserter_stop = False
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
        self._last_ingested_ns = start_after_ns
        self._committed_ns = 0
        self._acked_ns = 0
        self._inflight_ns = 0
        self._busy = False
        self._subscribers: list[Subscriber] = []
        self._thread = threading.Thread(target=self._run, name="mentatlab-span-writer",
                                        daemon=True)
        self._thread.start()
        self._inserter: threading.Thread | None = None
        if wal is not None:
            self._inserter = threading.Thread(target=self._insert_loop,
                                              name="mentatlab-span-inserter", daemon=True)
            self._inserter.start()

    # --- public API ------------------------------------------------------------------

    @property
    def buffer_depth(self) -> int:
        """Spans waiting for the writer (not yet being inserted)."""
        return self._depth

    @property
    def buffer_bytes(self) -> int:
        """Arrow bytes (:func:`arrow_bytes`) of the spans waiting for the writer."""
        return self._buffered_bytes

    def is_alive(self) -> bool:
        """Whether the writer thread (and the inserter, with a log) runs."""
        return self._thread.is_alive() and (self._inserter is None
                                            or self._inserter.is_alive())

    @property
    def wal_pending_bytes(self) -> int:
        """Arrow bytes logged and not yet inserted (0 without a log)."""
        return self._logged_bytes

    def insert_health(self) -> InsertHealth | None:
        """The inserter's reading (failures in a row, oldest wait); None without a log."""
        if self.wal is None:
            return None
        with self._cond:
            since = [s for s in (self._inserting_since_s,
                                 self._logged[0].logged_s if self._logged else None)
                     if s is not None]
            return InsertHealth(
                num_consecutive_failures=self._consecutive_failures,
                last_error=self._last_insert_error,
                oldest_pending_s=time.monotonic() - min(since) if since else 0.0,
                pending_bytes=self._logged_bytes)

    @property
    def last_committed_ns(self) -> int:
        """Stamp (``ingested_at_ns``) of the newest acknowledged batch; 0 before the first.

        With a write-ahead log, the newest logged batch, which may not be inserted yet: the
        read barrier (server/resolving.py) waits until it is, so a read after a 2xx still
        sees its spans.
        """
        return self._acked_ns if self.wal is not None else self._committed_ns

    def hurry(self) -> None:
        """Ask the inserter to insert what is logged now (a read is waiting for it).

        A no-op without a log.
        """
        if self.wal is None:
            return
        with self._cond:
            self._hurry = True
            self._cond.notify_all()

    def committed_through_ns(self) -> int:
        """A stamp up to which every commit of this writer is visible in the store (ns).

        While a batch is being inserted, just below its stamp; when idle, now (every
        later commit is stamped above it). A watermark for readers of new commits.
        """
        with self._cond:
            if self._uninserted:
                return self._uninserted[0] - 1
            if self._busy:
                return self._inflight_ns - 1
            return max(self._committed_ns, time.time_ns() - 1)

    async def submit(self, table: pa.Table, *, dedup: bool = True) -> int:
        """Queue a table of N spans (``SPAN_SCHEMA``); return once committed.

        Committed means inserted into the store, or, with a write-ahead log, appended to
        the log (the insert follows within ``insert_interval_s``).

        Args:
            table: Arrow table with schema ``SPAN_SCHEMA``.
            dedup: drop rows whose ``(trace_id, span_id)`` was recently committed or repeats
                within this batch; False writes every row (repricing writes new versions).

        Returns:
            Rows written after dedup.

        Raises:
            Backpressure: the buffer would exceed ``max_buffer_spans``, or the log its
                memory or disk limit; nothing was queued.
            StoreUnavailable: the writer is closed or the store cannot take the write.
            StoreError: the insert (or the log append) failed.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()

        def resolve(rows: int | None, error: BaseException | None) -> None:
            loop.call_soon_threadsafe(_settle, future, rows, error)

        self._enqueue(_Item(table, dedup, resolve, ack_on_log=True), wait_s=None)
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
            if future.done():
                return
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
        A callback must be quick and must not block: it runs before the commit's waiters
        are answered, so hand the table (a reference) to a queue or
        ``loop.call_soon_threadsafe`` and do the work elsewhere, as the live hub does. Its
        exceptions are logged and counted.

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
        """Block until everything queued so far is inserted; True if it was in time.

        With a write-ahead log, the log files holding only inserted batches are deleted
        before it returns (an erasure flushes first, so no log file keeps erased spans).
        """
        deadline = None if wait_s is None else time.monotonic() + wait_s
        with self._cond:
            self._hurry = True
            self._cond.notify_all()
            while self._pending or self._busy or self._uninserted:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
        if self.wal is not None:
            self.wal.trim(self.committed_through_ns())
        return True

    def close(self, wait_s: float | None = 30.0) -> None:
        """Commit what is queued, then stop the thread; later submits raise StoreUnavailable.

        Does not close the store (its owner does).
        """
        deadline = None if wait_s is None else time.monotonic() + wait_s
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(wait_s)
        if self._inserter is not None:
            with self._cond:
                self._inserter_stop = True
                self._hurry = True
                self._cond.notify_all()
            self._inserter.join(None if deadline is None
                                else max(0.0, deadline - time.monotonic()))
            if self.wal is not None:
                self.wal.close()

    # --- internals -------------------------------------------------------------------

    def _enqueue(self, item: _Item, wait_s: float | None) -> None:
        rows = item.table.num_rows
        nbytes = item.nbytes
        with self._cond:
            if self._closing:
                raise StoreUnavailable("The span writer is closed")
            deadline = None if wait_s is None or wait_s < 0 else time.monotonic() + wait_s
            while self._full(rows, item):
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

    def _notify(self, subscribers: list[Subscriber], batch: pa.Table) -> None:
        """Hand a committed ``batch`` to each subscriber.

        A failing subscriber never breaks the writer: counted in ``subscriber_errors``, logged.
        """
        for callback in subscribers:
            try:
                callback(batch)
            except Exception:  # noqa: BLE001 - a subscriber never breaks the writer
                self.subscriber_errors += 1
                _log.exception("span writer subscriber %r failed", callback)

    def _full(self, rows: int, item: _Item) -> bool:
        """Whether ``item`` must wait (or be refused): buffer, log memory or log disk."""
        if self._depth > 0 and (
                self._depth + rows > self.max_buffer_spans
                or 0 < self.max_buffer_bytes < self._buffered_bytes + item.nbytes):
            return True
        if self.wal is None:
            return False
        if self._logged_bytes > 0 and \
                self._logged_bytes + item.nbytes > self.max_wal_memory_bytes:
            return True
        return self.wal.disk_bytes > self.max_wal_disk_bytes

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
            self._buffered_bytes -= sum(i.nbytes for i in items)
            self._busy = True
            # The stamp is chosen here, under the lock, so committed_through_ns never
            # reports a stamp that an insert in flight is about to use.
            self._inflight_ns = max(time.time_ns(), self._last_ingested_ns + 1,
                                    (items[0].after_ns or 0) + 1)
            self._last_ingested_ns = self._inflight_ns
            if self.wal is not None:
                self._uninserted.append(self._inflight_ns)
            self._cond.notify_all()
            return items

    def _run(self) -> None:
        while True:
            items = self._take_batch()
            if items is None:
                return
            try:
                if self.wal is not None:
                    self._log_commit(items)
                else:
                    self._commit(items)
            except BaseException as exc:  # noqa: BLE001 - every waiter must get an answer
                _log.exception("span writer batch of %s tables failed", len(items))
                self.failed_batches += 1
                if self.wal is not None:
                    self._forget_stamp(self._inflight_ns)
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
            # can count on the live stream having been handed its spans. They only hand
            # the table on (the live hub queues a reference and converts on its own
            # thread, server/live.py), so no request waits for the live stream.
            self._notify(subscribers, batch)
        for item, rows in zip(items, kept, strict=True):
            item.resolve(self._inflight_ns if item.after_ns is not None else rows, None)

    # --- with a write-ahead log -------------------------------------------------------

    def _forget_stamp(self, stamp_ns: int) -> None:
        with self._cond:
            if stamp_ns in self._uninserted:
                self._uninserted.remove(stamp_ns)
            self._cond.notify_all()

    def _log_commit(self, items: list[_Item]) -> None:
        """Writer thread: dedup, stamp, append to the log, answer ingest, queue the insert."""
        stamp_ns = self._inflight_ns
        valid: list[_Item] = []
        for item in items:  # a bad table must not reach the log (replay would refuse it)
            if item.table.num_rows and not item.table.schema.equals(SPAN_SCHEMA):
                item.resolve(None, StoreError(
                    f"Expected an Arrow table with schema SPAN_SCHEMA, got columns "
                    f"{item.table.schema.names}"))
            else:
                valid.append(item)
        tables, kept, new_keys = self._select_rows(valid)
        nonempty = [t for t in tables if t.num_rows]
        batch: pa.Table | None = None
        if nonempty:
            batch = self._stamp(pa.concat_tables(nonempty).combine_chunks())
            self.wal.append(stamp_ns, batch)  # type: ignore[union-attr]
            self._cache.add_all(new_keys)
            self._acked_ns = stamp_ns
        total = sum(kept)
        waiters: list[tuple[_Item, int]] = []
        if batch is not None:  # nbytes is read outside the lock
            waiters = [(i, r) for i, r in zip(valid, kept, strict=True) if not i.ack_on_log]
            entry = _Logged(stamp_ns, batch, waiters)
        with self._cond:
            self.spans_written += total
            self.spans_deduplicated += sum(i.table.num_rows for i in valid) - total
            if batch is None:
                if stamp_ns in self._uninserted:
                    self._uninserted.remove(stamp_ns)
                if not self._uninserted:
                    self._committed_ns = max(self._committed_ns, stamp_ns)
            else:
                self._logged.append(entry)
                self._logged_bytes += entry.nbytes
                if waiters:
                    self._hurry = True
            self._cond.notify_all()
        for item, rows in zip(valid, kept, strict=True):
            if batch is None or item.ack_on_log:
                item.resolve(stamp_ns if item.after_ns is not None else rows, None)

    def _take_logged(self) -> list[_Logged] | None:
        """Inserter: wait until the logged batches are due; None when stopping and empty."""
        with self._cond:
            while True:
                if self._logged:
                    age_s = time.monotonic() - self._logged[0].logged_s
                    if (self._hurry or self._inserter_stop
                            or self._logged_bytes >= self.insert_bytes
                            or age_s >= self.insert_interval_s):
                        break
                    self._cond.wait(self.insert_interval_s - age_s)
                elif self._inserter_stop and not self._busy and not self._pending:
                    return None
                else:
                    self._hurry = self._hurry and bool(self._pending or self._busy)
                    self._cond.wait(self.insert_interval_s if self._inserter_stop else None)
            taken: list[_Logged] = []
            size = 0
            while self._logged and (not taken or size < self.insert_bytes):
                entry = self._logged.popleft()
                taken.append(entry)
                size += entry.nbytes
            self._inserting_since_s = taken[0].logged_s
            return taken

    def _insert_loop(self) -> None:
        backoff_s = 0.1
        while True:
            taken = self._take_logged()
            if taken is None:
                return
            size = sum(e.nbytes for e in taken)
            started_s = time.monotonic()
            batch = pa.concat_tables([e.table for e in taken]) if len(taken) > 1 \
                else taken[0].table
            try:
                self.store.append_batch(batch)
            except BaseException as exc:  # noqa: BLE001 - logged data is retried, never lost
                self.insert_failures += 1
                _log.exception("inserting %s logged spans failed; retrying in %.1f s",
                               batch.num_rows, backoff_s)
                error = exc if isinstance(exc, StoreError) else StoreError(
                    f"Span insert failed: {exc}")
                with self._cond:
                    self._inserting_since_s = None  # back in _logged, oldest first
                    self._consecutive_failures += 1
                    self._last_insert_error = f"{type(exc).__name__}: {exc}"
                    for entry in reversed(taken):
                        for item, _rows in entry.waiters:
                            item.resolve(None, error)
                        entry.waiters = []
                        self._logged.appendleft(entry)
                    if self._inserter_stop:  # closing: the log keeps them for the next start
                        _log.error("stopping with %s logged spans not inserted; they are "
                                   "replayed at the next start", sum(
                                       e.table.num_rows for e in self._logged))
                        return
                    self._cond.wait(backoff_s)
                backoff_s = min(backoff_s * 2, 5.0)
                continue
            backoff_s = 0.1
            latency_s = time.monotonic() - started_s
            last_ns = taken[-1].stamp_ns
            with self._cond:
                while self._uninserted and self._uninserted[0] <= last_ns:
                    self._uninserted.popleft()
                self._committed_ns = max(self._committed_ns, last_ns)
                self._logged_bytes -= size
                self._inserting_since_s = None
                self._consecutive_failures = 0
                self._last_insert_error = ""
                self.batches += 1
                self.last_write_latency_s = latency_s
                self._hist_counts[bisect.bisect_left(LATENCY_BUCKETS_S, latency_s)] += 1
                self._hist_sum_s += latency_s
                if not self._logged and not self._pending and not self._busy:
                    self._hurry = False
                subscribers = self._subscribers
                self._cond.notify_all()
            self._notify(subscribers, batch)
            for entry in taken:
                for item, rows in entry.waiters:
                    item.resolve(entry.stamp_ns if item.after_ns is not None else rows, None)
            try:
                self.wal.trim(self.committed_through_ns())  # type: ignore[union-attr]
            except OSError:
                _log.exception("trimming the write-ahead log failed; retried after the "
                               "next insert")
            with self._cond:
                self._cond.notify_all()  # room in the log for waiting writes


def _settle(future: asyncio.Future[Any], rows: int | None, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(rows or 0)
