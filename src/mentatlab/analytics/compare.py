"""Version comparison: two values of a version field (or two models) side by side, with tests.

The unit compared is the **trace**. Over the spans in the time range that the caller's
tenancy allows (the filter's ``org_id``, ``workspace_id`` and ``project_id``), a trace is
on side A when at least one of its spans has ``field = a``, on side B when one has
``field = b``; a trace with spans of both (a run that switched model, say) is on neither
and is counted in ``num_mixed``, so the two samples stay independent. Any other filter
condition keeps the traces that have a span meeting it (as the trace list does). The
version fields are inherited by child spans (``model/span.py``), so a trace's root or
any LLM call carrying the version puts the trace on that side.

Per trace (over its spans in the range and the tenancy, like the trace list):

* ``latency_ms``: first span's start to last span's end, in ms;
* success: no span with status ``error`` or ``timeout`` (the trace list's ``ok``; a
  failed attempt that a retry recovered still counts as a failure);
* cost: sum of ``total_cost`` (USD, exact decimal);
* tokens: input plus output tokens of the spans that are not usage rollups.

Per side: ``num_units``, ``num_successes``, ``success_rate``; latency percentiles p50,
p95 and p99 (exact, linear interpolation between closest ranks: ClickHouse
``quantilesExactInclusive``, numpy's default ``method="linear"``); ``cost_per_success``
= total cost of every trace on the side (failed ones included) / successes (Decimal,
1e-12 USD); ``tokens_per_success`` likewise.

Tests (computed in Python with scipy and statsmodels on per-trace samples read by SQL):

* success rate: two-proportion z-test (statsmodels ``proportions_ztest``, pooled
  variance, two-sided) on the exact counts; effect size Cohen's h
  (``proportion_effectsize``: 2·asin√p_a − 2·asin√p_b);
* latency: Mann-Whitney U (scipy ``mannwhitneyu``, two-sided, ``method="auto"``) on
  every trace's latency; effect size the rank-biserial correlation r = 2·U_a/(n_a·n_b) − 1
  (Kerby 2014, https://doi.org/10.2466/11.IT.3.1), positive when A's values tend to be
  larger;
* cost per success and tokens per success: Mann-Whitney U as above on the cost (as
  float) and tokens of each *successful* trace.

**Where the per-trace numbers come from.** Settled traces (no span arrived for
``trace_quiet_s``; :mod:`mentatlab.resolver.settle`) are read from ``trace_facts``, one
row per (org, project, trace) with the numbers above already summed, so the query no
longer groups raw spans by trace; the unsettled tail (traces with a span committed after
the settle job's watermark: the last couple of minutes, or a trace touched again) is
computed from raw spans as before and excluded from ``trace_facts``, so every trace
counts once and the answer is the same as over raw spans alone. Differences, for
settled traces only: a trace is in the range when its first span starts in it, and its
latency, cost and tokens cover all its spans (not just those in the range); a trace with
spans in several projects is one unit per project. A filter on anything but the tenancy
fields, or a store the settle job never ran on, reads raw spans only (the old path).

A test is ``significant`` when its p-value is below :data:`ALPHA`. Each side's sample is
at most :data:`MAX_SAMPLE_PER_SIDE` traces, picked deterministically (lowest
``cityHash64(trace_id)``); counts, rates, percentiles and money are exact over every
trace. A test with fewer than :data:`MIN_SAMPLE_PER_SIDE` values on a side, or with no
variance to test, is reported with ``computed`` false and the reason.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Final, Literal, get_args

import numpy as np

from mentatlab.analytics.query import (
    FINAL_SETTINGS,
    MODEL_EXPR,
    NOT_ROLLUP,
    QueryParams,
    SqlParts,
    build_where,
    filter_sql,
)
from mentatlab.errors import ValidationError
from mentatlab.model.schema import MONEY_SCALE
from mentatlab.resolver.settle import read_settle_state
from mentatlab.storage.base import SpanStore
from mentatlab.storage.settled import TRACE_FACTS_TABLE

__all__ = [
    "ALPHA",
    "COMPARE_FIELDS",
    "MAX_SAMPLE_PER_SIDE",
    "MIN_SAMPLE_PER_SIDE",
    "SAMPLE_TUPLE",
    "TAIL_IDS_MAX",
    "CompareField",
    "Comparison",
    "SideStats",
    "Tail",
    "TestResult",
    "compare_versions",
    "comparison",
    "mann_whitney",
    "read_tail",
    "side_samples",
    "summary_columns",
    "two_proportions",
]

CompareField = Literal["prompt_version", "agent_version", "workflow_version", "model"]
"""A field two values of which can be compared."""
COMPARE_FIELDS: Final[Mapping[str, str]] = {
    "prompt_version": "prompt_version",
    "agent_version": "agent_version",
    "workflow_version": "workflow_version",
    "model": MODEL_EXPR,
}
"""Fields two values of which can be compared, and the SQL expression of each."""
assert tuple(COMPARE_FIELDS) == get_args(CompareField)
ALPHA: Final = 0.05
"""Significance level: a test is ``significant`` when its p-value is below it."""
MAX_SAMPLE_PER_SIDE: Final = 50_000
"""Most traces per side the rank tests read (a deterministic sample beyond it)."""
MIN_SAMPLE_PER_SIDE: Final = 5
"""Fewest values per side a test needs; with fewer it is not computed."""
TENANCY_FILTERS: Final = ("org_id", "workspace_id", "project_id")
"""Filter names that restrict which spans are read (the caller's scope); any other
condition picks the traces having a span that meets it."""
_FACTS_ARRAYS: Final[Mapping[str, str]] = {
    "prompt_version": "prompt_versions", "agent_version": "agent_versions",
    "workflow_version": "workflow_versions", "model": "models"}
"""``trace_facts`` column of every value of each field a trace's spans carry."""
_QUANTILES: Final = (0.5, 0.95, 0.99)
_MONEY_QUANTUM: Final = Decimal(1).scaleb(-MONEY_SCALE)


@dataclass(frozen=True, slots=True)
class SideStats:
    """One side of a comparison: its traces' outcome, latency, cost and tokens."""

    value: str
    """The field's value on this side."""
    num_units: int
    """Traces on this side (not mixed)."""
    num_successes: int
    success_rate: float
    """``num_successes / num_units``."""
    latency_p50_ms: float
    latency_p95_ms: float
    latency_p99_ms: float
    total_cost: Decimal
    """USD, every trace on the side."""
    cost_per_success: Decimal | None
    """``total_cost / num_successes`` (USD, 1e-12, half-even); None without successes."""
    total_tokens: int
    tokens_per_success: float | None
    """Input plus output tokens per successful trace; None without successes."""
    num_sampled: int
    """Traces the rank tests read (≤ :data:`MAX_SAMPLE_PER_SIDE`)."""


@dataclass(frozen=True, slots=True)
class TestResult:
    """One statistical test of one metric, A against B."""

    __test__ = False  # not a pytest class

    test: str
    """``mann-whitney-u`` or ``two-proportion-z``."""
    effect_size_name: str
    """``rank-biserial`` or ``cohen-h``."""
    n_a: int
    """Values of side A the test used."""
    n_b: int
    computed: bool
    reason: str | None = None
    """Why the test was not computed (None when it was)."""
    statistic: float | None = None
    """U of side A (Mann-Whitney) or z (two-proportion)."""
    p_value: float | None = None
    effect_size: float | None = None
    significant: bool | None = None
    """``p_value < ALPHA``; None when not computed."""


@dataclass(frozen=True, slots=True)
class Comparison:
    """The answer of :func:`compare_versions`."""

    field: str
    a: SideStats
    b: SideStats
    num_mixed: int
    """Traces with spans of both values (on neither side)."""
    tests: dict[str, TestResult]
    """``success_rate``, ``latency_ms``, ``cost_per_success``, ``tokens_per_success``."""


def _too_few(test: str, effect: str, n_a: int, n_b: int) -> TestResult | None:
    if min(n_a, n_b) < MIN_SAMPLE_PER_SIDE:
        return TestResult(test, effect, n_a, n_b, computed=False, reason=(
            f"Needs at least {MIN_SAMPLE_PER_SIDE} values per side, got {n_a} and {n_b}"))
    return None


def mann_whitney(a: Sequence[float], b: Sequence[float]) -> TestResult:
    """Two-sided Mann-Whitney U of samples ``a`` and ``b`` with the rank-biserial r.

    scipy ``mannwhitneyu(a, b, alternative="two-sided", method="auto")``: exact below 8
    values per side without ties, else the normal approximation with tie and continuity
    correction. r = 2·U_a/(n_a·n_b) − 1 in [−1, 1] (Kerby 2014), positive when ``a`` tends
    to be larger.
    """
    from scipy.stats import mannwhitneyu  # lazy: scipy is heavy to import

    name, effect = "mann-whitney-u", "rank-biserial"
    n_a, n_b = len(a), len(b)
    too_few = _too_few(name, effect, n_a, n_b)
    if too_few is not None:
        return too_few
    result = mannwhitneyu(a, b, alternative="two-sided", method="auto")
    u_a, p = float(result.statistic), float(result.pvalue)
    if math.isnan(p):
        return TestResult(name, effect, n_a, n_b, computed=False,
                          reason="Every value is the same: no ranks to compare")
    return TestResult(name, effect, n_a, n_b, computed=True, statistic=u_a, p_value=p,
                      effect_size=2 * u_a / (n_a * n_b) - 1, significant=p < ALPHA)


def two_proportions(successes_a: int, n_a: int, successes_b: int, n_b: int) -> TestResult:
    """Two-sided two-proportion z-test (pooled variance) with Cohen's h.

    statsmodels ``proportions_ztest([s_a, s_b], [n_a, n_b])`` and
    ``proportion_effectsize(p_a, p_b)`` (h = 2·asin√p_a − 2·asin√p_b).
    """
    from statsmodels.stats.proportion import (
        proportion_effectsize,
        proportions_ztest,
    )

    name, effect = "two-proportion-z", "cohen-h"
    too_few = _too_few(name, effect, n_a, n_b)
    if too_few is not None:
        return too_few
    pooled = (successes_a + successes_b) / (n_a + n_b)
    if pooled in (0.0, 1.0):
        return TestResult(name, effect, n_a, n_b, computed=False, reason=(
            "Every trace on both sides " + ("succeeded" if pooled else "failed")
            + ": no variance to test"))
    z, p = proportions_ztest([successes_a, successes_b], [n_a, n_b])
    h = proportion_effectsize(successes_a / n_a, successes_b / n_b)
    return TestResult(name, effect, n_a, n_b, computed=True, statistic=float(z),
                      p_value=float(p), effect_size=float(h), significant=float(p) < ALPHA)


def _units_sql(field_expr: str, a: str, b: str, params: QueryParams, parts: SqlParts,
               tail: str | None = None) -> str:
    """The CTE of one row per trace touching ``a`` or ``b``, from raw spans.

    Binds go to ``parts``; with ``tail`` (a condition on ``trace_id``: the unsettled
    tail), only those traces.
    """
    tenancy = {k: v for k, v in params.filters.items() if k in TENANCY_FILTERS}
    build_where(params.time_range, tenancy, parts)
    if tail is not None:
        parts.conditions.append(tail)
    having = [f"countIf({filter_sql(k, parts.bind(v, 'String'))}) > 0"
              for k, v in params.filters.items() if k not in TENANCY_FILTERS]
    a_bind, b_bind = parts.bind(a, "String"), parts.bind(b, "String")
    where = parts.where
    having.append("in_a + in_b > 0")
    return f"""units AS (
SELECT trace_id, cityHash64(trace_id) AS h,
    toUInt8(countIf({field_expr} = {a_bind}) > 0) AS in_a,
    toUInt8(countIf({field_expr} = {b_bind}) > 0) AS in_b,
    (toUnixTimestamp64Nano(max(end_time)) - toUnixTimestamp64Nano(min(start_time))) / 1e6
        AS latency_ms,
    toUInt8(countIf(status != 'ok') = 0) AS success,
    sum(total_cost) AS cost,
    toInt64(sumIf(ifNull(input_tokens, 0) + ifNull(output_tokens, 0), {NOT_ROLLUP})) AS tokens
FROM spans FINAL
WHERE {where} AND trace_id IN (
    SELECT trace_id FROM spans WHERE {where} AND {field_expr} IN ({a_bind}, {b_bind}))
GROUP BY trace_id
HAVING {' AND '.join(having)})"""


@dataclass(frozen=True, slots=True)
class Tail:
    """The unsettled tail: traces with a span committed after the settle watermark."""

    settled_ns: int
    """The settle job's watermark ``S``."""
    trace_ids: tuple[str, ...] | None
    """The tail's traces (in the tenancy); None when more than :data:`TAIL_IDS_MAX`."""

    def condition(self, parts: SqlParts, tenancy: Mapping[str, str], *, negate: bool) -> str:
        """``trace_id [NOT] IN`` the tail (binds go to ``parts``)."""
        op = "NOT IN" if negate else "IN"
        if self.trace_ids is not None:
            return f"trace_id {op} {parts.bind(list(self.trace_ids), 'Array(String)')}"
        subquery = (f"SELECT trace_id FROM spans WHERE ingested_at_ns > {int(self.settled_ns)}"
                    + "".join(f" AND {k} = {parts.bind(v, 'String')}"
                              for k, v in tenancy.items()))
        return f"trace_id {op} ({subquery})"


TAIL_IDS_MAX: Final = 10_000
"""Most tail traces bound as a list; beyond it readers use a subquery over ``spans``."""


def read_tail(store: SpanStore, settled_ns: int, tenancy: Mapping[str, str]) -> Tail:
    """The unsettled tail in ``tenancy`` (one read through the ``ingested_at_ns`` index).

    Raises:
        StoreError: the query failed.
    """
    parts = SqlParts()
    conditions = [f"ingested_at_ns > {parts.bind(int(settled_ns), 'Int64')}"]
    conditions += [f"{k} = {parts.bind(v, 'String')}" for k, v in tenancy.items()]
    ids = store.query_arrow(
        f"SELECT DISTINCT trace_id FROM spans WHERE {' AND '.join(conditions)}"
        f" LIMIT {TAIL_IDS_MAX + 1}", parts.binds).column("trace_id").to_pylist()
    if len(ids) > TAIL_IDS_MAX:
        return Tail(settled_ns, None)
    return Tail(settled_ns, tuple(sorted(str(t) for t in ids)))


def _settled_units_sql(field: str, a: str, b: str, params: QueryParams, tail: Tail,
                       parts: SqlParts) -> str:
    """The CTE of one row per trace touching ``a`` or ``b``, settled or not.

    Settled traces come from ``trace_facts``, the unsettled ``tail`` (traces with a span
    committed after the watermark) from raw spans, so each trace is counted once, by one
    of the two. Only for tenancy filters (binds go to ``parts``).
    """
    tenancy = {k: v for k, v in params.filters.items() if k in TENANCY_FILTERS}
    facts = build_where(params.time_range, tenancy, SqlParts(binds=parts.binds))
    column = _FACTS_ARRAYS[field]
    a_bind, b_bind = parts.bind(a, "String"), parts.bind(b, "String")
    not_tail = ("" if tail.trace_ids == () else
                f"\n    AND {tail.condition(parts, tenancy, negate=True)}")
    settled = f"""SELECT trace_id, trace_hash AS h, toUInt8(has({column}, {a_bind})) AS in_a,
    toUInt8(has({column}, {b_bind})) AS in_b, duration_ms AS latency_ms,
    toUInt8(error_spans = 0) AS success, total_cost AS cost,
    toInt64(input_tokens + output_tokens) AS tokens
FROM {TRACE_FACTS_TABLE} FINAL
WHERE {facts.where} AND hasAny({column}, [{a_bind}, {b_bind}]){not_tail}"""
    if tail.trace_ids == ():  # nothing committed after the watermark: no raw part
        return f"units AS (\n{settled})"
    raw_parts = SqlParts(binds=parts.binds)
    raw = _units_sql(COMPARE_FIELDS[field], a, b, params, raw_parts,
                     tail.condition(raw_parts, tenancy, negate=False))
    raw_select = raw[len("units AS (\n"):-1]
    return f"units AS (\n{settled}\nUNION ALL\n{raw_select})"


SAMPLE_TUPLE: Final = ("(toFloat64(latency_ms), success, toFloat64(cost),"
                       " toFloat64(tokens))")
"""One sampled trace of the CTE ``units``: latency (ms), 1 for a success, cost (USD,
float), tokens."""
_SIDE_EXPR: Final = "multiIf(in_a AND in_b, 'mixed', in_a, 'a', 'b')"


def summary_columns(max_sample: int, *, with_cut: bool = True) -> str:
    """The aggregates of one side of the CTE ``units`` (see :func:`side_samples`).

    ``with_cut`` False leaves ``cut`` out (NULL): cheaper when sides rarely exceed
    ``max_sample``; :func:`side_samples` then reads the cuts it needs.
    """
    n = int(max_sample)
    cut = (f"if(num_units > {n}, groupArraySorted({n})(h)[-1], 0)"
           if with_cut else "NULL")
    return f"""toInt64(count()) AS num_units, toInt64(sum(success)) AS num_successes,
    quantilesExactInclusive{_QUANTILES}(latency_ms) AS q, sum(cost) AS total_cost,
    toInt64(sum(tokens)) AS total_tokens, groupArray({n})({SAMPLE_TUPLE}) AS sample,
    {cut} AS cut"""


def _sample_arrays(sample: Any) -> dict[str, np.ndarray]:
    """One side's sampled traces (an Arrow list of :data:`SAMPLE_TUPLE`) as arrays.

    ``latency`` (ms), ``ok`` (1 for a success), ``cost`` (USD, float), ``tokens``.
    """
    values = sample.values
    return {name: values.field(i).to_numpy(zero_copy_only=False)
            for i, name in enumerate(("latency", "ok", "cost", "tokens"))}


def side_samples(store: SpanStore, units: str, binds: Mapping[str, Any],
                 summary: Mapping[tuple[str, str], Mapping[str, Any]], max_sample: int,
                 group_expr: str = "''", side_expr: str = _SIDE_EXPR
                 ) -> dict[tuple[str, str], dict[str, np.ndarray]]:
    """The sample of every (group, side): all its traces, or ``max_sample`` of them.

    ``summary`` maps each ``(group, side)`` to its row of a summary query over the CTE
    ``units`` grouped by ``group_expr`` and ``side_expr``, which carries ``num_units``,
    ``sample`` (``groupArray(max_sample)`` of :data:`SAMPLE_TUPLE`: complete when
    ``num_units <= max_sample``) and ``cut`` (the ``max_sample``-th lowest
    ``cityHash64(trace_id)``, or None: then read here), as :func:`summary_columns` gives.
    The larger sides are read again (one query for all), keeping the traces whose hash is
    at most the cut: the ``max_sample`` traces of lowest
    (hash, trace id) unless two traces share a hash across the cut (a 64-bit collision),
    when the sample is sorted by (hash, trace id) in SQL instead. Order within a sample
    is arbitrary (the rank tests do not depend on it).
    """
    out: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    over: dict[tuple[str, str], int | None] = {}
    for key, row in summary.items():
        if int(row["num_units"]) <= max_sample:
            out[key] = _sample_arrays(row["sample"])
        else:
            over[key] = None if row.get("cut") is None else int(row["cut"])
    if not over:
        return out
    keys = list(over)
    binds = dict(binds)
    tests = []
    for n, (g, side) in enumerate(keys):
        binds[f"cut_g{n}"], binds[f"cut_s{n}"] = g, side
        tests.append(f"g = {{cut_g{n}:String}} AND s = {{cut_s{n}:String}}")
    member = f"multiIf({', '.join(f'{t}, 1' for t in tests)}, 0) = 1"
    if any(v is None for v in over.values()):  # summarized without the cuts
        cuts = store.query_arrow(f"""WITH {units}
SELECT {group_expr} AS g, {side_expr} AS s,
    groupArraySorted({int(max_sample)})(h)[-1] AS cut
FROM units WHERE {member} GROUP BY g, s {FINAL_SETTINGS}""", binds).to_pylist()
        over.update({(str(r["g"]), str(r["s"])): int(r["cut"]) for r in cuts})
    cuts_of = {k: int(v) for k, v in over.items() if v is not None}
    for n, key in enumerate(keys):
        binds[f"cut_v{n}"] = cuts_of[key]
    # the cut of the row's (group, side); 0 for the others (any row they yield is unread)
    cut = f"multiIf({', '.join(f'{t}, {{cut_v{n}:UInt64}}' for n, t in enumerate(tests))}, 0)"
    for exact in (False, True):
        if exact:
            sample = (f"arrayMap(x -> x.3, groupArraySorted({int(max_sample)})("
                      f"(h, trace_id, {SAMPLE_TUPLE})))")
            where = member
        else:
            sample = f"groupArray({SAMPLE_TUPLE})"
            # the largest cut first: a condition on the hash alone, read before the rest
            binds["cut_max"] = max(cuts_of.values())
            where = f"h <= {{cut_max:UInt64}} AND h <= {cut}"
        sql = f"""WITH {units}
SELECT {group_expr} AS g, {side_expr} AS s, toInt64(count()) AS n, {sample} AS sample
FROM units WHERE {where} GROUP BY g, s {FINAL_SETTINGS}"""
        table = store.query_arrow(sql, binds)
        rows = table.select(["g", "s", "n"]).to_pylist()
        if exact or all(int(r["n"]) <= max_sample for r in rows):
            found = {(str(r["g"]), str(r["s"])): i for i, r in enumerate(rows)}
            samples = table.column("sample")
            for key in keys:
                out[key] = _sample_arrays(samples[found[key]])
            break
    return out


def _side(value: str, row: Mapping[str, Any] | None, sample: np.ndarray) -> SideStats:
    num = int(row["num_units"]) if row else 0
    successes = int(row["num_successes"]) if row else 0
    q = [float(x) for x in row["q"]] if row else [0.0] * len(_QUANTILES)
    cost = Decimal(row["total_cost"]) if row else Decimal(0)
    tokens = int(row["total_tokens"]) if row else 0
    return SideStats(
        value=value, num_units=num, num_successes=successes,
        success_rate=successes / num if num else 0.0,
        latency_p50_ms=q[0], latency_p95_ms=q[1], latency_p99_ms=q[2], total_cost=cost,
        cost_per_success=(cost / successes).quantize(_MONEY_QUANTUM, ROUND_HALF_EVEN)
        if successes else None,
        total_tokens=tokens, tokens_per_success=tokens / successes if successes else None,
        num_sampled=len(sample))


def compare_versions(store: SpanStore, params: QueryParams, field: str, a: str, b: str,
                     *, max_sample: int = MAX_SAMPLE_PER_SIDE) -> Comparison:
    """Compare the traces of ``field = a`` with those of ``field = b`` (see the module doc).

    Args:
        store: the span store.
        params: time range and filters (group-by and bucket are ignored).
        field: one of :data:`COMPARE_FIELDS`.
        a: the value of side A (a version, or a model).
        b: the value of side B, not ``a``.
        max_sample: most traces per side the rank tests read (1..:data:`MAX_SAMPLE_PER_SIDE`).

    Returns:
        Both sides' numbers, the count of mixed traces, and four tests.

    Raises:
        ValidationError: (422) ``field`` is not comparable, ``a`` or ``b`` is empty,
            ``b`` equals ``a``, ``max_sample`` is out of range, or a side has no trace
            in the range (field ``a`` or ``b``).
        QueryTimeout: the query ran past the store's time limit.
        StoreError: the query failed.
    """
    field_expr = COMPARE_FIELDS.get(field)
    if field_expr is None:
        raise ValidationError("field", f"Expected one of {sorted(COMPARE_FIELDS)}, got {field!r}")
    if not a:
        raise ValidationError("a", "Expected a non-empty value")
    if not b:
        raise ValidationError("b", "Expected a non-empty value")
    if a == b:
        raise ValidationError("b", f"Expected a value other than a, got {b!r} for both")
    if not 1 <= max_sample <= MAX_SAMPLE_PER_SIDE:
        raise ValidationError("max_sample", f"Expected 1..{MAX_SAMPLE_PER_SIDE}, got {max_sample}")
    parts = SqlParts()
    settled_ns = read_settle_state(store)
    if settled_ns is None or any(k not in TENANCY_FILTERS for k in params.filters):
        units = _units_sql(field_expr, a, b, params, parts)
    else:
        tenancy = {k: v for k, v in params.filters.items() if k in TENANCY_FILTERS}
        units = _settled_units_sql(field, a, b, params, read_tail(store, settled_ns, tenancy),
                                   parts)
    sql = f"""WITH {units}
SELECT {_SIDE_EXPR} AS side, {summary_columns(max_sample)}
FROM units GROUP BY side {FINAL_SETTINGS}"""
    table = store.query_arrow(sql, parts.binds)
    # the samples as columns (numpy), the rest as rows: no Python object per sampled trace
    names = ["side", "num_units", "num_successes", "q", "total_cost", "total_tokens", "cut"]
    rows = {r["side"]: {**r, "sample": table.column("sample")[i]}
            for i, r in enumerate(table.select(names).to_pylist())}
    for name, value in (("a", a), ("b", b)):
        if name not in rows:
            raise ValidationError(name, f"No trace with {field} = {value!r} (and no span of "
                                        "the other value) in the range and filter")
    summary = {("", name): rows[name] for name in ("a", "b")}
    sample = side_samples(store, units, parts.binds, summary, max_sample)
    mixed = rows.get("mixed")
    return comparison(field, a, b, rows["a"], rows["b"], sample[("", "a")],
                      sample[("", "b")], int(mixed["num_units"]) if mixed else 0)


def comparison(field: str, a: str, b: str, row_a: Mapping[str, Any], row_b: Mapping[str, Any],
               sample_a: Mapping[str, np.ndarray], sample_b: Mapping[str, np.ndarray],
               num_mixed: int) -> Comparison:
    """Both sides' numbers and the four tests, from each side's summary row and sample.

    ``row_a``/``row_b``: ``num_units``, ``num_successes``, ``q`` (:data:`_QUANTILES` of the
    latency), ``total_cost``, ``total_tokens``; samples as :func:`side_samples` gives them.
    """
    side_a = _side(a, row_a, sample_a["latency"])
    side_b = _side(b, row_b, sample_b["latency"])
    ok_a, ok_b = sample_a["ok"] != 0, sample_b["ok"] != 0
    tests = {
        "success_rate": two_proportions(side_a.num_successes, side_a.num_units,
                                        side_b.num_successes, side_b.num_units),
        "latency_ms": mann_whitney(sample_a["latency"].tolist(), sample_b["latency"].tolist()),
        "cost_per_success": mann_whitney(sample_a["cost"][ok_a].tolist(),
                                         sample_b["cost"][ok_b].tolist()),
        "tokens_per_success": mann_whitney(sample_a["tokens"][ok_a].tolist(),
                                           sample_b["tokens"][ok_b].tolist()),
    }
    return Comparison(field=field, a=side_a, b=side_b, num_mixed=num_mixed, tests=tests)
