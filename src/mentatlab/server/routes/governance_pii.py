"""Read route over PII findings: counts by category, project and attribute key.

Counts only (never a value): scoped to the caller's org/project like every analytics read,
with the ``read_usage`` permission (aggregates, no span payload).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from mentatlab.analytics.pii import get_pii_summary
from mentatlab.server.deps import Caller, scoped_filter
from mentatlab.server.routes.analytics_params import (
    ANALYTICS_ERRORS,
    RESOLVED_READS,
    EndQ,
    FilterQ,
    StartQ,
    build_query,
    run_blocking,
)
from mentatlab.server.serialize import jsonable
from mentatlab.server.state import server_state

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["governance"])


def _rows(counts: Any) -> list[dict[str, Any]]:
    return [{k: v for k, v in jsonable(c).items() if v is not None} for c in counts]


@router.get("/governance/pii", summary="PII findings by category, project and attribute key",
            responses=ANALYTICS_ERRORS, dependencies=RESOLVED_READS)
async def pii_findings(request: Request, caller: Caller, start: StartQ = None,
                       end: EndQ = None,
                       filter: FilterQ = None,  # noqa: A002 — public name
                       ) -> dict[str, Any]:
    """Findings the ingest redact stage recorded in the window (docs/governance.md).

    Definitions in :mod:`mentatlab.analytics.pii`.
    """
    params = build_query(start, end, scoped_filter(caller, filter).equals)
    result = await run_blocking(lambda: get_pii_summary(server_state(request).store, params))
    window = params.time_range
    return {"ok": True, "start": jsonable(window.start), "end": jsonable(window.end),
            "pii_mode": server_state(request).settings.pii_mode,
            "num_findings": result.num_findings, "num_spans": result.num_spans,
            "by_category": _rows(result.by_category), "by_project": _rows(result.by_project),
            "by_key": _rows(result.by_key), "rows": _rows(result.rows),
            "truncated": result.truncated}
