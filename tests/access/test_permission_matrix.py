"""Every route × every kind of caller, answered as the permission matrix says.

The matrix (``access/roles.py`` + ``access/routes.py``) is the expectation here; the
hand-written invariants in test_invariants.py do not read it.

A request is sent with path parameters filled with a placeholder and no body: an
authorized caller then gets past authorization (200, 400, 404, 422...), a refused one gets
401 (no credential) or 403. Authorization runs before parameter validation, so a route's
own rules never hide the answer.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute, APIWebSocketRoute
from starlette.routing import Mount
from websockets.sync.client import connect

from conftest import Caller, Installation
from mentatlab.access.roles import Permission, permissions_of
from mentatlab.access.routes import PUBLIC, ROUTE_PERMISSIONS, SIGNED_IN

_DOC_ROUTES = {"/openapi.json"}
_SIGN_OUT = ("POST", "/auth/logout")


def _walk(routes: list[Any]) -> Any:
    """Routes, with those of included routers (FastAPI wraps them) flattened."""
    for route in routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is None:
            yield route
        else:
            yield from (ctx.original_route for ctx in contexts())


def _app_routes(installation: Installation) -> set[tuple[str, str]]:
    routes: set[tuple[str, str]] = set()
    for route in _walk(installation.server.app.routes):
        if isinstance(route, APIRoute):
            routes.update((m, route.path) for m in route.methods if m != "HEAD")
        elif isinstance(route, APIWebSocketRoute):
            routes.add(("WS", route.path))
        elif isinstance(route, Mount):  # static files: GET /static/{path}
            routes.add(("GET", route.path_format))
        elif getattr(route, "path", "") in _DOC_ROUTES:
            routes.add(("GET", route.path))
    return routes


def test_every_route_is_in_the_matrix_and_every_entry_is_a_route(
        installation: Installation) -> None:
    routes = _app_routes(installation)
    assert routes - set(ROUTE_PERMISSIONS) == set(), "routes missing from access/routes.py"
    assert set(ROUTE_PERMISSIONS) - routes == set(), "matrix entries without a route"


def _allowed(caller: Caller, need: Any) -> bool:
    if need == PUBLIC:
        return True
    if caller.role == "anonymous":
        return False
    if need == SIGNED_IN:
        return True
    held = permissions_of(caller.role, installation=caller.installation,
                          project=caller.project)
    return Permission(need) in held


def _call(installation: Installation, caller: Caller, method: str, path: str) -> int:
    concrete = re.sub(r"\{[^}]+\}", "x", path)
    if method == "WS":
        url = installation.url.replace("http", "ws", 1) + concrete + caller.ws_query
        headers = {"Origin": installation.url}
        if caller.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in caller.cookies.items())
        with connect(url, open_timeout=10, additional_headers=headers) as ws:
            first = json.loads(ws.recv(timeout=10))
        return 200 if first.get("ok") else int(first["status"])
    with httpx.Client(base_url=installation.url, cookies=caller.cookies, timeout=30,
                      follow_redirects=False) as client:
        response = client.request(method, concrete,
                                  headers={**caller.headers, "Origin": installation.url})
    return response.status_code


CALLERS = ("anonymous", "ingest", "read", "admin", "project-read", "project-admin",
           "installation-admin", "read-session", "user-owner", "user-admin", "user-member",
           "user-viewer", "user-billing")


@pytest.mark.slow
def test_every_route_answers_every_caller_as_the_matrix_says(
        installation: Installation) -> None:
    assert set(CALLERS) == set(installation.callers)
    mismatches: list[str] = []
    checked = 0
    # sign-out really ends the callers' sessions: it goes last
    routes = sorted(ROUTE_PERMISSIONS.items(), key=lambda r: (r[0] == _SIGN_OUT, r[0]))
    for (method, path), need in routes:
        for name in CALLERS:
            caller = installation.callers[name]
            status = _call(installation, caller, method, path)
            checked += 1
            allowed = _allowed(caller, need)
            if allowed and status in (401, 403):
                mismatches.append(f"{name} refused {status} on {method} {path} (needs {need})")
            elif not allowed:
                wanted = 401 if caller.role == "anonymous" else 403
                if status != wanted:
                    mismatches.append(f"{name} got {status} on {method} {path}, expected "
                                      f"{wanted} (needs {need})")
    assert checked == len(ROUTE_PERMISSIONS) * len(CALLERS)
    assert mismatches == []
