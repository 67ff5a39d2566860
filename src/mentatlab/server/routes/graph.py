"""Agent graph and trace replay routes.

``GET /api/v1/analytics/graph``: agents and tools as nodes, calls as links
(:mod:`mentatlab.analytics.graph`). ``GET /api/v1/traces/{trace_id}/replay``: one trace
as it stood at an instant, with its checkpointed state (:mod:`mentatlab.analytics.replay`).
Both answer only with the caller's org/project's spans.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from mentatlab.analytics.graph import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    MAX_LINKS,
    PARENT_LOOKBACK,
    get_agent_graph,
)
from mentatlab.analytics.query import EARLIEST_TIME, LATEST_TIME
from mentatlab.analytics.replay import CheckpointRef, get_replay, to_ns
from mentatlab.errors import FieldError
from mentatlab.server.deps import Caller, scoped_filter
from mentatlab.server.errors import ApiError, error_responses
from mentatlab.server.routes.analytics_params import (
    RESOLVED_READS,
    EndQ,
    FilterQ,
    StartQ,
    build_query,
    hex_id,
    run_blocking,
)
from mentatlab.server.serialize import jsonable
from mentatlab.server.state import server_state

__all__ = ["parse_instant", "router"]

router = APIRouter(prefix="/api/v1", tags=["analytics"])

ANALYTICS_ERRORS = error_responses(400, 401, 403, 422, 429, 503, 504)
_TRACE_ERRORS = error_responses(400, 401, 403, 404, 422, 429, 503, 504)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DIGITS = re.compile(r"-?[0-9]{1,20}")


def parse_instant(value: str, field: str = "at") -> int:
    """An instant given as ns since the epoch (digits) or ISO-8601 (UTC if no offset), in ns.

    Raises:
        ApiError: (400, naming ``field``) neither form, or outside the store's time range
            (:data:`~mentatlab.analytics.query.EARLIEST_TIME` ..
            :data:`~mentatlab.analytics.query.LATEST_TIME`).
    """
    low, high = to_ns(EARLIEST_TIME), to_ns(LATEST_TIME)
    text = value.strip()
    if _DIGITS.fullmatch(text):
        ns = int(text)
    else:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ApiError(400, "Invalid instant", [FieldError(field, (
                f"Expected ns since the epoch or an ISO-8601 time, got {text[:64]!r}"))]
                ) from None
        ns = to_ns(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
    if not low <= ns <= high:
        raise ApiError(400, "Instant out of range", [FieldError(field, (
            f"Expected a time from {EARLIEST_TIME:%Y-%m-%d} to {LATEST_TIME:%Y-%m-%d}, "
            f"got {text[:64]!r}"))])
    return ns


def _iso(ns: int | None) -> str | None:
    """``ns`` since the epoch as ISO-8601 UTC (to the µs), or None."""
    if ns is None:
        return None
    return (_EPOCH + timedelta(microseconds=ns // 1000)).isoformat()


@router.get("/analytics/graph", summary="Agents and tools, and the calls between them",
            responses=ANALYTICS_ERRORS, dependencies=RESOLVED_READS)
async def agent_graph(request: Request, caller: Caller, start: StartQ = None, end: EndQ = None,
                      filter: FilterQ = None,  # noqa: A002 — public name
                      limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description=(
                          "Most nodes kept, most calls first (agents calling them are "
                          "added with `calls` 0)"))] = DEFAULT_LIMIT,
                      ) -> dict[str, Any]:
    """Nodes (agents, tools) and links (caller → callee: count, latency ms, error rate).

    Definitions (what a call and its caller are, quantiles, back edges) in
    :mod:`mentatlab.analytics.graph`; ``filter`` applies to the called spans.
    """
    params = build_query(start, end, scoped_filter(caller, filter).equals)
    graph = await run_blocking(lambda: get_agent_graph(server_state(request).store, params,
                                               limit=limit))
    window = params.time_range
    return {"ok": True, "start": jsonable(window.start), "end": jsonable(window.end),
            "limit": limit, "max_links": MAX_LINKS,
            "parent_lookback_s": PARENT_LOOKBACK.total_seconds(),
            "latency": "duration of the called span, ms: p50/p95 exact with linear "
                       "interpolation (quantilesExactInclusive), mean",
            "num_nodes": graph.num_nodes, "num_links": graph.num_links,
            "nodes": [jsonable(n) for n in graph.nodes],
            "links": [jsonable(lk) for lk in graph.links]}


def _checkpoint_json(ref: CheckpointRef | None) -> dict[str, Any] | None:
    if ref is None:
        return None
    return {"span_id": ref.span_id, "time_ns": ref.time_ns, "time": _iso(ref.time_ns),
            "seq": ref.seq}


@router.get("/traces/{trace_id}/replay", summary="One trace as it stood at an instant",
            responses=_TRACE_ERRORS, dependencies=RESOLVED_READS)
async def trace_replay(request: Request, caller: Caller, trace_id: str,
                       at: Annotated[str | None, Query(max_length=64, description=(
                           "The instant: ns since the epoch (`1764930000123456789`) or "
                           "ISO-8601 (UTC if no offset); default the trace's last event "
                           "instant"))] = None,
                       ) -> dict[str, Any]:
    """Spans started by ``at`` (finished or running), the checkpointed state, next/previous.

    Definitions in :mod:`mentatlab.analytics.replay`. Instants come as ``*_ns`` (exact)
    and ISO-8601 (to the µs); ``spans`` are columns (one list per field, like the
    timeline view), started spans only. Unknown trace (for the caller): 404.
    """
    trace_id = hex_id(trace_id, "trace_id", 32)
    at_ns = parse_instant(at) if at is not None else None
    replay = await run_blocking(lambda: get_replay(server_state(request).store, trace_id, at_ns,
                                           caller.tenancy))
    if replay is None:
        raise ApiError(404, "Trace not found", [FieldError("trace_id", f"No spans for {trace_id}")])
    return {"ok": True, "trace_id": trace_id, "at_ns": replay.at_ns, "at": _iso(replay.at_ns),
            "start_ns": replay.start_ns, "end_ns": replay.end_ns,
            "start_time": _iso(replay.start_ns), "end_time": _iso(replay.end_ns),
            "num_spans": replay.num_spans, "num_finished": replay.num_finished,
            "num_running": replay.num_running, "num_not_started": replay.num_not_started,
            "state": replay.state, "num_checkpoints": replay.num_checkpoints,
            "num_bad_checkpoints": replay.num_bad_checkpoints,
            "last_checkpoint": _checkpoint_json(replay.last_checkpoint),
            "previous_ns": replay.previous_ns, "next_ns": replay.next_ns,
            "previous": _iso(replay.previous_ns), "next": _iso(replay.next_ns),
            "spans": replay.spans}
