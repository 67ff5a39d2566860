"""Administration: organizations, API keys, people and their roles, and ``/me``.

Nobody can hand out more than they hold: a key or person may create (or revoke, or rotate)
only keys inside its own scope (installation ⊃ org ⊃ project) whose role grants nothing
it lacks itself, and may give people only roles it could act as. Only an ``owner`` (or an
``admin`` key) gives or takes the ``owner`` role, and an org never loses its last owner.
"""

from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from mentatlab.access.principal import Principal, Scope
from mentatlab.access.roles import KEY_ROLES, USER_ROLES, key_role, permissions_of
from mentatlab.errors import FieldError, Forbidden
from mentatlab.server.audit_trail import actor_of, audit
from mentatlab.server.deps import Caller
from mentatlab.server.errors import ApiError, error_responses
from mentatlab.server.openapi_links import links_to
from mentatlab.server.serialize import jsonable
from mentatlab.server.state import control_store, server_state
from mentatlab.storage.control import ApiKeyInfo, ControlStore, IssuedApiKey

__all__ = ["KeyRequest", "MemberRequest", "OrgRequest", "RotateRequest", "router"]

router = APIRouter(prefix="/api/v1", tags=["admin"])
_ID = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")
OrgQ = Annotated[str | None, Query(max_length=64, description="The org (default: the "
                                   "caller's own; required for installation-wide callers).")]


class OrgRequest(BaseModel):
    """A new organization."""

    name: str = Field(min_length=1, max_length=200)
    id: str | None = Field(default=None, min_length=1, max_length=64,
                           pattern=r"^[A-Za-z0-9._:-]+$")
    """The org id to use (what spans carry as ``org_id``); default a generated one."""


class KeyRequest(BaseModel):
    """A new API key."""

    org_id: str | None = Field(default=None, min_length=1, max_length=64,
                               pattern=r"^[A-Za-z0-9._:-]+$",
                               description="Default: the caller's org.")
    project_id: str | None = Field(default=None, min_length=1, max_length=64,
                                   pattern=r"^[A-Za-z0-9._:-]+$",
                                   description="Limit the key to one project (created if "
                                   "new); default every project of the org.")
    role: str = Field(default="ingest", description="`ingest`, `read` or `admin`.")
    name: str = Field(default="default", min_length=1, max_length=200)


class RotateRequest(BaseModel):
    """How to retire the key being rotated."""

    grace_s: int = Field(default=0, ge=0, le=30 * 86_400,
                         description="Seconds the old key keeps working (0: revoked now).")


class MemberRequest(BaseModel):
    """A person to add to an org, or whose role to change."""

    email: str = Field(min_length=3, max_length=320)
    role: str = Field(description="`owner`, `admin`, `member`, `viewer` or `billing`.")
    name: str = Field(default="", max_length=200)
    org_id: str | None = Field(default=None, min_length=1, max_length=64,
                               description="Default: the caller's org.")


def _org_for(caller: Principal, org_id: str | None, field: str = "org_id", *,
             whole_org: bool = True) -> str:
    """The org a request acts on: the one asked for, or the caller's.

    With ``whole_org`` the caller must cover the whole org (members); without it the
    caller's scope is checked later against what the request names (a project key asking
    for a key of its own project).

    Raises:
        ApiError: (422) an installation-wide caller named no org.
        Forbidden: (403) the org is outside the caller's scope.
    """
    org = org_id or caller.org_id
    if org is None:
        raise ApiError(422, "Invalid request", [FieldError(
            field, "Expected an org_id (the caller is installation-wide)")])
    if whole_org:
        caller.require_scope(Scope(org), field)
    elif caller.org_id is not None and caller.org_id != org:
        raise Forbidden(field, f"Org {org!r} is outside the caller's scope")
    return org


def _check_grant(caller: Principal, scope: Scope, role: str) -> None:
    """Refuse a key wider or stronger than the caller.

    Raises:
        ApiError: (422) an unknown role.
        Forbidden: (403) the scope is outside the caller's, or the role grants more.
    """
    if role not in KEY_ROLES:
        raise ApiError(422, "Invalid request", [FieldError(
            "role", f"Expected one of {list(KEY_ROLES)}, got {role!r}")])
    caller.require_scope(scope, "project_id" if scope.project_id else "org_id")
    wanted = permissions_of(key_role(role), installation=scope.org_id is None,
                            project=scope.project_id is not None)
    missing = wanted - caller.permissions
    if missing:
        raise Forbidden("role", f"A {role!r} key would grant {sorted(p.value for p in missing)}"
                        f", which this caller ({caller.role}) does not hold")


def _key_json(info: ApiKeyInfo) -> dict[str, Any]:
    return dict(jsonable(info))


def _issued_json(issued: IssuedApiKey) -> dict[str, Any]:
    return {"secret": issued.key, **_key_json(issued.info)}


async def _key_in_reach(control: ControlStore, caller: Principal, key_id: str) -> ApiKeyInfo:
    """The key ``key_id`` if the caller may manage it, else 404 (never reveal others' keys).

    Raises:
        ApiError: (404) unknown, or outside the caller's scope.
        Forbidden: (403) in scope but stronger than the caller.
    """
    info = await anyio.to_thread.run_sync(control.get_api_key, key_id)
    if info is None or not caller.scope.covers(Scope(info.org_id, info.project_id)):
        raise ApiError(404, "No such API key", [FieldError("key_id", f"Unknown {key_id!r}")])
    held = permissions_of(key_role(info.role), installation=info.org_id is None,
                          project=info.project_id is not None)
    if not held <= caller.permissions:
        raise Forbidden("key_id", f"Key {key_id!r} holds more than this caller "
                        f"({caller.role})")
    return info


# --- orgs ---------------------------------------------------------------------------


@router.post("/orgs", summary="Create an organization",
             responses=error_responses(401, 403, 422, 503))
async def create_org(request: Request, body: OrgRequest, caller: Caller) -> dict[str, Any]:
    """Create an organization (installation-wide admin keys only); answers its id and name."""
    org = await anyio.to_thread.run_sync(control_store(request).create_org, body.name, body.id)
    await audit(request, caller, "org.created", org_id=org.id, target=org.id,
                details={"name": org.name})
    return {"ok": True, "org": jsonable(org)}


@router.get("/orgs", summary="Organizations", responses=error_responses(401, 403, 503))
async def list_orgs(request: Request, caller: Caller) -> dict[str, Any]:
    """Every organization (installation-wide admin keys only)."""
    orgs = await anyio.to_thread.run_sync(control_store(request).list_orgs)
    return {"ok": True, "orgs": [jsonable(o) for o in orgs]}


# --- keys ---------------------------------------------------------------------------


@router.post("/keys", summary="Create an API key", responses={
    **error_responses(401, 403, 422, 503),
    **links_to("/api/v1/keys/{key_id}", ("delete",), "key_id", "/key/id")})
async def create_key(request: Request, body: KeyRequest, caller: Caller) -> dict[str, Any]:
    """Create an API key; the ``secret`` is in this answer only.

    The key's scope and role may not exceed the caller's. A ``project_id`` the org does
    not have yet is created (named after its id).
    """
    org_id = _org_for(caller, body.org_id, whole_org=False)
    _check_grant(caller, Scope(org_id, body.project_id), body.role)
    control = control_store(request)

    def issue() -> IssuedApiKey:
        if body.project_id is not None:
            known = {p.id for p in control.list_projects(org_id)}
            if body.project_id not in known:
                control.create_project(org_id, body.project_id, body.project_id)
        return control.create_api_key(org_id, body.project_id, body.name, role=body.role,
                                      created_by=actor_of(caller))

    issued = await anyio.to_thread.run_sync(issue)
    await audit(request, caller, "key.created", org_id=org_id, project_id=body.project_id,
                target=issued.info.id, details={"role": body.role, "name": body.name})
    return {"ok": True, "key": _issued_json(issued)}


@router.get("/keys", summary="API keys", responses=error_responses(401, 403, 422, 503))
async def list_keys(request: Request, caller: Caller, org_id: OrgQ = None,
                    include_revoked: bool = False) -> dict[str, Any]:
    """Keys of the caller's scope (never their secrets), newest first, with ``last_used_at``."""
    org = org_id or caller.org_id  # None: an installation-wide caller lists every key
    if org is not None:
        caller.require_scope(Scope(org, caller.project_id), "org_id")
    keys = await anyio.to_thread.run_sync(lambda: control_store(request).list_api_keys(
        org, caller.project_id, include_revoked))
    return {"ok": True, "keys": [_key_json(k) for k in keys]}


@router.delete("/keys/{key_id}", summary="Revoke an API key",
               responses=error_responses(401, 403, 404, 503))
async def revoke_key(request: Request, key_id: str, caller: Caller) -> dict[str, Any]:
    """Revoke a key and its dashboard sessions.

    This node refuses it at once, every other within ``auth_cache_s`` (0.5 s).
    """
    control = control_store(request)
    info = await _key_in_reach(control, caller, key_id)
    await anyio.to_thread.run_sync(control.revoke_api_key, key_id)
    await audit(request, caller, "key.revoked", org_id=info.org_id, project_id=info.project_id,
                target=key_id, details={"role": info.role, "name": info.name})
    server_state(request).auth.forget()
    return {"ok": True, "revoked": key_id}


@router.post("/keys/{key_id}/rotate", summary="Rotate an API key",
             responses=error_responses(401, 403, 404, 422, 503))
async def rotate_key(request: Request, key_id: str, caller: Caller,
                     body: RotateRequest | None = None) -> dict[str, Any]:
    """Issue a new key with the same name, role and scope; retire the old one.

    The old key is revoked now, or after ``grace_s``. The new ``secret`` is in this answer
    only.
    """
    control = control_store(request)
    info = await _key_in_reach(control, caller, key_id)
    grace_s = body.grace_s if body is not None else 0
    issued = await anyio.to_thread.run_sync(lambda: control.rotate_api_key(
        key_id, grace_s, actor_of(caller)))
    if issued is None:
        raise ApiError(404, "No such API key", [FieldError("key_id", f"{key_id!r} is revoked")])
    await audit(request, caller, "key.rotated", org_id=info.org_id, project_id=info.project_id,
                target=key_id, details={"new_key_id": issued.info.id, "grace_s": grace_s})
    server_state(request).auth.forget()
    return {"ok": True, "key": _issued_json(issued), "replaces": key_id}


# --- members ------------------------------------------------------------------------


def _check_role_change(caller: Principal, role: str, current: str | None) -> None:
    """Refuse giving a role the caller could not act as, or touching owners as a non-owner.

    Raises:
        ApiError: (422) an unknown role.
        Forbidden: (403) the caller may not give or take that role.
    """
    if role not in USER_ROLES:
        raise ApiError(422, "Invalid request", [FieldError(
            "role", f"Expected one of {list(USER_ROLES)}, got {role!r}")])
    missing = permissions_of(role) - caller.permissions
    if missing:
        raise Forbidden("role", f"Role {role!r} grants {sorted(p.value for p in missing)}, "
                        f"which this caller ({caller.role}) does not hold")
    if "owner" in (role, current) and caller.role not in ("owner", "key:admin", "anonymous"):
        raise Forbidden("role", "Only an owner (or an admin key) gives or takes the owner role")


@router.get("/members", summary="People in an org and their roles",
            responses=error_responses(401, 403, 422, 503))
async def list_members(request: Request, caller: Caller, org_id: OrgQ = None
                       ) -> dict[str, Any]:
    """Every person in the org, with role and how it was given (``manual`` or ``oidc``)."""
    org = _org_for(caller, org_id)
    members = await anyio.to_thread.run_sync(control_store(request).identities.members, org)
    return {"ok": True, "org_id": org, "members": [jsonable(m) for m in members]}


@router.post("/members", summary="Add a person to an org, or change their role",
             responses=error_responses(401, 403, 422, 503))
async def set_member(request: Request, body: MemberRequest, caller: Caller) -> dict[str, Any]:
    """Give the person with ``email`` (created if new; they sign in with OIDC) ``role``."""
    org = _org_for(caller, body.org_id)
    identities = control_store(request).identities

    def apply() -> tuple[str | None, Any]:
        user = identities.ensure_user(body.email, body.name)
        current = identities.role_of(user.id, org)
        _check_role_change(caller, body.role, current)
        if current == "owner" and body.role != "owner" and identities.count_owners(org) <= 1:
            raise Forbidden("role", "An org keeps at least one owner")
        return current, identities.set_role(user.id, org, body.role)

    previous, member = await anyio.to_thread.run_sync(apply)
    await audit(request, caller, "member.role_changed", org_id=org, project_id=None,
                target=member.user_id, details={"role": body.role, "previous_role": previous})
    server_state(request).auth.forget()
    return {"ok": True, "member": jsonable(member)}


@router.delete("/members/{user_id}", summary="Remove a person from an org",
               responses=error_responses(401, 403, 404, 422, 503))
async def remove_member(request: Request, user_id: str, caller: Caller, org_id: OrgQ = None
                        ) -> dict[str, Any]:
    """Remove the person from the org and end their sessions there."""
    org = _org_for(caller, org_id)
    identities = control_store(request).identities

    def apply() -> str | None:
        current = identities.role_of(user_id, org)
        if current is None:
            return None
        _check_role_change(caller, current, current)
        if current == "owner" and identities.count_owners(org) <= 1:
            raise Forbidden("user_id", "An org keeps at least one owner")
        return current if identities.remove_member(user_id, org) else None

    removed_role = await anyio.to_thread.run_sync(apply)
    if removed_role is None:
        raise ApiError(404, "No such member", [FieldError("user_id", f"Unknown {user_id!r}")])
    await audit(request, caller, "member.removed", org_id=org, project_id=None, target=user_id,
                details={"role": removed_role})
    server_state(request).auth.forget()
    return {"ok": True, "removed": user_id, "org_id": org}


# --- me -----------------------------------------------------------------------------


@router.get("/me", summary="Who the caller is and what it may do",
            responses=error_responses(401, 503))
async def me(request: Request, caller: Caller) -> dict[str, Any]:
    """The caller: kind (``key``, ``user``, ``anonymous``), role, scope and permissions.

    For a person, also every org they belong to (the dashboard's org switcher).
    """
    orgs: list[Any] = []
    control = server_state(request).control
    if caller.kind == "user" and control is not None:
        memberships = await anyio.to_thread.run_sync(control.identities.memberships_of,
                                                     caller.id)
        orgs = [{"org_id": m.org_id, "role": m.role} for m in memberships]
    return {"ok": True, "kind": caller.kind, "id": caller.id, "name": caller.name,
            "role": caller.role, "org_id": caller.org_id, "project_id": caller.project_id,
            "permissions": sorted(p.value for p in caller.permissions), "orgs": orgs}
