"""Read route over the regressions analysis: what got worse after a new version appeared.

Money is a string (exact decimal), times ISO-8601 UTC; scoped like every analytics read
(a key scoped to an org/project only sees its own spans).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from mentatlab.analytics.compare import ALPHA, COMPARE_FIELDS, CompareField
from mentatlab.analytics.regressions import (
    MAX_VERSIONS,
    MetricCheck,
    VersionCheck,
    find_regressions,
)
from mentatlab.server.deps import Caller, resolved_reads, scoped_filter
from mentatlab.server.errors import error_responses
from mentatlab.server.routes.analytics_params import (
    EndQ,
    FilterQ,
    StartQ,
    build_query,
    run_blocking,
)
from mentatlab.server.serialize import jsonable
from mentatlab.server.state import server_state

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["analytics"])


def _regression_json(version: VersionCheck, check: MetricCheck) -> dict[str, Any]:
    ident = {k: jsonable(getattr(version, k)) for k in (
        "field", "agent_id", "operation", "version", "baseline", "first_seen")}
    return {**ident, **jsonable(check)}


@router.get("/analytics/regressions", summary="What got significantly worse after a new "
            "version first appeared", responses=error_responses(400, 401, 403, 422, 429, 503, 504),
            dependencies=[Depends(resolved_reads)])
async def regressions(request: Request, caller: Caller,
                      start: StartQ = None, end: EndQ = None,
                      filter: FilterQ = None,  # noqa: A002 — public name
                      field: Annotated[CompareField | None, Query(description=(
                          f"Only this version field: one of {', '.join(COMPARE_FIELDS)}; "
                          "default all"))] = None,
                      ) -> dict[str, Any]:
    """Versions first seen in the range, each against its baseline, and the regressions.

    Definitions in :mod:`mentatlab.analytics.regressions`. Unknown field: 422 naming it.
    """
    params = build_query(start, end, scoped_filter(caller, filter).equals)
    fields = [field] if field else list(COMPARE_FIELDS)
    result = await run_blocking(find_regressions, server_state(request).store, params, fields)
    window = params.time_range
    return {"ok": True, "unit": "trace", "currency": "USD", "start": jsonable(window.start),
            "end": jsonable(window.end), "fields": fields, "alpha": ALPHA,
            "correction": "benjamini-hochberg", "lookback_ms": result.lookback_ms,
            "max_versions": MAX_VERSIONS, "num_tests": result.num_tests,
            "regressions": [_regression_json(v, m) for v, m in result.regressions],
            "versions": jsonable(result.versions)}
