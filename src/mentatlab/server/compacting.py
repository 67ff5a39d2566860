"""The server's compaction job: one pass of storage/compaction.py, counted in /metrics.

The server lifespan runs it every ``compact_interval_s`` on the elected node (leader lock
``compaction``, like the alert job); 0 turns it off.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from mentatlab.server.metrics import ServerMetrics
from mentatlab.settings import Settings
from mentatlab.storage.base import SpanStore
from mentatlab.storage.compaction import DEFAULT_BUDGET_S, compact_closed_partitions

__all__ = ["compaction_job"]

_log = logging.getLogger(__name__)


def compaction_job(settings: Settings, store: SpanStore,
                   metrics: ServerMetrics) -> Callable[[], None]:
    """One compaction pass (blocking; run in a thread by ``run_periodic``).

    Counts the pass (``mentatlab_compaction_passes``), the partitions merged
    (``mentatlab_compaction_partitions``), those left for the next pass
    (``mentatlab_compaction_pending_partitions``) and its duration
    (``mentatlab_compaction_pass_seconds``). On a ClickHouse cluster it logs once that it
    does nothing (decision 0016).
    """
    warned = False

    def run() -> None:
        nonlocal warned
        result = compact_closed_partitions(store, max_partitions=settings.compact_max_partitions,
                                           budget_s=DEFAULT_BUDGET_S)
        if result.skipped_reason == "cluster":
            if not warned:
                _log.info("compaction: the span store is a ClickHouse cluster; closed "
                          "partitions are left to each shard's merges (docs/storage.md)")
                warned = True
            return
        metrics.compaction_passes.inc()
        metrics.compaction_partitions.inc(len(result.merged))
        metrics.compaction_pending.set(result.pending)
        metrics.compaction_pass_seconds.observe(result.seconds)

    return run
