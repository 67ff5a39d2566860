"""Request dependencies: the server state, API-key auth and the tenancy a key fixes."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread
from fastapi import Request
from starlette.requests import HTTPConnection

from mentatlab.pipeline.processor import Pipeline
from mentatlab.server.errors import ApiError, Unauthorized
from mentatlab.server.ingest import Ingestor
from mentatlab.server.live import LiveHub
from mentatlab.server.metrics import ServerMetrics
from mentatlab.settings import Settings
from mentatlab.storage.base import SpanStore

__all__ = ["ServerState", "api_key_from", "control_store", "require_auth", "resolve_tenancy",
           "resolved_reads", "server_state"]

_log = logging.getLogger(__name__)


@dataclass
class ServerState:
    """Everything the lifespan opens and the routes use."""

    settings: Settings
    store: SpanStore
    writer: Any
    """The :class:`~mentatlab.storage.writer.SpanWriter`."""
    pipeline: Pipeline
    ingestor: Ingestor
    metrics: ServerMetrics
    live: LiveHub
    control: Any = None
    """The :class:`~mentatlab.storage.control.ControlStore` (API keys, orgs, projects)."""
    pairer: Any = None
    """The :class:`~mentatlab.receivers.events.EventPairer`."""
    resolver: Any = None
    """The :class:`~mentatlab.server.resolving.ResolverService`."""
    extras: dict[str, Any] = field(default_factory=dict)


def server_state(conn: HTTPConnection) -> ServerState:
    """The running server's state (set by the lifespan)."""
    state: ServerState = conn.app.state.mentat
    return state


async def resolved_reads(conn: HTTPConnection) -> None:
    """Dependency of analytics reads: wait until this node's acknowledged spans are resolved.

    Bounded by ``resolve_wait_s``; see :mod:`mentatlab.server.resolving`.
    """
    resolver = server_state(conn).resolver
    if resolver is not None:
        await resolver.wait_resolved()


def control_store(conn: HTTPConnection) -> Any:
    """The running server's control store.

    Raises:
        ApiError: (503) the server runs without one.
    """
    control = server_state(conn).control
    if control is None:
        raise ApiError(503, "No control store")
    return control


def api_key_from(conn: HTTPConnection) -> str | None:
    """The API key sent as ``Authorization: Bearer <key>`` or ``x-api-key``, if any."""
    auth = conn.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    key = conn.headers.get("x-api-key", "").strip()
    if key:
        return key
    token = conn.query_params.get("api_key", "").strip()  # WebSocket clients cannot set headers
    return token or None


def _scope_of(record: Any) -> dict[str, str]:
    scope: dict[str, str] = {}
    for name in ("org_id", "project_id"):
        value = getattr(record, name, None)
        if value is None and isinstance(record, dict):
            value = record.get(name)
        if value:
            scope[name] = str(value)
    return scope


async def resolve_tenancy(conn: HTTPConnection) -> dict[str, str]:
    """Check the API key when auth is required and return the tenancy it fixes.

    Returns:
        ``{"org_id": ..., "project_id": ...}`` for the parts the key is scoped to; empty
        when auth is off and no key was sent.

    Raises:
        Unauthorized: auth is required and the key is missing or unknown.
    """
    state = server_state(conn)
    key = api_key_from(conn)
    if key is None:
        if state.settings.auth_required:
            raise Unauthorized("Expected an API key (Authorization: Bearer or x-api-key)")
        return {}
    if state.control is None:
        if state.settings.auth_required:
            raise Unauthorized("No control store to check API keys against")
        return {}
    record = await anyio.to_thread.run_sync(state.control.resolve_api_key, key)
    if record is None:
        if state.settings.auth_required:
            raise Unauthorized("Unknown or revoked API key")
        return {}
    return _scope_of(record)


async def require_auth(request: Request) -> dict[str, str]:
    """FastAPI dependency: enforce the API key and return the tenancy it fixes."""
    return await resolve_tenancy(request)
