"""Read route over adoption by workflow: runs, users and cost per successful outcome.

Money is a string (exact decimal), times ISO-8601 UTC; scoped like every analytics read.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from mentatlab.analytics.adoption import MAX_WORKFLOWS, get_adoption
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

router = APIRouter(prefix="/api/v1", tags=["analytics"])


@router.get("/analytics/adoption", summary="Runs, users and cost per successful outcome per "
            "workflow, over time", responses=error_responses(400, 401, 403, 422, 429, 503, 504),
            dependencies=[Depends(resolved_reads)])
async def adoption(request: Request, caller: Caller, start: StartQ = None, end: EndQ = None,
                   filter: FilterQ = None,  # noqa: A002 — public name
                   bucket: Annotated[Bucket | None, Query(
                       description="minute, hour or day (in `tz`); none: totals only")] = None,
                   tz: TzQ = "UTC",
                   limit: Annotated[int, Query(ge=1, le=MAX_WORKFLOWS, description=(
                       "Most workflows, most runs first"))] = 10,
                   ) -> dict[str, Any]:
    """Per workflow: runs, users, successes, cost and cost per success (and per bucket).

    Definitions in :mod:`mentatlab.analytics.adoption`.
    """
    params = build_query(start, end, scoped_filter(caller, filter).equals, bucket=bucket, tz=tz)
    result = await run_blocking(
        lambda: get_adoption(server_state(request).store, params, limit=limit))
    window = params.time_range
    buckets = [{k: v for k, v in jsonable(r).items() if k != "bucket_start"}
               | {"bucket": jsonable(r.bucket_start)} for r in result.buckets]
    return {"ok": True, "unit": "workflow run", "currency": "USD",
            "start": jsonable(window.start), "end": jsonable(window.end), "bucket": bucket,
            "tz": tz, "workflows": [{k: v for k, v in jsonable(r).items()
                                     if k != "bucket_start"} for r in result.workflows],
            "buckets": buckets, "num_other_workflows": result.num_other_workflows}
