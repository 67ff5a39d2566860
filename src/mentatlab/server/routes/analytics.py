"""Read routes over the named analytics queries: overview, cost, compare, traces, spans.

Every money value is a string (exact decimal); times are ISO-8601 UTC; span objects use
the canonical field names. A key scoped to an org/project only ever sees its own rows.
"""

from __future__ import annotations

import csv
import hashlib
import io
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from mentatlab.analytics.compare import (
    ALPHA,
    COMPARE_FIELDS,
    MAX_SAMPLE_PER_SIDE,
    CompareField,
    compare_versions,
)
from mentatlab.analytics.cost import cost_by
from mentatlab.analytics.cost_top import MAX_TOP, cost_top
from mentatlab.analytics.overview import get_overview
from mentatlab.analytics.query import Bucket
from mentatlab.analytics.spans import list_spans_since
from mentatlab.analytics.trace_timeline import (
    DEFAULT_GROUP_MIN,
    SpanLink,
    TraceTimeline,
    get_span_detail,
    get_trace_timeline,
    inherited_groups,
)
from mentatlab.analytics.traces import MAX_NAME_CHARS, SpanNode, get_trace, list_traces
from mentatlab.analytics.unpriced import list_unpriced
from mentatlab.analytics.zone import UTC_NAME, local_day_start, zone_of
from mentatlab.errors import FieldError
from mentatlab.server.audit_trail import audit
from mentatlab.server.deps import Caller, scoped_filter
from mentatlab.server.errors import ApiError, error_responses
from mentatlab.server.params import Count, Milliseconds, Money, WindowSeconds
from mentatlab.server.routes.analytics_params import (
    ANALYTICS_ERRORS,
    RESOLVED_READS,
    EndQ,
    FilterQ,
    StartQ,
    TzQ,
    build_query,
    hex_id,
    run_blocking,
    zone_name,
)
from mentatlab.server.serialize import jsonable, span_to_json, table_to_json_rows
from mentatlab.server.state import server_state

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["analytics"])

def _period_start(period: str, tz: str, now: datetime) -> datetime:
    """UTC start of ``today`` or ``month`` (to date) in zone ``tz`` at ``now``."""
    zone = zone_of(zone_name(tz))
    assert zone is not None  # checked by zone_name
    if period == "today":
        return local_day_start(now, zone)
    local = now.astimezone(zone)
    return local_day_start(now, zone, 1 - local.day)


@router.get("/overview", summary="Headline numbers", responses=ANALYTICS_ERRORS,
            dependencies=RESOLVED_READS)
async def overview(request: Request, caller: Caller, start: StartQ = None, end: EndQ = None,
                   filter: FilterQ = None,  # noqa: A002 — public name
                   tz: TzQ = UTC_NAME,
                   period: Annotated[str | None, Query(
                       pattern="^(today|month)$", description="Instead of `start`/`end`: "
                       "`today` (since local midnight in `tz`) or `month` (month to date "
                       "in `tz`), ending now.")] = None) -> dict[str, Any]:
    """Spend, spans, errors, tokens and latency over the range (``start``/``end`` echo it)."""
    if period is not None:
        if start is not None or end is not None:
            raise ApiError(400, "Both a period and a range", [FieldError(
                "period", "Expected either period or start/end, got both")])
        end = datetime.now(UTC)
        start = _period_start(period, tz, end)
    params = build_query(start, end, scoped_filter(caller, filter).equals, tz=tz)
    result = await run_blocking(get_overview, server_state(request).store, params)
    window = params.time_range
    return {"ok": True, "start": jsonable(window.start), "end": jsonable(window.end),
            "tz": tz, "period": period, **jsonable(result)}


def _rows_of(result: Any) -> list[dict[str, Any]]:
    rows = getattr(result, "rows", result)
    return [jsonable(r) for r in rows]


def _cost_row(row: Any) -> dict[str, Any]:
    """A CostRow flattened: group keys first, then ``bucket``, then the numbers."""
    data: dict[str, Any] = jsonable(row)
    out: dict[str, Any] = dict(data.pop("keys", {}) or {})
    bucket = data.pop("bucket_start", None)
    if bucket is not None:
        out["bucket"] = bucket
    out.update(data)
    return out


def _lumped_row(row: dict[str, Any], lumped: tuple[str, ...], *, csv_form: bool
                ) -> dict[str, Any]:
    """A lumped cost row: "other" keys are null and ``lumped`` names them.

    In CSV the key cell is empty and ``lumped`` joins the names with ``;``.
    """
    for name in lumped:
        row[name] = "" if csv_form else None
    row["lumped"] = ";".join(lumped) if csv_form else list(lumped)
    return row


@router.get("/cost", summary="Spend grouped by fields and time buckets", responses={
    **ANALYTICS_ERRORS, 200: {"content": {"application/json": {}, "text/csv": {}}}},
    dependencies=RESOLVED_READS)
async def cost(request: Request, caller: Caller, start: StartQ = None, end: EndQ = None,
               filter: FilterQ = None,  # noqa: A002 — public name
               group_by: Annotated[str, Query(description="Fields, comma-separated: "
                                              "project_id,model,...")] = "project_id,model",
               bucket: Annotated[Bucket | None, Query(description="minute, hour or day")] =
               None,
               format: Annotated[str, Query(pattern="^(json|csv)$")] = "json",  # noqa: A002
               top: Annotated[int | None, Query(ge=1, le=MAX_TOP, description=(
                   "Keep the N costliest keys of each group-by field (over the whole "
                   "answer) and sum the rest into rows whose lumped keys are null, named "
                   "in the row's `lumped`; totals unchanged."))] = None,
               tz: TzQ = UTC_NAME,
               ) -> Any:
    """Cost (USD strings), tokens and span counts per group (and bucket in ``tz``)."""
    fields = [f.strip() for f in group_by.split(",") if f.strip()]
    params = build_query(start, end, scoped_filter(caller, filter).equals, fields, bucket, tz)
    extra: dict[str, Any] = {}
    if top is not None and params.group_by:
        lumped = await run_blocking(cost_top, server_state(request).store, params, top)
        result = lumped.rows
        rows = [_lumped_row(_cost_row(r), names, csv_form=format == "csv")
                for r, names in zip(result, lumped.lumped, strict=True)]
        extra = {"top": top, "num_other": lumped.num_other}
    else:
        result = await run_blocking(cost_by, server_state(request).store, params)
        rows = [_cost_row(r) for r in result]
    if format == "csv":
        await audit(request, caller, "export", target="/api/v1/cost", details={
            "rows": len(rows), "group_by": list(params.group_by),
            # A filter can name a person (user_id=…): the audit log keeps its hash only.
            "filter_sha256": hashlib.sha256((filter or "").encode()).hexdigest()
            if filter else ""})
        out = io.StringIO()
        if rows:
            writer = csv.DictWriter(out, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        return Response(out.getvalue(), media_type="text/csv")
    total = jsonable(sum((r.total_cost for r in result), Decimal(0)))
    return {"ok": True, "group_by": list(params.group_by), "bucket": bucket, "tz": tz,
            "currency": "USD", "total_cost": total, **extra, "rows": rows}


@router.get("/analytics/compare", summary="Two versions (or models) side by side, with tests",
            responses=ANALYTICS_ERRORS, dependencies=RESOLVED_READS)
async def compare(request: Request, caller: Caller,
                  field: Annotated[CompareField, Query(description=(
                      f"What differs between the sides: one of {', '.join(COMPARE_FIELDS)}"))],
                  a: Annotated[str, Query(min_length=1, max_length=1000,
                                          description="Value of side A")],
                  b: Annotated[str, Query(min_length=1, max_length=1000,
                                          description="Value of side B (not `a`)")],
                  start: StartQ = None, end: EndQ = None,
                  filter: FilterQ = None,  # noqa: A002 — public name
                  ) -> dict[str, Any]:
    """Traces of ``field = a`` against ``field = b``: outcome, latency, cost, tokens, tests.

    The unit is the trace (see :mod:`mentatlab.analytics.compare`); money as strings.
    Unknown field, ``a == b`` or a side without traces: 422 naming the field.
    """
    params = build_query(start, end, scoped_filter(caller, filter).equals)
    result = await run_blocking(compare_versions, server_state(request).store, params, field, a, b)
    window = params.time_range
    return {"ok": True, "field": result.field, "unit": "trace", "currency": "USD",
            "start": jsonable(window.start), "end": jsonable(window.end), "alpha": ALPHA,
            "max_sample_per_side": MAX_SAMPLE_PER_SIDE, "a": jsonable(result.a),
            "b": jsonable(result.b), "num_mixed": result.num_mixed,
            "tests": jsonable(result.tests)}


@router.get("/traces", summary="Recent traces", responses=ANALYTICS_ERRORS,
            dependencies=RESOLVED_READS)
async def traces(request: Request, caller: Caller, start: StartQ = None, end: EndQ = None,
                 filter: FilterQ = None,  # noqa: A002 — public name
                 status: Annotated[str | None, Query(pattern="^(ok|error|timeout)$")] = None,
                 min_cost: Annotated[Money | None, Query(description="USD")] = None,
                 min_duration_ms: Annotated[Milliseconds | None, Query()] = None,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 50,
                 offset: Annotated[Count, Query()] = 0,
                 sort: Annotated[str, Query(
                     pattern="^(start_time|cost|duration)$", description="`start_time`: newest "
                     "first; `cost`: costliest first (the trace's `total_cost` in the range); "
                     "`duration`: longest first")] = "start_time",
                 q: Annotated[str | None, Query(
                     max_length=MAX_NAME_CHARS, description="Only traces whose root span's "
                     "name contains this text (case-insensitive)")] = None,
                 ) -> dict[str, Any]:
    """Traces with a span matching the filters, newest (costliest, longest) first, with cost."""
    params = build_query(start, end, scoped_filter(caller, filter).equals)
    result = await run_blocking(lambda: list_traces(
        server_state(request).store, params, limit=limit, offset=offset, status=status,
        min_cost=min_cost, min_duration_ms=min_duration_ms, sort=sort,
        name_contains=q.strip() if q else None))
    return {"ok": True, "traces": _rows_of(result)}


def _node_json(node: SpanNode) -> dict[str, Any]:
    return {**span_to_json(node.span), "subtree_cost": jsonable(node.subtree_cost),
            "self_time_ms": node.self_time_ms, "critical_path_ms": node.critical_path_ms,
            "children": [_node_json(c) for c in node.children]}


def _timeline_json(timeline: TraceTimeline) -> dict[str, Any]:
    return {"ok": True, "view": "timeline", "trace_id": timeline.trace_id,
            "num_spans": timeline.num_spans, "start_time": jsonable(timeline.start_time),
            "end_time": jsonable(timeline.end_time), "duration_ms": timeline.duration_ms,
            "total_cost": jsonable(timeline.total_cost), "status": timeline.status,
            "currency": "USD", "critical_path": list(timeline.critical_path),
            "spans": jsonable(timeline.columns), "groups": jsonable(timeline.groups)}


_TRACE_ERRORS = error_responses(400, 401, 403, 404, 422, 429, 503, 504)


@router.get("/traces/{trace_id}", summary="One trace as a span tree (or a timeline)",
            responses=_TRACE_ERRORS, dependencies=RESOLVED_READS)
async def trace(request: Request, caller: Caller, trace_id: str,
                view: Annotated[str, Query(pattern="^(tree|timeline)$", description=(
                    "`tree`: full spans nested under `roots`; `timeline`: the compact "
                    "columns a waterfall draws (depth-first rows, own/subtree/unattributed "
                    "cost, self and critical-path time, sibling `groups`), one span's "
                    "detail at "
                    "`/traces/{trace_id}/spans/{span_id}`"))] = "tree",
                group_min: Annotated[int, Query(ge=2, le=1_000_000, description=(
                    "timeline: siblings sharing a name at least this many times form a "
                    "group"))] = DEFAULT_GROUP_MIN,
                ) -> dict[str, Any]:
    """Every span of the trace as a tree (``roots`` → ``children``), or as a timeline.

    Only the caller's org/project's spans are read: a trace crossing orgs shows each
    caller its own part.

    Each span carries its own cost and ``subtree_cost`` (itself plus descendants);
    money as strings, canonical field names. ``critical_path`` lists the span ids that set
    the trace's duration, root first; each span carries ``self_time_ms`` (time no child
    covers) and ``critical_path_ms`` (its own share of the critical path), in ms.
    """
    trace_id = hex_id(trace_id, "trace_id", 32)
    if view == "timeline":
        timeline = await run_blocking(lambda: get_trace_timeline(
            server_state(request).store, trace_id, filters=caller.tenancy, group_min=group_min))
        if timeline is None:
            raise ApiError(404, "Trace not found",
                           [FieldError("trace_id", f"No spans for {trace_id}")])
        return _timeline_json(timeline)
    detail = await run_blocking(lambda: get_trace(server_state(request).store, trace_id,
                                          filters=caller.tenancy))
    if detail is None:
        raise ApiError(404, "Trace not found", [FieldError("trace_id", f"No spans for {trace_id}")])
    return {"ok": True, "trace_id": detail.trace_id, "num_spans": detail.num_spans,
            "start_time": jsonable(detail.start_time), "end_time": jsonable(detail.end_time),
            "duration_ms": detail.duration_ms, "total_cost": jsonable(detail.total_cost),
            "status": detail.status, "critical_path": list(detail.critical_path),
            "roots": [_node_json(n) for n in detail.roots]}


def _link_json(link: SpanLink) -> dict[str, Any]:
    return {"span_id": link.span_id, "name": link.name, "total_cost": jsonable(link.total_cost),
            "subtree_cost": jsonable(link.subtree_cost)}


@router.get("/traces/{trace_id}/spans/{span_id}", summary="One span of a trace, in full",
            responses=_TRACE_ERRORS, dependencies=RESOLVED_READS)
async def trace_span(request: Request, caller: Caller, trace_id: str,
                     span_id: str) -> dict[str, Any]:
    """One span (canonical fields, attributes, events, costs, usage) with its neighbours.

    ``span`` carries ``subtree_cost`` (itself plus descendants) and ``inherited_groups``
    (the attribution groups taken from an ancestor, named by their id field);
    ``parent`` (null for a root) and ``children`` (first 200 by start time; all counted
    in ``num_children``) give each one's ``span_id``, ``name``, ``total_cost`` and
    ``subtree_cost``.
    """
    trace_id = hex_id(trace_id, "trace_id", 32)
    span_id = hex_id(span_id, "span_id", 16)
    detail = await run_blocking(lambda: get_span_detail(server_state(request).store, trace_id,
                                                span_id, filters=caller.tenancy))
    if detail is None:
        raise ApiError(404, "Span not found", [FieldError(
            "span_id", f"No span {span_id} in trace {trace_id}")])
    return {"ok": True, "trace_id": trace_id,
            "span": {**span_to_json(detail.span), "subtree_cost": jsonable(detail.subtree_cost),
                     "inherited_groups": inherited_groups(detail.span.inherited)},
            "parent": _link_json(detail.parent) if detail.parent else None,
            "children": [_link_json(c) for c in detail.children],
            "num_children": detail.num_children}


@router.get("/spans", summary="Spans committed after a cursor", responses=ANALYTICS_ERRORS,
            dependencies=RESOLVED_READS)
async def spans(request: Request, caller: Caller,
                filter: FilterQ = None,  # noqa: A002 — public name
                after_ns: Annotated[Count | None, Query(
                    description="Cursor: spans committed after this time (ns since the "
                    "epoch); default the last `window_s`.")] = None,
                window_s: Annotated[WindowSeconds, Query()] = 300.0,
                limit: Annotated[int, Query(ge=1, le=10_000)] = 100) -> dict[str, Any]:
    """Spans in commit order after a cursor; poll with ``next_after_ns``.

    Behind the read barrier: spans acknowledged before the request (logged by the
    write-ahead log, decision 0022) are inserted before it reads.
    """
    cursor_ns = after_ns if after_ns is not None else time.time_ns() - int(window_s * 1e9)
    filters = scoped_filter(caller, filter).equals
    page = await run_blocking(lambda: list_spans_since(server_state(request).store, cursor_ns,
                                               filters, limit))
    return {"ok": True, "spans": table_to_json_rows(page.table),
            "next_after_ns": page.next_ingested_after_ns}


@router.get("/unpriced", summary="Models seen without a price", responses=ANALYTICS_ERRORS,
            dependencies=RESOLVED_READS)
async def unpriced(request: Request, caller: Caller, start: StartQ = None, end: EndQ = None,
                   filter: FilterQ = None) -> dict[str, Any]:  # noqa: A002 — public name
    """(provider, model) pairs whose spans could not be priced, most used first."""
    params = build_query(start, end, scoped_filter(caller, filter).equals)
    result = await run_blocking(list_unpriced, server_state(request).store, params)
    return {"ok": True, "rows": _rows_of(result)}
