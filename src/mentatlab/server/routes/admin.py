"""Minimal admin routes: create organizations and API keys in the control store."""

from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from mentatlab.errors import FieldError
from mentatlab.server.deps import control_store, require_auth
from mentatlab.server.errors import ApiError, error_responses
from mentatlab.server.serialize import jsonable

__all__ = ["KeyRequest", "OrgRequest", "router"]

router = APIRouter(prefix="/api/v1", tags=["admin"])
Tenancy = Annotated[dict[str, str], Depends(require_auth)]


class OrgRequest(BaseModel):
    """A new organization."""

    name: str = Field(min_length=1, max_length=200)
    id: str | None = Field(default=None, min_length=1, max_length=100)
    """The org id to use (what spans carry as ``org_id``); default a generated one."""


class KeyRequest(BaseModel):
    """A new API key."""

    org_id: str = Field(min_length=1)
    project_id: str | None = None
    """Limit the key to one project; None = every project of the org."""
    name: str = "default"


def _check_scope(tenancy: dict[str, str], org_id: str) -> None:
    scoped = tenancy.get("org_id")
    if scoped and scoped != org_id:
        raise ApiError(403, "Forbidden", [FieldError(
            "org_id", f"This API key belongs to org {scoped!r}, not {org_id!r}")])


@router.post("/orgs", summary="Create an organization",
             responses=error_responses(401, 403, 422, 503))
async def create_org(request: Request, body: OrgRequest, tenancy: Tenancy) -> dict[str, Any]:
    """Create an organization; answers its id and name."""
    if tenancy.get("org_id"):
        raise ApiError(403, "Forbidden", [FieldError(
            "authorization", "An org-scoped key cannot create organizations")])
    org = await anyio.to_thread.run_sync(control_store(request).create_org, body.name, body.id)
    return {"ok": True, "org": jsonable(org)}


@router.post("/keys", summary="Create an API key", responses=error_responses(401, 403, 422, 503))
async def create_key(request: Request, body: KeyRequest, tenancy: Tenancy) -> dict[str, Any]:
    """Create an API key; the ``secret`` is in this answer only.

    A ``project_id`` the org does not have yet is created (named after its id).
    """
    _check_scope(tenancy, body.org_id)
    control = control_store(request)

    def issue() -> Any:
        if body.project_id is not None:
            known = {p.id for p in control.list_projects(body.org_id)}
            if body.project_id not in known:
                control.create_project(body.org_id, body.project_id, body.project_id)
        return control.create_api_key(body.org_id, body.project_id, body.name)

    issued = await anyio.to_thread.run_sync(issue)
    return {"ok": True, "key": {"secret": issued.key, **jsonable(issued.info)}}
