"""The settle job: per-span critical-path times and per-trace facts of complete traces.

A trace is **settled** (complete) once no span of it has arrived for the quiet period
``Q`` (``settle_quiet_s``; docs/decisions/0010-settled-traces.md says why its default):
every span of it was committed (``ingested_at_ns``, the commit stamp, resolver versions
included) at or before ``now - Q``. Each pass, with ``S`` the job's watermark and ``G``
a stamp up to which every commit is visible (the resolver's watermark function):

1. the cut-off is ``C = min(G, now - Q)``; nothing to do when ``C <= S``;
2. the traces touched by commits stamped in ``(S, C]`` whose newest span is stamped at or
   before ``C`` are settled, in batches of :data:`SETTLE_TRACES` traces taken in start
   order (so a batch's rows land in few day partitions of ``span_timing``): their current
   spans (``spans FINAL``) are read in one query, the critical path of each trace is
   computed in Python over its own rows
   (:func:`~mentatlab.analytics.critical_path.compute_critical_path`), and one Arrow
   batch per chunk goes to ``span_timing``; ``trace_facts``, ``version_sightings``,
   ``step_counts`` and ``trace_agents`` are one ``INSERT … SELECT … GROUP BY`` each over
   the same traces, ``llm_calls`` one ``INSERT … SELECT`` of their calls;
3. ``S`` becomes ``C``. A trace touched in ``(S, C]`` but with a span stamped after
   ``C`` is still active: that span lies after the new watermark, so a later pass takes
   the trace whole.

A pass over more than :data:`STEP_SPANS` committed spans (the first pass over a large
store, or after migration 8 reset ``S``) runs steps 2-3 once per cut-off
``S < C1 < C2 < … < C``, about that many spans apart, and persists each: the argument
above holds for any cut-off, so a restart keeps the steps done, and readers use the
settled rows of the traces settled so far.

So at any time every stored trace either has every span stamped at or below ``S`` and
its rows in both tables reflect all of them, or has a span stamped above ``S`` (the
*unsettled tail*, which readers can compute from raw spans). A late span (after the
trace settled) is a commit above ``S``: the trace is settled again and its rows are
replaced (``ReplacingMergeTree(settled_ns)``, same sorting key). A pass is idempotent:
repeating it rewrites the same values. Like the resolver, passes must not run
concurrently on one store: the server runs one settle job per store (the elected
node's on a shared store) with :class:`~mentatlab.resolver.runner.ResolverLoop`.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa

from mentatlab.analytics.critical_path import compute_critical_path, resolve_parents
from mentatlab.resolver.resolver import ResolverState
from mentatlab.storage.aggregates import MODEL_EXPR, NOT_ROLLUP, RESOLVER_STATE_TABLE
from mentatlab.storage.base import SpanStore
from mentatlab.storage.settled import (
    AGENT_CALL,
    CALL,
    CYCLE_CANDIDATE,
    LLM_CALLS_COLUMNS,
    LLM_CALLS_ROWS,
    LLM_CALLS_TABLE,
    RUN_OP_TYPE,
    SETTLE_STATE_NAME,
    SPAN_TIMING_TABLE,
    STEP_COUNTS_TABLE,
    STEP_EXPR,
    TRACE_AGENTS_TABLE,
    TRACE_FACTS_LATER_COLUMNS,
    TRACE_FACTS_TABLE,
    VERSION_FIELDS,
    VERSION_SIGHTINGS_TABLE,
)

__all__ = ["SETTLE_TRACES", "STEP_SPANS", "SettleReport", "Settler", "read_settle_state"]

_log = logging.getLogger(__name__)

STEP_SPANS = 1_000_000
"""Committed spans per step of a pass, about (see the module doc)."""
SETTLE_TRACES = 2_000
"""Traces settled together (one read, one ``span_timing`` batch, one facts insert)."""
_FINAL = "SETTINGS do_not_merge_across_partitions_select_final = 1"
_TIMING_DIMS = ("org_id", "workspace_id", "project_id", "agent_id", "workflow_id",
                "service_name", "provider", "operation", "status", "tool_name", "user_id",
                "customer_id")
_IN_BATCH = ("trace_id IN {ids:Array(String)} AND start_time >= {lo:DateTime64(9, 'UTC')}"
             " AND start_time <= {hi:DateTime64(9, 'UTC')}")
_MARGIN = timedelta(seconds=1)
_EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
_LATEST = datetime(2262, 1, 1, tzinfo=UTC)
_READ_SQL = (
    f"SELECT {', '.join(_TIMING_DIMS)}, {MODEL_EXPR} AS model, start_time, trace_id,"
    " span_id, parent_span_id, name, duration_ms,"
    " toUnixTimestamp64Nano(start_time) AS start_ns,"
    " toUnixTimestamp64Nano(end_time) AS end_ns,"
    " JSONExtractBool(attributes, 'mentat.span.open') AS is_open"
    f" FROM spans FINAL WHERE {_IN_BATCH}"
    f" ORDER BY trace_id, start_time, span_id {_FINAL}")
_NONEMPTY = "arraySort(groupUniqArrayIf({c}, {c} != ''))"
_FACTS_COLUMNS = (
    "org_id, workspace_id, project_id, trace_id, start_time, start_ns, end_ns, duration_ms,"
    " status, num_spans, error_spans, timeout_spans, total_cost, input_tokens,"
    " output_tokens, root_name, root_agent_id, root_operation, workflow_id, prompt_version,"
    " agent_version, workflow_version, prompt_versions, agent_versions, workflow_versions,"
    " models, primary_model, user_id, session_id, customer_id, settled_ns, "
    + ", ".join(name for name, kind in TRACE_FACTS_LATER_COLUMNS if "MATERIALIZED" not in kind))
_FACTS_SQL = f"""INSERT INTO {TRACE_FACTS_TABLE} ({_FACTS_COLUMNS})
SELECT org_id, any(workspace_id) AS f_workspace_id, project_id, trace_id,
    min(start_time) AS f_start_time,
    min(toUnixTimestamp64Nano(start_time)) AS f_start_ns,
    max(toUnixTimestamp64Nano(end_time)) AS f_end_ns,
    (f_end_ns - f_start_ns) / 1e6 AS f_duration_ms,
    multiIf(countIf(status = 'timeout') > 0, 'timeout', countIf(status != 'ok') > 0,
            'error', 'ok') AS f_status,
    toInt64(count()) AS f_num_spans, toInt64(countIf(status != 'ok')) AS f_error_spans,
    toInt64(countIf(status = 'timeout')) AS f_timeout_spans,
    sum(total_cost) AS f_total_cost,
    toInt64(sumIf(ifNull(input_tokens, 0), {NOT_ROLLUP})) AS f_input_tokens,
    toInt64(sumIf(ifNull(output_tokens, 0), {NOT_ROLLUP})) AS f_output_tokens,
    argMin(name, (parent_span_id != '', start_time)) AS f_root_name,
    argMin(agent_id, (parent_span_id != '', start_time)) AS f_root_agent_id,
    argMin(operation, (parent_span_id != '', start_time)) AS f_root_operation,
    argMinIf(workflow_id, (parent_span_id != '', start_time), workflow_id != '')
        AS f_workflow_id,
    argMinIf(prompt_version, (parent_span_id != '', start_time), prompt_version != '')
        AS f_prompt_version,
    argMinIf(agent_version, (parent_span_id != '', start_time), agent_version != '')
        AS f_agent_version,
    argMinIf(workflow_version, (parent_span_id != '', start_time), workflow_version != '')
        AS f_workflow_version,
    {_NONEMPTY.format(c='prompt_version')} AS f_prompt_versions,
    {_NONEMPTY.format(c='agent_version')} AS f_agent_versions,
    {_NONEMPTY.format(c='workflow_version')} AS f_workflow_versions,
    {_NONEMPTY.format(c=MODEL_EXPR)} AS f_models,
    ifNull(topKIf(1)({MODEL_EXPR}, {MODEL_EXPR} != '' AND {NOT_ROLLUP})[1], '')
        AS f_primary_model,
    anyIf(user_id, user_id != '') AS f_user_id, anyIf(session_id, session_id != '')
        AS f_session_id, anyIf(customer_id, customer_id != '') AS f_customer_id,
    {{v:Int64}} AS f_settled_ns,
    arraySort(groupUniqArray(agent_id)) AS f_agent_ids,
    arraySort(groupUniqArray(operation)) AS f_operations,
    max(toUnixTimestamp64Nano(start_time)) AS f_last_start_ns,
    toUInt32(sum(uniqExact(workspace_id)) OVER (PARTITION BY trace_id)) AS f_num_scopes,
    toUInt8(countIf(parent_span_id = '') > 0) AS f_has_root,
    argMinIf(status, start_time, parent_span_id = '') AS f_root_status,
    argMinIf(error_category, start_time, parent_span_id = '') AS f_root_error_category,
    toUInt8(countIf(is_fallback) > 0) AS f_has_fallback,
    toUInt8(countIf(is_retry) > 0) AS f_has_retry,
    toUInt8({CYCLE_CANDIDATE}) AS f_cycle_candidate,
    {_NONEMPTY.format(c='session_id')} AS f_session_ids,
    toInt64(uniqExact(if(run_id != '', run_id, trace_id))) AS f_num_runs
FROM spans FINAL WHERE {_IN_BATCH}
GROUP BY org_id, project_id, trace_id {_FINAL}"""
_SIGHTING_PAIRS = ", ".join(f"('{name}', {expr})" for name, expr in VERSION_FIELDS.items())
_SIGHTINGS_SQL = f"""INSERT INTO {VERSION_SIGHTINGS_TABLE} (org_id, workspace_id, project_id,
    field, agent_id, operation, value, start_time, first_seen, last_seen)
SELECT org_id, workspace_id, project_id, fv.1 AS s_field, agent_id, operation,
    fv.2 AS s_value, toDateTime64(toDate(start_time), 9, 'UTC') AS s_day,
    min(start_time) AS s_first, max(start_time) AS s_last
FROM spans FINAL ARRAY JOIN [{_SIGHTING_PAIRS}] AS fv
WHERE {_IN_BATCH} AND fv.2 != ''
GROUP BY org_id, workspace_id, project_id, s_field, agent_id, operation, s_value, s_day
{_FINAL}"""


_STEPS_SQL = f"""INSERT INTO {STEP_COUNTS_TABLE} (org_id, workspace_id, project_id, start_time,
    trace_id, operation, step, error_class, error_category, num_spans, num_failed, num_retries,
    num_retries_ok, num_fallbacks, settled_ns)
SELECT org_id, workspace_id, project_id, toStartOfMinute(start_time) AS s_minute, trace_id,
    operation, {STEP_EXPR} AS s_step, if(status != 'ok', error_class, '') AS s_class,
    if(status != 'ok', error_category, '') AS s_category, toInt64(count()),
    toInt64(countIf(status != 'ok')), toInt64(countIf(is_retry)),
    toInt64(countIf(is_retry AND status = 'ok')), toInt64(countIf(is_fallback)), {{v:Int64}}
FROM spans FINAL WHERE {_IN_BATCH}
GROUP BY org_id, workspace_id, project_id, s_minute, trace_id, operation, s_step, s_class,
    s_category {_FINAL}"""

_NS = "toUnixTimestamp64Nano"
_AGENTS_SQL = f"""INSERT INTO {TRACE_AGENTS_TABLE} (org_id, workspace_id, project_id, trace_id,
    start_time, bucket, single_scope, run_first_ns, run_last_ns, run_key, run_agent, run_op_type,
    run_ok, run_cost, run_tokens, run_latency_ms, call_link, call_kind, call_name, call_caller,
    call_start_ns, call_duration_ms, call_failed, settled_ns)
SELECT r.org_id, r.a_workspace_id, r.project_id, r.trace_id, r.a_start_time,
    if(o.trace_id != '', o.old_bucket, toDate(r.a_start_time)),
    toUInt8(count() OVER (PARTITION BY r.trace_id) = 1 AND r.num_workspaces = 1),
    r.first_ns, r.last_ns,
    arrayMap((a, o) -> concat(toString(length(a)), ':', a, o), r.runs.1, r.runs.2),
    r.runs.1, r.runs.2, r.runs.3, r.runs.4, r.runs.5, r.runs.6,
    arrayMap((k, n, c) -> concat(k, ':', toString(length(n)), ':', n, c), c.calls.1,
             c.calls.2, c.calls.3),
    c.calls.1, c.calls.2, c.calls.3, c.calls.4, c.calls.5, c.calls.6,
    {{v:Int64}}
FROM (
    SELECT org_id, project_id, trace_id, any(workspaces[1]) AS a_workspace_id,
        length(groupUniqArrayArray(workspaces)) AS num_workspaces,
        min(first_start) AS a_start_time,
        minIf(first_ns, agent_id != '') AS first_ns, maxIf(last_ns, agent_id != '') AS last_ns,
        groupArrayIf((agent_id, op_type, ok, cost, tokens, latency_ms), agent_id != '')
            AS runs
    FROM (
        SELECT org_id, project_id, trace_id, agent_id,
            groupUniqArray(workspace_id) AS workspaces, min(start_time) AS first_start,
            {RUN_OP_TYPE} AS op_type,
            toUInt8(countIf(status != 'ok') = 0) AS ok, sum(total_cost) AS cost,
            toInt64(sumIf(ifNull(input_tokens, 0) + ifNull(output_tokens, 0), {NOT_ROLLUP}))
                AS tokens,
            min({_NS}(start_time)) AS first_ns, max({_NS}(start_time)) AS last_ns,
            ({_NS}(max(end_time)) - {_NS}(min(start_time))) / 1e6 AS latency_ms
        FROM spans FINAL WHERE {_IN_BATCH}
        GROUP BY org_id, project_id, trace_id, agent_id {_FINAL})
    GROUP BY org_id, project_id, trace_id
) AS r
LEFT JOIN (
    SELECT k.org_id AS org_id, k.project_id AS project_id, k.trace_id AS trace_id,
        groupArray((k.kind, k.name, if(k.kind = 'agent', p.agent_id, k.agent_id), k.start_ns,
                    k.duration_ms, k.failed)) AS calls
    FROM (
        SELECT org_id, project_id, trace_id, parent_span_id,
            if(operation = 'agent', 'agent', 'tool') AS kind,
            toString(if(operation = 'agent', agent_id, tool_name)) AS name,
            toString(agent_id) AS agent_id, {_NS}(start_time) AS start_ns, duration_ms,
            toUInt8(status != 'ok') AS failed
        FROM spans FINAL WHERE {_IN_BATCH} AND ({CALL}) {_FINAL}
    ) AS k
    LEFT JOIN (
        SELECT trace_id, span_id, toString(argMax(agent_id, ingested_at_ns)) AS agent_id
        FROM spans WHERE {_IN_BATCH} AND span_id IN (
            SELECT parent_span_id FROM spans WHERE {_IN_BATCH} AND {AGENT_CALL})
        GROUP BY trace_id, span_id
    ) AS p ON k.trace_id = p.trace_id AND k.parent_span_id = p.span_id
    GROUP BY k.org_id, k.project_id, k.trace_id
) AS c ON r.org_id = c.org_id AND r.project_id = c.project_id AND r.trace_id = c.trace_id
LEFT JOIN (
    SELECT org_id, project_id, trace_id, min(bucket) AS old_bucket FROM {TRACE_AGENTS_TABLE}
    WHERE trace_id IN {{ids:Array(String)}} GROUP BY org_id, project_id, trace_id
) AS o ON r.org_id = o.org_id AND r.project_id = o.project_id AND r.trace_id = o.trace_id
{_FINAL}"""


_CALLS_SQL = f"""INSERT INTO {LLM_CALLS_TABLE}
    ({', '.join(name for name, _, _ in LLM_CALLS_COLUMNS)}, settled_ns)
SELECT {', '.join(f'{expr} AS c_{name}' for name, _, expr in LLM_CALLS_COLUMNS)}, {{v:Int64}}
FROM spans FINAL WHERE {_IN_BATCH} AND ({LLM_CALLS_ROWS}
    OR (trace_id, span_id) IN (SELECT trace_id, span_id FROM {LLM_CALLS_TABLE}
                               WHERE {_IN_BATCH}))
{_FINAL}"""
"""``llm_calls`` rows of the batch: its calls and retries, and its spans that had a row (a
span no longer a call is written with ``llm = 0``, replacing its old row)."""


@dataclass(frozen=True, slots=True)
class SettleReport:
    """What one pass did."""

    through_ns: int
    """The watermark after the pass (ns since the epoch)."""
    num_traces: int
    """Traces settled (or settled again)."""
    num_spans: int
    """``span_timing`` rows written."""
    duration_s: float


def read_settle_state(store: SpanStore) -> int | None:
    """The settle job's persisted watermark (ns), or None when it never ran on ``store``.

    Raises:
        StoreError: the query failed.
    """
    rows = store.query_arrow(
        f"SELECT argMax(through_ns, version) AS w, count() AS n FROM {RESOLVER_STATE_TABLE}"
        f" WHERE name = '{SETTLE_STATE_NAME}'").to_pylist()
    if not rows or not rows[0]["n"]:
        return None
    return int(rows[0]["w"])


class Settler:
    """Settles complete traces of one store (see the module docstring).

    Args:
        store: a migrated span store.
        quiet_s: the quiet period ``Q`` in s (> 0).
        batch_traces: traces per batch (> 0).
        step_spans: committed spans per step of a pass, about (> 0).

    Not thread-safe: one thread runs passes; :attr:`state` may be read from any thread.
    Its interface (``state``, ``run_pass``, ``flush_state``, ``forget_state``) is the one
    :class:`~mentatlab.resolver.runner.ResolverLoop` drives.
    """

    def __init__(self, store: SpanStore, quiet_s: float, *,
                 batch_traces: int = SETTLE_TRACES, step_spans: int = STEP_SPANS) -> None:
        if quiet_s <= 0:
            raise ValueError(f"Expected quiet_s > 0, got {quiet_s}")
        if batch_traces < 1 or step_spans < 1:
            raise ValueError(f"Expected batch_traces and step_spans >= 1, got {batch_traces}"
                             f" and {step_spans}")
        self.store = store
        self.quiet_ns = int(quiet_s * 1e9)
        self.batch_traces = batch_traces
        self.step_spans = step_spans
        self._lock = threading.Lock()
        self._state: ResolverState | None = None
        self.num_passes = 0

    @property
    def state(self) -> ResolverState:
        """The watermark ``S`` (``through_ns``; ``complete`` is always True).

        Raises:
            StoreError: the state could not be read.
        """
        with self._lock:
            if self._state is None:
                self._state = ResolverState(read_settle_state(self.store) or 0, True)
            return self._state

    def forget_state(self) -> None:
        """Read the watermark from the store again on next use (another node may lead)."""
        with self._lock:
            self._state = None

    def flush_state(self) -> None:
        """Nothing to do: every pass persists its watermark."""

    def run_pass(self, through_ns: int, now_ns: int | None = None) -> SettleReport:
        """Settle the traces quiet since ``now_ns - Q`` among those touched after ``S``.

        Args:
            through_ns: ``G``: every commit stamped at or below it is visible.
            now_ns: the current time, ns since the epoch (default: the clock).

        Raises:
            StoreError: a read or write failed (the next pass redoes the work).
        """
        started_s = time.monotonic()
        after_ns = self.state.through_ns
        now = time.time_ns() if now_ns is None else now_ns
        cutoff_ns = min(int(through_ns), now - self.quiet_ns)
        if cutoff_ns <= after_ns:
            return SettleReport(after_ns, 0, 0, time.monotonic() - started_s)
        num_traces = num_spans = 0
        for step_ns in self._steps(after_ns, cutoff_ns):
            traces, spans = self._settle_touched(after_ns, step_ns)
            num_traces, num_spans = num_traces + traces, num_spans + spans
            self.store.execute(
                f"INSERT INTO {RESOLVER_STATE_TABLE} (name, through_ns, complete, version)"
                " VALUES ({n:String}, {w:Int64}, 1, {v:UInt64})",
                {"n": SETTLE_STATE_NAME, "w": step_ns, "v": time.time_ns()})
            with self._lock:
                self._state = ResolverState(step_ns, True)
            after_ns = step_ns
        self.num_passes += 1
        report = SettleReport(cutoff_ns, num_traces, num_spans, time.monotonic() - started_s)
        if report.duration_s > 1.0:
            _log.info("settle pass: %s traces, %s spans in %.3f s", num_traces, num_spans,
                      report.duration_s)
        return report

    def _steps(self, after_ns: int, cutoff_ns: int) -> list[int]:
        """The cut-offs of a pass's steps: increasing stamps in ``(after_ns, cutoff_ns]``.

        The last is ``cutoff_ns``; they are about :attr:`step_spans` committed spans apart
        (approximate quantiles: any increasing cut-offs are correct, see the module doc).
        """
        (row,) = self.store.query_arrow(
            "SELECT toInt64(count()) AS n FROM spans"
            " WHERE ingested_at_ns > {a:Int64} AND ingested_at_ns <= {c:Int64}",
            {"a": after_ns, "c": cutoff_ns}).to_pylist()
        steps = math.ceil(int(row["n"]) / self.step_spans)
        if steps <= 1:
            return [cutoff_ns]
        levels = ", ".join(str(i / steps) for i in range(1, steps))
        (row,) = self.store.query_arrow(
            f"SELECT quantiles({levels})(ingested_at_ns) AS q FROM spans"
            " WHERE ingested_at_ns > {a:Int64} AND ingested_at_ns <= {c:Int64}",
            {"a": after_ns, "c": cutoff_ns}).to_pylist()
        cuts = {int(q) for q in row["q"] if after_ns < int(q) < cutoff_ns}
        return [*sorted(cuts), cutoff_ns]

    def _settle_touched(self, after_ns: int, cutoff_ns: int) -> tuple[int, int]:
        """Settle the traces touched in ``(after_ns, cutoff_ns]``, all spans at or before it.

        Returns:
            (traces, spans) settled.
        """
        touched = self.store.query_arrow(
            "SELECT trace_id, min(start_time) AS lo, max(start_time) AS hi FROM spans"
            " WHERE trace_id IN (SELECT trace_id FROM spans"
            " WHERE ingested_at_ns > {a:Int64} AND ingested_at_ns <= {c:Int64})"
            " GROUP BY trace_id HAVING max(ingested_at_ns) <= {c:Int64}"
            " ORDER BY lo, trace_id", {"a": after_ns, "c": cutoff_ns})
        ids = [str(t) for t in touched.column("trace_id").to_pylist()]
        lows, highs = touched.column("lo").to_pylist(), touched.column("hi").to_pylist()
        num_spans = 0
        for start in range(0, len(ids), self.batch_traces):
            stop = start + self.batch_traces
            # a second of margin: a bound bound as a parameter may lose its sub-µs digits
            num_spans += self.settle(ids[start:stop], (min(lows[start:stop]) - _MARGIN,
                                                       max(highs[start:stop]) + _MARGIN))
        return len(ids), num_spans

    def settle(self, trace_ids: list[str],
               start_bounds: tuple[datetime, datetime] | None = None) -> int:
        """Write every settled table's rows for ``trace_ids`` (whole traces); the spans written.

        Args:
            trace_ids: the traces.
            start_bounds: the earliest and latest ``start_time`` of any stored span of
                these traces, if known: the reads then go through the primary key.

        Raises:
            StoreError: a read or write failed.
        """
        if not trace_ids:
            return 0
        version = time.time_ns()
        lo, hi = start_bounds or (_EARLIEST, _LATEST)
        params = {"ids": trace_ids, "v": version, "lo": lo, "hi": hi}
        table = self.store.query_arrow(_READ_SQL, params)
        if table.num_rows:
            self.store.insert_table(SPAN_TIMING_TABLE, _timing(table, version))
        self.store.execute(_FACTS_SQL, params)
        self.store.execute(_SIGHTINGS_SQL, params)
        self.store.execute(_STEPS_SQL, params)
        self.store.execute(_AGENTS_SQL, params)
        self.store.execute(_CALLS_SQL, params)
        return int(table.num_rows)


def _timing(table: pa.Table, version: int) -> pa.Table:
    """``span_timing`` rows of ``table`` (spans sorted by trace, start, span id)."""
    num = table.num_rows
    trace_ids = table.column("trace_id").to_numpy(zero_copy_only=False)
    span_ids = table.column("span_id").to_pylist()
    parent_ids = table.column("parent_span_id").to_pylist()
    start_ns = table.column("start_ns").to_pylist()
    end_ns = table.column("end_ns").to_pylist()
    is_open = [bool(v) for v in table.column("is_open").to_pylist()]
    self_ms = np.zeros(num)
    path_ms = np.zeros(num)
    on_path = np.zeros(num, dtype=np.uint8)
    bounds = np.flatnonzero(trace_ids[1:] != trace_ids[:-1]) + 1
    for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, num], strict=True):
        lo, hi = int(lo), int(hi)
        parent = resolve_parents(span_ids[lo:hi], parent_ids[lo:hi])
        path = compute_critical_path(parent, start_ns[lo:hi], end_ns[lo:hi], is_open[lo:hi])
        self_ms[lo:hi] = path.self_time_ms
        path_ms[lo:hi] = path.critical_path_ms
        on_path[[lo + r for r in path.rows]] = 1
    keep = [*_TIMING_DIMS, "model", "start_time", "trace_id", "span_id", "name",
            "duration_ms"]
    out = table.select(keep)
    return (out.append_column("self_time_ms", pa.array(self_ms, pa.float64()))
            .append_column("critical_path_ms", pa.array(path_ms, pa.float64()))
            .append_column("on_critical_path", pa.array(on_path, pa.uint8()))
            .append_column("settled_ns", pa.repeat(pa.scalar(version, pa.int64()), num)))
