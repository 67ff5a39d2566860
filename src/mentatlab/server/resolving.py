"""The server's attribution resolver: where it runs, its watermark, and the read barrier.

* **Embedded store** (one process): the resolver runs in this process, woken by the
  commits of the span writer (at most every :data:`EMBEDDED_BATCH_S`, at once for a
  waiting read); its watermark is the writer's
  :meth:`~mentatlab.storage.writer.SpanWriter.committed_through_ns`.
* **Shared store** (several nodes): each node publishes its writer's watermark to the
  control store every :data:`PUBLISH_PERIOD_S`; the node holding the ``resolver`` lock
  runs passes every ``resolve_interval_s`` up to the smallest live watermark.
* **Read barrier**: an analytics read first waits (at most ``resolve_wait_s``) until the
  resolver has passed the newest commit this node acknowledged, so an answer includes
  every span this node returned 2xx for, attributed; past the wait it answers with what
  the aggregates hold and counts a stale read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import Any

import anyio.to_thread

from mentatlab.resolver.resolver import PassReport, Resolver, read_resolver_state
from mentatlab.resolver.runner import ResolverLoop
from mentatlab.server.metrics import ServerMetrics
from mentatlab.settings import Settings
from mentatlab.storage.base import SpanStore

__all__ = ["EMBEDDED_BATCH_S", "PUBLISH_PERIOD_S", "WATERMARK_MAX_AGE_S", "ResolverService"]

_log = logging.getLogger(__name__)

PUBLISH_PERIOD_S = 0.25
"""How often a node on a shared store publishes its watermark, in s."""
EMBEDDED_BATCH_S = 5.0
"""On the embedded store, commits wake the resolver at most this often (s): under load a
pass takes seconds of commits at once, since a pass costs a few statements and a part per
aggregate table whatever its size (measured: a 0.25 s gap cost 48% of ingest throughput,
5 s about 12%). A read waiting for the resolver wakes it at once."""
WATERMARK_MAX_AGE_S = 5.0
"""A node silent this long (s) is left out of the resolver's watermark (dead or cut off);
if it comes back, the resolver goes over the commits it may have missed again."""
_STATE_CACHE_S = 0.05


class ResolverService:
    """Runs the resolver for a server process and answers the read barrier.

    Args:
        settings: server settings (``resolve_interval_s``, ``resolve_wait_s``).
        store: the span store.
        writer: the span writer (its commits are what the resolver follows).
        control: the control store (node watermarks, leader lock) on a shared store.
        price: prices roll-up spans' unattributed usage.
        metrics: the server's metrics.
    """

    def __init__(self, settings: Settings, store: SpanStore, writer: Any, control: Any,
                 price: Any, metrics: ServerMetrics) -> None:
        self.settings = settings
        self.store = store
        self.writer = writer
        self.control = control
        self.metrics = metrics
        self.node_id = uuid.uuid4().hex
        self.enabled = settings.resolve_interval_s > 0
        self._shared = settings.span_store_is_shared
        self._publisher: asyncio.Task[None] | None = None
        self._cached_through = (0, 0.0)
        resolver = Resolver(store, price, sink=writer.write_versions)
        leader = None
        if self._shared:
            from mentatlab.storage.control.leader import LeaderLock

            leader = LeaderLock(settings.control_store_url, "resolver")
        interval_s = settings.resolve_interval_s
        self.loop = ResolverLoop(
            resolver, self._watermark, leader=leader, on_pass=self._count_pass,
            idle_interval_s=interval_s if self._shared else EMBEDDED_BATCH_S,
            min_gap_s=interval_s if self._shared else EMBEDDED_BATCH_S,
            on_leadership=metrics.job_leader.labels("resolver").set)
        metrics.job_leader.labels("resolver").set(0 if self._shared else 1)
        metrics.bind_resolver(self._lag_s)

    async def start(self) -> None:
        """Start the resolver thread (and the watermark publisher on a shared store)."""
        if not self.enabled:
            _log.warning("attribution resolver off (resolve_interval_s = 0): answers read raw"
                         " spans, without inherited attribution")
            self.metrics.job_leader.labels("resolver").set(0)
            return
        if self._shared:
            await anyio.to_thread.run_sync(self._publish)
            self._publisher = asyncio.create_task(self._publish_forever())
        else:
            self.writer.subscribe(lambda _table: self.loop.notify())
            resolver = self.loop.resolver
            if (await anyio.to_thread.run_sync(lambda: resolver.state)).complete:
                # Catch up before serving: commits after the last persisted watermark
                # (a crash loses up to a few seconds of it) are acknowledged spans, and a
                # read must find them in the aggregates (this process acknowledged none).
                await anyio.to_thread.run_sync(resolver.run_pass,
                                               self.writer.committed_through_ns())
        self.loop.start()

    async def stop(self) -> None:
        """Stop the publisher and the resolver thread (after the writer is closed)."""
        if not self.enabled:
            return
        if self._publisher is not None:
            self._publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._publisher
            with contextlib.suppress(Exception):
                await anyio.to_thread.run_sync(self.control.watermarks.remove, self.node_id)
        await anyio.to_thread.run_sync(self.loop.stop)

    async def wait_resolved(self) -> bool:
        """Wait until every span this node acknowledged is resolved; False if it timed out.

        Without a resolver (``resolve_interval_s = 0``), until every acknowledged span is
        inserted (with a write-ahead log a 2xx precedes the insert).
        """
        if not self.enabled:
            return await self._wait_inserted()
        target_ns = int(self.writer.last_committed_ns)
        if target_ns == 0 or await self._through_ns() >= target_ns:
            return True
        hurry = getattr(self.writer, "hurry", None)
        if hurry is not None:  # with a write-ahead log: insert what is logged now
            hurry()
        self.loop.notify(urgent=True)
        deadline = time.monotonic() + self.settings.resolve_wait_s
        pause_s = 0.002
        inserted = False
        while time.monotonic() < deadline:
            await asyncio.sleep(pause_s)
            pause_s = min(pause_s * 2, 0.05)
            if await self._through_ns() >= target_ns:
                return True
            if not inserted and int(self.writer.committed_through_ns()) >= target_ns:
                # With a write-ahead log the urgent pass above may have run before the
                # insert landed: ask again, once, now that the spans are in the store.
                inserted = True
                self.loop.notify(urgent=True)
        self.metrics.resolver_stale_reads.inc()
        return False

    # --- internals -------------------------------------------------------------------

    async def _wait_inserted(self) -> bool:
        target_ns = int(self.writer.last_committed_ns)
        if target_ns == 0 or int(self.writer.committed_through_ns()) >= target_ns:
            return True
        hurry = getattr(self.writer, "hurry", None)
        if hurry is not None:
            hurry()
        deadline = time.monotonic() + self.settings.resolve_wait_s
        pause_s = 0.002
        while time.monotonic() < deadline:
            await asyncio.sleep(pause_s)
            pause_s = min(pause_s * 2, 0.05)
            if int(self.writer.committed_through_ns()) >= target_ns:
                return True
        return False

    async def _through_ns(self) -> int:
        if self.loop.leading:
            return self.loop.resolver.state.through_ns
        value, read_at = self._cached_through
        if time.monotonic() - read_at > _STATE_CACHE_S:
            state = await anyio.to_thread.run_sync(read_resolver_state, self.store)
            value = state.through_ns if state is not None and state.complete else 0
            self._cached_through = (value, time.monotonic())
        return value

    def _watermark(self) -> int | None:
        if not self._shared:
            return int(self.writer.committed_through_ns())
        lowest: int | None = self.control.watermarks.min_live(WATERMARK_MAX_AGE_S)
        return lowest

    def _publish(self) -> None:
        self.control.watermarks.publish(self.node_id, int(self.writer.committed_through_ns()))

    async def _publish_forever(self) -> None:
        while True:
            await asyncio.sleep(PUBLISH_PERIOD_S)
            try:
                await anyio.to_thread.run_sync(self._publish)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 — the resolver waits for us meanwhile; retried
                _log.warning("could not publish this node's watermark", exc_info=True)

    def _count_pass(self, report: PassReport) -> None:
        self.metrics.resolver_passes.inc()
        self.metrics.resolver_versions.inc(report.num_versions)
        self.metrics.resolver_pass_seconds.observe(report.duration_s)

    def _lag_s(self) -> float:
        if not self.enabled or not self.loop.leading:
            return 0.0
        behind_ns = int(self.writer.last_committed_ns) - self.loop.resolver.state.through_ns
        return max(0.0, behind_ns / 1e9)
