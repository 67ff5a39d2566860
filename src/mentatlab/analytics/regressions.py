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

**Where it is read from.** On a store the settle job ran on, with a filter on the tenancy
fields only (``org_id``, ``workspace_id``, ``project_id``): the first sightings from
``version_sightings`` (per value, agent, operation and day, written by the settle job),
the baselines from the same sightings when they decide them (one other value proven in
the look-back, none other possible) and otherwise from one count over raw spans for all
candidates, and every comparison from ``trace_facts`` in one query; the unsettled tail
comes from raw spans each time. As in compare over settled traces, a trace is in a
comparison's range when its first span starts in it, and its numbers cover all its
spans. A span whose agent, operation or version was rewritten after its trace settled
keeps its old sighting (docs/decisions/0015-regressions.md). Otherwise every step reads
raw spans (one :func:`~mentatlab.analytics.compare.compare_versions` per version).
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
    MAX_SAMPLE_PER_SIDE,
    TENANCY_FILTERS,
    Comparison,
    Tail,
    TestResult,
    compare_versions,
    comparison,
    read_tail,
    side_samples,
    summary_columns,
)
from mentatlab.analytics.query import (
    EARLIEST_TIME,
    FINAL_SETTINGS,
    NOT_ROLLUP,
    QueryParams,
    SqlParts,
    TimeRange,
    build_where,
)
from mentatlab.errors import ValidationError
from mentatlab.resolver.settle import read_settle_state
from mentatlab.storage.base import SpanStore
from mentatlab.storage.settled import TRACE_FACTS_TABLE, VERSION_SIGHTINGS_TABLE

__all__ = [
    "MAX_VERSIONS",
    "METRICS",
    "MetricCheck",
    "Regressions",
    "VersionCheck",
    "find_regressions",
]

MAX_VERSIONS: Final = 20
"""Most new versions one answer compares; the rest are listed as skipped."""
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


_FIELD_INDEX: Final[Mapping[str, int]] = {f: i + 1 for i, f in enumerate(COMPARE_FIELDS)}
_FACTS_ARRAYS: Final = ("prompt_versions", "agent_versions", "workflow_versions", "models")
"""``trace_facts`` array of each field, in ``COMPARE_FIELDS`` order."""
_TS: Final = "DateTime64(9, 'UTC')"


def _pick(index: str, exprs: Sequence[str]) -> str:
    """``exprs[index - 1]`` (``index`` an SQL expression of 1..len)."""
    pairs = ", ".join(f"{index} = {i + 1}, {e}" for i, e in enumerate(exprs[:-1]))
    return f"multiIf({pairs}, {exprs[-1]})"


def _new_versions_settled(store: SpanStore, params: QueryParams, fields: Sequence[str],
                          tail: Tail) -> list[dict[str, Any]]:
    """:func:`_new_versions` from ``version_sightings`` plus the unsettled tail's spans."""
    tenancy = dict(params.filters)
    parts = SqlParts()
    end = parts.bind(params.time_range.end, _TS)
    start = parts.bind(params.time_range.start, _TS)
    names = parts.bind(list(fields), "Array(String)")
    scope = "".join(f" AND {k} = {parts.bind(v, 'String')}" for k, v in tenancy.items())
    sightings = f"""SELECT field, agent_id, operation, value, min(first_seen) AS first_ns
FROM {VERSION_SIGHTINGS_TABLE}
WHERE start_time < {end} AND has({names}, field){scope}
GROUP BY field, agent_id, operation, value"""
    if tail.trace_ids != ():
        pairs = ", ".join(f"('{f}', {COMPARE_FIELDS[f]})" for f in fields)
        sightings += f"""
UNION ALL
SELECT fv.1 AS field, agent_id, operation, fv.2 AS value, min(start_time) AS first_ns
FROM spans FINAL ARRAY JOIN [{pairs}] AS fv
WHERE start_time < {end} AND fv.2 != ''{scope} AND {tail.condition(parts, tenancy, negate=False)}
GROUP BY field, agent_id, operation, value"""
    sql = f"""SELECT field, agent_id, operation, version,
    toDateTime64(first_ns, 6, 'UTC') AS first_seen FROM (
SELECT field, agent_id, operation, value AS version, min(first_ns) AS first_ns
FROM ({sightings})
GROUP BY field, agent_id, operation, version
HAVING first_ns >= {start} AND first_ns < {end})
ORDER BY first_seen, field, agent_id, operation, version {FINAL_SETTINGS}"""
    rows: list[dict[str, Any]] = store.query_arrow(sql, parts.binds).to_pylist()
    return rows


_UNKNOWN: Final = object()
"""A baseline the sightings cannot settle: counted over raw spans."""


def _baselines_from_sightings(store: SpanStore, params: QueryParams,
                              cands: Sequence[Mapping[str, Any]],
                              lookbacks: Sequence[TimeRange], tail: Tail) -> list[Any]:
    """The baselines that ``version_sightings`` (plus the tail's spans) decide alone.

    A value's day row whose first or last sighting falls in the look-back proves a span
    there; a row spanning the whole look-back only may have one. When exactly one other
    value is proven and no other may be present, it is the baseline (no count needed);
    with none proven or possible there is none. Every other case is :data:`_UNKNOWN`.
    """
    tenancy = dict(params.filters)
    parts = SqlParts()
    keys = parts.bind(sorted({f"{c['field']}|{c['agent_id']}|{c['operation']}" for c in cands}),
                      "Array(String)")
    earliest = min(r.start for r in lookbacks).astimezone(UTC)
    lo = parts.bind(earliest, _TS)
    lo_day = parts.bind(datetime(earliest.year, earliest.month, earliest.day, tzinfo=UTC), _TS)
    hi = parts.bind(max(r.end for r in lookbacks), _TS)
    scope = "".join(f" AND {k} = {parts.bind(v, 'String')}" for k, v in tenancy.items())
    sql = f"""SELECT field, agent_id, operation, value, min(first_seen) AS first,
    max(last_seen) AS last
FROM {VERSION_SIGHTINGS_TABLE}
WHERE start_time < {hi} AND start_time >= {lo_day}{scope}
    AND has({keys}, concat(field, '|', agent_id, '|', operation))
GROUP BY field, agent_id, operation, value, start_time"""
    if tail.trace_ids != ():
        pairs = ", ".join(f"('{f}', {e})" for f, e in COMPARE_FIELDS.items())
        sql += f"""
UNION ALL
SELECT fv.1 AS field, agent_id, operation, fv.2 AS value, min(start_time) AS first,
    max(start_time) AS last
FROM spans FINAL ARRAY JOIN [{pairs}] AS fv
WHERE start_time < {hi} AND start_time >= {lo} AND fv.2 != ''{scope}
    AND {tail.condition(parts, tenancy, negate=False)}
    AND has({keys}, concat(fv.1, '|', agent_id, '|', operation))
GROUP BY field, agent_id, operation, value, toDate(start_time)"""
    rows: dict[tuple[str, str, str], list[tuple[str, int, int]]] = {}
    for r in store.query_arrow(sql, parts.binds).to_pylist():
        key = (str(r["field"]), str(r["agent_id"]), str(r["operation"]))
        rows.setdefault(key, []).append((str(r["value"]), _ns(r["first"]), _ns(r["last"])))
    out: list[Any] = []
    for cand, lb in zip(cands, lookbacks, strict=True):
        since, until = _ns(lb.start), _ns(lb.end)
        proven: set[str] = set()
        maybe: set[str] = set()
        for value, first, last in rows.get((cand["field"], cand["agent_id"],
                                            cand["operation"]), []):
            if value == cand["version"] or first >= until or last < since:
                continue
            if since <= first < until or since <= last < until:
                proven.add(value)
            else:
                maybe.add(value)
        maybe -= proven
        if not proven and not maybe:
            out.append(None)
        elif len(proven) == 1 and not maybe:
            out.append(next(iter(proven)))
        else:
            out.append(_UNKNOWN)
    return out


def _baselines(store: SpanStore, params: QueryParams, cands: Sequence[Mapping[str, Any]],
               lookbacks: Sequence[TimeRange]) -> list[str | None]:
    """The previous version of every candidate, in one read of the spans they may touch.

    For each: among the other values of its field for its agent and operation, the one on
    the most traces in its look-back (``lookbacks``), ties to the one seen last, then the
    smallest; None without one.
    """
    parts = build_where(TimeRange(min(r.start for r in lookbacks),
                                  max(r.end for r in lookbacks)), params.filters)
    conds = []
    for n, (cand, lb) in enumerate(zip(cands, lookbacks, strict=True)):
        expr = COMPARE_FIELDS[cand["field"]]
        conds.append(
            f"if(agent_id = {parts.bind(cand['agent_id'], 'String')}"
            f" AND operation = {parts.bind(cand['operation'], 'String')}"
            f" AND start_time >= {parts.bind(lb.start, _TS)}"
            f" AND start_time < {parts.bind(lb.end, _TS)}"
            f" AND {expr} NOT IN ('', {parts.bind(cand['version'], 'String')}), {n + 1}, 0)")
    pairs = parts.bind(sorted({f"{c['agent_id']}|{c['operation']}" for c in cands}),
                       "Array(String)")
    fields = parts.bind([_FIELD_INDEX[c["field"]] for c in cands], "Array(UInt8)")
    value = _pick(f"arrayElement({fields}, cand)", list(COMPARE_FIELDS.values()))
    sql = f"""SELECT cand, value, uniqExact(trace_id) AS num, max(start_time) AS last FROM (
SELECT arrayJoin(arrayFilter(x -> x > 0, [{', '.join(conds)}])) AS cand, {value} AS value,
    trace_id, start_time
FROM spans FINAL
WHERE {parts.where} AND has({pairs}, concat(agent_id, '|', operation)))
GROUP BY cand, value {FINAL_SETTINGS}"""
    best: dict[int, tuple[Any, ...]] = {}
    for row in store.query_arrow(sql, parts.binds).to_pylist():
        # ORDER BY num DESC, last DESC, value: the smallest key wins
        key = (-int(row["num"]), -_ns(row["last"]), str(row["value"]))
        n = int(row["cand"]) - 1
        if n not in best or key < best[n]:
            best[n] = key
    return [str(best[n][2]) if n in best else None for n in range(len(cands))]


def _ns(value: Any) -> int:
    """Nanoseconds since the epoch of a datetime or of a ``DateTime64(9)`` read via Arrow."""
    if hasattr(value, "value"):  # pandas Timestamp
        return int(value.value)
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return int((delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000)


def _tail_facts_sql(parts: SqlParts, tenancy: Mapping[str, str], tail: Tail,
                    window: TimeRange) -> str:
    """``trace_facts``' columns the comparisons read, for the tail's traces, from raw spans."""
    scope = build_where(window, tenancy, SqlParts(binds=parts.binds))
    arrays = ", ".join(
        f"arraySort(groupUniqArrayIf({e}, {e} != '')) AS {a}"
        for e, a in zip(COMPARE_FIELDS.values(), _FACTS_ARRAYS, strict=True))
    # the first start is renamed outside: an alias named like a column would reach WHERE
    return f"""SELECT trace_id, first_start AS start_time, * EXCEPT (trace_id, first_start)
FROM (SELECT trace_id, min(start_time) AS first_start,
    (toUnixTimestamp64Nano(max(end_time)) - toUnixTimestamp64Nano(min(start_time))) / 1e6
        AS duration_ms,
    toInt64(countIf(status != 'ok')) AS error_spans, sum(total_cost) AS total_cost,
    toInt64(sumIf(ifNull(input_tokens, 0) + ifNull(output_tokens, 0), {NOT_ROLLUP}))
        AS tokens,
    {arrays}, groupUniqArray(agent_id) AS agent_ids, groupUniqArray(operation) AS operations,
    cityHash64(trace_id) AS trace_hash
FROM spans FINAL
WHERE {scope.where} AND {tail.condition(parts, tenancy, negate=False)}
GROUP BY trace_id)"""


def _compare_all(store: SpanStore, params: QueryParams, tail: Tail,
                 cands: Sequence[Mapping[str, Any]], windows: Sequence[TimeRange]
                 ) -> list[Comparison | str]:
    """Compare's answer for every (candidate, baseline), from ``trace_facts`` in one query.

    Each item is the :class:`Comparison`, or compare's reason when a side has no trace.
    """
    tenancy = dict(params.filters)
    parts = SqlParts()
    whole = TimeRange(min(w.start for w in windows), params.time_range.end)
    scope = build_where(whole, tenancy, SqlParts(binds=parts.binds))
    # per candidate n (1-based), 4n + (1 if on the baseline's side) + (2 if on the new
    # version's): a trace of neither (or out of the candidate's scope) gives 4n, dropped
    codes = []
    for n, (cand, w) in enumerate(zip(cands, windows, strict=True)):
        column = _FACTS_ARRAYS[_FIELD_INDEX[cand["field"]] - 1]
        codes.append(
            f"if(start_time >= {parts.bind(w.start, _TS)}"
            f" AND has(agent_ids, {parts.bind(cand['agent_id'], 'String')})"
            f" AND has(operations, {parts.bind(cand['operation'], 'String')}),"
            f" {4 * (n + 1)} + has({column}, {parts.bind(cand['baseline'], 'String')})"
            f" + 2 * has({column}, {parts.bind(cand['version'], 'String')}), 0)")
    agents = parts.bind(sorted({c["agent_id"] for c in cands}), "Array(String)")
    columns = ("trace_id, start_time, duration_ms, error_spans, total_cost,"
               " input_tokens + output_tokens AS tokens, "
               + ", ".join(_FACTS_ARRAYS) + ", agent_ids, operations, trace_hash")
    rows = f"""SELECT {columns} FROM {TRACE_FACTS_TABLE} FINAL
WHERE {scope.where} AND hasAny(agent_ids, {agents})"""
    if tail.trace_ids != ():
        rows += f"\n    AND {tail.condition(parts, tenancy, negate=True)}"
        rows += f"\nUNION ALL\n{_tail_facts_sql(parts, tenancy, tail, whole)}"
    units = f"""units AS (
SELECT intDiv(code, 4) AS cand, trace_id, trace_hash AS h, toUInt8(bitAnd(code, 1)) AS in_a,
    toUInt8(bitAnd(code, 2) > 0) AS in_b, duration_ms AS latency_ms,
    toUInt8(error_spans = 0) AS success, total_cost AS cost, toInt64(tokens) AS tokens
FROM ({rows})
ARRAY JOIN arrayFilter(x -> bitAnd(x, 3) > 0, [{', '.join(codes)}]) AS code)"""
    side = "multiIf(in_a AND in_b, 'mixed', in_a, 'a', 'b')"
    sql = f"""WITH {units}
SELECT toString(cand) AS g, {side} AS side, {summary_columns(MAX_SAMPLE_PER_SIDE, with_cut=False)}
FROM units GROUP BY g, side {FINAL_SETTINGS}"""
    table = store.query_arrow(sql, parts.binds)
    names = ["g", "side", "num_units", "num_successes", "q", "total_cost", "total_tokens", "cut"]
    summary = {(str(r["g"]), str(r["side"])): {**r, "sample": table.column("sample")[i]}
               for i, r in enumerate(table.select(names).to_pylist())}
    wanted = {k: v for k, v in summary.items() if k[1] != "mixed"}
    samples = side_samples(store, units, parts.binds, wanted, MAX_SAMPLE_PER_SIDE,
                           "toString(cand)", side)
    out: list[Comparison | str] = []
    for n, cand in enumerate(cands):
        g = str(n + 1)
        missing = [(name, value) for name, value in (("a", cand["baseline"]),
                                                      ("b", cand["version"]))
                   if (g, name) not in summary]
        if missing:
            name, value = missing[0]
            out.append(f"No trace with {cand['field']} = {value!r} (and no span of the other "
                       "value) in the range and filter")
            continue
        mixed = summary.get((g, "mixed"))
        out.append(comparison(cand["field"], cand["baseline"], cand["version"],
                              summary[(g, "a")], summary[(g, "b")], samples[(g, "a")],
                              samples[(g, "b")], int(mixed["num_units"]) if mixed else 0))
    return out


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


def _pick_baselines(store: SpanStore, params: QueryParams, idents: Sequence[Mapping[str, Any]],
                    lookbacks: Sequence[TimeRange], tail: Tail | None) -> list[str | None]:
    """Every candidate's baseline: from the sightings when they decide it, else counted."""
    bases: list[Any] = [_UNKNOWN] * len(idents)
    if tail is not None and idents:
        bases = _baselines_from_sightings(store, params, idents, lookbacks, tail)
    todo = [n for n, b in enumerate(bases) if b is _UNKNOWN]
    if todo:
        counted = _baselines(store, params, [idents[n] for n in todo],
                             [lookbacks[n] for n in todo])
        for n, base in zip(todo, counted, strict=True):
            bases[n] = base
    return bases


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
    settled_ns = read_settle_state(store)
    tail = None
    if settled_ns is not None and all(k in TENANCY_FILTERS for k in params.filters):
        tail = read_tail(store, settled_ns, params.filters)
        found_versions = _new_versions_settled(store, params, names, tail)
    else:
        found_versions = _new_versions(store, params, names)
    versions: list[VersionCheck | None] = []
    chosen: list[tuple[int, dict[str, Any], TimeRange]] = []
    for n, cand in enumerate(found_versions):
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
        chosen.append((len(versions), ident, TimeRange(since, first)))
        versions.append(None)
    bases = _pick_baselines(store, params, [c[1] for c in chosen], [c[2] for c in chosen],
                            tail)
    compared: list[tuple[int, dict[str, Any], TimeRange]] = []
    for (at, ident, before), base in zip(chosen, bases, strict=True):
        if base is None:
            versions[at] = VersionCheck(**ident, baseline=None, skipped_reason=(
                f"No earlier {ident['field']} for this agent and operation in the "
                f"{lookback} before it first appeared: no baseline"))
        else:
            compared.append((at, {**ident, "baseline": base},
                             TimeRange(before.start, window.end)))
    if tail is not None and compared:
        results = _compare_all(store, params, tail, [c[1] for c in compared],
                               [c[2] for c in compared])
    else:
        results = [_compare_one(store, params, ident, scope) for _, ident, scope in compared]
    for (at, ident, _), c in zip(compared, results, strict=True):
        if isinstance(c, str):  # a side with no trace of its own (all mixed)
            versions[at] = VersionCheck(**ident, skipped_reason=f"Not compared: {c}")
        else:
            versions[at] = VersionCheck(**ident, num_baseline_traces=c.a.num_units,
                                        num_version_traces=c.b.num_units, checks=_checks(c))
    done = [v for v in versions if v is not None]
    assert len(done) == len(versions)
    adjusted = _adjust(done)
    found = [(v, m) for v in adjusted for m in v.checks if m.regression]
    found.sort(key=lambda vm: (vm[1].p_adjusted or 0.0, vm[0].first_seen))
    return Regressions(
        lookback_ms=lookback.total_seconds() * 1000,
        num_tests=sum(m.p_value is not None for v in adjusted for m in v.checks),
        versions=tuple(adjusted), regressions=tuple(found))


def _compare_one(store: SpanStore, params: QueryParams, ident: Mapping[str, Any],
                 scope: TimeRange) -> Comparison | str:
    """compare_versions for one candidate over raw spans, or compare's reason."""
    scoped = QueryParams(scope, filters={**params.filters, "agent_id": ident["agent_id"],
                                         "operation": ident["operation"]})
    try:
        return compare_versions(store, scoped, ident["field"], ident["baseline"],
                                ident["version"])
    except ValidationError as err:
        return err.reason
