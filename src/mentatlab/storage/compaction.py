"""Compaction of closed day partitions, so ``FINAL`` reads cost what plain reads cost.

Every analytics read takes ``spans FINAL`` (``ReplacingMergeTree``: one current version per
span). Both stores set ``do_not_merge_across_partitions_select_final = 1`` on every query
(:data:`~mentatlab.storage.span_schema.FINAL_READ_SETTING`), so ``FINAL`` merges each day
partition on its own and reads a partition held in a single merged part without merging at
all. A compaction pass makes that the common case: each closed day (before the current UTC
day) of a table in :data:`COMPACTED_TABLES` (``spans`` and the day-partitioned settled
tables) that holds more than one active part is merged into one with
``OPTIMIZE TABLE <table> PARTITION ID '<id>' FINAL``, oldest first.

Measured on the 1M-span analytics bench store plus 20% re-sent versions (bench/RESULTS.md,
decision 0016): a 30-day ``GROUP BY … FINAL`` takes 368 ms before a pass, 20 ms after it
(24 ms without ``FINAL``); the pass over 30 days took 5 s.

* Late spans still land in closed days (a re-sent or repriced span, a slow exporter): the
  next pass merges that day again. Today's partition is left to ClickHouse's own merges:
  it changes every second, and an ``OPTIMIZE`` of it would be stale at once.
* Bounded per pass: at most ``max_partitions`` partitions, and no new one is started after
  ``budget_s`` seconds (a running ``OPTIMIZE`` is not interrupted).
* The settled tables get a part per settle batch (docs/decisions/0010): measured on the
  10M-span bench store right after a full settle, bottlenecks over 30 days (``span_timing
  FINAL``) took 4.8 s with the parts the settle left and ~0.5 s with one part per day
  (bench/RESULTS.md). ``trace_facts`` has one partition: it is merged whole when it holds
  more than :data:`TRACE_FACTS_MAX_PARTS` parts. The aggregate tables
  (storage/aggregates.py) are read with ``GROUP BY`` over their states, which is exact
  whatever their parts; merging them would only save rows, which their own merges do.
* On a ClickHouse cluster (storage/cluster.py) ``spans`` is a ``Distributed`` table over
  each shard's ``spans_local``: a pass does nothing there (logged once); each shard's own
  background merges still reduce the parts, and an operator can run
  ``OPTIMIZE TABLE spans_local ON CLUSTER … PARTITION ID … FINAL`` (docs/storage.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from mentatlab.storage.base import SpanStore
from mentatlab.storage.settled import (
    LLM_CALLS_TABLE,
    SPAN_TIMING_TABLE,
    STEP_COUNTS_TABLE,
    TRACE_AGENTS_TABLE,
    TRACE_FACTS_TABLE,
)
from mentatlab.storage.span_schema import SPANS_TABLE

__all__ = [
    "COMPACTED_TABLES",
    "DEFAULT_BUDGET_S",
    "DEFAULT_MAX_PARTITIONS",
    "CompactionPass",
    "PartitionParts",
    "TRACE_FACTS_MAX_PARTS",
    "closed_partitions",
    "compact_closed_partitions",
]

_log = logging.getLogger(__name__)

COMPACTED_TABLES: tuple[str, ...] = (SPANS_TABLE, SPAN_TIMING_TABLE, STEP_COUNTS_TABLE,
                                     TRACE_AGENTS_TABLE, LLM_CALLS_TABLE)
"""The day-partitioned tables read with ``FINAL``: ``spans`` and the settled tables the
settle job writes a part to per batch of traces (``version_sightings`` is read with
``GROUP BY``, not ``FINAL``; ``trace_facts``, one partition: :data:`TRACE_FACTS_MAX_PARTS`)."""
TRACE_FACTS_MAX_PARTS = 2
"""``trace_facts`` (not partitioned: its key is the trace, whose start can still change) is
merged whole (``OPTIMIZE … FINAL``) by a pass that finds more parts than this. Measured on
the 10M-span bench store (1.25M traces; bench/RESULTS.md): reliability's, compare's and
regressions' reads took 298, 230, 177 ms over one part, 347-372 ms over 2-3, and one
reliability read 816 ms over the 6 parts a full settle left; the merge took 3 s. The cost
of a merge grows with the table (every settled trace in retention)."""
DEFAULT_MAX_PARTITIONS = 8
"""Partitions merged per pass at most: a day of a busy store is a few GB to rewrite."""
DEFAULT_BUDGET_S = 120.0
"""No new partition is started after this many seconds of a pass."""

_PARTS_SQL = (
    "SELECT partition_id, toUInt64(count()) AS parts, toUInt64(sum(rows)) AS rows"
    " FROM system.parts WHERE database = currentDatabase() AND table = {table:String}"
    " AND active GROUP BY partition_id ORDER BY partition_id")


@dataclass(frozen=True, slots=True)
class PartitionParts:
    """One day partition of a compacted table and its active parts."""

    table: str
    """One of :data:`COMPACTED_TABLES`."""
    partition_id: str
    """``YYYYMMDD`` (ClickHouse's id of a ``Date`` partition)."""
    day: date
    parts: int
    rows: int
    """Rows in the parts (every stored version, before ``FINAL``)."""


@dataclass(slots=True)
class CompactionPass:
    """What one pass did."""

    merged: list[PartitionParts] = field(default_factory=list)
    """Partitions merged into one part, oldest first (their part counts before the pass)."""
    pending: int = 0
    """Closed partitions with several parts left for the next pass (over the bounds)."""
    seconds: float = 0.0
    """Duration of the pass, in s."""
    skipped_reason: str = ""
    """Why the pass did nothing at all (``cluster``), else empty."""


def _today_utc() -> date:
    return datetime.now(UTC).date()


def _parse_day(partition_id: str) -> date | None:
    if len(partition_id) != 8 or not partition_id.isdigit():
        return None
    try:
        return date(int(partition_id[:4]), int(partition_id[4:6]), int(partition_id[6:]))
    except ValueError:
        return None


def closed_partitions(store: SpanStore, today: date | None = None) -> list[PartitionParts]:
    """What a pass merges: closed days with several parts, then ``trace_facts`` if needed.

    The day partitions of :data:`COMPACTED_TABLES` before ``today`` (UTC) holding more than
    one part, then ``trace_facts`` (its one partition, id ``all``, ``day`` = ``today``)
    when it holds more than :data:`TRACE_FACTS_MAX_PARTS` parts.

    Args:
        store: the span store (single server or embedded; see the module notes on clusters).
        today: the current UTC day (default: now); its partition and later ones are open.

    Returns:
        The partitions, oldest day first (``spans`` before the settled tables of a day).

    Raises:
        StoreError: ``system.parts`` cannot be read.
    """
    today = today or _today_utc()
    out = []
    for order, table in enumerate(COMPACTED_TABLES):
        for row in store.query_arrow(_PARTS_SQL, {"table": table}).to_pylist():
            day = _parse_day(row["partition_id"])
            if day is not None and day < today and row["parts"] > 1:
                out.append((day, order, PartitionParts(table, row["partition_id"], day,
                                                       int(row["parts"]), int(row["rows"]))))
    merged = [p for _, _, p in sorted(out, key=lambda t: (t[0], t[1]))]
    for row in store.query_arrow(_PARTS_SQL, {"table": TRACE_FACTS_TABLE}).to_pylist():
        if row["parts"] > TRACE_FACTS_MAX_PARTS:
            merged.append(PartitionParts(TRACE_FACTS_TABLE, str(row["partition_id"]), today,
                                         int(row["parts"]), int(row["rows"])))
    return merged


def _on_cluster(store: SpanStore) -> bool:
    return getattr(store, "layout", None) is not None


def compact_closed_partitions(
        store: SpanStore, *, today: date | None = None,
        max_partitions: int = DEFAULT_MAX_PARTITIONS, budget_s: float = DEFAULT_BUDGET_S,
        clock: Callable[[], float] = time.monotonic) -> CompactionPass:
    """Merge closed ``spans`` partitions of several parts into one part each, oldest first.

    ``OPTIMIZE TABLE spans PARTITION ID '<id>' FINAL`` keeps one version per span (the
    newest ``ingested_at_ns``, as ``FINAL`` reads do): no answer changes, only the parts.

    Args:
        store: the span store; on a ClickHouse cluster the pass does nothing.
        today: the current UTC day (default: now); its partition is never merged.
        max_partitions: partitions merged at most in this pass (>= 1).
        budget_s: no partition is started after this many seconds of the pass.
        clock: monotonic clock, in s.

    Returns:
        What the pass merged and what it left for the next one.

    Raises:
        StoreError: ``system.parts`` cannot be read or an ``OPTIMIZE`` failed (the
            partitions merged before it stay merged; the next pass goes on).
    """
    started = clock()
    result = CompactionPass()
    if _on_cluster(store):
        result.skipped_reason = "cluster"
        return result
    candidates = closed_partitions(store, today)
    for index, partition in enumerate(candidates):
        if len(result.merged) >= max_partitions or clock() - started >= budget_s:
            result.pending = len(candidates) - index
            break
        # partition_id is YYYYMMDD digits (checked by _parse_day) or ClickHouse's "all"
        store.execute(f"OPTIMIZE TABLE {partition.table} PARTITION ID"
                      f" '{partition.partition_id}' FINAL")
        result.merged.append(partition)
    result.seconds = clock() - started
    if result.merged or result.pending:
        _log.info("compaction: merged %d closed spans partition(s) %s in %.1f s; %d left for "
                  "the next pass", len(result.merged),
                  ", ".join(f"{p.table} {p.partition_id} ({p.parts} parts)" for p in result.merged),
                  result.seconds, result.pending)
    return result
