"""Retention and erasure over REST: ``/api/v1/governance/retention`` and ``…/erasures``.

* ``GET /governance/retention`` — the installation's retention settings and, per org, its
  override and the retention in force (:func:`mentatlab.governance.retention.retention_for`).
* ``PUT /governance/retention`` — set some of an org's values (null: back to the setting).
  The installation's admin sets anything; an org's own admin (``manage_settings``) may only
  shorten its spans and aggregates retention, and not touch the audit retention (evidence
  kept for the installation). Audited as ``governance.retention_set``.
* ``POST /governance/erasures`` — erase everything about one ``user_id`` or ``customer_id``
  (:func:`mentatlab.governance.erasure.erase_subject`); an org's admin erases in its org,
  the installation in every org or the one named. Answers the rows removed per table; the
  receipt (the subject as a salted hash, the counts, the time) goes to the audit log as
  ``governance.erased``.
"""

from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from mentatlab.access.principal import Principal, Scope
from mentatlab.access.roles import Permission
from mentatlab.errors import FieldError, Forbidden, ValidationError
from mentatlab.governance.erasure import erase_subject, load_erasure_salt
from mentatlab.governance.retention import (
    Retention,
    retention_defaults,
    retention_for,
    validate_retention,
)
from mentatlab.server.audit_trail import audit
from mentatlab.server.deps import Caller
from mentatlab.server.errors import ApiError, error_responses
from mentatlab.server.state import control_store, server_state

__all__ = ["ErasureRequest", "RetentionRequest", "router"]

router = APIRouter(prefix="/api/v1/governance", tags=["governance"])
_ORG_ID = r"^[A-Za-z0-9._:-]+$"
OrgQ = Annotated[str | None, Query(min_length=1, max_length=64, pattern=_ORG_ID, description=(
    "The org (default: the caller's own; installation-wide callers: every org with an "
    "override when GET names none)."))]


class RetentionValues(BaseModel):
    """Values to set: a number (0 = forever) or null (back to the setting); left out: kept."""

    model_config = ConfigDict(extra="forbid")

    span_days: int | None = Field(default=None, ge=0, le=36_500)
    """Days of spans and of the tables derived per span or trace."""
    aggregate_days: int | None = Field(default=None, ge=0, le=36_500)
    """Days of the cost aggregates (0 or at least ``span_days``)."""
    audit_years: int | None = Field(default=None, ge=0, le=100)
    """Years of audit-log entries."""


class RetentionRequest(BaseModel):
    """A change to an org's retention."""

    model_config = ConfigDict(extra="forbid")

    org_id: str | None = Field(default=None, min_length=1, max_length=64, pattern=_ORG_ID,
                               description="Default: the caller's org.")
    retention: RetentionValues


class ErasureRequest(BaseModel):
    """The subject to erase: exactly one of ``user_id`` and ``customer_id``."""

    model_config = ConfigDict(extra="forbid")

    user_id: str | None = Field(default=None, min_length=1, max_length=1000)
    customer_id: str | None = Field(default=None, min_length=1, max_length=1000)
    org_id: str | None = Field(default=None, min_length=1, max_length=64, pattern=_ORG_ID,
                               description="Erase in this org only (default: the caller's "
                               "org; installation-wide callers: every org).")


def _org_of(caller: Principal, org_id: str | None, *, required: bool) -> str | None:
    org = org_id or caller.org_id
    if org is None:
        if required:
            raise ApiError(422, "Invalid request", [FieldError(
                "org_id", "Expected an org_id (the caller is installation-wide)")])
        return None
    caller.require_scope(Scope(org), "org_id")
    if caller.project_id is not None:
        raise Forbidden("org_id", "Retention and erasure are per org: a project-scoped "
                        "caller cannot use them")
    return org


def _retention_json(org: str, overrides: dict[str, int], in_force: Retention
                    ) -> dict[str, Any]:
    return {"org_id": org, "overrides": overrides, "retention": in_force.as_dict()}


def _longer(new: int, current: int) -> bool:
    """Whether ``new`` days keeps data longer than ``current`` (0 = forever)."""
    if current == 0:
        return False
    return new == 0 or new > current


def _check_org_admin(caller: Principal, wanted: dict[str, int | None], current: Retention,
                     defaults: Retention) -> None:
    """An org's own admin may only shorten spans/aggregates retention, never audit's.

    Raises:
        Forbidden: (403, field ``retention.<name>``) the change is the installation's.
    """
    if caller.can(Permission.MANAGE_ORGS):
        return
    for name, value in wanted.items():
        if name == "audit_years":
            raise Forbidden("retention.audit_years", "The audit retention is set by the "
                            "installation's admin (mentatctl governance retention set)")
        now = getattr(current, name)
        new = getattr(defaults, name) if value is None else value
        if _longer(new, now):
            raise Forbidden(f"retention.{name}", (
                f"An org's own admin may only shorten its retention: {now or 'forever'} in "
                f"force, asked {new or 'forever'}; longer is for the installation's admin"))


@router.get("/retention", summary="Retention of an org (or of every org with an override)",
            responses=error_responses(401, 403, 422, 503))
async def get_retention(request: Request, caller: Caller, org_id: OrgQ = None
                        ) -> dict[str, Any]:
    """The installation's retention settings and, per org, its override and what is in force.

    ``defaults``: ``{span_days, aggregate_days, audit_years}`` (0 = forever). ``orgs``: a
    list of ``{org_id, overrides, retention}``.
    """
    org = _org_of(caller, org_id, required=False)
    settings = server_state(request).settings
    control = control_store(request)
    defaults = retention_defaults(settings)
    every: dict[str, dict[str, int]] = await anyio.to_thread.run_sync(control.retention.all)
    orgs = sorted(every) if org is None else [org]
    out = [_retention_json(o, every.get(o, {}), retention_for(control, settings, o))
           for o in orgs]
    return {"ok": True, "defaults": defaults.as_dict(), "orgs": out}


@router.put("/retention", summary="Set some of an org's retention values",
            responses=error_responses(401, 403, 422, 503))
async def set_retention(request: Request, body: RetentionRequest, caller: Caller
                        ) -> dict[str, Any]:
    """Set the values given for the org; answers its retention.

    Audited (``governance.retention_set``). The retention job applies it at its next run.
    """
    org = _org_of(caller, body.org_id, required=True)
    assert org is not None
    wanted: dict[str, int | None] = {name: getattr(body.retention, name)
                                     for name in body.retention.model_fields_set}
    if not wanted:
        raise ApiError(422, "Invalid request", [FieldError(
            "retention", "Expected at least one of span_days, aggregate_days, audit_years")])
    settings = server_state(request).settings
    control = control_store(request)
    defaults = retention_defaults(settings)

    def change() -> dict[str, int]:
        current = retention_for(control, settings, org)
        _check_org_admin(caller, wanted, current, defaults)
        merged = {**current.as_dict(),
                  **{k: (getattr(defaults, k) if v is None else v) for k, v in wanted.items()}}
        try:
            validate_retention(Retention(**merged))
        except ValidationError as exc:
            raise ApiError(422, "Invalid request", [FieldError(
                f"retention.{exc.field}", exc.reason)]) from None
        result: dict[str, int] = control.retention.set(org, wanted)
        return result

    overrides = await anyio.to_thread.run_sync(change)
    await audit(request, caller, "governance.retention_set", org_id=org, project_id=None,
                target=org, details=wanted)
    return {"ok": True, **_retention_json(org, overrides, retention_for(control, settings, org))}


@router.post("/erasures", summary="Erase everything stored about a user or customer",
             responses=error_responses(401, 403, 422, 503))
async def erase(request: Request, body: ErasureRequest, caller: Caller) -> dict[str, Any]:
    """Delete the subject's spans, settled rows and aggregate rows; answers the counts.

    The answer (and the ``governance.erased`` audit entry) holds the subject only as an
    HMAC-SHA256 keyed with the installation's erasure salt, the rows removed per table,
    the traces touched and the time. On the embedded store the replaced parts are removed
    from disk before the answer.
    """
    given = [(n, v) for n, v in (("user_id", body.user_id), ("customer_id", body.customer_id))
             if v is not None]
    if len(given) != 1:
        raise ApiError(422, "Invalid request", [FieldError(
            "user_id", "Expected exactly one of user_id and customer_id")])
    field_name, value = given[0]
    org = _org_of(caller, body.org_id, required=False)
    state = server_state(request)
    salt = load_erasure_salt(state.settings.erasure_salt, state.settings.data_dir)
    flush = getattr(state.writer, "flush", None)
    if flush is not None:  # spans acknowledged but still in the write-ahead log go first
        await anyio.to_thread.run_sync(flush, 60.0)
    receipt = await anyio.to_thread.run_sync(lambda: erase_subject(
        state.store, field_name, value, salt=salt, org_id=org))
    details = receipt.details()
    await audit(request, caller, "governance.erased", org_id=org, project_id=None,
                target=receipt.subject_hash, details=details)
    return {"ok": True, "receipt": details, "removed": receipt.total,
            "elapsed_s": round(receipt.seconds, 3)}

