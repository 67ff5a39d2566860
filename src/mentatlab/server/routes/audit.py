"""The audit log: who did what, when (``GET /api/v1/audit``).

Entries come newest first, scoped to the caller: an org's callers see their org's entries
(a project-scoped key: those of its project), installation-wide callers see every entry
and may pick an org. ``next_cursor`` pages further back. Checking the chain is
``mentatctl audit verify`` on the server's machine (docs/security.md, "The audit log").
"""

from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Query, Request

from mentatlab.errors import FieldError, Forbidden
from mentatlab.server.deps import Caller
from mentatlab.server.errors import ApiError, error_responses
from mentatlab.server.params import INT64_MAX, StoreTime
from mentatlab.server.serialize import jsonable
from mentatlab.server.state import control_store

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["audit"])
MAX_LIMIT = 1000
"""Most entries one page may hold."""
_ID = r"^[A-Za-z0-9._:@-]+$"


@router.get("/audit", summary="The audit log of sensitive actions",
            responses=error_responses(400, 401, 403, 422, 429, 503))
async def list_audit(
    request: Request,
    caller: Caller,
    actor: Annotated[str | None, Query(min_length=1, max_length=200, pattern=_ID, description=(
        "Only this actor: `key:<id>`, `user:<id>`, `cli`, `system`."))] = None,
    action: Annotated[str | None, Query(
        min_length=1, max_length=64, pattern=r"^[a-z_]+(\.([a-z_]+|\*))?$",
        description="Only this action (`key.created`), or a family (`key.*`).")] = None,
    since: Annotated[StoreTime | None, Query(
        description="At or after this time (ISO-8601, UTC if no offset).")] = None,
    until: Annotated[StoreTime | None, Query(
        description="Before this time (ISO-8601, exclusive).")] = None,
    org_id: Annotated[str | None, Query(min_length=1, max_length=64, pattern=_ID, description=(
        "Only this org (installation-wide callers; others see their own org)."))] = None,
    cursor: Annotated[int | None, Query(ge=1, le=INT64_MAX, description=(
        "`next_cursor` of the previous page: entries older than it."))] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> dict[str, Any]:
    """Audit-log entries of the caller's scope, newest first.

    Each has ``seq``, ``at``, ``actor``, ``action``, ``org_id``, ``project_id``, ``target``,
    ``details``, ``prev_hash`` and ``hash``; ``next_cursor`` is set when more may follow.
    """
    if since is not None and until is not None and since >= until:
        raise ApiError(400, "Empty time range", [FieldError(
            "since", f"Expected since before until, got {since.isoformat()} ≥ "
            f"{until.isoformat()}")])
    if caller.org_id is not None and org_id is not None and org_id != caller.org_id:
        raise Forbidden("org_id", f"Org {org_id!r} is outside the caller's scope")
    org = org_id or caller.org_id
    log = control_store(request).audit
    entries = await anyio.to_thread.run_sync(lambda: log.entries(
        org_id=org, all_orgs=org is None, project_id=caller.project_id, actor=actor,
        action=action, since=since, until=until, before_seq=cursor, limit=limit))
    next_cursor = entries[-1].seq if len(entries) == limit and entries[-1].seq > 1 else None
    return {"ok": True, "entries": [jsonable(e) for e in entries], "next_cursor": next_cursor}
