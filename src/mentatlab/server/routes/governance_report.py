"""Compliance evidence reports (``GET /api/v1/governance/report``), JSON or printable HTML.

What a report holds, and how an auditor checks it later: docs/governance.md, "Compliance
reports". It needs the audit-log permission (``read_audit``); an org's callers get their
org's report, installation-wide callers the installation's or one org's.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from mentatlab.errors import Forbidden, ValidationError
from mentatlab.governance.report import FRAMEWORKS, build_report, parse_period, render_html
from mentatlab.server.deps import Caller, resolved_reads
from mentatlab.server.errors import error_responses
from mentatlab.server.security_headers import new_nonce, page_headers
from mentatlab.server.state import control_store, server_state

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["governance"])
_ID = r"^[A-Za-z0-9._:@-]+$"
DEFAULT_PERIOD_DAYS = 30
"""Period of a report when none is given: the last 30 days."""


@router.get("/governance/report", summary="Compliance evidence report (JSON or HTML)",
            responses=error_responses(400, 401, 403, 422, 429, 503),
            response_model=None, dependencies=[Depends(resolved_reads)])
async def get_report(
    request: Request,
    caller: Caller,
    framework: Annotated[str, Query(description=f"One of {', '.join(FRAMEWORKS)}.")],
    period: Annotated[str | None, Query(max_length=80, description=(
        "`<start>..<end>` (ISO-8601, UTC if no offset; a date-only end includes that day); "
        f"default the last {DEFAULT_PERIOD_DAYS} days."))] = None,
    org_id: Annotated[str | None, Query(min_length=1, max_length=64, pattern=_ID, description=(
        "One org (installation-wide callers; others get their own org)."))] = None,
    format: Annotated[Literal["json", "html"], Query(  # noqa: A002 - the API's word
        description="`json` (default) or `html` (one printable page).")] = "json",
) -> Response:
    """The controls in force for ``framework`` and their evidence over ``period``.

    JSON: ``report_format``, ``framework``, ``period``, ``org_id``, ``audit_chain``
    (``head_seq``, ``head_hash``), ``controls`` (id, title, references, sections, status),
    ``sections`` (retention, pii, encryption, policies, access, audit, erasure,
    decisions) and ``digest``.

    Behind the read barrier: the policy-decision and PII evidence counts every span
    acknowledged before the request, including spans still only in the write-ahead log.
    """
    if framework not in FRAMEWORKS:
        raise ValidationError("framework", f"Expected one of {list(FRAMEWORKS)}, got "
                              f"{framework!r}")
    if period is None:
        end = datetime.now(UTC)
        window = (end - timedelta(days=DEFAULT_PERIOD_DAYS), end)
    else:
        window = parse_period(period)
    if caller.project_id is not None:
        raise Forbidden("org_id", "A report covers a whole org: a project-scoped caller "
                        "cannot build one")
    if caller.org_id is not None and org_id is not None and org_id != caller.org_id:
        raise Forbidden("org_id", f"Org {org_id!r} is outside the caller's scope")
    state = server_state(request)
    control = control_store(request)
    org = org_id or caller.org_id
    report: dict[str, Any] = await anyio.to_thread.run_sync(lambda: build_report(
        framework, window, settings=state.settings, store=state.store, control=control,
        org_id=org))
    if format == "html":
        nonce = new_nonce()
        return HTMLResponse(render_html(report, nonce=nonce), headers=page_headers(nonce))
    return JSONResponse({"ok": True, **report})
