"""``GET /api/v1/recommendations``: where money can be saved, each with its numbers.

See :mod:`mentatlab.analytics.recommendations` for the kinds, thresholds and formulas.
Money values are strings (exact decimals) in the installation's currency; a key scoped to
an org/project only ever sees its own spans.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request

from mentatlab.analytics.query import QueryParams, TimeRange
from mentatlab.analytics.recommendations import (
    DAYS_PER_MONTH,
    KINDS,
    list_recommendations,
)
from mentatlab.errors import FieldError
from mentatlab.pipeline.price import Price
from mentatlab.pipeline.workers import price_of
from mentatlab.server.components import build_price
from mentatlab.server.deps import Caller, resolved_reads, scoped_filter
from mentatlab.server.errors import ApiError, error_responses
from mentatlab.server.params import StoreTime
from mentatlab.server.routes.analytics_params import EndQ, FilterQ, window
from mentatlab.server.serialize import jsonable
from mentatlab.server.state import ServerState, server_state

__all__ = ["DEFAULT_WINDOW", "router"]

router = APIRouter(prefix="/api/v1", tags=["analytics"])

DEFAULT_WINDOW = timedelta(days=30)
"""Range when ``start`` is not given: the 30 days before ``end``."""
ANALYTICS_ERRORS = error_responses(400, 401, 403, 422, 429, 503, 504)


def _price_in_force(state: ServerState) -> Price:
    """The pipeline's ``price`` processor (what new spans are priced with)."""
    price = price_of(state.pipeline)
    if price is not None:
        return price
    return build_price(state.settings)


def _kinds(kind: str | None) -> list[str]:
    """``kind`` (comma-separated) as a list; every kind when None.

    Raises:
        ApiError: (422, field ``kind``) a name outside the kinds.
    """
    if kind is None:
        return list(KINDS)
    names = [k.strip() for k in kind.split(",") if k.strip()]
    bad = [k for k in names if k not in KINDS]
    if bad or not names:
        raise ApiError(422, "Unknown recommendation kind", [FieldError(
            "kind", f"Expected names among {', '.join(KINDS)}, got {kind[:200]!r}")])
    return names


@router.get("/recommendations", summary="Where money can be saved, with the evidence",
            responses=ANALYTICS_ERRORS, dependencies=[Depends(resolved_reads)])
async def recommendations(
        request: Request, caller: Caller,
        start: Annotated[StoreTime | None, Query(description=(
            "Start (ISO-8601, UTC if no offset); default 30 days before `end`."))] = None,
        end: EndQ = None,
        filter: FilterQ = None,  # noqa: A002 — public name
        kind: Annotated[str | None, Query(max_length=200, description=(
            f"Only these kinds, comma-separated: {', '.join(KINDS)}"))] = None,
) -> dict[str, Any]:
    """Recommendations over the range, largest monthly saving first.

    Each has ``kind``, ``title``, ``scope``, ``evidence`` (the numbers), up to three
    ``sample_trace_ids``, ``saving_in_window`` and ``saving_per_month`` (strings, in
    ``currency``; ``saving_per_month = saving_in_window × 30 / window_days``) and
    ``saving_basis``. Empty range: 400 (field ``start``); unknown kind: 422 (``kind``).
    """
    start_utc, end_utc = window(start, end, DEFAULT_WINDOW)
    kinds = _kinds(kind)
    params = QueryParams(time_range=TimeRange(start_utc, end_utc),
                         filters=scoped_filter(caller, filter).equals)
    state = server_state(request)
    price = _price_in_force(state)
    result = await anyio.to_thread.run_sync(
        lambda: list_recommendations(state.store, params, price, kinds))
    span = params.time_range
    return {"ok": True, "start": jsonable(span.start), "end": jsonable(span.end),
            "window_days": result.window_days, "currency": result.currency,
            "extrapolation": f"saving_per_month = saving_in_window × {DAYS_PER_MONTH} / "
                             "window_days",
            "kinds": kinds,
            "total_saving_per_month": jsonable(result.total_saving_per_month),
            "recommendations": [jsonable(r) for r in result.recommendations]}
