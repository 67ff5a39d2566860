"""Traces: a filtered list of trace summaries, and one trace as a span tree with costs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from mentatlab.analytics.aggregate_read import plan_read
from mentatlab.analytics.query import (
    FINAL_SETTINGS,
    LLM_CALL,
    MODEL_EXPR,
    NOT_ROLLUP,
    QueryParams,
    SqlParts,
    TimeRange,
    build_where,
)
from mentatlab.errors import ValidationError
from mentatlab.model.schema import SPAN_SCHEMA, arrow_to_spans
from mentatlab.model.span import CanonicalSpan, SpanStatus
from mentatlab.storage.aggregates import TRACE_SUMMARY_TABLE
from mentatlab.storage.base import SpanStore

__all__ = ["SpanNode", "TraceDetail", "TraceSummary", "get_trace", "list_traces"]

_MAX_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class TraceSummary:
    """One trace of a trace list (all its spans in the time range, not just matching ones)."""

    trace_id: str
    root_name: str
    """Name of the root span (``""`` when the root has not arrived)."""
    service_name: str
    start_time: datetime
    end_time: datetime
    duration_ms: float
    """From the first span's start to the last span's end, in ms."""
    num_spans: int
    num_errors: int
    status: str
    """``error`` if any span failed, else ``timeout`` if any timed out, else ``ok``."""
    total_cost: Decimal
    requests: int
    input_tokens: int
    output_tokens: int
    models: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SpanNode:
    """One span of a trace tree with its children (by start time)."""

    span: CanonicalSpan
    children: tuple[SpanNode, ...]
    subtree_cost: Decimal
    """This span's ``total_cost`` plus its descendants'."""


@dataclass(frozen=True, slots=True)
class TraceDetail:
    """A whole trace: roots (spans without a parent in the trace) and totals."""

    trace_id: str
    roots: tuple[SpanNode, ...]
    num_spans: int
    start_time: datetime
    end_time: datetime
    duration_ms: float
    total_cost: Decimal
    status: str


def _utc(value: Any) -> datetime:
    ts: datetime = value
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


_DURATION_MS = ("(toUnixTimestamp64Nano(max(end_time)) - toUnixTimestamp64Nano(min(start_time)))"
                " / 1e6")
_STATUS = ("multiIf(countIf(status = 'error') > 0, 'error', countIf(status = 'timeout') > 0,"
           " 'timeout', 'ok')")


def list_traces(store: SpanStore, params: QueryParams, *, limit: int = 50, offset: int = 0,
                status: str | None = None, min_cost: Decimal | None = None,
                min_duration_ms: float | None = None, use_aggregates: bool = True
                ) -> list[TraceSummary]:
    """Traces with a span matching ``params`` (time range, filters), newest first.

    Summaries (and the status, cost and duration conditions) cover each trace's spans in
    the time range. The page of trace ids comes from ``trace_summary`` when the filters are
    only org and project (traces whose spans in the range's hours all start inside it),
    with the few traces crossing the range's ends summed from raw spans; the answer is the
    same as reading raw spans only.

    Args:
        store: the span store.
        params: time range and filters (group-by and bucket are ignored).
        limit: page size (1..1000).
        offset: rows to skip (pagination).
        status: only traces with this status (``ok``, ``error``, ``timeout``).
        min_cost: only traces costing at least this much.
        min_duration_ms: only traces lasting at least this long, in ms.
        use_aggregates: False picks the page from raw spans only.

    Raises:
        ValidationError: a bad limit, offset or status.
        StoreError: the query failed.
    """
    if not 1 <= limit <= _MAX_LIMIT:
        raise ValidationError("limit", f"Expected 1..{_MAX_LIMIT}, got {limit}")
    if offset < 0:
        raise ValidationError("offset", f"Expected >= 0, got {offset}")
    if status is not None and status not in {s.value for s in SpanStatus}:
        raise ValidationError("status", f"Expected ok, error or timeout, got {status!r}")
    # Two phases: pick the page of trace ids, then compute the full summaries of just those
    # traces. The page comes from trace_summary when it can, else from raw spans with
    # light aggregates only (no FINAL unless a HAVING needs exact sums: a duplicate never
    # moves min(start_time) or a status); ~3.5x faster than one pass at 1M spans.
    parts = build_where(params.time_range, None)
    if use_aggregates and set(params.filters) <= {"org_id", "project_id"} and plan_read(
            store, params.time_range.start, params.time_range.end, set(params.filters)):
        page = _summary_page(params, parts, limit, offset, status, min_cost, min_duration_ms)
    else:
        page = _raw_page(params, parts, limit, offset, status, min_cost, min_duration_ms)
    sql = f"""
SELECT
    trace_id,
    anyIf(name, parent_span_id = '') AS root_name,
    anyIf(service_name, parent_span_id = '') AS root_service,
    any(service_name) AS any_service,
    min(start_time) AS t_start,
    max(end_time) AS t_end,
    {_DURATION_MS} AS t_duration_ms,
    count() AS num_spans,
    countIf(status != 'ok') AS num_errors,
    {_STATUS} AS t_status,
    sum(total_cost) AS t_cost,
    countIf({LLM_CALL}) AS requests,
    sumIf(ifNull(input_tokens, 0), {NOT_ROLLUP}) AS input_tokens,
    sumIf(ifNull(output_tokens, 0), {NOT_ROLLUP}) AS output_tokens,
    arraySort(groupUniqArrayIf({MODEL_EXPR}, {MODEL_EXPR} != '')) AS models
FROM spans FINAL
WHERE {parts.where} AND trace_id IN ({page})
GROUP BY trace_id
ORDER BY t_start DESC, trace_id
{FINAL_SETTINGS}"""
    return [
        TraceSummary(
            trace_id=r["trace_id"], root_name=r["root_name"],
            service_name=r["root_service"] or r["any_service"],
            start_time=_utc(r["t_start"]), end_time=_utc(r["t_end"]),
            duration_ms=float(r["t_duration_ms"]), num_spans=int(r["num_spans"]),
            num_errors=int(r["num_errors"]), status=r["t_status"],
            total_cost=Decimal(r["t_cost"]), requests=int(r["requests"]),
            input_tokens=int(r["input_tokens"]), output_tokens=int(r["output_tokens"]),
            models=tuple(r["models"]),
        )
        for r in store.query_arrow(sql, parts.binds).to_pylist()
    ]


def _raw_page(params: QueryParams, parts: SqlParts, limit: int, offset: int,
              status: str | None, min_cost: Decimal | None,
              min_duration_ms: float | None) -> str:
    """SQL of the page of trace ids, over raw spans (binds go to ``parts``)."""
    scope = parts.where
    if params.filters:
        inner = build_where(params.time_range, params.filters, SqlParts(binds=parts.binds))
        scope += f" AND trace_id IN (SELECT trace_id FROM spans WHERE {inner.where})"
    having: list[str] = []
    if status is not None:
        having.append(f"{_STATUS} = {parts.bind(status, 'String')}")
    if min_cost is not None:
        having.append(f"sum(total_cost) >= {parts.bind(Decimal(min_cost), 'Decimal(38, 12)')}")
    if min_duration_ms is not None:
        having.append(f"{_DURATION_MS} >= {parts.bind(float(min_duration_ms), 'Float64')}")
    return (
        f"SELECT trace_id FROM spans {'FINAL' if having else ''} WHERE {scope}"
        " GROUP BY trace_id" + (f" HAVING {' AND '.join(having)}" if having else "")
        + " ORDER BY min(start_time) DESC, trace_id"
        f" LIMIT {parts.bind(limit, 'UInt32')} OFFSET {parts.bind(offset, 'UInt64')}")


_NS = "Int64"
_TS = "DateTime64(9, 'UTC')"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ns(value: datetime) -> int:
    return (value - _EPOCH) // timedelta(microseconds=1) * 1000


def _summary_page(params: QueryParams, parts: SqlParts, limit: int, offset: int,
                  status: str | None, min_cost: Decimal | None,
                  min_duration_ms: float | None) -> str:
    """SQL of the page of trace ids, from ``trace_summary`` (binds go to ``parts``).

    A trace whose rows in the range's hours all start inside the range (its interior) is
    judged on its summary; one crossing an end of the range on its spans in the range.
    """
    time_range = params.time_range
    start_ns = parts.bind(_ns(time_range.start), _NS)
    end_ns = parts.bind(_ns(time_range.end), _NS)
    hours = (f"hour >= toStartOfHour({parts.bind(time_range.start, _TS)})"
             f" AND hour < {parts.bind(time_range.end, _TS)}")
    tenancy = "".join(f" AND {name} = {parts.bind(value, 'String')}"
                      for name, value in params.filters.items())
    summary = (
        "SELECT trace_id, min(min_start_ns) AS lo, max(max_start_ns) AS hi,"
        " max(max_end_ns) AS end_ns, sum(num_spans) AS n, sum(error_spans) AS e,"
        " sum(timeout_spans) AS t, sum(total_cost) AS c"
        f" FROM {TRACE_SUMMARY_TABLE} WHERE {hours}{tenancy} GROUP BY trace_id HAVING n != 0")
    edge = build_where(time_range, params.filters, SqlParts(binds=parts.binds)).where
    candidates = (
        f"SELECT trace_id, lo AS t_start, end_ns - lo AS dur_ns, n, e, t, c FROM ({summary})"
        f" WHERE lo >= {start_ns} AND hi < {end_ns}"
        " UNION ALL SELECT trace_id, toUnixTimestamp64Nano(min(start_time)) AS t_start,"
        " toUnixTimestamp64Nano(max(end_time)) - t_start AS dur_ns, toInt64(count()) AS n,"
        " toInt64(countIf(status != 'ok')) AS e, toInt64(countIf(status = 'timeout')) AS t,"
        f" sum(total_cost) AS c FROM spans FINAL WHERE {edge} AND trace_id IN"
        f" (SELECT trace_id FROM ({summary}) WHERE lo < {start_ns} OR hi >= {end_ns})"
        " GROUP BY trace_id")
    conditions = []
    if status is not None:
        conditions.append({"error": "e - t > 0", "timeout": "e - t = 0 AND t > 0",
                           "ok": "e = 0"}[status])
    if min_cost is not None:
        conditions.append(f"c >= {parts.bind(Decimal(min_cost), 'Decimal(38, 12)')}")
    if min_duration_ms is not None:
        conditions.append(f"dur_ns / 1e6 >= {parts.bind(float(min_duration_ms), 'Float64')}")
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    return (f"SELECT trace_id FROM ({candidates}){where} ORDER BY t_start DESC, trace_id"
            f" LIMIT {parts.bind(limit, 'UInt32')} OFFSET {parts.bind(offset, 'UInt64')}")


def _by_start(node: SpanNode) -> tuple[datetime, str]:
    return node.span.start_time, node.span.span_id


def _build_tree(spans: list[CanonicalSpan]) -> tuple[SpanNode, ...]:
    """Roots of the span forest; a span whose parent is absent (or in a cycle) is a root."""
    ids = {s.span_id for s in spans}
    children: dict[str, list[CanonicalSpan]] = {}
    roots: list[CanonicalSpan] = []
    for span in spans:
        parent = span.parent_span_id
        if parent and parent in ids and parent != span.span_id:
            children.setdefault(parent, []).append(span)
        else:
            roots.append(span)
    placed: set[str] = set()

    def build(top: CanonicalSpan) -> SpanNode:
        # Iterative (agent traces can be deep): pre-order walk, then nodes in reverse so
        # every child is built before its parent.
        order: list[CanonicalSpan] = []
        stack = [top]
        while stack:
            span = stack.pop()
            if span.span_id in placed:
                continue
            placed.add(span.span_id)
            order.append(span)
            stack.extend(children.get(span.span_id, []))
        nodes: dict[str, SpanNode] = {}
        for span in reversed(order):
            kids = {k.span_id: nodes[k.span_id] for k in children.get(span.span_id, [])
                    if k.span_id in nodes}
            ordered = tuple(sorted(kids.values(), key=_by_start))
            nodes[span.span_id] = SpanNode(
                span, ordered, span.total_cost + sum((n.subtree_cost for n in ordered), Decimal(0)))
        return nodes[top.span_id]

    out = [build(r) for r in roots if r.span_id not in placed]
    for span in spans:  # spans caught in a parent cycle have no root: surface them as roots
        if span.span_id not in placed:
            out.append(build(span))
    return tuple(sorted(out, key=_by_start))


def get_trace(store: SpanStore, trace_id: str, time_range: TimeRange | None = None
              ) -> TraceDetail | None:
    """Every span of a trace as a tree, with each span's own and subtree cost.

    Args:
        store: the span store.
        trace_id: 32 lowercase hex digits.
        time_range: limits the partitions read when known (faster); None reads all.

    Returns:
        The trace, or None when no span of it is stored.

    Raises:
        StoreError: the query failed.
    """
    parts = build_where(time_range, {"trace_id": trace_id})
    columns = ", ".join(f"`{name}`" for name in SPAN_SCHEMA.names)
    table = store.query_arrow(
        f"SELECT {columns} FROM spans FINAL WHERE {parts.where}"
        f" ORDER BY start_time, span_id {FINAL_SETTINGS}", parts.binds)
    if table.num_rows == 0:
        return None
    spans = arrow_to_spans(table)
    start = min(s.start_time for s in spans)
    end = max(s.end_time for s in spans)
    statuses = {s.status for s in spans}
    status = ("error" if SpanStatus.ERROR in statuses
              else "timeout" if SpanStatus.TIMEOUT in statuses else "ok")
    return TraceDetail(
        trace_id=trace_id, roots=_build_tree(spans), num_spans=len(spans),
        start_time=start, end_time=end, duration_ms=(end - start).total_seconds() * 1000,
        total_cost=sum((s.total_cost for s in spans), Decimal(0)), status=status)
