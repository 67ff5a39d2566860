"""Bottlenecks: what accounts for the most critical-path time of the settled traces.

Reads ``span_timing`` (:mod:`mentatlab.storage.settled`), filled by the settle job
(:mod:`mentatlab.resolver.settle`) with each span's ``critical_path_ms``: the time during
which that span itself was what its trace's end-to-end duration waited on
(:mod:`mentatlab.analytics.critical_path`). So only **settled** traces count: a trace
appears here ``trace_quiet_s`` (default 120 s) after its last span arrived; the
unsettled tail is left out, not estimated. Spans are picked by their own ``start_time``
in ``[start, end)``.

Per group (``group_by``: span ``name``, ``tool`` (``tool_name``), ``model`` (response,
else request model), ``agent`` (``agent_id``) or ``operation``; spans whose key is empty,
say the non-tool spans for ``tool``, form no group but count in the total):

* ``critical_path_ms``: Σ ``critical_path_ms`` of the group's spans in the range (ms);
* ``occurrences``: spans of the group in the range (on the path or not), and
  ``occurrences_per_hour`` = occurrences / (range length in hours);
* ``on_path``: how many of them were on their trace's critical path;
* ``share_pct``: 100 · ``critical_path_ms`` / Σ ``critical_path_ms`` of every span in the
  range and filter (= the summed critical-path lengths of those traces' parts in range);
* ``previous_critical_path_ms``: the same sum over the previous period of equal length,
  ``[start - (end - start), start)``; ``trend_pct`` = 100 · (current − previous) /
  previous, None when the previous period had none (a new bottleneck);
* ``severity`` (:func:`severity`): from the share, by Amdahl's law (G. Amdahl, "Validity
  of the single processor approach…", AFIPS 1967): making a group that holds a share
  ``s`` of the critical path infinitely fast shortens the traces by at most ``s``, a
  speed-up of at most ``1 / (1 - s)``. ``critical`` when ``s`` ≥ 50 % (removing it could
  at least halve latency: it *is* the run), ``high`` ≥ 25 % (up to 1.33×: worth a
  sprint), ``medium`` ≥ 10 % (up to 1.11×: about the smallest gain a user notices, the
  "just noticeable difference" of ~10 % for durations, Weber fraction for time
  intervals, Grondin 2010, https://doi.org/10.3758/APP.72.3.561), else ``low``. A group
  whose critical-path time grew by at least :data:`ESCALATE_TREND_PCT` % over the
  previous period goes one level up (a bottleneck getting worse fast), never above
  ``critical``.

Groups are ranked by ``critical_path_ms`` (largest first), then key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from mentatlab.analytics.query import SqlParts, TimeRange
from mentatlab.errors import FieldError, FilterError, ValidationError
from mentatlab.storage.base import SpanStore
from mentatlab.storage.settled import SETTLED_FILTER_COLUMNS, SPAN_TIMING_TABLE

__all__ = [
    "BOTTLENECK_GROUPS",
    "DEFAULT_LIMIT",
    "ESCALATE_TREND_PCT",
    "MAX_LIMIT",
    "SEVERITY_SHARE_PCT",
    "Bottleneck",
    "Bottlenecks",
    "Severity",
    "get_bottlenecks",
    "severity",
]

Severity = Literal["low", "medium", "high", "critical"]
BOTTLENECK_GROUPS: Final[Mapping[str, str]] = {
    "name": "name", "tool": "tool_name", "model": "model", "agent": "agent_id",
    "operation": "operation"}
"""``group_by`` values and the ``span_timing`` column of each (``model`` is stored as the
response model, else the request model)."""
_GROUP_ALIASES: Final[Mapping[str, str]] = {
    "span_name": "name", "tool_name": "tool", "agent_id": "agent"}
SEVERITY_SHARE_PCT: Final[tuple[tuple[Severity, float], ...]] = (
    ("critical", 50.0), ("high", 25.0), ("medium", 10.0))
"""Least share of the critical path (%) of each severity above ``low`` (module doc)."""
ESCALATE_TREND_PCT: Final = 50.0
"""A group whose critical-path time grew by at least this (%) goes one severity up."""
_LEVELS: Final[tuple[Severity, ...]] = ("low", "medium", "high", "critical")
DEFAULT_LIMIT: Final = 20
MAX_LIMIT: Final = 500
_FINAL = "SETTINGS do_not_merge_across_partitions_select_final = 1"
_TS = "DateTime64(9, 'UTC')"


@dataclass(frozen=True, slots=True)
class Bottleneck:
    """One group's share of the critical path."""

    key: str
    critical_path_ms: float
    """Σ critical-path time of the group's spans in the range, ms."""
    occurrences: int
    """Spans of the group in the range."""
    occurrences_per_hour: float
    on_path: int
    """Of those, spans on their trace's critical path."""
    share_pct: float
    """Percent of the total critical-path time in the range and filter."""
    previous_critical_path_ms: float
    """Σ critical-path time over the previous period of equal length, ms."""
    trend_pct: float | None
    """Change against the previous period in %, None when it had none."""
    severity: Severity


@dataclass(frozen=True, slots=True)
class Bottlenecks:
    """The answer of :func:`get_bottlenecks`."""

    group_by: str
    start: str
    end: str
    previous_start: str
    total_critical_path_ms: float
    """Σ critical-path time of every span in the range and filter, ms."""
    num_traces: int
    """Settled traces with a span in the range and filter."""
    num_groups: int
    """Groups in the range (before ``limit``)."""
    rows: list[Bottleneck]


def severity(share_pct: float, trend_pct: float | None) -> Severity:
    """Severity of a group from its share (%) and trend (%) (see the module doc)."""
    level = 0
    for index, (_, least) in enumerate(SEVERITY_SHARE_PCT):
        if share_pct >= least:
            level = len(_LEVELS) - 1 - index
            break
    if trend_pct is not None and trend_pct >= ESCALATE_TREND_PCT:
        level = min(level + 1, len(_LEVELS) - 1)
    return _LEVELS[level]


def _row(value: Any) -> tuple[str, float, float, int, int]:
    """``(key, cp_ms, previous_ms, occurrences, on_path)`` of one group tuple.

    Arrow gives a tuple as a dict keyed "1", "2", ...
    """
    items = list(value.values()) if isinstance(value, dict) else list(value)
    return (str(items[0]), float(items[1]), float(items[2]), int(items[3]), int(items[4]))


def group_column(group_by: str) -> tuple[str, str]:
    """``(canonical group name, span_timing column)`` of a ``group_by`` value.

    Raises:
        ValidationError: (422, field ``group_by``) not one of :data:`BOTTLENECK_GROUPS`.
    """
    name = _GROUP_ALIASES.get(group_by, group_by)
    column = BOTTLENECK_GROUPS.get(name)
    if column is None:
        raise ValidationError("group_by", f"Expected one of {sorted(BOTTLENECK_GROUPS)}, "
                                          f"got {group_by!r}")
    return name, column


def get_bottlenecks(store: SpanStore, time_range: TimeRange, filters: Mapping[str, str],
                    group_by: str = "name", limit: int = DEFAULT_LIMIT) -> Bottlenecks:
    """The groups holding the most critical-path time of the settled traces in a range.

    Args:
        store: the span store.
        time_range: ``[start, end)`` over the spans' ``start_time`` (UTC).
        filters: equality conditions, canonical names (the caller's org/project included),
            among :data:`~mentatlab.storage.settled.SETTLED_FILTER_COLUMNS`.
        group_by: one of :data:`BOTTLENECK_GROUPS` (or ``span_name``, ``tool_name``,
            ``agent_id``).
        limit: most groups returned (1..:data:`MAX_LIMIT`), largest first.

    Returns:
        The ranked groups and the totals (module doc for every formula).

    Raises:
        ValidationError: (422) an unknown ``group_by`` or ``limit`` out of range.
        FilterError: (400) a filter on a field ``span_timing`` does not hold (field
            ``filter.<name>``).
        QueryTimeout: the query ran past the store's time limit.
        StoreError: the query failed.
    """
    name, column = group_column(group_by)
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationError("limit", f"Expected 1..{MAX_LIMIT}, got {limit}")
    parts = SqlParts()
    length = time_range.end - time_range.start
    previous_start = time_range.start - length
    start = parts.bind(time_range.start, _TS)
    parts.conditions += [f"start_time >= {parts.bind(previous_start, _TS)}",
                         f"start_time < {parts.bind(time_range.end, _TS)}"]
    unknown = [FieldError(f"filter.{field}", (
        f"Bottlenecks read settled spans, which hold only {list(SETTLED_FILTER_COLUMNS)}; "
        f"got {field!r}")) for field in filters if field not in SETTLED_FILTER_COLUMNS]
    if unknown:
        raise FilterError(unknown)
    for field, value in filters.items():
        parts.conditions.append(f"{field} = {parts.bind(str(value), 'String')}")
    current = f"start_time >= {start}"
    # The groups come back as one array beside the total critical-path time; the distinct
    # traces of the current period are one more (cheap) scan: per-group trace sets
    # merged at the end cost ~3x as much at 10M spans.
    sql = f"""SELECT * FROM (
    SELECT groupArray((g, cp, prev, n, on_path)) AS groups, sum(cp) AS total FROM (
        SELECT {column} AS g, sumIf(critical_path_ms, {current}) AS cp,
            sumIf(critical_path_ms, NOT ({current})) AS prev,
            toInt64(countIf({current})) AS n,
            toInt64(countIf({current} AND on_critical_path = 1)) AS on_path
        FROM {SPAN_TIMING_TABLE} FINAL WHERE {parts.where} GROUP BY g)
) AS g CROSS JOIN (
    SELECT toInt64(uniqExact(trace_id)) AS num_traces
    FROM {SPAN_TIMING_TABLE} FINAL WHERE {parts.where} AND {current}
) AS t {_FINAL}"""
    answer = store.query_arrow(sql, parts.binds).to_pylist()[0]
    hours = length.total_seconds() / 3600
    total = float(answer["total"] or 0.0)
    groups = sorted((_row(g) for g in answer["groups"] or []),
                    key=lambda r: (-r[1], r[0]))
    groups = [r for r in groups if r[0] != "" and r[3] > 0]
    out: list[Bottleneck] = []
    for key, cp, prev, num, on_path in groups[:limit]:
        share = 100 * cp / total if total > 0 else 0.0
        trend = 100 * (cp - prev) / prev if prev > 0 else None
        out.append(Bottleneck(
            key=key, critical_path_ms=cp, occurrences=num, occurrences_per_hour=num / hours,
            on_path=on_path, share_pct=share, previous_critical_path_ms=prev,
            trend_pct=trend, severity=severity(share, trend)))
    return Bottlenecks(group_by=name, start=time_range.start.isoformat(),
                       end=time_range.end.isoformat(),
                       previous_start=previous_start.isoformat(),
                       total_critical_path_ms=total, num_traces=int(answer["num_traces"]),
                       num_groups=len(groups), rows=out)
