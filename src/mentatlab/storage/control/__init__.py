"""The control store: orgs, projects, API keys and pricing documents (SQLAlchemy + Alembic)."""

from __future__ import annotations

from mentatlab.storage.control.migrate import migrate_control_store
from mentatlab.storage.control.store import (
    ApiKeyInfo,
    ApiKeyScope,
    ControlStore,
    IssuedApiKey,
    OrgInfo,
    ProjectInfo,
    hash_api_key,
)

__all__ = [
    "ApiKeyInfo",
    "ApiKeyScope",
    "ControlStore",
    "IssuedApiKey",
    "OrgInfo",
    "ProjectInfo",
    "hash_api_key",
    "migrate_control_store",
]
