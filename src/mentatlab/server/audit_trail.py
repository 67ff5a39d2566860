"""Recording sensitive actions in the audit log from the routes: one line per action.

A route calls ``await audit(request, caller, "key.created", target=key_id)`` after the
action is done; the append runs in a worker thread (it takes a database lock). The actor
is built from the caller (:func:`actor_of`); the org and project default to the caller's.
A failed append is not swallowed: the request answers 503 and the error is logged, so an
action never goes unrecorded in silence.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio.to_thread
from starlette.requests import HTTPConnection

from mentatlab.access.principal import Principal
from mentatlab.server.state import server_state

__all__ = ["actor_of", "audit"]

_CALLER = object()
"""Default marker: take the org/project from the caller."""


def actor_of(caller: Principal) -> str:
    """``key:<id>``, ``user:<id>`` or ``anonymous`` (auth off)."""
    return "anonymous" if caller.kind == "anonymous" else f"{caller.kind}:{caller.id}"


async def audit(conn: HTTPConnection, caller: Principal, action: str, *,
                org_id: Any = _CALLER, project_id: Any = _CALLER, target: str = "",
                details: Mapping[str, Any] | None = None) -> None:
    """Append ``action`` by ``caller`` to the audit log (nothing when there is no control store).

    Args:
        conn: the request.
        caller: who acted.
        action: ``key.created``, ``alert_rule.deleted``, ``export``... (docs/security.md).
        org_id: the org acted on (default the caller's; None: installation-wide).
        project_id: the project acted in (default the caller's).
        target: what was acted on (a key, user or rule id...).
        details: a JSON object of facts worth keeping (never secrets).

    Raises:
        StoreError: the append failed (503).
    """
    control = server_state(conn).control
    if control is None:
        return
    org = caller.org_id if org_id is _CALLER else org_id
    project = caller.project_id if project_id is _CALLER else project_id
    await anyio.to_thread.run_sync(lambda: control.audit.record(
        actor_of(caller), action, org_id=org, project_id=project, target=target,
        details=details))
