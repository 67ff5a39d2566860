"""``GET /api/v1/system/ingest``: the ingest health of this server process (issue 18).

What the Ops view's "Ingest health" panel shows; the figures and their sources are in
:mod:`mentatlab.server.ingest_health`. Installation-wide (not scoped to an org): the same
counters ``/metrics`` exports to anyone, so it needs what the Ops view needs, ``read_spans``.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Query, Request

from mentatlab.server.errors import error_responses
from mentatlab.server.ingest_health import (
    MAX_WINDOW_S,
    IngestRates,
    ingest_health,
    process_tree_rss,
    read_counters,
)
from mentatlab.server.state import server_state

__all__ = ["DEFAULT_WINDOW_S", "router"]

router = APIRouter(prefix="/api/v1", tags=["operations"])
DEFAULT_WINDOW_S = 10.0
"""Rate window of a request without ``window_s``, in s."""


@router.get("/system/ingest", summary="Ingest health of this server process",
            responses=error_responses(401, 403, 422))
async def system_ingest(request: Request, window_s: Annotated[float, Query(
        ge=1, le=MAX_WINDOW_S, allow_inf_nan=False,
        description=f"Rates over about this many trailing seconds, 1 to {MAX_WINDOW_S:.0f} "
        "(shorter right after start and on the first request)")] = DEFAULT_WINDOW_S,
        ) -> dict[str, Any]:
    """Ingest rates, writer buffer, latency, log, live-tail drops, workers and RSS.

    Spans accepted and rejected per second, the writer's buffer, commit and insert latency,
    the write-ahead log, live-tail drops, ingest workers and the process tree's RSS. Rates
    are over ``window_s`` in the answer (the seconds actually measured). A ``window_s``
    outside 1..60 or not a number: 422 naming it.
    """
    state = server_state(request)
    if state.ingest_rates is None:
        state.ingest_rates = IngestRates(state.started_s)
    rates = state.ingest_rates
    now = read_counters(state.metrics)
    base = rates.base_for(now, window_s)
    rss = await anyio.to_thread.run_sync(process_tree_rss)
    settings = state.settings
    return ingest_health(state.metrics, settings, now, base, rss,
                         uptime_s=time.monotonic() - rates.started_s,
                         wal_enabled=getattr(state.writer, "wal", None) is not None,
                         workers_configured=max(0, settings.ingest_workers))
