"""``POST /api/v1/reprice``: recompute stored spans' costs with the current prices."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from mentatlab.analytics.spans import iter_spans
from mentatlab.errors import FieldError
from mentatlab.model.schema import arrow_to_spans, spans_to_arrow
from mentatlab.pipeline.price import COST_FIELDS, reprice_spans
from mentatlab.server.audit_trail import audit
from mentatlab.server.components import build_price
from mentatlab.server.deps import Caller
from mentatlab.server.errors import ApiError, error_responses
from mentatlab.server.params import StoreTime
from mentatlab.server.state import server_state
from mentatlab.storage.retention_floor import floor_of, read_floors

__all__ = ["RepriceAnswer", "router"]

_log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1", tags=["reprice"])
_CHUNK_SPANS = 10_000


class RepriceAnswer(BaseModel):
    """Outcome of a reprice run."""

    ok: bool = True
    num_spans_read: int
    """Spans in the range."""
    num_spans_changed: int
    """Spans whose cost changed (written as new versions)."""
    num_spans_written: int
    """Rows written (new versions; the store keeps the newest)."""
    elapsed_s: float


@router.post("/reprice", response_model=RepriceAnswer, summary="Reprice stored spans",
             responses=error_responses(400, 401, 409, 422, 503, 504))
async def reprice(
    request: Request,
    caller: Caller,
    since: Annotated[StoreTime, Query(description="Start of the range (ISO-8601, UTC if no "
                                      "offset).")],
    until: Annotated[StoreTime | None, Query(description="End, exclusive; default now.")] = None,
) -> RepriceAnswer:
    """Reprice the spans that started in ``[since, until)`` with the current prices.

    ``pricing.toml`` and price data are reloaded first; changed spans are written as new
    versions. A key scoped to an org/project reprices only its own spans. A range that
    starts before the org's retention floor (its spans there have expired; for an
    installation-wide caller, the highest floor of any org) is refused with 409 naming
    ``since``: the aggregates of an expired period are final.
    """
    state = server_state(request)
    start, end = since, until or datetime.now(UTC)
    if start >= end:
        raise ApiError(400, "Empty time range", [FieldError("since", "Expected since < until")])
    floors = await anyio.to_thread.run_sync(read_floors, state.store)
    floor_ns = floor_of(floors, caller.org_id or None)
    if floor_ns and start < datetime.fromtimestamp(floor_ns / 1e9, UTC):
        since_text = datetime.fromtimestamp(floor_ns / 1e9, UTC).isoformat()
        raise ApiError(409, "Period expired under retention", [FieldError("since", (
            f"Expected since >= {since_text}: spans before it have expired under the "
            f"retention policy{'' if caller.org_id else ' of at least one org'}, and the "
            "aggregates of an expired period are final (docs/governance.md)"))])
    started_s = time.perf_counter()
    price = await anyio.to_thread.run_sync(build_price, state.settings)
    num_read = num_changed = num_written = 0
    flush = getattr(state.writer, "flush", None)
    if flush is not None:  # spans acknowledged but still in the write-ahead log first
        await anyio.to_thread.run_sync(flush, 60.0)
    chunks = iter_spans(state.store, start, end, batch_rows=_CHUNK_SPANS, filters=caller.tenancy)
    while True:
        table: Any = await anyio.to_thread.run_sync(next, chunks, None)
        if table is None:
            break
        old = await anyio.to_thread.run_sync(arrow_to_spans, table)
        num_read += len(old)
        new = await anyio.to_thread.run_sync(reprice_spans, old, price)
        changed = [n for o, n in zip(old, new, strict=True)
                   if any(getattr(o, f) != getattr(n, f) for f in COST_FIELDS)]
        num_changed += len(changed)
        if changed:
            num_written += await state.writer.submit(spans_to_arrow(changed), dedup=False)
    _log.info("Repriced %s spans (%s changed) from %s to %s", num_read, num_changed, start, end)
    await audit(request, caller, "reprice", details={
        "since": start.isoformat(), "until": end.isoformat(), "changed": num_changed})
    return RepriceAnswer(num_spans_read=num_read, num_spans_changed=num_changed,
                         num_spans_written=num_written,
                         elapsed_s=round(time.perf_counter() - started_s, 3))
