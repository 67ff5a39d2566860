"""Ingest health of one server process, read from its Prometheus metrics (issue 18).

``GET /api/v1/system/ingest`` (server/routes/system.py) and the Ops view's "Ingest
health" panel show what ``/metrics`` exports about the ingest path, as one JSON document:
spans accepted and rejected per second (by reason), the writer's buffer against its
limits, commit and insert latency, the write-ahead log, the live tail's dropped spans,
the ingest workers and the RSS of the server's process tree.

Every figure that ``/metrics`` has is read from the same collectors of
:class:`~mentatlab.server.metrics.ServerMetrics` (no second bookkeeping); limits come from
the settings, the RSS from psutil. Counters are totals since the process started; rates
are differences of two readings divided by the seconds between them (the Prometheus
``rate()`` definition without extrapolation), over a trailing window: readings are kept
when the document is asked for (at most one per :data:`MIN_READING_SPACING_S`, for
:data:`MAX_WINDOW_S`), plus one of zeros at the start, so the first answer gives the rate
since the start and later ones the rate over about ``window_s``.
"""

from __future__ import annotations

import collections
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from prometheus_client.registry import Collector

from mentatlab.server.metrics import ServerMetrics
from mentatlab.settings import Settings

__all__ = ["KNOWN_REJECT_REASONS", "MAX_WINDOW_S", "MIN_READING_SPACING_S", "CounterReading",
           "IngestRates", "ingest_health", "process_tree_rss", "read_counters"]

MAX_WINDOW_S: Final = 60.0
"""Longest rate window a caller may ask for, in s (readings older than it are dropped)."""
MIN_READING_SPACING_S: Final = 0.5
"""Readings closer than this (s) to the previous kept one are not kept (many viewers)."""
KNOWN_REJECT_REASONS: Final = ("invalid", "backpressure")
"""Reasons of ``mentatlab_spans_rejected_total`` that are always reported (0 when none)."""
_MAX_READINGS: Final = int(MAX_WINDOW_S / MIN_READING_SPACING_S) + 2


@dataclass(frozen=True, slots=True)
class CounterReading:
    """The ingest counters at one instant (totals since the process started)."""

    at_s: float
    """``time.monotonic()`` of the reading, s."""
    accepted: float = 0.0
    """``mentatlab_spans_accepted_total``, summed over receivers (spans)."""
    rejected: Mapping[str, float] = field(default_factory=dict)
    """``mentatlab_spans_rejected_total`` by reason, summed over receivers (spans)."""
    commit_wait_sum_s: float = 0.0
    """``mentatlab_write_latency_seconds_sum``: hand-over to commit, summed, s."""
    commits: float = 0.0
    """``mentatlab_write_latency_seconds_count``: batches committed."""


class IngestRates:
    """Trailing-window rates of the ingest counters, from readings taken when asked.

    Not thread-safe: the server calls it from its event loop only.

    Args:
        started_s: ``time.monotonic()`` when the counters were 0 (the server's start).
    """

    def __init__(self, started_s: float | None = None) -> None:
        self.started_s = time.monotonic() if started_s is None else started_s
        self._readings: collections.deque[CounterReading] = collections.deque(
            [CounterReading(self.started_s)], maxlen=_MAX_READINGS)

    def base_for(self, now: CounterReading, window_s: float) -> CounterReading:
        """The reading to take differences from for rates over ``window_s`` ending ``now``.

        The newest kept reading at least ``window_s`` old, else the oldest kept one (the
        window is then shorter: the caller reports ``now.at_s - base.at_s``). Keeps ``now``.
        """
        base = self._readings[0]
        for reading in self._readings:
            if reading.at_s > now.at_s - window_s:
                break
            base = reading
        if now.at_s - self._readings[-1].at_s >= MIN_READING_SPACING_S:
            self._readings.append(now)
        while len(self._readings) > 1 and self._readings[1].at_s <= now.at_s - MAX_WINDOW_S:
            self._readings.popleft()
        return base


def _samples(collector: Collector | None, suffix: str = "") -> list[tuple[dict[str, str], float]]:
    """``(labels, value)`` of the samples named ``<metric><suffix>`` of ``collector``."""
    if collector is None:
        return []
    return [(s.labels, s.value) for m in collector.collect() for s in m.samples
            if s.name == m.name + suffix]


def _value(collector: Collector | None, suffix: str = "") -> float:
    return sum(v for _, v in _samples(collector, suffix))


def read_counters(metrics: ServerMetrics, at_s: float | None = None) -> CounterReading:
    """Read the ingest counters of ``metrics`` now."""
    rejected: dict[str, float] = dict.fromkeys(KNOWN_REJECT_REASONS, 0.0)
    for labels, value in _samples(metrics.spans_rejected, "_total"):
        reason = labels.get("reason", "")
        rejected[reason] = rejected.get(reason, 0.0) + value
    return CounterReading(
        at_s=time.monotonic() if at_s is None else at_s,
        accepted=_value(metrics.spans_accepted, "_total"), rejected=rejected,
        commit_wait_sum_s=_value(metrics.write_latency_s, "_sum"),
        commits=_value(metrics.write_latency_s, "_count"))


def process_tree_rss(pid: int | None = None) -> tuple[int, int, int]:
    """Resident memory of process ``pid`` (default: this one) and all its descendants.

    Returns:
        ``(total_bytes, process_bytes, num_processes)``: the RSS summed over the tree (shared
        pages count in every process that maps them, as ``bench/footprint.py`` sums it),
        the RSS of ``pid`` alone, and how many processes were summed. Processes that end
        while being read are left out.
    """
    import psutil  # only when asked: the server's start-up does not need it

    proc = psutil.Process(os.getpid() if pid is None else pid)
    own = int(proc.memory_info().rss)
    total, count = own, 1
    for child in proc.children(recursive=True):
        try:
            total += int(child.memory_info().rss)
            count += 1
        except psutil.Error:
            continue
    return total, own, count


def _rate(now: float, base: float, elapsed_s: float) -> float:
    return max(0.0, now - base) / elapsed_s if elapsed_s > 0 else 0.0


def ingest_health(metrics: ServerMetrics, settings: Settings, now: CounterReading,
                  base: CounterReading, rss: tuple[int, int, int], *, uptime_s: float,
                  wal_enabled: bool, workers_configured: int) -> dict[str, Any]:
    """The JSON document of ``GET /api/v1/system/ingest``.

    Args:
        metrics: the server's metrics (gauges are read here, at call time).
        settings: the server's settings (limits).
        now: the counters now.
        base: the counters at the window's start (:meth:`IngestRates.base_for`).
        rss: :func:`process_tree_rss`.
        uptime_s: seconds since the counters were 0 (:attr:`IngestRates.started_s`).
        wal_enabled: whether the writer logs ahead (``wal`` on and the store embedded).
        workers_configured: ``ingest_workers`` (0 = the pipeline runs in the server).

    Returns:
        Sizes in bytes, durations in ms, rates per second over ``window_s`` seconds,
        totals since ``uptime_s`` seconds ago; the ``wal`` sizes are None when it is off.
    """
    elapsed_s = now.at_s - base.at_s
    commits = now.commits - base.commits
    wait_mean_ms = ((now.commit_wait_sum_s - base.commit_wait_sum_s) / commits * 1000
                    if commits > 0 else None)
    wal: dict[str, Any] = {
        "enabled": wal_enabled, "fsync": wal_enabled and settings.wal_fsync,
        "memory_bytes": None, "max_memory_bytes": None, "disk_bytes": None,
        "max_disk_bytes": None, "insert_failures_total": None}
    if wal_enabled and metrics.wal is not None:
        disk, pending, failures = metrics.wal
        wal.update(memory_bytes=int(_value(pending)),
                   max_memory_bytes=settings.wal_max_memory_bytes,
                   disk_bytes=int(_value(disk)), max_disk_bytes=settings.wal_max_disk_bytes,
                   insert_failures_total=int(_value(failures, "_total")))
    total_rss, own_rss, num_processes = rss
    reasons = sorted(now.rejected.items())
    return {
        "ok": True,
        "window_s": round(elapsed_s, 3),
        "uptime_s": round(uptime_s, 3),
        "spans": {
            "accepted_per_s": _rate(now.accepted, base.accepted, elapsed_s),
            "accepted_total": int(now.accepted),
            "rejected_per_s": {reason: _rate(value, base.rejected.get(reason, 0.0), elapsed_s)
                               for reason, value in reasons},
            "rejected_total": {reason: int(value) for reason, value in reasons},
        },
        "commit": {
            "num_commits": int(commits),
            "wait_mean_ms": wait_mean_ms,
            "last_insert_ms": _value(metrics.last_insert_s) * 1000,
        },
        "buffer": {
            "spans": int(_value(metrics.buffer_depth)), "max_spans": settings.write_buffer_spans,
            "bytes": int(_value(metrics.buffer_bytes)), "max_bytes": settings.write_buffer_bytes,
        },
        "wal": wal,
        "live": {"clients": int(_value(metrics.live_clients)),
                 "dropped_spans_total": int(_value(metrics.live_dropped, "_total"))},
        "workers": {"configured": workers_configured,
                    "running": int(_value(metrics.ingest_workers)),
                    "idle_stop_s": settings.ingest_workers_idle_s},
        "memory": {"rss_bytes": total_rss, "server_rss_bytes": own_rss,
                   "num_processes": num_processes},
    }
