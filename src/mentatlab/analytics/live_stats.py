"""Traffic per short interval: the live stats stream's counts, errors, spend and latency.

An interval ``[start, start + interval_s)`` holds the spans that *ended* in it (requests
completed per second is the usual request rate), each counted once, in its newest version
(as ``spans FINAL`` would: a span the resolver re-attributed or repriced is one span, and
filters see its resolved fields, e.g. an ``agent_id`` inherited from an ancestor).

Spans arrive after they end (an exporter batches them for a few seconds), so an interval's
numbers can still grow for a while after it closes: the live stream sends an interval when
it closes and again while late spans change it (``server/live_stats.py``). Only spans
committed from :data:`CLOCK_SLACK_S` before an interval's start are read: the ``minmax``
skip index on ``ingested_at_ns`` then keeps a read to the newest granules, whatever the
size of the store. A span whose client clock runs more than that ahead of the server's is
left out.

Intervals are aligned on multiples of ``interval_s`` since the epoch, so every reader of
the same interval length sees the same boundaries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from mentatlab.analytics.overview import percentiles_ms
from mentatlab.analytics.query import FILTER_COLUMNS, LLM_CALL, build_where
from mentatlab.errors import ValidationError
from mentatlab.storage.aggregates import LATENCY_HIST
from mentatlab.storage.base import SpanStore

__all__ = ["CLOCK_SLACK_S", "MAX_INTERVALS", "MAX_INTERVAL_S", "MIN_INTERVAL_S",
           "IntervalStats", "check_interval_s", "list_interval_stats"]

MIN_INTERVAL_S = 1
"""Shortest interval, in seconds."""
MAX_INTERVAL_S = 60
"""Longest interval, in seconds."""
MAX_INTERVALS = 720
"""Most intervals one read returns."""
CLOCK_SLACK_S = 60
"""Seconds a span may be committed before its end time (a client clock running ahead)."""
_NS = 1_000_000_000
_COLUMNS = frozenset({"trace_id", "span_id", "ingested_at_ns", "end_time", "status",
                      "duration_ms", "total_cost", "request_model", "response_model",
                      "usage_is_rollup"})
"""What the counts, percentiles and spend read (filters add their own column)."""


@dataclass(frozen=True, slots=True)
class IntervalStats:
    """The spans that ended in one interval and match a filter (newest versions)."""

    start: datetime
    """Interval start (UTC, inclusive)."""
    end: datetime
    """Interval end (UTC, exclusive)."""
    num_spans: int
    requests: int
    """LLM calls: spans with a model that are not usage roll-ups."""
    error_spans: int
    """Spans with status ``error`` or ``timeout``."""
    spend: Decimal
    """Sum of ``total_cost`` (USD by default)."""
    latency_p50_ms: float
    """Span duration percentiles in ms (nearest rank over the overview's log-bucket
    histogram: within 1% of the exact value); 0 without spans."""
    latency_p95_ms: float
    latency_p99_ms: float

    @property
    def interval_s(self) -> float:
        """Length of the interval in seconds."""
        return (self.end - self.start).total_seconds()

    @property
    def error_rate(self) -> float:
        """Share of spans that failed, in [0, 1]; 0 without spans."""
        return self.error_spans / self.num_spans if self.num_spans else 0.0


def check_interval_s(value: int | str | None, default: int = 5) -> int:
    """``value`` as an interval length in whole seconds, within the allowed bounds.

    Args:
        value: seconds (an int, a decimal string, or None for ``default``).
        default: used when ``value`` is None or empty.

    Raises:
        ValidationError: (422, field ``interval_s``) not a whole number from
            :data:`MIN_INTERVAL_S` to :data:`MAX_INTERVAL_S`.
    """
    if value is None or value == "":
        return default
    try:
        seconds = int(value)
    except ValueError:
        raise ValidationError("interval_s", f"Expected whole seconds from {MIN_INTERVAL_S} to "
                                            f"{MAX_INTERVAL_S}, got {value!r}") from None
    if not MIN_INTERVAL_S <= seconds <= MAX_INTERVAL_S:
        raise ValidationError("interval_s", f"Expected whole seconds from {MIN_INTERVAL_S} to "
                                            f"{MAX_INTERVAL_S}, got {seconds}")
    return seconds


def list_interval_stats(store: SpanStore, filters: Mapping[str, str], interval_s: int,
                        first_start_ns: int, num_intervals: int) -> list[IntervalStats]:
    """Counts, errors, spend and latency percentiles of consecutive intervals.

    Args:
        store: the span store.
        filters: equality filters on canonical columns (``FILTER_COLUMNS``), the caller's
            scope included.
        interval_s: interval length in seconds (:func:`check_interval_s`).
        first_start_ns: start of the first interval, ns since the epoch; a multiple of
            ``interval_s`` seconds.
        num_intervals: how many intervals, 1 to :data:`MAX_INTERVALS`.

    Returns:
        ``num_intervals`` entries, oldest first; an interval without spans has zeros.

    Raises:
        ValidationError: a bad interval, start, count or filter name.
        StoreError: the query failed.
    """
    interval_s = check_interval_s(interval_s)
    step_ns = interval_s * _NS
    if first_start_ns % step_ns:
        raise ValidationError("first_start_ns", f"Expected a multiple of {interval_s} s, got "
                                                f"{first_start_ns}")
    if not 1 <= num_intervals <= MAX_INTERVALS:
        raise ValidationError("num_intervals", f"Expected 1 to {MAX_INTERVALS}, got "
                                               f"{num_intervals}")
    end_ns = first_start_ns + num_intervals * step_ns
    # the newest version of each span ending in the range, among the rows committed since
    # the range's start (less the clock slack): the skip index's cheap path
    parts = build_where(None, filters)  # checks every filter name first
    columns = sorted(_COLUMNS | {FILTER_COLUMNS[name] for name in filters
                                 if FILTER_COLUMNS[name].isidentifier()})
    ts = "fromUnixTimestamp64Nano({}, 'UTC')"
    latest = (f"SELECT {', '.join(columns)} FROM spans WHERE ingested_at_ns >= "
              f"{parts.bind(first_start_ns - CLOCK_SLACK_S * _NS, 'Int64')}"
              f" AND end_time >= {ts.format(parts.bind(first_start_ns, 'Int64'))}"
              f" AND end_time < {ts.format(parts.bind(end_ns, 'Int64'))}"
              " ORDER BY ingested_at_ns DESC LIMIT 1 BY trace_id, span_id")
    sql = (f"SELECT intDiv(toUnixTimestamp64Nano(end_time)"
           f" - {parts.bind(first_start_ns, 'Int64')}, {parts.bind(step_ns, 'Int64')}) AS slot,"
           f" toInt64(count()) AS num_spans, toInt64(countIf({LLM_CALL})) AS requests,"
           " toInt64(countIf(status != 'ok')) AS error_spans, sum(total_cost) AS spend,"
           f" {LATENCY_HIST} AS latency_hist, min(duration_ms) AS min_duration_ms,"
           f" max(duration_ms) AS max_duration_ms FROM ({latest}) WHERE {parts.where}"
           " GROUP BY slot")
    rows = {int(r["slot"]): r for r in store.query_arrow(sql, parts.binds).to_pylist()}
    out: list[IntervalStats] = []
    for slot in range(num_intervals):
        start_ns = first_start_ns + slot * step_ns
        start = datetime.fromtimestamp(start_ns // _NS, UTC)
        end = datetime.fromtimestamp((start_ns + step_ns) // _NS, UTC)
        row = rows.get(slot)
        if row is None:
            out.append(IntervalStats(start, end, 0, 0, 0, Decimal(0), 0.0, 0.0, 0.0))
            continue
        p50, p95, p99 = percentiles_ms(row["latency_hist"], float(row["min_duration_ms"]),
                                       float(row["max_duration_ms"]))
        out.append(IntervalStats(start, end, int(row["num_spans"]), int(row["requests"]),
                                 int(row["error_spans"]), Decimal(row["spend"] or 0),
                                 p50, p95, p99))
    return out
