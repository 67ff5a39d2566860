"""Traces: a filtered list of trace summaries, and one trace as a span tree with costs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson

from mentatlab.analytics.aggregate_read import plan_read
from mentatlab.analytics.critical_path import (
    CriticalPath,
    compute_critical_path,
    resolve_parents,
)
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

__all__ = ["MAX_NAME_CHARS", "SORTS", "SpanNode", "TraceDetail", "TraceSummary", "get_trace",
           "list_traces"]

_MAX_LIMIT = 1000
SORTS = ("start_time", "cost", "duration")
"""Orders of the trace list: newest first, costliest first, or longest first."""
MAX_NAME_CHARS = 200
"""Longest root-name search (``name_contains``) the trace list takes."""


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
    self_time_ms: float = 0.0
    """Time not covered by any child, in ms (:mod:`mentatlab.analytics.critical_path`)."""
    critical_path_ms: float = 0.0
    """The span's own contribution to the trace's critical path, in ms."""


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
    critical_path: tuple[str, ...] = ()
    """Span ids on the critical path, root first (each after its parent)."""


_DURATION_MS = ("(toUnixTimestamp64Nano(max(end_time)) - toUnixTimestamp64Nano(min(start_time)))"
                " / 1e6")
_STATUS = ("multiIf(countIf(status = 'error') > 0, 'error', countIf(status = 'timeout') > 0,"
           " 'timeout', 'ok')")


def list_traces(store: SpanStore, params: QueryParams, *, limit: int = 50, offset: int = 0,
                status: str | None = None, min_cost: Decimal | None = None,
                min_duration_ms: float | None = None, use_aggregates: bool = True,
                sort: str = "start_time", name_contains: str | None = None
                ) -> list[TraceSummary]:
    """Traces with a span matching ``params`` (time range, filters), newest first.

    Summaries (and the status, cost and duration conditions) cover each trace's spans in
    the time range (whole minutes, see ``QueryParams``). The page of trace ids comes from
    ``trace_summary`` when the filters are only org and project; the answer is the same as
    reading raw spans only.

    Args:
        store: the span store.
        params: time range and filters (group-by and bucket are ignored).
        limit: page size (1..1000).
        offset: rows to skip (pagination).
        status: only traces with this status (``ok``, ``error``, ``timeout``).
        min_cost: only traces costing at least this much.
        min_duration_ms: only traces lasting at least this long, in ms.
        use_aggregates: False picks the page from raw spans only.
        sort: ``start_time`` (newest first), ``cost`` (costliest first, by the trace's
            ``total_cost`` in the range) or ``duration`` (longest first, first span's
            start to last span's end in the range); ties by trace id.
        name_contains: only traces whose root span's name contains this text (case
            insensitive, UTF-8); a trace whose root has not arrived never matches.

    Raises:
        ValidationError: a bad limit, offset, status, sort or name (over
            :data:`MAX_NAME_CHARS` characters).
        StoreError: the query failed.
    """
    if not 1 <= limit <= _MAX_LIMIT:
        raise ValidationError("limit", f"Expected 1..{_MAX_LIMIT}, got {limit}")
    if offset < 0:
        raise ValidationError("offset", f"Expected >= 0, got {offset}")
    if status is not None and status not in {s.value for s in SpanStatus}:
        raise ValidationError("status", f"Expected ok, error or timeout, got {status!r}")
    if sort not in SORTS:
        raise ValidationError("sort", f"Expected one of {list(SORTS)}, got {sort!r}")
    if name_contains is not None and len(name_contains) > MAX_NAME_CHARS:
        raise ValidationError("q", f"Expected at most {MAX_NAME_CHARS} characters, got "
                                   f"{len(name_contains)}")
    name = name_contains or None
    if use_aggregates and set(params.filters) <= {"org_id", "project_id"} and plan_read(
            store, params.time_range.start, params.time_range.end, set(params.filters)):
        parts = build_where(params.time_range, None)
        sql = _summary_sql(params, parts, limit, offset, status, min_cost, min_duration_ms,
                           sort, name)
    else:
        # A trace can cross tenants (its context propagated from one org's service to
        # another's): its summary covers only the spans of the org, workspace and project
        # asked for, as trace_summary's does, never another tenant's spans.
        parts = build_where(params.time_range, {k: v for k, v in params.filters.items()
                                                if k in _TENANCY_FILTERS})
        # Two phases: pick the page of trace ids with light aggregates only (no FINAL
        # unless a HAVING needs exact sums: a duplicate never moves min(start_time) or a
        # status), then summarise just those traces. ~3.5x faster than one pass at 1M.
        page = _raw_page(params, parts, limit, offset, status, min_cost, min_duration_ms,
                         sort, name)
        sql = f"""
SELECT
    trace_id AS tid,
    maxIf(name, parent_span_id = '') AS root_name,
    maxIf(service_name, parent_span_id = '') AS root_service,
    max(service_name) AS any_service,
    toUnixTimestamp64Nano(min(start_time)) AS start_ns,
    toUnixTimestamp64Nano(max(end_time)) AS end_ns,
    toInt64(count()) AS num_spans,
    toInt64(countIf(status != 'ok')) AS num_errors,
    toInt64(countIf(status = 'timeout')) AS num_timeouts,
    sum(total_cost) AS t_cost,
    toInt64(countIf({LLM_CALL})) AS requests,
    toInt64(sumIf(ifNull(input_tokens, 0), {NOT_ROLLUP})) AS input_tokens,
    toInt64(sumIf(ifNull(output_tokens, 0), {NOT_ROLLUP})) AS output_tokens,
    arraySort(groupUniqArrayIf({MODEL_EXPR}, {MODEL_EXPR} != '')) AS models
FROM spans FINAL
WHERE {parts.where} AND trace_id IN ({page})
GROUP BY trace_id
ORDER BY {_FINAL_ORDER[sort]}, trace_id
{FINAL_SETTINGS}"""
    return [_summary_of(r) for r in store.query_arrow(sql, parts.binds).to_pylist()]


_TENANCY_FILTERS = frozenset({"org_id", "workspace_id", "project_id"})
"""Filters that fence a trace summary to the tenant's own spans (the rest pick traces)."""

_FINAL_ORDER = {"start_time": "start_ns DESC", "cost": "t_cost DESC",
                "duration": "end_ns - start_ns DESC"}
"""ORDER BY of the summaries of a page, per sort (the page's own order)."""


def _summary_of(row: dict[str, Any]) -> TraceSummary:
    start_ns, end_ns = int(row["start_ns"]), int(row["end_ns"])
    errors, timeouts = int(row["num_errors"]), int(row["num_timeouts"])
    status = "error" if errors > timeouts else "timeout" if timeouts else "ok"
    return TraceSummary(
        trace_id=row["tid"], root_name=row["root_name"],
        service_name=row["root_service"] or row["any_service"],
        start_time=_from_ns(start_ns), end_time=_from_ns(end_ns),
        duration_ms=(end_ns - start_ns) / 1e6, num_spans=int(row["num_spans"]),
        num_errors=errors, status=status, total_cost=Decimal(row["t_cost"]),
        requests=int(row["requests"]), input_tokens=int(row["input_tokens"]),
        output_tokens=int(row["output_tokens"]), models=tuple(row["models"]))


def _from_ns(ns: int) -> datetime:
    return datetime.fromtimestamp(ns // 1000 / 1e6, UTC)


def _raw_page(params: QueryParams, parts: SqlParts, limit: int, offset: int,
              status: str | None, min_cost: Decimal | None,
              min_duration_ms: float | None, sort: str = "start_time",
              name: str | None = None) -> str:
    """SQL of the page of trace ids, over raw spans (binds go to ``parts``).

    Ordered by cost, the page reads ``FINAL`` (exact sums: a duplicate must not move a
    trace up); by start time or duration it need not (a duplicate never moves
    ``min(start_time)`` or ``max(end_time)``).
    """
    by_cost = sort == "cost"
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
    exact = bool(having) or by_cost
    if name is not None:
        having.append("positionCaseInsensitiveUTF8(maxIf(name, parent_span_id = ''),"
                      f" {parts.bind(name, 'String')}) > 0")
    order = {"start_time": "min(start_time) DESC", "cost": "sum(total_cost) DESC",
             "duration": f"{_DURATION_MS} DESC"}[sort]
    return (
        f"SELECT trace_id FROM spans {'FINAL' if exact else ''} WHERE {scope}"
        " GROUP BY trace_id" + (f" HAVING {' AND '.join(having)}" if having else "")
        + f" ORDER BY {order}, trace_id"
        f" LIMIT {parts.bind(limit, 'UInt32')} OFFSET {parts.bind(offset, 'UInt64')}")


_TS = "DateTime64(9, 'UTC')"


def _summary_sql(params: QueryParams, parts: SqlParts, limit: int, offset: int,
                 status: str | None, min_cost: Decimal | None,
                 min_duration_ms: float | None, sort: str = "start_time",
                 name: str | None = None) -> str:
    """SQL of a page of trace summaries, from ``trace_summary`` (binds go to ``parts``).

    The range is whole minutes (``QueryParams``) and the summary is per minute, so each
    trace's rows in the range sum exactly its spans in the range.
    """
    time_range = params.time_range
    minutes = (f"minute >= {parts.bind(time_range.start, _TS)}"
               f" AND minute < {parts.bind(time_range.end, _TS)}")
    tenancy = "".join(f" AND {name} = {parts.bind(value, 'String')}"
                      for name, value in params.filters.items())
    errors, timeouts = "sum(error_spans)", "sum(timeout_spans)"
    having = ["sum(num_spans) != 0"]
    if status is not None:
        having.append({"error": f"{errors} - {timeouts} > 0",
                       "timeout": f"{errors} = {timeouts} AND {timeouts} > 0",
                       "ok": f"{errors} = 0"}[status])
    if min_cost is not None:
        having.append(f"sum(total_cost) >= {parts.bind(Decimal(min_cost), 'Decimal(38, 12)')}")
    if min_duration_ms is not None:
        having.append(f"(max(max_end_ns) - min(min_start_ns)) / 1e6 >= "
                      f"{parts.bind(float(min_duration_ms), 'Float64')}")
    if name is not None:
        having.append(f"positionCaseInsensitiveUTF8(max(root_name), {parts.bind(name, 'String')})"
                      " > 0")
    where = f"{minutes}{tenancy}"
    order = {"start_time": "min(min_start_ns)", "cost": "sum(total_cost)",
             "duration": "max(max_end_ns) - min(min_start_ns)"}[sort]
    page = (f"SELECT trace_id FROM {TRACE_SUMMARY_TABLE} WHERE {where} GROUP BY trace_id"
            f" HAVING {' AND '.join(having)} ORDER BY {order} DESC, trace_id"
            f" LIMIT {parts.bind(limit, 'UInt32')} OFFSET {parts.bind(offset, 'UInt64')}")
    # Two phases: the page of ids from light sums, then whole summaries of those traces.
    return (
        "SELECT lower(hex(trace_id)) AS tid, max(root_name) AS root_name,"
        " max(root_service) AS root_service,"
        " max(any_service) AS any_service, min(min_start_ns) AS start_ns,"
        " max(max_end_ns) AS end_ns, sum(num_spans) AS num_spans,"
        " sum(error_spans) AS num_errors, sum(timeout_spans) AS num_timeouts,"
        " sum(total_cost) AS t_cost, sum(requests) AS requests,"
        " sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,"
        " arraySort(groupUniqArrayArray(models)) AS models"
        f" FROM {TRACE_SUMMARY_TABLE} WHERE {where} AND trace_id IN ({page})"
        f" GROUP BY trace_id ORDER BY {_FINAL_ORDER[sort]}, tid")


def _by_start(node: SpanNode) -> tuple[datetime, str]:
    return node.span.start_time, node.span.span_id


def _build_tree(spans: list[CanonicalSpan],
                times_ms: Mapping[str, tuple[float, float]] | None = None
                ) -> tuple[SpanNode, ...]:
    """Roots of the span forest; a span whose parent is absent (or in a cycle) is a root.

    ``times_ms`` gives each span id's (self time, critical-path time) in ms.
    """
    times = times_ms or {}
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
                span, ordered, span.total_cost + sum((n.subtree_cost for n in ordered), Decimal(0)),
                *times.get(span.span_id, (0.0, 0.0)))
        return nodes[top.span_id]

    out = [build(r) for r in roots if r.span_id not in placed]
    for span in spans:  # spans caught in a parent cycle have no root: surface them as roots
        if span.span_id not in placed:
            out.append(build(span))
    return tuple(sorted(out, key=_by_start))


def get_trace(store: SpanStore, trace_id: str, time_range: TimeRange | None = None,
              filters: Mapping[str, str] | None = None) -> TraceDetail | None:
    """Every span of a trace as a tree, with each span's own and subtree cost.

    Args:
        store: the span store.
        trace_id: 32 lowercase hex digits.
        time_range: limits the partitions read when known (faster); None reads all.
        filters: equality filters on canonical columns (a caller's org/project): only
            matching spans are read, and the tree is built from them.

    Returns:
        The trace, or None when no span of it is stored.

    Raises:
        StoreError: the query failed.
    """
    parts = build_where(time_range, {**(filters or {}), "trace_id": trace_id})
    columns = ", ".join(f"`{name}`" for name in SPAN_SCHEMA.names)
    table = store.query_arrow(
        f"SELECT {columns} FROM spans FINAL WHERE {parts.where}"
        f" ORDER BY start_time, span_id {FINAL_SETTINGS}", parts.binds)
    if table.num_rows == 0:
        return None
    spans = arrow_to_spans(table)
    path = _critical_path(spans)
    start = min(s.start_time for s in spans)
    end = max(s.end_time for s in spans)
    statuses = {s.status for s in spans}
    status = ("error" if SpanStatus.ERROR in statuses
              else "timeout" if SpanStatus.TIMEOUT in statuses else "ok")
    return TraceDetail(
        trace_id=trace_id, num_spans=len(spans),
        roots=_build_tree(spans, {s.span_id: (path.self_time_ms[i], path.critical_path_ms[i])
                                  for i, s in enumerate(spans)}),
        start_time=start, end_time=end, duration_ms=(end - start).total_seconds() * 1000,
        total_cost=sum((s.total_cost for s in spans), Decimal(0)), status=status,
        critical_path=tuple(spans[r].span_id for r in path.rows))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _is_open(span: CanonicalSpan) -> bool:
    """A ``*.started`` native event still waiting for its completion."""
    if "mentat.span.open" not in span.attributes:  # cheap test before parsing
        return False
    attributes = orjson.loads(span.attributes or "{}")
    return isinstance(attributes, dict) and attributes.get("mentat.span.open") is True


def _critical_path(spans: list[CanonicalSpan]) -> CriticalPath:
    """The critical path of ``spans`` (in tree order: start time, span id), at µs resolution."""
    parent = resolve_parents([s.span_id for s in spans], [s.parent_span_id for s in spans])
    return compute_critical_path(
        parent, [(s.start_time - _EPOCH) // _MICROSECOND * 1000 for s in spans],
        [(s.end_time - _EPOCH) // _MICROSECOND * 1000 for s in spans],
        [_is_open(s) for s in spans])
