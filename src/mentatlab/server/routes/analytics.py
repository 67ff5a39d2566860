"""Read routes over the named analytics queries: overview, cost, traces, spans, unpriced.

Every money value is a string (exact decimal); times are ISO-8601 UTC; span objects use
the canonical field names. A key scoped to an org/project only ever sees its own rows.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from mentatlab.errors import FieldError
from mentatlab.server.deps import require_auth, server_state
from mentatlab.server.errors import ApiError, error_responses
from mentatlab.server.serialize import jsonable, span_to_json
from mentatlab.server.trace_tree import build_trace_answer

__all__ = ["parse_filters", "router"]

router = APIRouter(prefix="/api/v1", tags=["analytics"])

_DEFAULT_WINDOW = timedelta(days=7)
_ERRORS = error_responses(400, 401, 422, 503, 504)
Tenancy = Annotated[dict[str, str], Depends(require_auth)]
StartQ = Annotated[datetime | None, Query(description="Start (ISO-8601, UTC if no offset); "
                                          "default 7 days before `end`.")]
EndQ = Annotated[datetime | None, Query(description="End, exclusive (ISO-8601); default now.")]
FilterQ = Annotated[str | None, Query(description="Conditions on canonical fields: "
                                      "`project_id=acme,model=gpt-4o,status=error`.")]


def parse_filters(expr: str | None, tenancy: Mapping[str, str]) -> dict[str, str]:
    """``key=value,key=value`` as a dict; the API key's tenancy overrides the client's.

    Raises:
        ApiError: (400) a condition without ``=``.
    """
    filters: dict[str, str] = {}
    errors: list[FieldError] = []
    for part in (expr or "").split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            errors.append(FieldError("filter", f"Expected key=value, got {part.strip()!r}"))
            continue
        filters[key.strip()] = value.strip()
    if errors:
        raise ApiError(400, "Invalid filter", errors)
    filters.update(tenancy)
    return filters


def _window(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    end_utc = _utc(end) if end else datetime.now(timezone.utc)
    start_utc = _utc(start) if start else end_utc - _DEFAULT_WINDOW
    if start_utc >= end_utc:
        raise ApiError(400, "Empty time range", [FieldError(
            "start", f"Expected start before end, got {start_utc.isoformat()} ≥ "
            f"{end_utc.isoformat()}")])
    return start_utc, end_utc


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else \
        value.astimezone(timezone.utc)


def _query(start: datetime | None, end: datetime | None, filters: dict[str, str],
           group_by: list[str] | None = None, bucket: str | None = None) -> Any:
    """Build the analytics QueryParams (ConfigError for a bad field/bucket → 400)."""
    from mentatlab.analytics.query import QueryParams, TimeRange

    start_utc, end_utc = _window(start, end)
    return QueryParams(time_range=TimeRange(start_utc, end_utc), filters=filters,
                       group_by=tuple(group_by or ()), bucket=bucket)


async def _run(func: Any, *args: Any) -> Any:
    return await anyio.to_thread.run_sync(func, *args)


@router.get("/overview", summary="Headline numbers", responses=_ERRORS)
async def overview(request: Request, tenancy: Tenancy, start: StartQ = None, end: EndQ = None,
                   filter: FilterQ = None) -> dict[str, Any]:  # noqa: A002 — public name
    """Spend, spans, errors, tokens and latency over the range."""
    from mentatlab.analytics.overview import get_overview

    params = _query(start, end, parse_filters(filter, tenancy))
    result = await _run(get_overview, server_state(request).store, params)
    return {"ok": True, **jsonable(result)}


def _rows_of(result: Any) -> list[dict[str, Any]]:
    rows = getattr(result, "rows", result)
    return [jsonable(r) for r in rows]


@router.get("/cost", summary="Spend grouped by fields and time buckets", responses={
    **_ERRORS, 200: {"content": {"application/json": {}, "text/csv": {}}}})
async def cost(request: Request, tenancy: Tenancy, start: StartQ = None, end: EndQ = None,
               filter: FilterQ = None,  # noqa: A002 — public name
               group_by: Annotated[str, Query(description="Fields, comma-separated: "
                                              "project_id,model,...")] = "project_id,model",
               bucket: Annotated[str | None, Query(description="hour, day, week or month")] =
               None,
               format: Annotated[str, Query(pattern="^(json|csv)$")] = "json",  # noqa: A002
               ) -> Any:
    """Cost (USD strings), tokens and span counts per group (and bucket)."""
    from mentatlab.analytics.cost import cost_by

    fields = [f.strip() for f in group_by.split(",") if f.strip()]
    params = _query(start, end, parse_filters(filter, tenancy), fields, bucket)
    result = await _run(cost_by, server_state(request).store, params)
    rows = _rows_of(result)
    if format == "csv":
        out = io.StringIO()
        if rows:
            writer = csv.DictWriter(out, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        return Response(out.getvalue(), media_type="text/csv")
    total = jsonable(getattr(result, "total_cost", None))
    return {"ok": True, "group_by": fields, "bucket": bucket,
            "currency": getattr(result, "currency", "USD"), "total_cost": total, "rows": rows}


@router.get("/traces", summary="Recent traces", responses=_ERRORS)
async def traces(request: Request, tenancy: Tenancy, start: StartQ = None, end: EndQ = None,
                 filter: FilterQ = None,  # noqa: A002 — public name
                 limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> dict[str, Any]:
    """Traces in the range, newest first, with their rolled-up cost and status."""
    from mentatlab.analytics.traces import list_traces

    params = _query(start, end, parse_filters(filter, tenancy))
    result = await _run(list_traces, server_state(request).store, params, limit)
    return {"ok": True, "traces": _rows_of(result)}


@router.get("/traces/{trace_id}", summary="One trace as a span tree",
            responses=error_responses(400, 401, 404, 503, 504))
async def trace(request: Request, tenancy: Tenancy, trace_id: str) -> dict[str, Any]:
    """Every span of the trace as a tree (``roots`` → ``children``).

    Each span has its own cost and ``subtree_cost`` rolled up; money as strings.
    """
    from mentatlab.analytics.traces import get_trace

    trace_id = trace_id.lower()
    if len(trace_id) != 32 or any(c not in "0123456789abcdef" for c in trace_id):
        raise ApiError(400, "Invalid trace id", [FieldError(
            "trace_id", f"Expected 32 hex characters, got {trace_id!r}")])
    spans = await _run(get_trace, server_state(request).store, trace_id)
    rows = [span_to_json(s) for s in getattr(spans, "spans", spans)]
    rows = [r for r in rows if all(r.get(k) == v for k, v in tenancy.items())]
    if not rows:
        raise ApiError(404, "Trace not found", [FieldError("trace_id", f"No spans for {trace_id}")])
    return build_trace_answer(trace_id, rows)


@router.get("/spans", summary="Most recent spans", responses=_ERRORS)
async def spans(request: Request, tenancy: Tenancy,
                filter: FilterQ = None,  # noqa: A002 — public name
                limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> dict[str, Any]:
    """The newest committed spans (by ingest time), newest first."""
    from mentatlab.analytics.spans import list_spans_since

    filters = parse_filters(filter, tenancy)
    result = await _run(list_spans_since, server_state(request).store, 0, limit, filters)
    return {"ok": True, "spans": [span_to_json(s) for s in getattr(result, "spans", result)]}


@router.get("/unpriced", summary="Models seen without a price", responses=_ERRORS)
async def unpriced(request: Request, tenancy: Tenancy, start: StartQ = None, end: EndQ = None,
                   filter: FilterQ = None) -> dict[str, Any]:  # noqa: A002 — public name
    """(provider, model) pairs with spans priced ``unpriced``, with counts and tokens."""
    from mentatlab.analytics.unpriced import list_unpriced

    params = _query(start, end, parse_filters(filter, tenancy))
    result = await _run(list_unpriced, server_state(request).store, params)
    return {"ok": True, "rows": _rows_of(result)}
