"""``GET /api/v1/analytics/bottlenecks``: what holds the settled traces' critical paths up.

Formulas, thresholds and what "settled" means: :mod:`mentatlab.analytics.bottlenecks`.
A key scoped to an org/project sees only its spans (the filter is scoped like every
analytics read).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Query, Request

from mentatlab.analytics.bottlenecks import (
    BOTTLENECK_GROUPS,
    DEFAULT_LIMIT,
    ESCALATE_TREND_PCT,
    MAX_LIMIT,
    SEVERITY_SHARE_PCT,
    get_bottlenecks,
)
from mentatlab.analytics.query import TimeRange
from mentatlab.errors import FieldError
from mentatlab.server.deps import Caller, scoped_filter
from mentatlab.server.errors import ApiError, error_responses
from mentatlab.server.params import StoreTime
from mentatlab.server.routes.analytics_params import window
from mentatlab.server.serialize import jsonable
from mentatlab.server.state import server_state

__all__ = ["DEFAULT_WINDOW", "router"]

router = APIRouter(prefix="/api/v1", tags=["analytics"])

DEFAULT_WINDOW = timedelta(hours=24)
"""Range when ``start`` is not given: the 24 hours before ``end``."""
_ERRORS = error_responses(400, 401, 403, 422, 429, 503, 504)


@router.get("/analytics/bottlenecks", summary="What holds the critical paths up",
            responses=_ERRORS)
async def bottlenecks(
        request: Request, caller: Caller,
        start: Annotated[StoreTime | None, Query(description=(
            "Start (ISO-8601, UTC if no offset); default 24 hours before `end`."))] = None,
        end: Annotated[StoreTime | None, Query(description=(
            "End, exclusive (ISO-8601); default now."))] = None,
        filter: Annotated[str | None, Query(  # noqa: A002 — public name
            max_length=10_000, description="Conditions on the fields settled spans hold: "
            "org, workspace, project, agent, workflow, service, provider, model, operation, "
            "status, tool, name, user, customer (`tool=web_search,model=gpt-4o`).")] = None,
        group_by: Annotated[str, Query(description=(
            f"One of {', '.join(BOTTLENECK_GROUPS)}"))] = "name",
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> dict[str, Any]:
    """Groups ranked by critical-path time of settled traces, with share, trend, severity.

    Empty range or a filter field settled spans do not hold: 400 naming the field;
    unknown ``group_by`` or ``limit`` out of range: 422 naming the field.
    """
    start_utc, end_utc = window(start, end, DEFAULT_WINDOW)
    if start_utc - (end_utc - start_utc) < datetime(1900, 1, 1, tzinfo=UTC):
        raise ApiError(400, "Range too long", [FieldError(
            "start", "Expected the previous period of equal length to start after 1900")])
    filters = scoped_filter(caller, filter).equals
    store = server_state(request).store
    result = await anyio.to_thread.run_sync(
        lambda: get_bottlenecks(store, TimeRange(start_utc, end_utc), filters, group_by, limit))
    return {"ok": True, **jsonable(result), "unit": "ms",
            "quiet_period_s": server_state(request).settings.trace_quiet_s,
            "severity_share_pct": dict(SEVERITY_SHARE_PCT),
            "escalate_trend_pct": ESCALATE_TREND_PCT}
