"""The server's settle job: where it runs and its watermark (resolver/settle.py).

Like the attribution resolver (:mod:`mentatlab.server.resolving`): on the embedded store
it runs in this process and follows the span writer's watermark; on a shared store the
node holding the ``settle`` lock runs it up to the smallest live node watermark (the
one the resolver uses, published by :class:`~mentatlab.server.resolving.ResolverService`).
A pass runs every ``min(5, trace_quiet_s / 2)`` s (at least every 0.05 s): a trace is
settled between ``trace_quiet_s`` and ``trace_quiet_s`` plus that interval after its last
span arrived.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread

from mentatlab.resolver.runner import ResolverLoop
from mentatlab.resolver.settle import Settler
from mentatlab.server.metrics import ServerMetrics
from mentatlab.server.resolving import WATERMARK_MAX_AGE_S
from mentatlab.settings import Settings
from mentatlab.storage.base import SpanStore

__all__ = ["SettleService"]


class SettleService:
    """Runs the settle job for a server process.

    Args:
        settings: server settings (``trace_quiet_s``).
        store: the span store.
        writer: the span writer (its watermark bounds what a pass may read).
        control: the control store (node watermarks, leader lock) on a shared store.
        metrics: the server's metrics (``job_leader{job="settle"}``).
    """

    def __init__(self, settings: Settings, store: SpanStore, writer: Any, control: Any,
                 metrics: ServerMetrics) -> None:
        self.settings = settings
        self.writer = writer
        self.control = control
        self._shared = settings.span_store_is_shared
        self.settler = Settler(store, settings.trace_quiet_s)
        leader = None
        if self._shared:
            from mentatlab.storage.control.leader import LeaderLock

            leader = LeaderLock(settings.control_store_url, "settle")
        interval_s = max(0.05, min(5.0, settings.trace_quiet_s / 2))
        self.loop = ResolverLoop(
            self.settler, self._watermark, leader=leader, idle_interval_s=interval_s,
            min_gap_s=interval_s, on_leadership=metrics.job_leader.labels("settle").set,
            name="mentatlab-settle")
        metrics.job_leader.labels("settle").set(0 if self._shared else 1)

    async def start(self) -> None:
        """Start the settle thread."""
        self.loop.start()

    async def stop(self) -> None:
        """Stop the thread after its running pass."""
        await anyio.to_thread.run_sync(self.loop.stop)

    def _watermark(self) -> int | None:
        if not self._shared:
            return int(self.writer.committed_through_ns())
        lowest: int | None = self.control.watermarks.min_live(WATERMARK_MAX_AGE_S)
        return lowest
