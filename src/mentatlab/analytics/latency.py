"""Latency percentiles and histograms of span durations per operation, agent, tool or model.

Also per provider.

The sample of a group is the ``duration_ms`` of every span (``spans FINAL``: a re-sent
span counts once) in the time range and filter that belongs to the group:

============  ===============================  ==============================================
group_by      group value                      spans counted
============  ===============================  ==============================================
operation     ``operation``                    every span
agent         ``agent_id``                     the agent's **own** spans (``agent_id`` set on
                                               the span, not inherited from an ancestor:
                                               bit 0 of ``inherited`` clear), so an agent's
                                               latency is not diluted by its LLM and tool calls
tool          ``tool_name``                    spans with a tool name
provider      ``provider``                     LLM calls (a model, not a usage rollup)
model         response model, else request     LLM calls
============  ===============================  ==============================================

Spans whose group value is empty are left out, and so are **open spans** (a native
``*.started`` event not completed yet: stored with ``end == start`` and the attribute
``mentat.span.open``), whose 0 ms is not a duration.

**Quantile definition** (p50, p90, p95, p99): *exact*, over every duration in the group,
with linear interpolation between the two closest ranks — for sorted values
``x[0..n-1]`` and quantile ``q``, ``h = (n - 1)·q`` and ``Q = x[⌊h⌋] + (h − ⌊h⌋)·(x[⌊h⌋+1] −
x[⌊h⌋])``. That is ClickHouse ``quantilesExactInclusive`` and numpy's default
``numpy.quantile(x, q, method="linear")`` (Hyndman & Fan 1996, definition 7), the same
definition as the version comparison (:mod:`mentatlab.analytics.compare`). A group of one
span has all four equal to its duration.

Why raw spans and not the log-bucket latency histogram of the aggregates
(``storage/aggregates.py``, ``LATENCY_HIST``, within 1% of the true value): that
histogram is kept only in the ``scope`` aggregate (org, project, agent, workflow,
service), keyed by none of operation, tool, provider or model, and the agent grouping
here counts own spans only; docs/decisions/0011-latency-percentiles.md has the trade-off
and what a faster long-range path needs.

**Histogram**: fixed bucket bounds :data:`HISTOGRAM_BOUNDS_MS`; bucket ``i`` counts
durations in ``[bounds[i-1], bounds[i])`` ms, bucket 0 is ``[0, bounds[0])`` and the last
is ``[bounds[-1], +inf)`` (``len(bounds) + 1`` counts, summing to ``num_spans``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, get_args

from mentatlab.analytics.query import (
    FINAL_SETTINGS,
    LLM_CALL,
    MODEL_EXPR,
    QueryParams,
    SqlParts,
    build_where,
)
from mentatlab.errors import ValidationError
from mentatlab.storage.base import SpanStore

__all__ = [
    "HISTOGRAM_BOUNDS_MS",
    "LATENCY_GROUPS",
    "MAX_GROUPS",
    "NOT_OPEN",
    "QUANTILES",
    "LatencyGroup",
    "LatencyGroupBy",
    "LatencyReport",
    "latency_by",
]

LatencyGroupBy = Literal["operation", "agent", "tool", "provider", "model"]
"""What the latency answer is grouped by."""

LATENCY_GROUPS: Final[Mapping[str, tuple[str, str]]] = {
    "operation": ("toString(operation)", "1"),
    "agent": ("agent_id", "bitAnd(inherited, 1) = 0"),
    "tool": ("tool_name", "1"),
    "provider": ("provider", LLM_CALL),
    "model": (MODEL_EXPR, LLM_CALL),
}
"""Group-by name → (SQL of the group value, SQL condition on the spans counted)."""
assert tuple(LATENCY_GROUPS) == get_args(LatencyGroupBy)

QUANTILES: Final = (0.5, 0.9, 0.95, 0.99)
"""The quantiles reported (p50, p90, p95, p99)."""
HISTOGRAM_BOUNDS_MS: Final[tuple[float, ...]] = (
    1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 300_000)
"""Histogram bucket bounds in ms (1-2.5-5 steps, as Prometheus' default buckets, up to 5
minutes for long agent runs)."""
NOT_OPEN: Final = "NOT (duration_ms = 0 AND JSONExtractBool(attributes, 'mentat.span.open'))"
"""Spans that have ended (the JSON is only read for 0 ms spans: short-circuit ``AND``)."""
MAX_GROUPS: Final = 1_000
"""Most groups one answer lists (the ``limit`` parameter's ceiling)."""


@dataclass(frozen=True, slots=True)
class LatencyGroup:
    """Latency of one group's spans."""

    key: str
    """The group value (an operation, agent id, tool name, provider or model)."""
    num_spans: int
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    histogram_counts: tuple[int, ...]
    """Spans per bucket of :data:`HISTOGRAM_BOUNDS_MS` (``len(bounds) + 1`` counts)."""


@dataclass(frozen=True, slots=True)
class LatencyReport:
    """The answer of :func:`latency_by`."""

    group_by: str
    groups: tuple[LatencyGroup, ...]
    """Most spans first (ties: by key), at most ``limit``."""
    num_groups: int
    """Groups in the range and filter, before ``limit``."""
    histogram_bounds_ms: tuple[float, ...] = HISTOGRAM_BOUNDS_MS


def latency_by(store: SpanStore, params: QueryParams, group_by: str, *,
               limit: int = 50) -> LatencyReport:
    """Exact latency percentiles and a histogram per group (see the module doc).

    Args:
        store: the span store.
        params: time range and equality filters (its own group-by and bucket are ignored).
        group_by: one of :data:`LATENCY_GROUPS`.
        limit: most groups returned (1..:data:`MAX_GROUPS`), the busiest first.

    Returns:
        Per group: span count, p50/p90/p95/p99, mean and max (ms) and histogram counts.

    Raises:
        ValidationError: (422) ``group_by`` is unknown (field ``group_by``) or ``limit``
            is out of range (field ``limit``).
        QueryTimeout: the query ran past the store's time limit.
        StoreError: the query failed.
    """
    spec = LATENCY_GROUPS.get(group_by)
    if spec is None:
        raise ValidationError("group_by",
                              f"Expected one of {sorted(LATENCY_GROUPS)}, got {group_by!r}")
    if not 1 <= limit <= MAX_GROUPS:
        raise ValidationError("limit", f"Expected 1..{MAX_GROUPS}, got {limit}")
    key_expr, spans_cond = spec
    parts = build_where(params.time_range, params.filters, SqlParts())
    # One countIf per bound (vectorized): ~2x faster than a per-row bucket array.
    at_least = ", ".join(f"toInt64(countIf(duration_ms >= {float(b)!r}))"
                         for b in HISTOGRAM_BOUNDS_MS)
    quantiles = ", ".join(str(q) for q in QUANTILES)
    sql = f"""SELECT {key_expr} AS key, toInt64(count()) AS num_spans,
    quantilesExactInclusive({quantiles})(duration_ms) AS q,
    avg(duration_ms) AS mean_ms, max(duration_ms) AS max_ms,
    [{at_least}] AS at_least,
    toInt64(count() OVER ()) AS num_groups
FROM spans FINAL
WHERE {parts.where} AND {spans_cond} AND key != '' AND {NOT_OPEN}
GROUP BY key ORDER BY num_spans DESC, key LIMIT {int(limit)} {FINAL_SETTINGS}"""
    rows = store.query_arrow(sql, parts.binds).to_pylist()
    groups = tuple(_group(row) for row in rows)
    return LatencyReport(group_by=group_by, groups=groups,
                         num_groups=int(rows[0]["num_groups"]) if rows else 0)


def _group(row: Mapping[str, Any]) -> LatencyGroup:
    """One result row; ``at_least[i]`` counts durations >= ``HISTOGRAM_BOUNDS_MS[i]``."""
    q = [float(x) for x in row["q"]]
    at_least = [int(row["num_spans"]), *(int(n) for n in row["at_least"]), 0]
    counts = [at_least[i] - at_least[i + 1] for i in range(len(HISTOGRAM_BOUNDS_MS) + 1)]
    return LatencyGroup(key=str(row["key"]), num_spans=int(row["num_spans"]),
                        p50_ms=q[0], p90_ms=q[1], p95_ms=q[2], p99_ms=q[3],
                        mean_ms=float(row["mean_ms"]), max_ms=float(row["max_ms"]),
                        histogram_counts=tuple(counts))
