"""Guardrail policies over REST (``/api/v1/policies``), the API of ``mentatctl policies``.

* ``GET /policies``, ``GET /policies/{id}`` (with its versions): ``read_alerts``.
* ``POST``/``PATCH``/``DELETE``: ``manage_settings`` (an org's admin, for its own org's
  policies; installation-wide and built-in policies only by the installation's admin).
  Every change is a new version and an audit entry (``policy.created|updated|deleted``).
* ``POST /policies/check``: ``ingest`` (the SDK's key asks before acting).
* ``POST /policies/simulate``: ``read_spans`` (it reads stored spans; the caller's org only).
* ``POST``/``GET /policies/{id}/overrides``: ``manage_settings``: break-glass grants
  (``policy.override_granted``).

docs/governance.md ("Guardrail policies") and docs/api.md describe the bodies.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

import anyio.to_thread
import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from mentatlab.access.principal import Principal, Scope
from mentatlab.access.roles import Permission
from mentatlab.alerting.notifiers import redact_channel
from mentatlab.errors import FieldError, Forbidden, ValidationError
from mentatlab.governance.policies import PolicySnapshot
from mentatlab.governance.policy_rules import check_action, check_spec, rule_of
from mentatlab.governance.policy_simulation import MAX_SIMULATED_SPANS, simulate_policy
from mentatlab.model.span import CanonicalSpan, Operation, SpanStatus
from mentatlab.server.audit_trail import actor_of, audit
from mentatlab.server.deps import Caller, resolved_reads
from mentatlab.server.errors import ApiError, error_responses
from mentatlab.server.state import control_store, server_state
from mentatlab.storage.control.models import utc_now
from mentatlab.storage.control.policies import OverrideInfo, PolicyInfo, PolicySpec

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["policies"])
_ID = r"^[A-Za-z0-9._:-]+$"
PolicyId = Annotated[str, Path(min_length=1, max_length=64, pattern=_ID)]
MAX_OVERRIDE_S = 7 * 24 * 3600
"""Longest break-glass grant: 7 days."""

Action = Literal["block", "alert", "redact", "log"]
ScopeKind = Literal["global", "org", "project", "agent", "tool"]
Severity = Literal["low", "medium", "high", "critical"]


class PolicyBody(BaseModel):
    """A new policy (POST) or the fields to change (PATCH; left out = unchanged)."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, min_length=1, max_length=64, pattern=_ID,
                           description="POST only: a chosen id (default: a random one).")
    org_id: str | None = Field(default=None, max_length=64, description=(
        "POST only: the owner org (default the caller's; \"\" = installation-wide, for "
        "the installation's admin)."))
    name: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=4000)
    condition: str | None = Field(default=None, max_length=20_000,
                                  description="CEL over the span (docs/governance.md).")
    action: Action | None = None
    scope: ScopeKind | None = None
    scope_value: str | None = Field(default=None, max_length=200)
    severity: Severity | None = None
    compliance_tags: list[str] | None = Field(default=None, max_length=8)
    params: dict[str, Any] | None = None
    channels: list[str] | None = Field(default=None, max_length=20)
    enabled: bool | None = None
    draft: bool | None = None


def _policy_json(info: PolicyInfo) -> dict[str, Any]:
    spec = info.spec
    return {"id": info.id, "version": info.version, "current_version": info.current_version,
            "org_id": spec.org_id, "name": spec.name, "description": spec.description,
            "condition": spec.condition, "action": spec.action, "scope": spec.scope,
            "scope_value": spec.scope_value, "severity": spec.severity,
            "compliance_tags": list(spec.compliance_tags), "params": spec.params,
            "channels": [redact_channel(c) for c in spec.channels], "enabled": spec.enabled,
            "draft": spec.draft, "enforced": info.enforced, "deleted": info.deleted,
            "builtin": info.builtin, "created_by": info.created_by,
            "created_at": info.created_at.isoformat()}


def _override_json(grant: OverrideInfo) -> dict[str, Any]:
    return {"id": grant.id, "policy_id": grant.policy_id, "org_id": grant.org_id,
            "scope": grant.scope, "scope_value": grant.scope_value, "reason": grant.reason,
            "granted_by": grant.granted_by, "granted_at": grant.granted_at.isoformat(),
            "expires_at": grant.expires_at.isoformat(),
            "active": grant.active(utc_now())}


def _invalid(exc: ValidationError) -> ApiError:
    return ApiError(422, "Invalid policy", exc.errors)


def _visible(caller: Principal, info: PolicyInfo) -> bool:
    org = info.spec.org_id
    return caller.org_id is None or not org or org == caller.org_id


def _require_owner(caller: Principal, info: PolicyInfo) -> None:
    """An org's admin changes only its org's policies.

    Raises:
        Forbidden: (403) an installation-wide or built-in policy, or another org's.
    """
    if caller.can(Permission.MANAGE_ORGS):
        return
    org = info.spec.org_id
    if not org:
        raise Forbidden("id", "Installation-wide and built-in policies are changed by the "
                              "installation's admin")
    caller.require_scope(Scope(org), "org_id")


async def _get(request: Request, caller: Principal, policy_id: str) -> PolicyInfo:
    control = control_store(request)
    info = await anyio.to_thread.run_sync(control.policies.get, policy_id)
    if info is None or not _visible(caller, info):
        raise ApiError(404, "Not found", [FieldError("id", f"No policy {policy_id!r}")])
    return info


async def _refresh(request: Request) -> None:
    service = server_state(request).policies
    if service is not None:
        await anyio.to_thread.run_sync(service.refresh)


@router.get("/policies", summary="Guardrail policies (current versions)",
            responses=error_responses(401, 403, 422, 503))
async def list_policies_route(
        request: Request, caller: Caller,
        include_deleted: Annotated[bool, Query(description="Also deleted policies.")] = False,
) -> dict[str, Any]:
    """The policies that apply to the caller, current version each, by name.

    The caller's org's policies and the installation-wide ones (every policy for an
    installation-wide caller), current version each, by name.
    """
    control = control_store(request)
    infos = await anyio.to_thread.run_sync(
        lambda: control.policies.current(caller.org_id, include_deleted=include_deleted))
    return {"ok": True, "policies": [_policy_json(i) for i in infos]}


@router.get("/policies/{policy_id}", summary="One policy with every version",
            responses=error_responses(401, 403, 404, 422, 503))
async def get_policy(request: Request, caller: Caller, policy_id: PolicyId,
                     version: Annotated[int | None, Query(ge=1)] = None) -> dict[str, Any]:
    """One policy: the current version (or ``version``), every version and its overrides.

    The current version (or ``version``) and the list of all versions, oldest first;
    ``overrides``: its break-glass grants, newest first.
    """
    info = await _get(request, caller, policy_id)
    control = control_store(request)
    versions = await anyio.to_thread.run_sync(control.policies.versions, policy_id)
    if version is not None:
        found = next((v for v in versions if v.version == version), None)
        if found is None:
            raise ApiError(404, "Not found", [FieldError("version", f"No version {version}")])
        info = found
    grants = await anyio.to_thread.run_sync(
        lambda: control.policies.overrides(policy_id=policy_id))
    return {"ok": True, "policy": _policy_json(info),
            "versions": [_policy_json(v) for v in versions],
            "overrides": [_override_json(g) for g in grants]}


def _spec_of(body: PolicyBody, base: PolicySpec | None, org_id: str) -> PolicySpec:
    fields = body.model_dump(exclude_unset=True, exclude={"id", "org_id"})
    if base is None:
        missing = [n for n in ("name", "condition", "action") if fields.get(n) is None]
        if missing:
            raise ApiError(422, "Invalid policy", [FieldError(n, "Required") for n in missing])
        base = PolicySpec(name="", condition="", action="log", org_id=org_id)
    values: dict[str, Any] = {k: v for k, v in fields.items() if v is not None}
    for name in ("compliance_tags", "channels"):
        if name in values:
            values[name] = tuple(values[name])
    spec = PolicySpec(**{**{f: getattr(base, f) for f in PolicySpec.__dataclass_fields__},
                         **values, "org_id": org_id})
    try:
        return check_spec(spec)
    except ValidationError as exc:
        raise _invalid(exc) from None


@router.post("/policies", summary="Create a guardrail policy", status_code=201,
             responses=error_responses(401, 403, 422, 503))
async def create_policy(request: Request, body: PolicyBody, caller: Caller) -> dict[str, Any]:
    """Store a policy at version 1 (audited ``policy.created``).

    Store a policy at version 1 (audited ``policy.created``); enforced at once on this
    server, within ``policy_refresh_s`` on the others, unless ``draft`` or not ``enabled``.

    A bad condition answers 422 with field ``condition`` and the line, column and a caret
    under the bad part.
    """
    org = body.org_id if body.org_id is not None else (caller.org_id or "")
    if org:
        caller.require_scope(Scope(org), "org_id")
    elif not caller.can(Permission.MANAGE_ORGS):
        raise Forbidden("org_id", "Installation-wide policies are for the installation's admin")
    spec = _spec_of(body, None, org)
    control = control_store(request)
    try:
        info = await anyio.to_thread.run_sync(lambda: control.policies.create(
            spec, actor=actor_of(caller), policy_id=body.id))
    except ValidationError as exc:
        raise ApiError(409, "Conflict", exc.errors) from None
    await audit(request, caller, "policy.created", org_id=org or None, project_id=None,
                target=info.id, details={"version": info.version, "action": spec.action,
                                         "scope": spec.scope})
    await _refresh(request)
    return {"ok": True, "policy": _policy_json(info)}


@router.patch("/policies/{policy_id}", summary="Change a policy (a new version)",
              responses=error_responses(401, 403, 404, 422, 503))
async def update_policy(request: Request, body: PolicyBody, caller: Caller,
                        policy_id: PolicyId) -> dict[str, Any]:
    """Write the changed fields as the next version.

    Write the changed fields as the next version (the old ones are kept; audited
    ``policy.updated`` with the old and new version).
    """
    if body.id is not None or body.org_id is not None:
        raise ApiError(422, "Invalid policy", [FieldError(
            "id" if body.id is not None else "org_id", "Cannot be changed")])
    current = await _get(request, caller, policy_id)
    _require_owner(caller, current)
    if current.deleted:
        raise ApiError(404, "Not found", [FieldError("id", f"Policy {policy_id!r} is deleted")])
    spec = _spec_of(body, current.spec, current.spec.org_id)
    control = control_store(request)
    info = await anyio.to_thread.run_sync(lambda: control.policies.update(
        policy_id, spec, actor=actor_of(caller)))
    if info is None:
        raise ApiError(404, "Not found", [FieldError("id", f"No policy {policy_id!r}")])
    await audit(request, caller, "policy.updated", org_id=spec.org_id or None,
                project_id=None, target=policy_id,
                details={"from_version": current.version, "version": info.version})
    await _refresh(request)
    return {"ok": True, "policy": _policy_json(info)}


@router.delete("/policies/{policy_id}", summary="Delete a policy (its versions are kept)",
               responses=error_responses(401, 403, 404, 422, 503))
async def delete_policy(request: Request, caller: Caller, policy_id: PolicyId
                        ) -> dict[str, Any]:
    """Stop enforcing the policy; a last version marks it deleted.

    Stop enforcing the policy; a last version marks it deleted (audited
    ``policy.deleted``). Spans keep the decisions recorded before.
    """
    current = await _get(request, caller, policy_id)
    _require_owner(caller, current)
    control = control_store(request)
    info = await anyio.to_thread.run_sync(lambda: control.policies.delete(
        policy_id, actor=actor_of(caller)))
    if info is None:
        raise ApiError(404, "Not found", [FieldError("id", f"Policy {policy_id!r} is deleted")])
    await audit(request, caller, "policy.deleted", org_id=info.spec.org_id or None,
                project_id=None, target=policy_id, details={"version": info.version})
    await _refresh(request)
    return {"ok": True, "policy": _policy_json(info)}


# --- the pre-action check ------------------------------------------------------------------

class CheckBody(BaseModel):
    """The action the SDK is about to take, as the span it would record."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="", max_length=500)
    operation: Literal["chat", "completion", "embeddings", "tool", "agent", "retrieval",
                       "guardrail", "other"] = "other"
    project_id: str = Field(default="", max_length=200)
    agent_id: str = Field(default="", max_length=200)
    workflow_id: str = Field(default="", max_length=200)
    tool_name: str = Field(default="", max_length=200)
    user_id: str = Field(default="", max_length=200)
    customer_id: str = Field(default="", max_length=200)
    session_id: str = Field(default="", max_length=200)
    request_model: str = Field(default="", max_length=200)
    provider: str = Field(default="", max_length=200)
    input_tokens: int | None = Field(default=None, ge=0)
    attributes: dict[str, Any] = Field(default_factory=dict, max_length=500)
    pii_findings: list[dict[str, Any]] = Field(default_factory=list, max_length=1000)
    org_id: str | None = Field(default=None, max_length=64, description=(
        "Installation-wide callers only: the org to check in (default: the caller's)."))


def _check_span(body: CheckBody, org_id: str, project_id: str) -> CanonicalSpan:
    now = utc_now()
    return CanonicalSpan(
        "", "", "", body.name, "internal", now, now, 0.0, SpanStatus.OK, org_id=org_id,
        project_id=project_id, agent_id=body.agent_id, workflow_id=body.workflow_id,
        tool_name=body.tool_name, user_id=body.user_id, customer_id=body.customer_id,
        session_id=body.session_id, operation=Operation(body.operation),
        request_model=body.request_model, provider=body.provider,
        input_tokens=body.input_tokens,
        attributes=_json_text(body.attributes),
        pii_findings=_json_text(body.pii_findings) if body.pii_findings else "")


def _json_text(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # integers beyond 64 bits: the standard library writes them
        return json.dumps(value, default=str)


@router.post("/policies/check", summary="May this action go ahead? (the SDK's guard)",
             responses=error_responses(401, 403, 422, 503))
async def check_policies(request: Request, body: CheckBody, caller: Caller) -> dict[str, Any]:
    """Evaluate the would-be action with the enforced policies and the overrides in force.

    Evaluate the would-be action with the enforced policies (the same compiled set as
    ingest) and the break-glass overrides in force.

    ``allow`` is false when a ``block`` policy matched and no override covers it;
    ``decision`` is ``allow`` or ``deny``; ``decisions`` lists every match
    (``policy_id``, ``version``, ``action``, ``name``, ``severity``, ``overridden``,
    ``override_id``). The tenancy is the caller's (a key's org and project win).
    """
    org = caller.org_id or body.org_id or ""
    if body.org_id is not None and caller.org_id is not None and body.org_id != caller.org_id:
        caller.require_scope(Scope(body.org_id), "org_id")
    project = caller.project_id or body.project_id
    service = server_state(request).policies
    snapshot = service.current() if service is not None else PolicySnapshot()
    control = control_store(request)
    now = utc_now()
    grants = await anyio.to_thread.run_sync(lambda: control.policies.overrides(active_at=now))
    span = _check_span(body, org, project)
    result = await anyio.to_thread.run_sync(check_action, snapshot, span, grants, now)
    return {"ok": True, "allow": result.allow, "decision": "allow" if result.allow else "deny",
            "policy_digest": snapshot.digest,
            "decisions": [{"policy_id": d.policy_id, "version": d.version, "action": d.action,
                           "name": d.name, "severity": d.severity, "overridden": d.overridden,
                           "override_id": d.override_id} for d in result.decisions]}


# --- break-glass overrides -----------------------------------------------------------------

class OverrideBody(BaseModel):
    """A break-glass grant: the policy passes for one scope until it expires."""

    model_config = ConfigDict(extra="forbid")

    scope: ScopeKind = Field(description="What the grant covers.")
    scope_value: str = Field(default="", max_length=200)
    reason: str = Field(min_length=10, max_length=2000,
                        description="Why (kept in the control store and shown to admins).")
    duration_s: int = Field(gt=0, le=MAX_OVERRIDE_S, description="Seconds it lasts (<= 7 days).")
    org_id: str | None = Field(default=None, max_length=64,
                               description="The org it applies in (default: the caller's).")


@router.post("/policies/{policy_id}/overrides", status_code=201,
             summary="Grant a break-glass override (bounded time, written reason)",
             responses=error_responses(401, 403, 404, 422, 503))
async def grant_override(request: Request, body: OverrideBody, caller: Caller,
                         policy_id: PolicyId) -> dict[str, Any]:
    """Let one policy pass ``policies/check`` for one scope until ``duration_s`` from now.

    Audited ``policy.override_granted`` (ids, scope and expiry; the reason's text stays in
    the grant). Ingest still records the policy's decisions on spans.
    """
    info = await _get(request, caller, policy_id)
    org = body.org_id if body.org_id is not None else (caller.org_id or "")
    if org:
        caller.require_scope(Scope(org), "org_id")
    elif not caller.can(Permission.MANAGE_ORGS):
        raise Forbidden("org_id", "An installation-wide grant is for the installation's admin")
    if body.scope == "global" and body.scope_value:
        raise ApiError(422, "Invalid override", [FieldError("scope_value", "Expected none")])
    if body.scope != "global" and not body.scope_value:
        raise ApiError(422, "Invalid override", [FieldError(
            "scope_value", f"Expected the {body.scope} the override covers")])
    control = control_store(request)
    expires = utc_now() + timedelta(seconds=body.duration_s)
    grant = await anyio.to_thread.run_sync(lambda: control.policies.grant_override(
        policy_id, org_id=org, scope=body.scope, scope_value=body.scope_value,
        reason=body.reason, granted_by=actor_of(caller), expires_at=expires))
    await audit(request, caller, "policy.override_granted", org_id=org or None,
                project_id=None, target=policy_id, details={
                    "override_id": grant.id, "version": info.version, "scope": body.scope,
                    "expires_at": expires.isoformat()})
    return {"ok": True, "override": _override_json(grant)}


# --- simulation ----------------------------------------------------------------------------

class SimulateBody(BaseModel):
    """A draft (``policy``) or a stored policy (``policy_id``, ``version``) and a window."""

    model_config = ConfigDict(extra="forbid")

    policy: PolicyBody | None = None
    policy_id: str | None = Field(default=None, max_length=64, pattern=_ID)
    version: int | None = Field(default=None, ge=1)
    start: datetime
    end: datetime
    max_spans: int = Field(default=100_000, ge=1, le=MAX_SIMULATED_SPANS)
    max_seconds: float = Field(default=10.0, gt=0, le=300)
    num_samples: int = Field(default=20, ge=0, le=1000)


@router.post("/policies/simulate", summary="What a draft policy would have matched",
             responses=error_responses(401, 403, 404, 422, 503),
             dependencies=[Depends(resolved_reads)])
async def simulate(request: Request, body: SimulateBody, caller: Caller) -> dict[str, Any]:
    """Evaluate a draft or a stored version over the stored spans of a window.

    Evaluate a draft (not stored) or a stored version over the stored spans of
    ``[start, end)`` — the caller's org's only — with the enforcement code path.

    Answers ``num_scanned``, ``num_in_scope``, ``num_matched``, ``num_errors``,
    ``by_action``, ``by_scope`` (``project:…``, ``agent:…``, ``tool:…``),
    ``sample_span_ids`` (``[trace_id, span_id]``), ``truncated`` and ``elapsed_s``.
    """
    if (body.policy is None) == (body.policy_id is None):
        raise ApiError(422, "Invalid request", [FieldError(
            "policy", "Expected either a draft policy or a policy_id")])
    org = caller.org_id or ""
    if body.policy is not None:
        spec = _spec_of(body.policy, None, body.policy.org_id or org)
        info = PolicyInfo("draft", 1, 1, spec, False, actor_of(caller), utc_now(), False)
    else:
        assert body.policy_id is not None
        stored = await _get(request, caller, body.policy_id)
        if body.version is not None:
            control = control_store(request)
            found = await anyio.to_thread.run_sync(control.policies.get, body.policy_id,
                                                   body.version)
            if found is None:
                raise ApiError(404, "Not found", [FieldError("version", "No such version")])
            stored = found
        info = stored
    store = server_state(request).store
    try:
        report = await anyio.to_thread.run_sync(lambda: simulate_policy(
            store, rule_of(info), body.start, body.end, org_id=caller.org_id,
            max_spans=body.max_spans, max_seconds=body.max_seconds,
            num_samples=body.num_samples))
    except ValidationError as exc:
        raise _invalid(exc) from None
    return {"ok": True, "policy": _policy_json(info), "num_scanned": report.num_scanned,
            "num_in_scope": report.num_in_scope, "num_matched": report.num_matched,
            "num_errors": report.num_errors, "by_action": dict(report.by_action),
            "by_scope": dict(report.by_scope),
            "sample_span_ids": [list(p) for p in report.sample_span_ids],
            "truncated": report.truncated, "elapsed_s": round(report.elapsed_s, 3)}

