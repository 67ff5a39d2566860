"""Per-org quota overrides over REST (``/api/v1/quotas``), the API of ``mentatctl quotas``.

The limits (docs/security.md, "Quotas and rate limits") protect the installation from its
tenants, so the rule is the CLI's: only the installation (an installation-wide admin key,
or anyone when auth is off) sets an org's limits freely. An org's own admin
(``manage_settings`` in that org) reads them and may only **tighten** them: every limit it
sets, or drops back to the setting, must end at or below the one in force for the org
(0 = unlimited is the loosest). Each change is in the audit log (``quota.set``,
``quota.cleared``), like the CLI's, and reaches this server at once and every other within
``quota_refresh_s``.

Limits are per org (for the org and for each of its keys): the control store keeps no
per-project override, so a project-scoped caller is refused (403, field ``org_id``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from mentatlab.access.principal import Principal, Scope
from mentatlab.access.roles import Permission
from mentatlab.errors import FieldError, Forbidden
from mentatlab.server.audit_trail import audit
from mentatlab.server.deps import Caller
from mentatlab.server.errors import ApiError, error_responses
from mentatlab.server.state import control_store, server_state
from mentatlab.storage.control.quotas import LIMIT_NAMES

__all__ = ["QuotaLimitsBody", "QuotaRequest", "loosens", "router"]

router = APIRouter(prefix="/api/v1", tags=["admin"])
MAX_LIMIT = 10**12
"""Largest limit accepted (far above anything one node serves; keeps it an int64)."""
_ORG_ID = r"^[A-Za-z0-9._:-]+$"
OrgQ = Annotated[str | None, Query(min_length=1, max_length=64, pattern=_ORG_ID, description=(
    "The org (default: the caller's own; installation-wide callers: every org with "
    "overrides when GET names none)."))]
_Limit = Field(default=None, ge=0, le=MAX_LIMIT)


class QuotaLimitsBody(BaseModel):
    """Limits to set: a number (0 = unlimited) or null (back to the server's setting).

    Limits left out keep their current value.
    """

    model_config = ConfigDict(extra="forbid")

    key_ingest_requests_per_s: int | None = _Limit
    """Ingest requests per second, per key of the org."""
    org_ingest_requests_per_s: int | None = _Limit
    """Ingest requests per second, for the whole org."""
    key_ingest_spans_per_min: int | None = _Limit
    """Spans per minute, per key of the org."""
    org_ingest_spans_per_min: int | None = _Limit
    """Spans per minute, for the whole org."""
    key_queries_per_min: int | None = _Limit
    """Read requests per minute, per key (or person) of the org."""
    org_queries_per_min: int | None = _Limit
    """Read requests per minute, for the whole org."""


class QuotaRequest(BaseModel):
    """A change to an org's limits."""

    model_config = ConfigDict(extra="forbid")

    org_id: str | None = Field(default=None, min_length=1, max_length=64, pattern=_ORG_ID,
                               description="Default: the caller's org.")
    limits: QuotaLimitsBody


def loosens(new: int, current: int) -> bool:
    """Whether limit ``new`` admits more than ``current`` (both: 0 = unlimited)."""
    if current == 0:
        return False
    return new == 0 or new > current


def _org_of(caller: Principal, org_id: str | None, *, required: bool) -> str | None:
    """The org asked for (or the caller's), checked against the caller's scope.

    Raises:
        ApiError: (422) ``required`` and an installation-wide caller named no org.
        Forbidden: (403) the org is outside the caller's scope, or the caller is limited to
            one project (limits are per org).
    """
    org = org_id or caller.org_id
    if org is None:
        if required:
            raise ApiError(422, "Invalid request", [FieldError(
                "org_id", "Expected an org_id (the caller is installation-wide)")])
        return None
    caller.require_scope(Scope(org), "org_id")
    return org


def _defaults(request: Request) -> dict[str, int]:
    limits = server_state(request).quotas.limits
    return {name: int(getattr(limits, name)) for name in LIMIT_NAMES}


def _quota_json(org_id: str, overrides: Mapping[str, int], defaults: Mapping[str, int]
                ) -> dict[str, Any]:
    return {"org_id": org_id, "overrides": dict(overrides),
            "limits": {name: overrides.get(name, defaults[name]) for name in LIMIT_NAMES}}


def _check_tightens(caller: Principal, wanted: Mapping[str, int | None],
                    overrides: Mapping[str, int], defaults: Mapping[str, int]) -> None:
    """Refuse an org's own admin a change that would raise a limit in force.

    Raises:
        Forbidden: (403, field ``limits.<name>``) the change loosens that limit.
    """
    if caller.can(Permission.MANAGE_ORGS):
        return  # the installation (or auth off): limits are its own to set
    for name, value in wanted.items():
        current = overrides.get(name, defaults[name])
        new = defaults[name] if value is None else value
        if loosens(new, current):
            raise Forbidden(f"limits.{name}", (
                f"An org's own admin may only tighten its limits: {current} in force, "
                f"asked {new} (0 = unlimited); raising it is for the installation's "
                "admin (mentatctl quotas set)"))


async def _apply(request: Request) -> None:
    """Put the control store's overrides in force on this server now."""
    control = control_store(request)
    server_state(request).quotas.apply_overrides(
        await anyio.to_thread.run_sync(control.quotas.all))


@router.get("/quotas", summary="Quota limits of an org (or of every org with overrides)",
            responses=error_responses(401, 403, 422, 503))
async def list_quotas(request: Request, caller: Caller, org_id: OrgQ = None
                      ) -> dict[str, Any]:
    """The server's default limits and, per org, its overrides and the limits in force.

    ``defaults``: limit name → the setting (0 = unlimited). ``quotas``: a list of
    ``{org_id, overrides, limits}`` (``overrides`` only the limits the org sets, ``limits``
    all six as in force). With an org (the caller's by default) the list holds that org,
    overrides or not; an installation-wide caller naming none gets every org with overrides.
    """
    org = _org_of(caller, org_id, required=False)
    defaults = _defaults(request)
    every = await anyio.to_thread.run_sync(control_store(request).quotas.all)
    if org is None:
        quotas = [_quota_json(o, every[o], defaults) for o in sorted(every)]
    else:
        quotas = [_quota_json(org, every.get(org, {}), defaults)]
    return {"ok": True, "defaults": defaults, "quotas": quotas}


@router.put("/quotas", summary="Set some of an org's quota limits",
            responses=error_responses(401, 403, 422, 503))
async def set_quotas(request: Request, body: QuotaRequest, caller: Caller) -> dict[str, Any]:
    """Set the limits given in ``limits`` for the org and each of its keys; answers its quota.

    A number sets the limit (0 = unlimited); null puts it back to the server's setting;
    limits left out keep their value. An org's own admin may only tighten (403 naming the
    limit otherwise). Recorded in the audit log as ``quota.set``.
    """
    org = _org_of(caller, body.org_id, required=True)
    assert org is not None
    wanted: dict[str, int | None] = {name: getattr(body.limits, name)
                                     for name in body.limits.model_fields_set}
    if not wanted:
        raise ApiError(422, "Invalid request", [FieldError(
            "limits", f"Expected at least one of {list(LIMIT_NAMES)}")])
    control = control_store(request)
    defaults = _defaults(request)

    def change() -> dict[str, int]:
        _check_tightens(caller, wanted, control.quotas.all().get(org, {}), defaults)
        return control.quotas.set(org, wanted)

    overrides = await anyio.to_thread.run_sync(change)
    await audit(request, caller, "quota.set", org_id=org, project_id=None, target=org,
                details=wanted)
    await _apply(request)
    return {"ok": True, "quota": _quota_json(org, overrides, defaults)}


@router.delete("/quotas", summary="Drop an org's quota overrides",
               responses=error_responses(401, 403, 422, 503))
async def clear_quotas(request: Request, caller: Caller, org_id: OrgQ = None
                       ) -> dict[str, Any]:
    """Drop the org's overrides: the server's settings apply to it again.

    ``cleared`` says whether there were any. An org's own admin may do it only when no
    limit rises by it. Recorded in the audit log as ``quota.cleared`` (when there were).
    """
    org = _org_of(caller, org_id, required=True)
    assert org is not None
    control = control_store(request)
    defaults = _defaults(request)

    def clear() -> bool:
        overrides = control.quotas.all().get(org, {})
        _check_tightens(caller, dict.fromkeys(overrides), overrides, defaults)
        return control.quotas.clear(org)

    cleared = await anyio.to_thread.run_sync(clear)
    if cleared:
        await audit(request, caller, "quota.cleared", org_id=org, project_id=None, target=org)
        await _apply(request)
    return {"ok": True, "cleared": cleared, "quota": _quota_json(org, {}, defaults)}
