"""Reliability: how often runs and their steps succeed, how they fail, retry, fall back and loop.

Scope. Span figures (steps, operations, errors, retries, loops) count the spans in the
time range that meet every filter condition. Trace figures (end-to-end success,
fallback activation, timeouts, cycles) count the traces having such a span, each judged
by its spans in the range that the caller's tenancy allows (the filter's ``org_id``,
``workspace_id`` and ``project_id``), as the trace list does. A span *failed* when its
status is ``error`` or ``timeout``.

Definitions (docs/api.md, "Reliability"):

* **End-to-end success** (per trace): the trace's outcome is its root span's status (the
  earliest span without a parent); a trace whose root is not in the range is ``timeout``
  if any span timed out, else ``error`` if any failed, else ``ok``. A failed attempt
  that a retry recovered does not fail the trace when the root ends ``ok``.
  ``success_rate = traces with outcome ok / traces``.
* **Ended in a timeout**: outcome ``timeout``, or a root whose ``error_category`` is one
  of :data:`TIMEOUT_CATEGORIES`.
* **Step**: a span's ``step`` attribute when the producer set one (``mentat.step``, an
  agent framework's node name), else its span ``name``; steps are counted per
  ``operation`` (``chat``/``tool``/``agent``/...). Per-step success rate = spans of the
  step that did not fail / spans of the step.
* **Error rate by category**: failed spans of an ``error_class`` / ``error_category``
  (decision 0009; ``""`` read as ``unknown``) over all spans in scope; ``share`` is over
  failed spans.
* **Retry rate** = spans with ``is_retry`` / spans. A retry **succeeded** when the retry
  attempt itself (the span marked ``is_retry``) ended ``ok``; retry success rate =
  such spans / retry spans.
* **Fallback activation rate** = traces with at least one ``is_fallback`` span / traces.
* **Loop** (``loop_detected``): one trace calls the same tool (``tool_name``) with the
  same arguments (``tool_args_hash``, hashed at ingest by
  :mod:`mentatlab.pipeline.tool_args`) at least :data:`LOOP_MIN_CALLS` times, retries
  (``is_retry``) not counted; tool spans without recorded arguments never count.
  Computed in SQL at query time over the stored hash.
* **Cycle**: an agent that is its own ancestor through at least one *other* agent (A →
  B → A) in one trace's call graph. Agents are ``operation = agent`` spans, identified
  by their own ``agent_id`` (not one inherited from an ancestor), else their span name;
  the graph is the spans' parent links, other spans in between passing through. Direct
  recursion (A → A, an agent calling itself with no other agent between) is not a cycle:
  it is an agent's own loop, not agents waiting on each other; A → A → B → A is one.
  Only traces with at least two distinct agents and a repeated agent can hold one; at
  most :data:`MAX_CYCLE_TRACES` such traces are examined (lowest trace ids first,
  ``truncated`` says when more exist), in Python over their parent links.
* **Deadlock suspect**: a trace that ended in a timeout and holds a cycle.

Lists (loops, cycles, deadlock suspects) hold at most :data:`MAX_LISTED` entries;
counts are over every trace examined.

**Where the numbers come from.** Span figures (operations, steps, heatmap, retries,
fallbacks) are one pass grouped by (bucket, operation, step) and rolled up over those few
rows; errors one pass over the failed spans. On a store the settle job runs on, with only
tenancy filters and a range of whole minutes (as :class:`~mentatlab.analytics.query.TimeRange`
makes it), both read ``step_counts`` (the settled traces' spans counted per minute,
operation and step at settle time) and the unsettled tail's raw spans; otherwise raw spans
(``FINAL``). Trace figures
(outcomes, cycle candidates) on a store the settle job runs on
(:mod:`mentatlab.resolver.settle`) and with only tenancy filters come from
``trace_facts`` (one row per settled trace, the outcome facts computed at settle time)
for every trace whose row holds exactly what its spans in the range would give: settled,
one (org, workspace, project), every span starting in the range. The other traces with a
span in the range (the unsettled tail, traces cut by an edge of the range, traces spread
over several projects, rows settled before those columns existed) are read from raw spans
by id, so every trace counts once and the answer is the one raw spans alone give. A
filter on anything else, a store the settle job never ran on, or a range too short for
the facts to pay (:data:`FACTS_MIN_SPANS_PER_ROW`) reads raw spans only.
Cycle candidates from ``trace_facts`` are judged over each trace's current spans (as the
cycle walk is); from raw spans over every version of them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from mentatlab.analytics.query import (
    BUCKETS,
    FINAL_SETTINGS,
    QueryParams,
    SqlParts,
    build_where,
    filter_sql,
)
from mentatlab.errors import StoreError, ValidationError
from mentatlab.resolver.settle import read_settle_state
from mentatlab.storage.base import SpanStore
from mentatlab.storage.settled import (
    AGENT_EXPR,
    CYCLE_CANDIDATE,
    STEP_COUNTS_TABLE,
    STEP_EXPR,
    TRACE_FACTS_TABLE,
)

__all__ = [
    "FACTS_MIN_SPANS_PER_ROW",
    "HEATMAP_STEPS",
    "LOOP_MIN_CALLS",
    "MAX_CYCLE_TRACES",
    "MAX_LISTED",
    "MAX_STEPS",
    "MAX_TAIL_IDS",
    "TIMEOUT_CATEGORIES",
    "AgentCycle",
    "ErrorRow",
    "Heatmap",
    "LoopRow",
    "Reliability",
    "StepRow",
    "TraceOutcomes",
    "auto_bucket",
    "find_agent_cycle",
    "get_reliability",
]

LOOP_MIN_CALLS: Final = 3
"""Identical tool calls in one trace that make a loop. Two identical calls are often a
deliberate re-check or a retry the producer did not mark; a third is the agent going
round (LangGraph's and OpenAI Agents' own loop guards count turns, not calls, so there
is no standard number; 3 is the smallest that is not an ordinary repeat)."""
MAX_LISTED: Final = 100
"""Most loops, cycles and deadlock suspects listed (counts cover all)."""
MAX_STEPS: Final = 100
"""Most steps listed, by failures then spans (``steps_truncated`` says when more exist)."""
HEATMAP_STEPS: Final = 20
"""Steps in the failure heatmap: the steps with the most failures."""
MAX_CYCLE_TRACES: Final = 10_000
"""Most candidate traces examined for agent cycles per request."""
TIMEOUT_CATEGORIES: Final = ("timeout", "tool_timeout", "approval_timeout")
"""Root error categories that mean the run ended in a timeout (decision 0009)."""
TENANCY_FILTERS: Final = ("org_id", "workspace_id", "project_id")
"""Filter names that fence which spans are read; other conditions pick traces."""

MAX_TAIL_IDS: Final = 5_000
"""Most traces read from raw spans by their ids (the unsettled tail, traces crossing the
range's edges); beyond it they are read through a subquery instead."""
FACTS_MIN_SPANS_PER_ROW: Final = 0.5
"""Trace figures come from ``trace_facts`` only when the range holds at least this many
spans per ``trace_facts`` row (index estimate): reading every facts row costs about as
much as grouping half as many spans by trace, so a short range reads raw spans."""
_MAX_INTERVALS = 32
_START_OF: Final = {"minute": "toStartOfMinute", "hour": "toStartOfHour", "day": "toStartOfDay"}
"""The UTC bucket start of each :data:`BUCKETS` entry, before its DateTime64 conversion
(converted once per cell, not once per span)."""
_MERGE_GAP_NS = 600 * 10**9
_FAILED = "status != 'ok'"
_UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class StepRow:
    """Spans of one operation (and step), how many failed, and the success rate."""

    operation: str
    step: str | None
    """The step (None in per-operation rows)."""
    num_spans: int
    num_failed: int
    success_rate: float
    """``(num_spans - num_failed) / num_spans``."""


@dataclass(frozen=True, slots=True)
class ErrorRow:
    """Failed spans of one error class (and category)."""

    error_class: str
    error_category: str | None
    """The category (None in per-class rows)."""
    num_failed: int
    error_rate: float
    """``num_failed`` / spans in scope."""
    share: float
    """``num_failed`` / failed spans in scope."""


@dataclass(frozen=True, slots=True)
class LoopRow:
    """One tool called repeatedly with the same arguments in one trace."""

    trace_id: str
    tool_name: str
    tool_args_hash: str
    num_calls: int
    span_ids: list[str]
    """The calls' span ids, sorted, at most 20."""


@dataclass(frozen=True, slots=True)
class AgentCycle:
    """A cycle in one trace's agent call graph."""

    trace_id: str
    agents: list[str]
    """The path, outermost first, starting and ending with the same agent: A, B, A."""
    span_id: str
    """The agent span that closes the cycle (the inner A)."""
    timed_out: bool
    """The trace ended in a timeout (a deadlock suspect)."""


@dataclass(frozen=True, slots=True)
class TraceOutcomes:
    """Trace-level counts."""

    num_traces: int
    num_ok: int
    num_error: int
    num_timeout: int
    """Outcome ``timeout``."""
    num_ended_in_timeout: int
    """Outcome ``timeout`` or a root failing with a timeout category."""
    num_with_fallback: int
    num_with_retry: int
    success_rate: float | None
    """``num_ok / num_traces``; None without traces."""
    fallback_rate: float | None
    """``num_with_fallback / num_traces``."""


@dataclass(frozen=True, slots=True)
class Heatmap:
    """Failures per step (rows) and time bucket (columns), as a sparse list of cells."""

    bucket: str
    """``minute``, ``hour`` or ``day`` (UTC)."""
    steps: list[str]
    """``operation/step`` labels, most failures first (at most :data:`HEATMAP_STEPS`)."""
    cells: list[dict[str, Any]]
    """``bucket`` (UTC start), ``step`` (label), ``num_spans``, ``num_failed``; only
    buckets with spans of the step."""


@dataclass(frozen=True, slots=True)
class Reliability:
    """The answer of :func:`get_reliability`."""

    num_spans: int
    num_failed: int
    span_success_rate: float | None
    traces: TraceOutcomes
    operations: list[StepRow]
    steps: list[StepRow]
    steps_truncated: bool
    errors_by_class: list[ErrorRow]
    errors_by_category: list[ErrorRow]
    num_retries: int
    num_retries_ok: int
    retry_rate: float | None
    """Retry spans / spans."""
    retry_success_rate: float | None
    """Retry spans that ended ``ok`` / retry spans; None without retries."""
    num_fallback_spans: int
    loops: list[LoopRow]
    num_loop_traces: int
    loop_rate: float | None
    """Traces with a loop / traces."""
    cycles: list[AgentCycle]
    num_cycle_traces: int
    deadlock_suspects: list[AgentCycle]
    num_deadlock_suspects: int
    cycles_truncated: bool
    """More than :data:`MAX_CYCLE_TRACES` candidate traces; counts cover the first."""
    heatmap: Heatmap
    loop_min_calls: int = LOOP_MIN_CALLS


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def auto_bucket(span: timedelta) -> str:
    """Heatmap bucket for a range: minute up to 3 h, hour up to 8 days, else day.

    At most 180 minute or 192 hour columns (the default 7-day range, rounded out to whole
    minutes, stays hourly); longer ranges get days.
    """
    if span <= timedelta(hours=3):
        return "minute"
    if span <= timedelta(days=8):
        return "hour"
    return "day"


def find_agent_cycle(parents: Mapping[str, str], agents: Mapping[str, str]
                     ) -> tuple[list[str], str] | None:
    """The first agent cycle of one trace, or None.

    Args:
        parents: span id → parent span id (``""`` for a root) of every span of the trace.
        agents: span id → agent identity, for the agent spans only.

    Returns:
        (path outermost first, e.g. ``["A", "B", "A"]``; the span id of the inner agent
        closing it), for the agent span with the smallest id holding one; None when no
        agent is its own ancestor through another agent (direct recursion A → A is not
        a cycle). Parent links that loop (bad data) stop the walk.
    """
    for span_id in sorted(agents):
        me = agents[span_id]
        chain = [me]  # agent identities from this span upwards, repeats collapsed
        seen = {span_id}
        parent = parents.get(span_id, "")
        while parent and parent not in seen:
            seen.add(parent)
            agent = agents.get(parent)
            if agent is not None and agent != chain[-1]:
                chain.append(agent)
                if agent == me:
                    return list(reversed(chain)), span_id
            parent = parents.get(parent, "")
    return None


def _ints(row: Mapping[str, Any], *names: str) -> list[int]:
    return [int(row[n] or 0) for n in names]


def _trace_parts(params: QueryParams, parts: SqlParts | None = None) -> tuple[SqlParts, str]:
    """WHERE over the tenancy (and range) and the HAVING that picks the traces."""
    parts = build_where(params.time_range, {k: v for k, v in params.filters.items()
                                            if k in TENANCY_FILTERS}, parts)
    having = [f"countIf({filter_sql(k, parts.bind(v, 'String'))}) > 0"
              for k, v in params.filters.items() if k not in TENANCY_FILTERS]
    return parts, " AND ".join(having) or "1"


_OUTCOME = ("if(has_root, root_status, multiIf(n_timeout > 0, 'timeout', n_error > 0, "
            "'error', 'ok'))")
_TIMEOUT_LIST = ", ".join(f"'{c}'" for c in TIMEOUT_CATEGORIES)
_TIMED_OUT = f"(outcome = 'timeout' OR (has_root AND root_category IN ({_TIMEOUT_LIST})))"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ns(when: datetime) -> int:
    """``when`` in ns since the epoch (exact to the µs a datetime holds)."""
    return (when - _EPOCH) // timedelta(microseconds=1) * 1000


@dataclass(frozen=True, slots=True)
class _Settled:
    """A settled store's watermark and its unsettled tail."""

    settled_ns: int
    tail_ids: list[str] | None
    """Traces with a span committed after ``settled_ns`` (None: too many to list)."""
    step_counts: bool
    """``step_counts`` holds the settled traces (it has rows, or nothing is settled): a
    store whose traces were settled before the table existed reads raw spans until they
    are counted there."""


def _settled(store: SpanStore, params: QueryParams) -> _Settled | None:
    """The settle state, or None to read raw spans only.

    None when the settle job never ran on ``store``, a filter is not a tenancy one (it
    picks traces by their spans), or there is no time range.
    """
    if params.time_range is None or any(k not in TENANCY_FILTERS for k in params.filters):
        return None
    settled_ns = read_settle_state(store)
    if settled_ns is None:
        return None
    tail = [str(t) for t in store.query_arrow(
        "SELECT DISTINCT trace_id FROM spans WHERE ingested_at_ns > {s:Int64}"
        f" LIMIT {MAX_TAIL_IDS + 1}", {"s": settled_ns}).column("trace_id").to_pylist()]
    counts = store.query_arrow(
        f"SELECT (SELECT count() FROM {STEP_COUNTS_TABLE}) AS steps,"
        f" (SELECT count() FROM {TRACE_FACTS_TABLE}) AS facts").to_pylist()[0]
    return _Settled(settled_ns, tail if len(tail) <= MAX_TAIL_IDS else None,
                    bool(counts["steps"]) or not counts["facts"])


@dataclass(frozen=True, slots=True)
class _Split:
    """Which traces a settled store answers from ``trace_facts`` and which from raw spans.

    A trace is read from its ``trace_facts`` row when it is settled (no span in the
    unsettled tail), has one (org, workspace, project) (so the tenancy takes all of its
    spans or none) and every span of it starts in the range: that row then holds exactly
    what the raw spans would give. Every other trace with a span in the range (the tail,
    traces crossing an edge of the range, traces spread over several projects, rows
    written before the reliability columns) is read from raw spans, by id.
    """

    settled_ns: int
    tail_ids: list[str] | None
    """Traces with a span committed after ``settled_ns`` (None: too many to list)."""
    edge_ids: list[str] | None
    """Settled traces read from raw spans (None: too many to list)."""
    intervals: list[tuple[int, int]]
    """Start-time intervals (ns, inclusive) holding every span of ``edge_ids``."""


def _facts_tenancy(params: QueryParams, parts: SqlParts, names: Sequence[str]) -> str:
    return "".join(f" AND {k} = {parts.bind(v, 'String')}" for k, v in params.filters.items()
                   if k in names)


def _edge_condition(params: QueryParams, parts: SqlParts) -> str:
    """``trace_facts`` rows of settled traces to read from raw spans (see :class:`_Split`)."""
    assert params.time_range is not None
    lo_ns = parts.bind(_ns(params.time_range.start), "Int64")
    hi_ns = parts.bind(_ns(params.time_range.end), "Int64")
    return (f"start_ns < {hi_ns} AND (num_scopes = 0 OR last_start_ns >= {lo_ns})"
            f" AND NOT (num_scopes = 1 AND start_ns >= {lo_ns} AND last_start_ns < {hi_ns})"
            + _facts_tenancy(params, parts, ("org_id", "project_id")))


def _facts_pay(store: SpanStore, params: QueryParams) -> bool:
    """Whether the range holds enough spans for ``trace_facts`` to be the cheaper read.

    The spans are the primary index's estimate (``EXPLAIN ESTIMATE``: whole granules,
    no data read); without one (a table that gives none) the facts are read.
    """
    parts, _ = _trace_parts(params)
    try:
        estimate = store.query_arrow(f"EXPLAIN ESTIMATE SELECT 1 FROM spans WHERE {parts.where}",
                                     parts.binds).to_pylist()
    except StoreError:
        return True
    if not estimate:
        return True
    spans = sum(int(r.get("rows") or 0) for r in estimate)
    facts = store.query_arrow(f"SELECT count() AS n FROM {TRACE_FACTS_TABLE}").to_pylist()
    return spans >= FACTS_MIN_SPANS_PER_ROW * int(facts[0]["n"] or 0)


def _few_facts(condition: str) -> str:
    """``FROM`` the current ``trace_facts`` rows meeting ``condition``, when they are few.

    ``FINAL`` reads every row before filtering (a filter on a non-key column cannot run
    before the versions are merged), so the rows are first narrowed by ``PREWHERE``
    without ``FINAL`` (any version meeting it: cheap, and a superset), then read ``FINAL``
    by their key, where ``condition`` is checked again on the current version.
    """
    return (f"{TRACE_FACTS_TABLE} FINAL WHERE (org_id, project_id, trace_id) IN ("
            f"SELECT org_id, project_id, trace_id FROM {TRACE_FACTS_TABLE} PREWHERE {condition})"
            f" AND {condition}")


def _split(store: SpanStore, params: QueryParams, settled: _Settled | None
           ) -> _Split | None:
    """The split of a settled store, or None to read raw spans only.

    None when ``settled`` is (see :func:`_settled`) or the range is too short for the facts
    to pay (:func:`_facts_pay`).
    """
    if settled is None or params.time_range is None or not _facts_pay(store, params):
        return None
    parts = SqlParts()
    hi_ns = parts.bind(_ns(params.time_range.end), "Int64")
    edges = store.query_arrow(f"""
SELECT trace_id, min(start_ns) AS lo, max(if(num_scopes = 0, {hi_ns}, last_start_ns)) AS hi
FROM {_few_facts(_edge_condition(params, parts))}
GROUP BY trace_id LIMIT {MAX_TAIL_IDS + 1} {FINAL_SETTINGS}""", parts.binds).to_pydict()
    edge_ids = [str(t) for t in edges["trace_id"]]
    intervals = sorted(zip((int(x) for x in edges["lo"]), (int(x) for x in edges["hi"]),
                           strict=True))
    merged: list[tuple[int, int]] = []
    for lo, hi in intervals:
        if merged and lo <= merged[-1][1] + _MERGE_GAP_NS:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    if len(merged) > _MAX_INTERVALS:
        merged = [(merged[0][0], max(hi for _, hi in merged))]
    return _Split(settled.settled_ns, settled.tail_ids,
                  edge_ids if len(edge_ids) <= MAX_TAIL_IDS else None, merged)


def _tail_ids(split: _Split | _Settled, parts: SqlParts) -> str:
    if split.tail_ids is None:
        return ("(SELECT trace_id FROM spans WHERE ingested_at_ns > "
                f"{parts.bind(split.settled_ns, 'Int64')})")
    return parts.bind(split.tail_ids, "Array(String)")


def _facts_where(params: QueryParams, split: _Split, parts: SqlParts) -> str:
    """``trace_facts`` rows answered from the facts (see :class:`_Split`)."""
    assert params.time_range is not None
    # start_ns <= last_start_ns: every span of the trace starts in [start, end)
    where = (f"num_scopes = 1 AND start_ns >= {parts.bind(_ns(params.time_range.start), 'Int64')}"
             f" AND last_start_ns < {parts.bind(_ns(params.time_range.end), 'Int64')}"
             + _facts_tenancy(params, parts, TENANCY_FILTERS))
    if split.tail_ids != []:
        where += f" AND trace_id NOT IN {_tail_ids(split, parts)}"
    return where


def _raw_where(params: QueryParams, split: _Split, parts: SqlParts) -> str | None:
    """The condition on spans of the traces read raw, or None when there are none."""
    picks = []
    if split.edge_ids is None:
        picks.append(f"trace_id IN (SELECT trace_id FROM {TRACE_FACTS_TABLE} FINAL"
                     f" WHERE {_edge_condition(params, parts)})")
    elif split.edge_ids:
        ranges = " OR ".join(
            f"start_time BETWEEN fromUnixTimestamp64Nano({parts.bind(lo, 'Int64')}, 'UTC')"
            f" AND fromUnixTimestamp64Nano({parts.bind(hi, 'Int64')}, 'UTC')"
            for lo, hi in split.intervals)
        picks.append(f"(trace_id IN {parts.bind(split.edge_ids, 'Array(String)')}"
                     f" AND ({ranges}))")
    if split.tail_ids != []:
        picks.append(f"trace_id IN {_tail_ids(split, parts)}")
    return f"({' OR '.join(picks)})" if picks else None


def _per_trace_sql(where: str, having: str) -> str:
    """One row per trace of the spans meeting ``where``: what its outcome is made of."""
    return f"""SELECT toUInt8(has_root) AS has_root, root_category, toUInt8(fell_back) AS fell_back,
        toUInt8(retried) AS retried, toString({_OUTCOME}) AS outcome FROM (
        SELECT trace_id, countIf(parent_span_id = '') > 0 AS has_root,
            argMinIf(status, start_time, parent_span_id = '') AS root_status,
            argMinIf(error_category, start_time, parent_span_id = '') AS root_category,
            countIf(status = 'timeout') AS n_timeout, countIf(status = 'error') AS n_error,
            countIf(is_fallback) > 0 AS fell_back, countIf(is_retry) > 0 AS retried
        FROM spans WHERE {where}
        GROUP BY trace_id HAVING {having})"""


def _trace_outcomes(store: SpanStore, params: QueryParams, split: _Split | None
                    ) -> TraceOutcomes:
    parts, having = _trace_parts(params)
    # No FINAL on spans: a span's versions (rewrites by attribution or reprice) share its
    # status, parent, start and flags, and every aggregate here is one a duplicate cannot
    # move. trace_facts holds the same per-trace values, computed at settle time.
    if split is None:
        traces = _per_trace_sql(parts.where, having)
    else:
        traces = f"""SELECT has_root, root_error_category AS root_category,
        has_fallback AS fell_back, has_retry AS retried,
        toString(if(has_root != 0, root_status, status)) AS outcome
        FROM {TRACE_FACTS_TABLE} FINAL WHERE {_facts_where(params, split, parts)}"""
        raw = _raw_where(params, split, parts)
        if raw is not None:
            traces += f"\n    UNION ALL\n    {_per_trace_sql(f'{parts.where} AND {raw}', '1')}"
    sql = f"""
SELECT toInt64(count()) AS n, toInt64(countIf(outcome = 'ok')) AS ok,
    toInt64(countIf(outcome = 'error')) AS err, toInt64(countIf(outcome = 'timeout')) AS tmo,
    toInt64(countIf({_TIMED_OUT})) AS ended_tmo, toInt64(countIf(fell_back != 0)) AS fb,
    toInt64(countIf(retried != 0)) AS rt
FROM (
    {traces}) {FINAL_SETTINGS}"""
    row = store.query_arrow(sql, parts.binds).to_pylist()[0]
    n, ok, err, tmo, ended, fb, rt = _ints(row, "n", "ok", "err", "tmo", "ended_tmo", "fb",
                                           "rt")
    return TraceOutcomes(n, ok, err, tmo, ended, fb, rt, _rate(ok, n), _rate(fb, n))


def _step_rows(rows: Iterable[Mapping[str, Any]], with_step: bool) -> list[StepRow]:
    out = []
    for r in rows:
        n, failed = _ints(r, "num_spans", "num_failed")
        out.append(StepRow(str(r["operation"]), str(r["step"]) if with_step else None, n,
                           failed, (n - failed) / n if n else 0.0))
    return out


@dataclass(frozen=True, slots=True)
class _SpanStats:
    operations: list[StepRow]
    steps: list[StepRow]
    """Most failures first, at most ``MAX_STEPS + 1`` (one more says there are more)."""
    heatmap: Heatmap
    num_retries: int
    num_retries_ok: int
    num_fallbacks: int


def _whole_minutes(params: QueryParams) -> bool:
    """The range starts and ends on whole minutes (as ``step_counts`` rows do)."""
    r = params.time_range
    return r is not None and all(t.second == 0 and t.microsecond == 0 for t in (r.start, r.end))


def _counted(params: QueryParams, settled: _Settled, parts: SqlParts, columns: str,
             raw_columns: str, condition: str = "1", raw_condition: str = "1") -> str:
    """``step_counts`` rows of the settled traces UNION ALL the tail's raw spans.

    ``columns`` (rows meeting ``condition``) over ``step_counts`` and ``raw_columns``
    (``raw_condition``) over ``spans``, one span a row, must line up. Exact for a range of
    whole minutes (the rows' ``start_time`` is the minute of their spans).
    """
    counts = build_where(params.time_range, params.filters, SqlParts(binds=parts.binds))
    sql = f"SELECT {columns} FROM {STEP_COUNTS_TABLE} FINAL WHERE {counts.where} AND {condition}"
    if settled.tail_ids == []:
        return sql
    tail = _tail_ids(settled, parts)
    raw = build_where(params.time_range, params.filters, SqlParts(binds=parts.binds))
    return (f"{sql} AND trace_id NOT IN {tail}\n    UNION ALL\n    SELECT {raw_columns}"
            f" FROM spans FINAL WHERE {raw.where} AND {raw_condition} AND trace_id IN {tail}")


def _span_stats(store: SpanStore, params: QueryParams, bucket: str,
                settled: _Settled | None) -> _SpanStats:
    """Operations, steps and the heatmap from one pass over the spans.

    The spans are counted per (bucket, operation, step); the per-step totals, the
    per-operation totals (window sums over every step, listed or not) and the ranks are
    taken over those few rows, and only the listed steps come back, the heatmap's with
    their cells: all additive counts, so the same numbers as a query per breakdown.
    """
    parts = build_where(params.time_range, params.filters)
    if settled is None or not settled.step_counts or not _whole_minutes(params):
        groups = f"""SELECT {_START_OF[bucket]}(start_time) AS bucket, operation,
            {STEP_EXPR} AS step, count() AS n, sum({_FAILED}) AS f, sum(is_retry) AS r,
            sum(is_retry AND status = 'ok') AS rok, sum(is_fallback) AS fb
        FROM spans FINAL WHERE {parts.where} GROUP BY bucket, operation, step"""
    else:
        rows = _counted(
            params, settled, parts,
            f"{_START_OF[bucket]}(start_time) AS bucket, operation, step, num_spans AS n,"
            " num_failed AS f, num_retries AS r, num_retries_ok AS rok, num_fallbacks AS fb",
            f"toDateTime({_START_OF[bucket]}(start_time), 'UTC') AS bucket, operation,"
            f" toLowCardinality({STEP_EXPR}) AS step, toInt64(1) AS n,"
            f" toInt64({_FAILED}) AS f, toInt64(is_retry) AS r,"
            " toInt64(is_retry AND status = 'ok') AS rok, toInt64(is_fallback) AS fb")
        groups = f"""SELECT bucket, operation, step, sum(n) AS n, sum(f) AS f, sum(r) AS r,
            sum(rok) AS rok, sum(fb) AS fb
        FROM ({rows}) GROUP BY bucket, operation, step"""
    sql = f"""
SELECT operation, step, num_spans, num_failed, op_spans, op_failed, op_retries,
    op_retries_ok, op_fallbacks, rank,
    if(rank <= {HEATMAP_STEPS} AND num_failed > 0, all_cells, []) AS cells
FROM (
    SELECT operation, step, toInt64(sum(n)) AS num_spans, toInt64(sum(f)) AS num_failed,
        toInt64(sum(sum(n)) OVER per_op) AS op_spans,
        toInt64(sum(sum(f)) OVER per_op) AS op_failed,
        toInt64(sum(sum(r)) OVER per_op) AS op_retries,
        toInt64(sum(sum(rok)) OVER per_op) AS op_retries_ok,
        toInt64(sum(sum(fb)) OVER per_op) AS op_fallbacks,
        row_number() OVER (ORDER BY num_failed DESC, num_spans DESC, operation, step) AS rank,
        row_number() OVER (PARTITION BY operation ORDER BY step) AS op_rank,
        groupArray((toDateTime64(bucket, 0, 'UTC'), toInt64(n), toInt64(f))) AS all_cells
    FROM (
        {groups})
    GROUP BY operation, step
    WINDOW per_op AS (PARTITION BY operation))
WHERE rank <= {MAX_STEPS + 1} OR op_rank = 1
ORDER BY rank {FINAL_SETTINGS}"""
    rows = store.query_arrow(sql, parts.binds).to_pylist()
    per_op: dict[str, Mapping[str, Any]] = {}
    for r in rows:
        per_op.setdefault(str(r["operation"]), r)
    operations = _step_rows([{"operation": op, "num_spans": r["op_spans"],
                              "num_failed": r["op_failed"]}
                             for op, r in sorted(per_op.items())], False)
    listed = [r for r in rows if int(r["rank"]) <= MAX_STEPS + 1]
    steps = _step_rows(listed, True)
    hot = [r for r in listed if r["cells"]]
    cells = sorted((_cell(c)[0], str(r["operation"]), str(r["step"]), _cell(c))
                   for r in hot for c in r["cells"])  # (bucket, operation, step) order
    heatmap = Heatmap(bucket, [f"{r['operation']}/{r['step']}" for r in hot], [
        {"bucket": when, "step": f"{op}/{step}", "num_spans": int(c[1]),
         "num_failed": int(c[2])} for when, op, step, c in cells])
    retries, retries_ok, fallbacks = (sum(int(r[name] or 0) for r in per_op.values())
                                      for name in ("op_retries", "op_retries_ok",
                                                   "op_fallbacks"))
    return _SpanStats(operations, steps, heatmap, retries, retries_ok, fallbacks)


def _cell(cell: Any) -> tuple[Any, ...]:
    """A SQL tuple that Arrow gave back as a dict (keyed by position) or a sequence."""
    return tuple(cell.values()) if isinstance(cell, dict) else tuple(cell)


def _error_rows(store: SpanStore, params: QueryParams, num_spans: int, num_failed: int,
                settled: _Settled | None) -> tuple[list[ErrorRow], list[ErrorRow]]:
    parts = build_where(params.time_range, params.filters)
    # FINAL like the span counts; a span's versions share its status and classification
    # (set once at ingest).
    names = (f"if(error_class = '', '{_UNKNOWN}', error_class) AS cls,"
             f" if(error_category = '', '{_UNKNOWN}', error_category) AS cat")
    if settled is None or not settled.step_counts or not _whole_minutes(params):
        failed = f"SELECT {names}, 1 AS n FROM spans FINAL WHERE {parts.where} AND {_FAILED}"
    else:
        failed = _counted(params, settled, parts, f"{names}, num_failed AS n",
                          f"{names}, toInt64(1) AS n", "num_failed > 0", _FAILED)
    sql = f"""
SELECT cls, cat, toInt64(sum(n)) AS num_failed FROM ({failed})
GROUP BY cls, cat ORDER BY num_failed DESC, cls, cat {FINAL_SETTINGS}"""
    rows = store.query_arrow(sql, parts.binds).to_pylist()
    by_category = [ErrorRow(str(r["cls"]), str(r["cat"]), int(r["num_failed"]),
                            int(r["num_failed"]) / num_spans, int(r["num_failed"]) / num_failed)
                   for r in rows]
    totals: dict[str, int] = defaultdict(int)
    for r in by_category:
        totals[r.error_class] += r.num_failed
    by_class = [ErrorRow(cls, None, n, n / num_spans, n / num_failed)
                for cls, n in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))]
    return by_class, by_category


def _loops(store: SpanStore, params: QueryParams) -> tuple[list[LoopRow], int]:
    parts = build_where(params.time_range, params.filters)
    n = parts.bind(LOOP_MIN_CALLS, "UInt32")
    # One pass, no FINAL: calls are counted as distinct span ids (a span's versions share
    # its tool, arguments hash and retry flag), then the loop groups are folded into the
    # count of traces and the MAX_LISTED with the most calls.
    sql = f"""
SELECT toInt64(uniqExact(trace_id)) AS num_traces,
    arraySlice(arraySort(x -> (-x.4, x.1, x.2, x.3),
        groupArray((trace_id, tool_name, tool_args_hash, num_calls, span_ids))),
        1, {MAX_LISTED}) AS loops
FROM (
    SELECT trace_id, tool_name, tool_args_hash, toInt64(uniqExact(span_id)) AS num_calls,
        arraySlice(arraySort(groupUniqArray(span_id)), 1, 20) AS span_ids
    FROM spans
    WHERE {parts.where} AND operation = 'tool' AND tool_args_hash != '' AND NOT is_retry
    GROUP BY trace_id, tool_name, tool_args_hash HAVING num_calls >= {n})"""
    row = store.query_arrow(sql, parts.binds).to_pylist()[0]
    loops = []
    for item in row["loops"] or []:
        values = list(item.values()) if isinstance(item, dict) else list(item)
        trace_id, tool, args_hash, calls, span_ids = values
        loops.append(LoopRow(str(trace_id), str(tool), str(args_hash), int(calls),
                             [str(x) for x in span_ids]))
    return loops, int(row["num_traces"] or 0)


def _ended_in_timeout(spans: Sequence[Mapping[str, Any]]) -> bool:
    """The SQL outcome rule of :func:`_trace_outcomes`, for one trace's spans."""
    roots = [s for s in spans if not s["parent_span_id"]]
    if roots:
        root = min(roots, key=lambda s: s["start_ns"])
        return root["status"] == "timeout" or root["error_category"] in TIMEOUT_CATEGORIES
    return any(s["status"] == "timeout" for s in spans)


def _candidates(store: SpanStore, params: QueryParams, split: _Split
                ) -> tuple[list[str], list[tuple[int, int]]] | None:
    """The cycle candidates of a settled store and where their spans start; None if none.

    The ids are the lowest first, one more than are examined; the interval (ns, inclusive)
    holds the start of each of their spans in the range.
    """
    parts, _ = _trace_parts(params)
    facts = f"cycle_candidate != 0 AND {_facts_where(params, split, parts)}"
    branches = [f"SELECT trace_id, start_ns AS lo, last_start_ns AS hi FROM {_few_facts(facts)}"]
    raw = _raw_where(params, split, parts)
    if raw is not None:
        branches.append(f"""SELECT trace_id, toInt64(min(toUnixTimestamp64Nano(start_time))) AS lo,
        toInt64(max(toUnixTimestamp64Nano(start_time))) AS hi
    FROM spans WHERE {parts.where} AND {raw}
    GROUP BY trace_id HAVING {CYCLE_CANDIDATE}""")
    found = store.query_arrow(f"""
SELECT trace_id, lo, hi FROM (
    {' UNION ALL '.join(branches)})
ORDER BY trace_id LIMIT {MAX_CYCLE_TRACES + 1} {FINAL_SETTINGS}""", parts.binds).to_pydict()
    if not found["trace_id"]:
        return None
    ids = [str(t) for t in found["trace_id"]]
    bounds = sorted(zip((int(x) for x in found["lo"]), (int(x) for x in found["hi"]),
                        strict=True))
    return ids, [(bounds[0][0], max(hi for _, hi in bounds))]


def _cycles(store: SpanStore, params: QueryParams, split: _Split | None
            ) -> tuple[list[AgentCycle], int, list[AgentCycle], int, bool]:
    parts, having = _trace_parts(params)
    if split is None:
        # No FINAL: agent spans are counted as distinct span ids, and a span's versions
        # are folded below, the newest (highest revision) winning, as FINAL would.
        candidates = f"""trace_id IN (
SELECT trace_id FROM spans WHERE {parts.where}
GROUP BY trace_id
HAVING {CYCLE_CANDIDATE} AND {having}
ORDER BY trace_id LIMIT {MAX_CYCLE_TRACES + 1})"""
    else:
        found = _candidates(store, params, split)
        if found is None:
            return [], 0, [], 0, False
        ids, ((lo, hi),) = found
        candidates = (f"trace_id IN {parts.bind(ids, 'Array(String)')} AND start_time"
                      f" BETWEEN fromUnixTimestamp64Nano({parts.bind(lo, 'Int64')}, 'UTC')"
                      f" AND fromUnixTimestamp64Nano({parts.bind(hi, 'Int64')}, 'UTC')")
    sql = f"""
SELECT trace_id, span_id, parent_span_id, toInt64(toUnixTimestamp64Nano(start_time)) AS start_ns,
    status, error_category, if(operation = 'agent', {AGENT_EXPR}, '') AS agent
FROM spans WHERE {parts.where} AND {candidates}
ORDER BY trace_id, span_id, revision, ingested_at_ns"""
    columns = store.query_arrow(sql, parts.binds).to_pydict()  # columns: no dict per row
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for trace_id, span_id, parent, start_ns, status, category, agent in zip(
            columns["trace_id"], columns["span_id"], columns["parent_span_id"],
            columns["start_ns"], columns["status"], columns["error_category"],
            columns["agent"], strict=True):
        latest[(trace_id, span_id)] = {"span_id": span_id, "parent_span_id": parent,
                                       "start_ns": start_ns, "status": status,
                                       "error_category": category, "agent": agent}
    by_trace: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for (trace_id, _), row in latest.items():
        by_trace[trace_id].append(row)
    truncated = len(by_trace) > MAX_CYCLE_TRACES
    cycles: list[AgentCycle] = []
    for trace_id in sorted(by_trace)[:MAX_CYCLE_TRACES]:
        spans = by_trace[trace_id]
        found_cycle = find_agent_cycle(
            {str(s["span_id"]): str(s["parent_span_id"]) for s in spans},
            {str(s["span_id"]): str(s["agent"]) for s in spans if s["agent"]})
        if found_cycle is not None:
            cycles.append(AgentCycle(trace_id, found_cycle[0], found_cycle[1],
                                     _ended_in_timeout(spans)))
    suspects = [c for c in cycles if c.timed_out]
    return (cycles[:MAX_LISTED], len(cycles), suspects[:MAX_LISTED], len(suspects),
            truncated)


def get_reliability(store: SpanStore, params: QueryParams, bucket: str | None = None
                    ) -> Reliability:
    """Success, failure taxonomy, retries, fallbacks, loops and cycles (see the module doc).

    Args:
        store: the span store.
        params: time range and filters (group-by is ignored).
        bucket: heatmap bucket (``minute``, ``hour``, ``day``); None picks one from the
            range (:func:`auto_bucket`).

    Returns:
        Counts and rates (fractions in [0, 1]; None where the denominator is 0), the
        step and error breakdowns, the heatmap and the bounded lists.

    Raises:
        ValidationError: (422, field ``bucket``) an unknown bucket.
        QueryTimeout: a query ran past the store's time limit.
        StoreError: a query failed.
    """
    if bucket is not None and bucket not in BUCKETS:
        raise ValidationError("bucket", f"Expected one of {list(BUCKETS)}, got {bucket!r}")
    chosen = bucket or auto_bucket(params.time_range.end - params.time_range.start)
    settled = _settled(store, params)
    stats = _span_stats(store, params, chosen, settled)
    num_spans = sum(o.num_spans for o in stats.operations)
    num_failed = sum(o.num_failed for o in stats.operations)
    by_class, by_category = (_error_rows(store, params, num_spans, num_failed, settled)
                             if num_failed else ([], []))
    split = _split(store, params, settled)
    traces = _trace_outcomes(store, params, split)
    loops, num_loop_traces = _loops(store, params)
    cycles, num_cycles, suspects, num_suspects, truncated = _cycles(store, params, split)
    return Reliability(
        num_spans=num_spans, num_failed=num_failed,
        span_success_rate=_rate(num_spans - num_failed, num_spans), traces=traces,
        operations=stats.operations, steps=stats.steps[:MAX_STEPS],
        steps_truncated=len(stats.steps) > MAX_STEPS, errors_by_class=by_class,
        errors_by_category=by_category, num_retries=stats.num_retries,
        num_retries_ok=stats.num_retries_ok, retry_rate=_rate(stats.num_retries, num_spans),
        retry_success_rate=_rate(stats.num_retries_ok, stats.num_retries),
        num_fallback_spans=stats.num_fallbacks, loops=loops,
        num_loop_traces=num_loop_traces,
        loop_rate=_rate(num_loop_traces, traces.num_traces), cycles=cycles,
        num_cycle_traces=num_cycles, deadlock_suspects=suspects,
        num_deadlock_suspects=num_suspects, cycles_truncated=truncated,
        heatmap=stats.heatmap)
