"""``/healthz`` (alive), ``/readyz`` (store, writer and inserts working), ``/metrics``."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from mentatlab.server.errors import error_responses
from mentatlab.server.metrics import CONTENT_TYPE_LATEST
from mentatlab.server.state import server_state
from mentatlab.storage.writer import InsertHealth

__all__ = ["INSERT_FAILURES_NOT_READY", "INSERT_WAIT_NOT_READY_S", "router"]

router = APIRouter(tags=["health"])

INSERT_FAILURES_NOT_READY = 3
"""With a write-ahead log: this many failed inserts in a row make the server not ready. One
failure is retried after 0.1 s (a store busy merging recovers); three in a row (0.3 s of
back-off) mean the store keeps refusing, and the log fills until ingest answers 503."""
INSERT_WAIT_NOT_READY_S = 30.0
"""With a write-ahead log: a logged batch waiting longer than this (s) for its insert makes
the server not ready, failing or not (an insert that hangs). A healthy inserter keeps the
wait under ``wal_insert_interval_s`` plus one insert: about 2 s."""


@router.get("/healthz", summary="Liveness")
async def healthz() -> dict[str, Any]:
    """Always ``{"ok": true}`` while the process serves requests."""
    return {"ok": True}


@router.get("/readyz", summary="Readiness", responses=error_responses(503))
async def readyz(request: Request) -> Response:
    """200 when the span store answers a query, the writer runs and inserts go through.

    Else 503 naming each failing check: ``store`` (a query failed), ``writer`` (its
    thread stopped) and, with a write-ahead log, ``inserter`` (failing or stalled
    inserts; :data:`INSERT_FAILURES_NOT_READY`, :data:`INSERT_WAIT_NOT_READY_S`).
    """
    state = server_state(request)
    checks: dict[str, str] = {}
    try:
        await anyio.to_thread.run_sync(state.store.query_arrow, "SELECT 1 AS one", None)
        checks["store"] = "ok"
    except Exception as exc:  # noqa: BLE001 — reported as the readiness answer
        checks["store"] = f"error: {exc}"
    checks["writer"] = "ok" if state.writer.is_alive() else "stopped"
    inserts = state.writer.insert_health()
    if inserts is not None:
        checks["inserter"] = _inserter_check(inserts)
    ok = all(v == "ok" for v in checks.values())
    if ok:
        return JSONResponse({"ok": True, "checks": checks})
    return JSONResponse({"ok": False, "status": 503, "error": "Not ready",
                         "errors": [{"field": k, "reason": v} for k, v in checks.items()
                                    if v != "ok"]}, status_code=503)


@router.get("/metrics", summary="Prometheus metrics",
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
async def metrics(request: Request) -> Response:
    """Counters and histograms in the Prometheus text format."""
    return Response(server_state(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)


def _inserter_check(health: InsertHealth) -> str:
    """``"ok"``, or why the write-ahead log's inserts are not going through."""
    waiting = f"{health.pending_bytes / 2**20:.1f} MiB logged and not inserted"
    if health.num_consecutive_failures >= INSERT_FAILURES_NOT_READY:
        return (f"inserts into the span store failed {health.num_consecutive_failures} "
                f"times in a row, retried ({waiting}); last error: {health.last_error}")
    if health.oldest_pending_s > INSERT_WAIT_NOT_READY_S:
        return (f"the oldest logged batch has waited {health.oldest_pending_s:.0f} s for its "
                f"insert (limit {INSERT_WAIT_NOT_READY_S:.0f} s; {waiting})")
    return "ok"
