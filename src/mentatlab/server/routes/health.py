"""``/healthz`` (process alive), ``/readyz`` (store reachable, writer alive), ``/metrics``."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from mentatlab.server.errors import error_responses
from mentatlab.server.metrics import CONTENT_TYPE_LATEST
from mentatlab.server.state import server_state

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness")
async def healthz() -> dict[str, Any]:
    """Always ``{"ok": true}`` while the process serves requests."""
    return {"ok": True}


@router.get("/readyz", summary="Readiness", responses=error_responses(503))
async def readyz(request: Request) -> Response:
    """200 when the span store answers a query and the writer thread is alive, else 503."""
    state = server_state(request)
    checks: dict[str, str] = {}
    try:
        await anyio.to_thread.run_sync(state.store.query_arrow, "SELECT 1 AS one", None)
        checks["store"] = "ok"
    except Exception as exc:  # noqa: BLE001 — reported as the readiness answer
        checks["store"] = f"error: {exc}"
    checks["writer"] = "ok" if state.writer.is_alive() else "stopped"
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
