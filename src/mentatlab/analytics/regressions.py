"""Regressions: what got significantly worse after a new version first appeared.

Baselines are kept per **agent and operation** (``agent_id``, ``operation``): a version is
a value of a version field (``prompt_version``, ``agent_version``, ``workflow_version``,
or the ``model``) on spans of one agent doing one operation.

1. **New versions.** Over the spans the caller may see (``params.filters``), the
   *first-seen instant* of a value is the earliest ``start_time`` of a span with that
   (field, agent, operation, value), over all history up to ``end``. A value is *new in
   the window* when that instant falls in ``[start, end)``. At most
   :data:`MAX_VERSIONS` of them are compared (earliest first); the rest are listed as
   skipped.
2. **Baseline.** The baseline of a new value first seen at ``t`` is the *previous
   version*: among the other values of the same field for the same agent and operation,
   the one on the most traces in the look-back ``[t - L, t)``, where ``L = end - start``
   (ties: the one seen last, then the smaller value). No earlier value means no baseline:
   the version is skipped with that reason (traffic carrying no value is not a version,
   and the comparison needs two values; docs/decisions/0015-regressions.md).
3. **Comparison.** :func:`mentatlab.analytics.compare.compare_versions` with side A the
   baseline and side B the new value, over ``[t - L, end)`` and the caller's filters
   plus ``agent_id`` and ``operation``: the unit is the trace, and the tests are
   compare's (two-proportion z-test with Cohen's h for the success rate, Mann-Whitney U
   with the rank-biserial r for latency, cost per success and tokens per success; all
   two-sided). During a gradual roll-out the baseline's traces after ``t`` stay in side
   A as a concurrent control.
4. **Direction.** Worse means a lower success rate (h > 0: the baseline's rate is
   higher), or higher latency, cost or tokens (r < 0: the new version's values tend to be
   larger). The reported values are the success rates, latency p95 (ms), cost per success
   (USD) and tokens per success of both sides.
5. **Multiple comparisons.** The p-values of every computed test in the answer (every
   compared version × four metrics, better or worse) are adjusted together with
   Benjamini–Hochberg (statsmodels ``multipletests(method="fdr_bh")``, Benjamini &
   Hochberg 1995, https://doi.org/10.1111/j.2517-6161.1995.tb02031.x), controlling the
   false discovery rate at :data:`~mentatlab.analytics.compare.ALPHA`. A **regression**
   is a test whose adjusted p-value is below ``ALPHA`` and whose direction is worse.
   A test compare did not compute (fewer than ``MIN_SAMPLE_PER_SIDE`` values on a side,
   no variance) is never a regression and carries compare's reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final, Literal

from mentatlab.analytics.compare import (
    ALPHA,
    COMPARE_FIELDS,
    Comparison,
    TestResult,
    compare_versions,
)
from mentatlab.analytics.query import (
    EARLIEST_TIME,
    FINAL_SETTINGS,
    QueryParams,
    TimeRange,
    build_where,
)
from mentatlab.errors import ValidationError
from mentatlab.storage.base import SpanStore

__all__ = [
    "MAX_VERSIONS",
    "METRICS",
    "MetricCheck",
    "Regressions",
    "VersionCheck",
    "find_regressions",
]

MAX_VERSIONS: Final = 20
"""Most new versions one answer compares (each is one comparison query); the rest are
listed as skipped."""
METRICS: Final[Mapping[str, str]] = {
    "success_rate": "lower",
    "latency_ms": "higher",
    "cost_per_success": "higher",
    "tokens_per_success": "higher",
}
"""The metrics checked (compare's test names) and which way is worse."""
Direction = Literal["worse", "better", "same"]


@dataclass(frozen=True, slots=True)
class MetricCheck:
    """One metric of one new version against its baseline."""

    metric: str
    """``success_rate``, ``latency_ms``, ``cost_per_success`` or ``tokens_per_success``."""
    test: str
    """compare's test: ``two-proportion-z`` or ``mann-whitney-u``."""
    effect_size_name: str
    """``cohen-h`` or ``rank-biserial`` (baseline A against version B, as in compare)."""
    n_baseline: int
    """Values of the baseline side the test used (traces; successful ones for cost and
    tokens)."""
    n_version: int
    baseline_value: float | Decimal | None
    """Success rate (0..1), latency p95 (ms), cost per success (USD) or tokens per
    success of the baseline; None when it has no success."""
    version_value: float | Decimal | None
    computed: bool
    reason: str | None = None
    """Why the test was not computed (compare's reason)."""
    p_value: float | None = None
    """compare's two-sided p-value."""
    p_adjusted: float | None = None
    """Benjamini–Hochberg adjusted p-value over every computed test of the answer."""
    effect_size: float | None = None
    direction: Direction | None = None
    """``worse``, ``better`` or ``same`` (effect size 0); None when not computed."""
    regression: bool = False
    """``p_adjusted < ALPHA`` and ``direction == "worse"``."""


@dataclass(frozen=True, slots=True)
class VersionCheck:
    """One value of a version field first seen in the window, and its checks."""

    field: str
    agent_id: str
    """The agent ('' for spans of no agent)."""
    operation: str
    version: str
    """The new value."""
    first_seen: datetime
    """UTC instant of its first span (for this agent and operation)."""
    baseline: str | None
    """The previous value compared with; None when skipped without one."""
    num_baseline_traces: int = 0
    num_version_traces: int = 0
    checks: tuple[MetricCheck, ...] = ()
    skipped_reason: str | None = None
    """Why the version was not compared (None when it was)."""


@dataclass(frozen=True, slots=True)
class Regressions:
    """The answer of :func:`find_regressions`."""

    lookback_ms: float
    """``L``: the length of the window, the baseline's look-back before a first sighting."""
    num_tests: int
    """Computed tests adjusted together (the Benjamini–Hochberg family)."""
    versions: tuple[VersionCheck, ...]
    """Every new version, compared or skipped, by first sighting."""
    regressions: tuple[tuple[VersionCheck, MetricCheck], ...]
    """The checks that are regressions, smallest adjusted p-value first."""


def _new_versions(store: SpanStore, params: QueryParams, fields: Sequence[str]
                  ) -> list[dict[str, Any]]:
    """(field, agent_id, operation, value, first_seen) of the values first seen in range."""
    parts = build_where(TimeRange(EARLIEST_TIME, params.time_range.end), params.filters)
    pairs = ", ".join(f"({parts.bind(f, 'String')}, {COMPARE_FIELDS[f]})" for f in fields)
    start = parts.bind(params.time_range.start, "DateTime64(9, 'UTC')")
    # microseconds: Python's datetime (a nanosecond one arrives as a pandas Timestamp,
    # whose arithmetic overflows centuries before the store's earliest time)
    sql = f"""SELECT field, agent_id, operation, version,
    toDateTime64(first_ns, 6, 'UTC') AS first_seen FROM (
SELECT fv.1 AS field, agent_id, operation, fv.2 AS version,
    min(start_time) AS first_ns
FROM spans FINAL ARRAY JOIN [{pairs}] AS fv
WHERE {parts.where} AND fv.2 != ''
GROUP BY field, agent_id, operation, version
HAVING first_ns >= {start})
ORDER BY first_seen, field, agent_id, operation, version {FINAL_SETTINGS}"""
    rows: list[dict[str, Any]] = store.query_arrow(sql, parts.binds).to_pylist()
    return rows


def _baseline(store: SpanStore, params: QueryParams, cand: Mapping[str, Any],
              lookback: TimeRange) -> str | None:
    """The previous version: the value on the most traces in ``lookback``, or None.

    Other values of the candidate's field for its agent and operation; ties go to the
    one seen last, then the smallest.
    """
    filters = {**params.filters, "agent_id": cand["agent_id"], "operation": cand["operation"]}
    parts = build_where(lookback, filters)
    expr = COMPARE_FIELDS[cand["field"]]
    sql = f"""SELECT {expr} AS value, uniqExact(trace_id) AS num, max(start_time) AS last
FROM spans FINAL
WHERE {parts.where} AND value != '' AND value != {parts.bind(cand["version"], 'String')}
GROUP BY value ORDER BY num DESC, last DESC, value LIMIT 1 {FINAL_SETTINGS}"""
    rows = store.query_arrow(sql, parts.binds).to_pylist()
    return str(rows[0]["value"]) if rows else None


def _values(c: Comparison, metric: str) -> tuple[Any, Any]:
    a, b = c.a, c.b
    if metric == "success_rate":
        return a.success_rate, b.success_rate
    if metric == "latency_ms":
        return a.latency_p95_ms, b.latency_p95_ms
    if metric == "cost_per_success":
        return a.cost_per_success, b.cost_per_success
    return a.tokens_per_success, b.tokens_per_success


def _direction(metric: str, test: TestResult) -> Direction | None:
    """Worse/better for the new version (B) from compare's A-against-B effect size."""
    if not test.computed or test.effect_size is None:
        return None
    if test.effect_size == 0:
        return "same"
    # Cohen's h > 0: A's success rate is higher; rank-biserial r > 0: A's values larger.
    a_higher = test.effect_size > 0
    worse_when_a_higher = METRICS[metric] == "lower"
    return "worse" if a_higher == worse_when_a_higher else "better"


def _checks(c: Comparison) -> tuple[MetricCheck, ...]:
    out = []
    for metric in METRICS:
        t = c.tests[metric]
        base, new = _values(c, metric)
        out.append(MetricCheck(
            metric=metric, test=t.test, effect_size_name=t.effect_size_name,
            n_baseline=t.n_a, n_version=t.n_b, baseline_value=base, version_value=new,
            computed=t.computed, reason=t.reason, p_value=t.p_value,
            effect_size=t.effect_size, direction=_direction(metric, t)))
    return tuple(out)


def _adjust(versions: list[VersionCheck]) -> list[VersionCheck]:
    """Benjamini–Hochberg over every computed test; marks the worse significant ones."""
    from statsmodels.stats.multitest import multipletests  # lazy: heavy import

    pvals = [m.p_value for v in versions for m in v.checks if m.p_value is not None]
    if not pvals:
        return versions
    _, adjusted, _, _ = multipletests(pvals, alpha=ALPHA, method="fdr_bh")
    it = iter(float(p) for p in adjusted)
    out = []
    for v in versions:
        checks = []
        for m in v.checks:
            if m.p_value is not None:
                p_adj = next(it)
                m = replace(m, p_adjusted=p_adj,
                            regression=p_adj < ALPHA and m.direction == "worse")
            checks.append(m)
        out.append(replace(v, checks=tuple(checks)))
    return out


def find_regressions(store: SpanStore, params: QueryParams, fields: Sequence[str] | None = None,
                     *, max_versions: int = MAX_VERSIONS) -> Regressions:
    """The versions first seen in ``params.time_range`` and what got worse with each.

    Args:
        store: the span store.
        params: the window ``[start, end)`` and the filters (tenancy and any condition
            on canonical fields); group-by and bucket are ignored.
        fields: version fields to look at (names in ``COMPARE_FIELDS``); None for all.
        max_versions: most new versions compared (1..:data:`MAX_VERSIONS`).

    Returns:
        Every new version (compared with its baseline, or skipped with the reason), and
        the regressions among their checks (see the module doc for every definition).

    Raises:
        ValidationError: (422) a field is not a version field, or ``max_versions`` is out
            of range.
        QueryTimeout: a query ran past the store's time limit.
        StoreError: a query failed.
    """
    names = list(fields) if fields else list(COMPARE_FIELDS)
    for name in names:
        if name not in COMPARE_FIELDS:
            raise ValidationError("field",
                                  f"Expected one of {sorted(COMPARE_FIELDS)}, got {name!r}")
    if not 1 <= max_versions <= MAX_VERSIONS:
        raise ValidationError("max_versions", f"Expected 1..{MAX_VERSIONS}, got {max_versions}")
    window = params.time_range
    lookback = window.end - window.start
    versions: list[VersionCheck] = []
    for n, cand in enumerate(_new_versions(store, params, names)):
        first = cand["first_seen"]
        first = first.replace(tzinfo=UTC) if first.tzinfo is None else first.astimezone(UTC)
        ident = dict(field=str(cand["field"]), agent_id=str(cand["agent_id"]),
                     operation=str(cand["operation"]), version=str(cand["version"]),
                     first_seen=first)
        if n >= max_versions:
            versions.append(VersionCheck(**ident, baseline=None, skipped_reason=(
                f"Not compared: more than {max_versions} new versions in the window "
                "(narrow the range or the filter)")))
            continue
        # the look-back never starts before what the store can hold
        since = max(first - lookback, EARLIEST_TIME)
        before = TimeRange(since, first)
        base = _baseline(store, params, cand, before)
        if base is None:
            versions.append(VersionCheck(**ident, baseline=None, skipped_reason=(
                f"No earlier {ident['field']} for this agent and operation in the "
                f"{lookback} before it first appeared: no baseline")))
            continue
        scoped = QueryParams(TimeRange(since, window.end), filters={
            **params.filters, "agent_id": ident["agent_id"],
            "operation": ident["operation"]})
        try:
            c = compare_versions(store, scoped, ident["field"], base, ident["version"])
        except ValidationError as err:  # a side with no trace of its own (all mixed)
            versions.append(VersionCheck(**ident, baseline=base,
                                         skipped_reason=f"Not compared: {err.reason}"))
            continue
        versions.append(VersionCheck(
            **ident, baseline=base, num_baseline_traces=c.a.num_units,
            num_version_traces=c.b.num_units, checks=_checks(c)))
    versions = _adjust(versions)
    found = [(v, m) for v in versions for m in v.checks if m.regression]
    found.sort(key=lambda vm: (vm[1].p_adjusted or 0.0, vm[0].first_seen))
    return Regressions(
        lookback_ms=lookback.total_seconds() * 1000,
        num_tests=sum(m.p_value is not None for v in versions for m in v.checks),
        versions=tuple(versions), regressions=tuple(found))
