"""Human oversight and security signals (issue 17, items 3 and 7).

* ``GET /api/v1/governance/approvals``: the approval queue and its waits
  (:mod:`mentatlab.analytics.approvals`);
* ``POST``/``GET /api/v1/governance/versions``: registered prompt/workflow versions
  (:mod:`mentatlab.storage.control.versions`), each registration audited as
  ``version.registered``;
* ``GET /api/v1/governance/versions/unregistered``: spans naming an unregistered or changed
  version (:mod:`mentatlab.analytics.versions`);
* ``GET /api/v1/governance/signals``: security findings
  (:mod:`mentatlab.analytics.security_signals`).

Reads are scoped like every analytics read (an org- or project-scoped caller sees its own
spans, registrations and keys). Times are ISO-8601 UTC, waits in ms, evidence as
``trace_id:span_id`` / ``key:<id>`` strings.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import anyio.to_thread
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from mentatlab.analytics.approvals import (
    APPROVAL_GROUP_BY,
    DEFAULT_MAX_WAIT_S,
    MAX_MAX_WAIT_S,
    approval_metrics,
)
from mentatlab.analytics.security_signals import (
    DEFAULT_BASELINE_DAYS,
    MAX_BASELINE_DAYS,
    SEVERITIES,
    SIGNAL_KINDS,
    KeyUse,
    find_signals,
)
from mentatlab.analytics.versions import flag_versions, seen_versions
from mentatlab.errors import FieldError, Forbidden
from mentatlab.governance.key_use import key_uses
from mentatlab.server.audit_trail import audit
from mentatlab.server.deps import Caller, scoped_filter
from mentatlab.server.errors import ApiError
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
from mentatlab.server.state import control_store, server_state
from mentatlab.storage.control.versions import (
    VERSION_KINDS,
    VersionConflict,
    VersionInfo,
    content_hash_of,
)

__all__ = ["VersionRequest", "router"]

router = APIRouter(prefix="/api/v1/governance", tags=["governance"])

_GROUP_NAMES = {**{g: g for g in APPROVAL_GROUP_BY}, "agent": "agent_id",
                "workflow": "workflow_id"}
KindQ = Annotated[Literal["prompt", "workflow"] | None, Query(
    description="Only `prompt` or `workflow` versions; default both.")]


@router.get("/approvals", summary="Human approval queue: length, waits, approval rate",
            responses=ANALYTICS_ERRORS, dependencies=RESOLVED_READS)
async def approvals(
    request: Request, caller: Caller, start: StartQ = None, end: EndQ = None,
    filter: FilterQ = None,  # noqa: A002 — public name
    group_by: Annotated[str | None, Query(max_length=32, description=(
        "Split by `agent`, `workflow` or `reviewer`."))] = None,
    max_wait_s: Annotated[int, Query(ge=0, le=MAX_MAX_WAIT_S, description=(
        "Read sightings from this many seconds before `start` (the longest wait counted "
        "whole; default 7 days)."))] = DEFAULT_MAX_WAIT_S,
) -> dict[str, Any]:
    """Approvals requested, decided and pending in the window.

    Definitions in :mod:`mentatlab.analytics.approvals`; unknown ``group_by``: 422 naming it.
    """
    params = build_query(start, end, scoped_filter(caller, filter).equals)
    group = _GROUP_NAMES.get(group_by, group_by) if group_by else None
    report = await run_blocking(lambda: approval_metrics(
        server_state(request).store, params, group_by=group, max_wait_s=max_wait_s))
    return {"ok": True, "unit": "ms", **jsonable(report), "group_by": group}


class VersionRequest(BaseModel):
    """A prompt or workflow version to register, with its content or the content's hash."""

    kind: Literal["prompt", "workflow"] = Field(description="`prompt` or `workflow`.")
    name: str = Field(default="", max_length=200, description=(
        "The prompt's name (as its spans carry it; empty when they carry none) or the "
        "workflow id."))
    version: str = Field(min_length=1, max_length=200, description=(
        "As spans name it (`prompt_version`, `workflow_version`)."))
    content_hash: str | None = Field(default=None, max_length=200, description=(
        "The content's hash as the spans carry it (e.g. a SHA-256 hex digest)."))
    content: str | None = Field(default=None, max_length=1_000_000, description=(
        "The content itself: MentatLab registers its SHA-256 (lowercase hex of the UTF-8 "
        "text) and keeps nothing else."))
    org_id: str = Field(default="", max_length=64, description=(
        "The org; an org-scoped caller's own org by default."))


def _version_json(info: VersionInfo) -> dict[str, Any]:
    out: dict[str, Any] = jsonable(info)
    return out



@router.post("/versions", summary="Register a prompt or workflow version and its content hash",
             responses=ANALYTICS_ERRORS | {409: {"description": "Registered with another "
                                                                "hash"}})
async def register_version(request: Request, body: VersionRequest, caller: Caller
                           ) -> dict[str, Any]:
    """Register a version (audited as ``version.registered``).

    Registering it again with the same hash changes nothing (``created`` false); with
    another hash it is refused (409: a version's content never changes).
    """
    org_id = body.org_id or caller.org_id or ""
    if caller.org_id is not None and org_id != caller.org_id:
        raise Forbidden("org_id", f"Org {org_id!r} is outside the caller's scope")
    if not org_id:
        raise ApiError(422, "Invalid request", [FieldError(
            "org_id", "Expected the org the version belongs to")])
    if (body.content_hash is None) == (body.content is None):
        raise ApiError(422, "Invalid request", [FieldError(
            "content_hash", "Expected exactly one of content_hash and content")])
    digest = body.content_hash if body.content is None else content_hash_of(body.content)
    assert digest is not None
    registry = control_store(request).versions
    try:
        info, created = await anyio.to_thread.run_sync(lambda: registry.register(
            org_id, body.kind, body.name, body.version, digest,
            registered_by=f"{caller.kind}:{caller.id}" if caller.id else caller.kind))
    except VersionConflict as exc:
        raise ApiError(409, "Version registered with another content hash",
                       exc.errors) from None
    if created:
        await audit(request, caller, "version.registered", org_id=org_id, project_id=None,
                    target=info.id, details={"kind": info.kind, "name": info.name,
                                             "version": info.version,
                                             "content_hash": info.content_hash})
    return {"ok": True, "created": created, "version": _version_json(info)}


@router.get("/versions", summary="Registered prompt and workflow versions",
            responses=ANALYTICS_ERRORS)
async def list_versions(request: Request, caller: Caller, kind: KindQ = None
                        ) -> dict[str, Any]:
    """The caller's org's registered versions (every org's for installation callers)."""
    registry = control_store(request).versions
    found = await anyio.to_thread.run_sync(lambda: registry.list(caller.org_id, kind=kind))
    return {"ok": True, "kinds": list(VERSION_KINDS),
            "versions": [_version_json(v) for v in found]}


@router.get("/versions/unregistered", summary="Spans naming an unregistered or changed version",
            responses=ANALYTICS_ERRORS, dependencies=RESOLVED_READS)
async def unregistered_versions(request: Request, caller: Caller, start: StartQ = None,
                                end: EndQ = None,
                                filter: FilterQ = None,  # noqa: A002 — public name
                                kind: KindQ = None) -> dict[str, Any]:
    """Groups of the window's spans flagged ``unregistered`` or ``changed``, most spans first.

    A group is (org, kind, name, version, hash); definitions in
    :mod:`mentatlab.analytics.versions`.
    """
    params = build_query(start, end, scoped_filter(caller, filter).equals)
    org = params.filters.get("org_id") or caller.org_id
    registry = control_store(request).versions
    registered = await anyio.to_thread.run_sync(lambda: registry.list(org, kind=kind))
    seen = await run_blocking(seen_versions, server_state(request).store, params, kind)
    flags = flag_versions(seen, {(v.org_id, v.kind, v.name, v.version): v.content_hash
                                 for v in registered})
    window = params.time_range
    return {"ok": True, "start": jsonable(window.start), "end": jsonable(window.end),
            "num_versions_seen": len(seen),
            "flags": [{"status": f.status, **jsonable(f.seen),
                       "registered_hash": f.registered_hash} for f in flags]}


@router.get("/signals", summary="Security findings: injection bursts, blocked actions, new "
            "tools, new keys", responses=ANALYTICS_ERRORS, dependencies=RESOLVED_READS)
async def signals(
    request: Request, caller: Caller, start: StartQ = None, end: EndQ = None,
    filter: FilterQ = None,  # noqa: A002 — public name
    kind: Annotated[list[str] | None, Query(max_length=len(SIGNAL_KINDS), description=(
        f"Only these kinds (repeat): {', '.join(SIGNAL_KINDS)}; default all."))] = None,
    min_severity: Annotated[Literal["low", "medium", "high"], Query(description=(
        "Leave out findings below this severity."))] = "low",
    baseline_days: Annotated[int, Query(ge=1, le=MAX_BASELINE_DAYS, description=(
        "Days before the window that `new_tool` compares with."))] = DEFAULT_BASELINE_DAYS,
) -> dict[str, Any]:
    """Findings of the window, highest severity first.

    Kinds the store cannot compute yet are listed in ``unavailable``; an unknown kind is
    a 422 naming it.
    """
    flt = scoped_filter(caller, filter)
    params = build_query(start, end, flt.equals)
    kinds = list(dict.fromkeys(kind)) if kind else list(SIGNAL_KINDS)
    window = params.time_range
    keys: list[KeyUse] = []
    if "new_key" in kinds:
        org = params.filters.get("org_id") or caller.org_id
        project = params.filters.get("project_id") or caller.project_id
        control = control_store(request)
        keys = await anyio.to_thread.run_sync(lambda: key_uses(
            control, window.start, window.end, org_id=org, project_id=project))
    report = await run_blocking(lambda: find_signals(
        server_state(request).store, params, keys=keys, kinds=kinds, min_severity=min_severity,
        baseline_days=baseline_days))
    return {"ok": True, "severities": list(SEVERITIES), "kinds": kinds, **jsonable(report)}

