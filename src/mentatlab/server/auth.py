"""Authentication (who calls) and authorization (may they) of every request.

HTTP, WebSocket and gRPC requests all pass through here.

Credentials, in order: an API key (``Authorization: Bearer``, ``x-api-key``; ``?api_key=``
on the WebSocket only, where browsers cannot set headers), then the dashboard session
cookie. Lookups are cached for ``auth_cache_s`` (0.5 s by default) per credential, so an
ingest client sending thousands of requests a second costs two control-store reads a
second, and a key revoked on any node stops working everywhere within that time.

A cookie is sent by the browser on its own, so a state-changing request that
authenticates with the cookie must come from this server's own pages: its ``Origin``
(or ``Referer``) must be this host, else 403 (cross-site request forgery).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import anyio.to_thread
from starlette.requests import HTTPConnection

from mentatlab.access.principal import OPEN_INSTALLATION, Principal, Scope
from mentatlab.access.roles import Permission
from mentatlab.access.routes import PUBLIC, need_of
from mentatlab.errors import Forbidden, Unauthenticated
from mentatlab.storage.control import ControlStore

__all__ = ["SESSION_COOKIE", "Authenticator", "api_key_from", "authenticate", "authorize",
           "same_origin"]

_log = logging.getLogger(__name__)
SESSION_COOKIE = "mentat_session"
"""Name of the dashboard session cookie (HttpOnly, SameSite=Lax, Secure over TLS)."""
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_CACHE_ENTRIES = 10_000
_NOBODY = Principal("anonymous", "", "anonymous", "anonymous", Scope(), frozenset())
"""The caller of a public route: holds nothing."""


@dataclass(slots=True)
class _Entry:
    value: Principal | None
    expires: float


class _TtlCache:
    """Credential hash → Principal (or None: refused), each for ``ttl_s`` seconds."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[str, _Entry] = {}

    async def get(self, key: str, load: Callable[[], Principal | None]) -> Principal | None:
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None and entry.expires > now:
            return entry.value
        value = await anyio.to_thread.run_sync(load)
        if len(self._entries) >= _CACHE_ENTRIES:
            self._entries.clear()  # a flood of distinct bogus keys must not grow memory
        self._entries[key] = _Entry(value, now + self.ttl_s)
        return value

    def clear(self) -> None:
        self._entries.clear()


class Authenticator:
    """Turns credentials into a :class:`Principal`, with a short cache.

    Args:
        control: the control store holding keys, people and sessions (None: no auth store;
            every credential is refused when ``auth_required``).
        auth_required: refuse requests without a valid credential (else they act as the
            open installation).
        cache_s: how long a lookup is reused, in s; also the longest a revoked key or
            ended session keeps working on a node.
    """

    def __init__(self, control: ControlStore | None, auth_required: bool,
                 cache_s: float = 0.5) -> None:
        self.control = control
        self.auth_required = auth_required
        self._keys = _TtlCache(cache_s)
        self._sessions = _TtlCache(cache_s)

    def forget(self) -> None:
        """Drop every cached lookup (after a revocation on this node: effective at once)."""
        self._keys.clear()
        self._sessions.clear()

    async def for_key(self, key: str | None) -> Principal:
        """The principal of an API key (``None``: no key sent).

        Raises:
            Unauthenticated: auth is required and the key is missing, unknown, revoked or
                expired.
        """
        if key is None:
            return self._anonymous("Expected an API key (Authorization: Bearer or x-api-key)")
        control = self.control
        if control is None:
            return self._anonymous("No control store to check API keys against")
        from mentatlab.storage.control import hash_api_key

        def load() -> Principal | None:
            scope = control.resolve_api_key(key)
            if scope is None:
                return None
            return Principal.for_key(scope.key_id, scope.name, scope.role, scope.org_id,
                                     scope.project_id)

        found = await self._keys.get(hash_api_key(key), load)
        return found if found is not None else self._anonymous(
            "Unknown, revoked or expired API key")

    async def for_session(self, token: str) -> Principal:
        """The principal behind a dashboard session token.

        Raises:
            Unauthenticated: auth is required and the session is unknown, ended or expired,
                or its key or membership is gone.
        """
        control = self.control
        if control is None:
            return self._anonymous("No control store to check sessions against")
        from mentatlab.storage.control.identity import hash_token

        def load() -> Principal | None:
            session = control.identities.resolve_session(token)
            if session is None:
                return None
            if session.key_id is not None:
                scope = control.api_key_scope(session.key_id)
                if scope is None:
                    return None
                return Principal.for_key(scope.key_id, scope.name, scope.role, scope.org_id,
                                         scope.project_id, session.id_hash)
            if session.user_id is None or session.org_id is None:
                return None
            role = control.identities.role_of(session.user_id, session.org_id)
            user = control.identities.get_user(session.user_id)
            if role is None or user is None:
                return None
            return Principal.for_user(user.id, user.email, role, session.org_id,
                                      session.id_hash)

        found = await self._sessions.get(hash_token(token), load)
        return found if found is not None else self._anonymous(
            "Session ended or expired; sign in again")

    def _anonymous(self, reason: str) -> Principal:
        if self.auth_required:
            raise Unauthenticated(reason)
        return OPEN_INSTALLATION


def api_key_from(conn: HTTPConnection) -> str | None:
    """The API key sent as ``Authorization: Bearer <key>`` or ``x-api-key``, if any.

    ``?api_key=`` is read on a WebSocket only (browsers cannot set its headers).
    """
    auth = conn.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    key = conn.headers.get("x-api-key", "").strip()
    if key:
        return key
    if conn.scope["type"] == "websocket":
        return conn.query_params.get("api_key", "").strip() or None
    return None


def same_origin(conn: HTTPConnection) -> bool:
    """Whether the request's ``Origin`` (or ``Referer``) is this server's own host.

    A state-changing request carried by a cookie must be: the CSRF check.
    """
    origin = conn.headers.get("origin") or conn.headers.get("referer")
    if not origin:
        return False
    host = conn.headers.get("host", "")
    return urlsplit(origin).netloc == host


async def authenticate(conn: HTTPConnection) -> Principal:
    """The caller of a request: by API key, else by session cookie, else anonymous.

    Raises:
        Unauthenticated: auth is required and no valid credential came (401).
        Forbidden: a cookie-authenticated change (or WebSocket) from another site (403).
    """
    from mentatlab.server.state import server_state

    auth = server_state(conn).auth
    key = api_key_from(conn)
    token = conn.cookies.get(SESSION_COOKIE)
    if key is not None or not token:
        return await auth.for_key(key)
    method = "WS" if conn.scope["type"] == "websocket" else conn.scope.get("method", "GET")
    if method not in _SAFE_METHODS and not same_origin(conn):
        raise Forbidden("origin", "A request authenticated by the session cookie must come "
                        "from this server's own pages")
    return await auth.for_session(token)


def route_need(conn: HTTPConnection) -> tuple[str, str]:
    """``(method, path template)`` of the matched route (``WS`` for a WebSocket)."""
    route = conn.scope.get("route")
    path = str(getattr(route, "path", "") or conn.scope.get("path", ""))
    method = "WS" if conn.scope["type"] == "websocket" else str(conn.scope.get("method", "GET"))
    return method, path


async def authorize(conn: HTTPConnection) -> Principal:
    """Route dependency: authenticate the caller and check the permission its route needs.

    The route's need comes from :data:`mentatlab.access.routes.ROUTE_PERMISSIONS`; a
    route missing there is refused for everyone.

    Raises:
        Unauthenticated: (401) no valid credential where one is needed.
        Forbidden: (403) the caller's role lacks the route's permission, or the route is
            not in the permission matrix.
        RateLimited: (429) the caller's key or org is over its ingest-request or query
            rate (:mod:`mentatlab.server.quotas`).
    """
    cached: Principal | None = getattr(conn.state, "principal", None)
    if cached is not None:
        return cached
    method, path = route_need(conn)
    need = need_of(method, path)
    if need is None:
        _log.error("Route %s %s is not in the permission matrix; refusing it", method, path)
        raise Forbidden("route", f"{method} {path} is not in the permission matrix")
    if need == PUBLIC:
        principal = _NOBODY
    else:
        principal = await authenticate(conn)
        if isinstance(need, Permission):
            principal.require(need)
            from mentatlab.server.state import server_state

            server_state(conn).quotas.admit_request(principal, need)
    conn.state.principal = principal
    return principal
