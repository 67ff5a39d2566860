"""``GET /api/v1/governance/decisions``: guardrail policy decisions by action, policy and time.

Scoped like every analytics read; times ISO-8601 UTC. Definitions in
:mod:`mentatlab.analytics.policy_decisions`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from mentatlab.analytics.policy_decisions import MAX_POLICIES, get_policy_decisions
from mentatlab.analytics.query import Bucket
from mentatlab.server.deps import Caller, resolved_reads, scoped_filter
from mentatlab.server.errors import error_responses
from mentatlab.server.routes.analytics_params import (
    EndQ,
    FilterQ,
    StartQ,
    TzQ,
    build_query,
    run_blocking,
)
from mentatlab.server.serialize import jsonable
from mentatlab.server.state import server_state

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["governance"])


@router.get("/governance/decisions", summary="Policy decisions by action, policy and time",
            responses=error_responses(400, 401, 403, 422, 429, 503, 504),
            dependencies=[Depends(resolved_reads)])
async def policy_decisions(request: Request, caller: Caller, start: StartQ = None,
                           end: EndQ = None,
                           filter: FilterQ = None,  # noqa: A002 — public name
                           bucket: Annotated[Bucket | None, Query(
                               description="minute, hour or day (in `tz`); none: totals only")
                           ] = None,
                           tz: TzQ = "UTC",
                           limit: Annotated[int, Query(ge=1, le=MAX_POLICIES, description=(
                               "Most (policy, action) rows, most decisions first"))] = 50,
                           ) -> dict[str, Any]:
    """Decisions per action, spans blocked, per (policy, action) and per bucket and action."""
    params = build_query(start, end, scoped_filter(caller, filter).equals, bucket=bucket, tz=tz)
    result = await run_blocking(
        lambda: get_policy_decisions(server_state(request).store, params, limit=limit))
    window = params.time_range
    return {"ok": True, "start": jsonable(window.start), "end": jsonable(window.end),
            "bucket": bucket, "tz": tz, "num_spans": result.num_spans,
            "num_blocked": result.num_blocked, "by_action": dict(result.by_action),
            "policies": [jsonable(row) for row in result.policies],
            "buckets": [{"bucket": jsonable(t), "action": action, "num_decisions": n}
                        for t, action, n in result.buckets]}
