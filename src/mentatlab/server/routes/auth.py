"""Sign-in for the dashboard: OIDC for people, an API key where there is no OIDC, sign-out.

``GET /auth/login`` sends the browser to the provider (authorization code + PKCE S256);
``GET /auth/callback`` takes the code back, checks the ID token
(:mod:`mentatlab.access.oidc`), sets the person's roles from the role claim, opens a
session and sets the ``mentat_session`` cookie. Between the two, the state, nonce and PKCE
verifier travel in a cookie (``mentat_oidc``, 10 minutes, path ``/auth``) signed with a
key derived from the client secret, so any node can finish a sign-in another began.

``POST /auth/key`` opens a session for a ``read`` or ``admin`` API key; ``POST
/auth/logout`` ends the caller's session.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from typing import Annotated, Any

import anyio.to_thread
import httpx
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey
from pydantic import BaseModel, Field

from mentatlab.access.oidc import (
    OidcClient,
    OidcConfig,
    ProviderUnavailable,
    SignInRefused,
    merge_userinfo,
    roles_from_claim,
)
from mentatlab.errors import FieldError, Forbidden, ValidationError
from mentatlab.server.audit_trail import audit
from mentatlab.server.auth import SESSION_COOKIE, same_origin
from mentatlab.server.deps import Caller
from mentatlab.server.errors import ApiError, error_responses
from mentatlab.server.state import control_store, server_state
from mentatlab.storage.control import ControlStore

__all__ = ["STATE_COOKIE", "KeySignIn", "router"]

_log = logging.getLogger(__name__)
router = APIRouter(prefix="/auth", tags=["auth"])
STATE_COOKIE = "mentat_oidc"
"""Cookie carrying one sign-in's state, nonce and PKCE verifier (signed, 10 minutes)."""
_STATE_TTL_S = 600
_HTTP_ERRORS: tuple[type[Exception], ...] = (httpx.HTTPError, ValueError)
try:  # Authlib's client runs on httpx2 when it is installed, else on httpx
    import httpx2

    _HTTP_ERRORS += (httpx2.HTTPError,)
except ImportError:  # pragma: no cover - depends on what else is installed
    pass
_ORG = Query(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$",
             description="The org the session acts in (default: the first the person "
             "belongs to, by id).")


class KeySignIn(BaseModel):
    """An API key to open a dashboard session with."""

    key: str = Field(min_length=1, max_length=200, description="A `read` or `admin` key.")


def _client(request: Request) -> OidcClient:
    """The server's OIDC client (created at the first sign-in; fetches nothing yet).

    Raises:
        ApiError: (404) OIDC sign-in is not configured.
    """
    client: OidcClient | None = getattr(request.app.state, "oidc", None)
    if client is None:
        config = OidcConfig.from_settings(server_state(request).settings)
        if config is None:
            raise ApiError(404, "OIDC sign-in is not configured", [FieldError(
                "oidc_issuer", "Unset on this server; sign in with an API key "
                "(POST /auth/key)")])
        client = OidcClient(config)
        request.app.state.oidc = client
    return client


def _state_key(config: OidcConfig) -> OctKey:
    secret = hmac.new(config.client_secret.encode(), b"mentatlab oidc sign-in state",
                      hashlib.sha256).digest()
    return OctKey.import_key(secret)


def _redirect_url(request: Request, config: OidcConfig) -> str:
    return config.redirect_url or str(request.url_for("oidc_callback"))


def _set_cookie(request: Request, response: Response, name: str, value: str, *,
                max_age_s: int, path: str = "/") -> None:
    response.set_cookie(name, value, max_age=max_age_s, path=path, httponly=True,
                        samesite="lax", secure=server_state(request).settings.tls_enabled)


@router.get("/login", summary="Sign in with the OIDC provider (redirects there)",
            status_code=303, responses=error_responses(404, 422, 503))
async def oidc_login(request: Request, org: Annotated[str | None, _ORG] = None) -> Response:
    """Redirect (303) to the provider's authorization endpoint.

    The request carries PKCE (S256), state and nonce; their secrets go in the signed
    ``mentat_oidc`` cookie for ``/auth/callback``.
    """
    from authlib.integrations.httpx_client import AsyncOAuth2Client  # sign-ins only (~50 ms)

    oidc = _client(request)
    metadata = await oidc.metadata()
    config = oidc.config
    state, nonce, verifier = (secrets.token_urlsafe(32) for _ in range(3))
    async with AsyncOAuth2Client(config.client_id, config.client_secret, scope=config.scopes,
                                 redirect_uri=_redirect_url(request, config),
                                 code_challenge_method="S256") as client:
        url, _ = client.create_authorization_url(
            metadata["authorization_endpoint"], state=state, nonce=nonce,
            code_verifier=verifier)
    saved = {"state": state, "nonce": nonce, "verifier": verifier, "org": org,
             "exp": int(time.time()) + _STATE_TTL_S}
    response = RedirectResponse(url, status_code=303)
    _set_cookie(request, response, STATE_COOKIE,
                jwt.encode({"alg": "HS256"}, saved, _state_key(config)),
                max_age_s=_STATE_TTL_S, path="/auth")
    return response


def _saved_state(request: Request, config: OidcConfig, state: str | None) -> dict[str, Any]:
    """The sign-in's saved secrets, if the cookie is ours, fresh, and matches ``state``.

    Raises:
        SignInRefused: (field ``state``) no cookie, a forged or expired one, or another state.
    """
    cookie = request.cookies.get(STATE_COOKIE)
    if not cookie:
        raise SignInRefused("state", "No sign-in in progress in this browser (cookie "
                            f"{STATE_COOKIE} missing); start again at /auth/login")
    try:
        token = jwt.decode(cookie, _state_key(config), algorithms=["HS256"])
        jwt.JWTClaimsRegistry(exp={"essential": True}).validate(token.claims)
    except (JoseError, ValueError) as exc:
        raise SignInRefused("state", f"The sign-in cookie is invalid or expired ({exc}); "
                            "start again at /auth/login") from exc
    saved = dict(token.claims)
    if not state or not hmac.compare_digest(str(saved.get("state", "")), state):
        raise SignInRefused("state", "The state does not match this browser's sign-in")
    return saved


@router.get("/callback", name="oidc_callback", status_code=303,
            summary="The provider's redirect back: checks the sign-in and opens a session",
            responses=error_responses(401, 403, 404, 422, 503))
async def oidc_callback(
    request: Request,
    code: Annotated[str | None, Query(max_length=2048)] = None,
    state: Annotated[str | None, Query(max_length=512)] = None,
    error: Annotated[str | None, Query(max_length=256)] = None,
    error_description: Annotated[str | None, Query(max_length=1024)] = None,
    iss: Annotated[str | None, Query(max_length=2048)] = None,
) -> Response:
    """Exchange the code (with the PKCE verifier), check the ID token, sign the person in.

    Answers 303 to ``/`` with the ``mentat_session`` cookie set. 401 when the state, code or
    ID token is refused, 403 when the person has no role in the org asked for (or in any),
    503 when the provider cannot be reached.
    """
    oidc = _client(request)
    config = oidc.config
    saved = _saved_state(request, config, state)
    if iss is not None and iss != config.issuer:  # RFC 9207: a mix-up with another provider
        raise SignInRefused("iss", f"Expected the answer of {config.issuer!r}, got {iss!r}")
    if error:
        raise SignInRefused("error", f"The provider refused the sign-in: {error}"
                            + (f" ({error_description})" if error_description else ""))
    if not code:
        raise SignInRefused("code", "Expected an authorization code")
    claims = await _exchange(request, oidc, code, saved)
    control = control_store(request)
    settings = server_state(request).settings
    token = await anyio.to_thread.run_sync(
        lambda: _open_session(control, config, claims, saved.get("org"),
                              settings.session_ttl_s))
    response = RedirectResponse("/", status_code=303)
    _set_cookie(request, response, SESSION_COOKIE, token, max_age_s=settings.session_ttl_s)
    response.delete_cookie(STATE_COOKIE, path="/auth")
    return response


async def _exchange(request: Request, oidc: OidcClient, code: str,
                    saved: dict[str, Any]) -> dict[str, Any]:
    """The checked claims of the person: ID token, completed by UserInfo.

    Raises:
        SignInRefused: the provider refused the code, or the ID token is refused.
        ProviderUnavailable: the provider cannot be reached.
    """
    from authlib.integrations.base_client.errors import OAuthError  # sign-ins only (~50 ms)
    from authlib.integrations.httpx_client import AsyncOAuth2Client

    config = oidc.config
    metadata = await oidc.metadata()
    async with AsyncOAuth2Client(config.client_id, config.client_secret,
                                 redirect_uri=_redirect_url(request, config),
                                 timeout=oidc.timeout_s, leeway=0) as client:
        try:
            tokens = await client.fetch_token(
                metadata["token_endpoint"], grant_type="authorization_code", code=code,
                code_verifier=saved["verifier"])
        except OAuthError as exc:
            raise SignInRefused("code", f"The provider refused the code: {exc.error}"
                                f" ({exc.description})") from exc
        except _HTTP_ERRORS as exc:
            raise ProviderUnavailable(f"Token request failed: {exc}") from exc
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise SignInRefused("id_token", "The provider sent no ID token (is the "
                                "'openid' scope asked for?)")
        claims = await oidc.validate_id_token(id_token, str(saved["nonce"]))
        userinfo_url = metadata.get("userinfo_endpoint")
        if isinstance(userinfo_url, str) and tokens.get("access_token"):
            try:
                answer = await client.get(userinfo_url)
                answer.raise_for_status()
                userinfo = answer.json()
            except _HTTP_ERRORS as exc:
                raise ProviderUnavailable(f"UserInfo request failed: {exc}") from exc
            if isinstance(userinfo, dict):
                claims = merge_userinfo(claims, userinfo)
    return claims


def _open_session(control: ControlStore, config: OidcConfig, claims: dict[str, Any],
                  org: str | None, ttl_s: int) -> str:
    """Find or create the person, apply the role claim, and open a session; its token.

    Raises:
        SignInRefused: (``email``) no email, or one the provider says is unverified.
        Forbidden: (``org_id``) no role in ``org`` (or, without ``org``, in any org).
    """
    email = claims.get("email")
    if not isinstance(email, str) or not email:
        raise SignInRefused("email", "The provider released no email (ask for the 'email' "
                            "scope)")
    if claims.get("email_verified") is False:
        raise SignInRefused("email", f"The provider says {email} is not verified")
    name = claims.get("name")
    identities = control.identities
    try:
        user = identities.sign_in_oidc(config.issuer, str(claims["sub"]), email,
                                       name if isinstance(name, str) else "")
    except ValidationError as exc:
        raise SignInRefused(exc.field, exc.reason) from exc
    if config.role_claim:
        _apply_role_claim(control, user.id, roles_from_claim(claims.get(config.role_claim)))
    roles = {m.org_id: m.role for m in identities.memberships_of(user.id)}
    if not roles and config.default_org and _give_role(
            control, user.id, config.default_org, config.default_role):
        roles[config.default_org] = config.default_role
    if org is None and roles:
        org = min(roles)
    if org is None or org not in roles:
        where = f"org {org!r}" if org else "any org"
        raise Forbidden("org_id", f"{email} has no role in {where} of this MentatLab; an "
                        "admin gives one (mentatctl members set) or the provider's "
                        f"{config.role_claim or 'role'} claim does")
    token, _ = identities.create_session(user_id=user.id, org_id=org, ttl_s=ttl_s)
    control.audit.record(f"user:{user.id}", "login", org_id=org, target=user.id,
                         details={"method": "oidc", "role": roles[org]})  # ids only: no email
    _log.info("%s signed in through OIDC to org %s as %s", email, org, roles[org])
    return token


def _apply_role_claim(control: ControlStore, user_id: str, claimed: dict[str, str]) -> None:
    """Make the person's OIDC-given roles what the claim says.

    Roles given in MentatLab (source ``manual``) that the claim does not name stay; orgs
    unknown here are skipped.
    """
    identities = control.identities
    for member in identities.memberships_of(user_id):
        if member.source == "oidc" and member.org_id not in claimed and \
                not _last_owner(control, user_id, member.org_id, member.role):
            identities.remove_member(user_id, member.org_id)
            control.audit.record("system", "member.removed", org_id=member.org_id,
                                 target=user_id, details={"source": "oidc"})
    current = {m.org_id: m.role for m in identities.memberships_of(user_id)}
    for org_id, role in claimed.items():
        if current.get(org_id) != role and (
                role == "owner" or not _last_owner(control, user_id, org_id, current.get(org_id))):
            _give_role(control, user_id, org_id, role)


def _last_owner(control: ControlStore, user_id: str, org_id: str, role: str | None) -> bool:
    """Whether the person is ``org_id``'s only owner (kept so: an org keeps one owner)."""
    if role != "owner" or control.identities.count_owners(org_id) > 1:
        return False
    _log.warning("OIDC claim would demote or remove user %s, the only owner of org %s: kept "
                 "as owner (make someone else owner first)", user_id, org_id)
    return True


def _give_role(control: ControlStore, user_id: str, org_id: str, role: str) -> bool:
    """Set an OIDC-given role (audited); False (logged) when the org does not exist here."""
    try:
        control.identities.set_role(user_id, org_id, role, source="oidc")
    except ValidationError as exc:
        _log.info("OIDC role %s in org %r not given: %s", role, org_id, exc.reason)
        return False
    control.audit.record("system", "member.role_changed", org_id=org_id, target=user_id,
                         details={"role": role, "source": "oidc"})
    return True


@router.post("/key", summary="Open a dashboard session with a read or admin API key",
             responses=error_responses(401, 403, 422, 503))
async def key_sign_in(request: Request, body: KeySignIn) -> JSONResponse:
    """Set the ``mentat_session`` cookie for a session bound to the key.

    The session ends when the key is revoked. ``ingest`` keys are refused (403).
    """
    origin = request.headers.get("origin")
    if origin is not None and not same_origin(request):
        raise Forbidden("origin", "Sign-in must come from this server's own pages")
    control = control_store(request)

    def open_session() -> tuple[str, str]:
        scope = control.resolve_api_key(body.key)
        if scope is None:
            raise SignInRefused("key", "Unknown, revoked or expired API key")
        if scope.role not in ("read", "admin"):
            raise Forbidden("key", f"A {scope.role!r} key cannot sign in; use a read or "
                            "admin key")
        token, _ = control.identities.create_session(
            key_id=scope.key_id, ttl_s=server_state(request).settings.session_ttl_s)
        control.audit.record(f"key:{scope.key_id}", "login", org_id=scope.org_id,
                             project_id=scope.project_id, target=scope.key_id,
                             details={"method": "key"})
        return token, scope.role

    token, role = await anyio.to_thread.run_sync(open_session)
    response = JSONResponse({"ok": True, "kind": "key", "role": f"key:{role}"})
    _set_cookie(request, response, SESSION_COOKIE, token,
                max_age_s=server_state(request).settings.session_ttl_s)
    return response


@router.post("/logout", summary="End the dashboard session and clear its cookie",
             responses=error_responses(401, 403))
async def logout(request: Request, caller: Caller) -> JSONResponse:
    """End the session of the ``mentat_session`` cookie and clear the cookie.

    The session stops working at once on this node, within ``auth_cache_s`` on the others;
    ``ended`` says whether there was one to end.
    """
    token = request.cookies.get(SESSION_COOKIE)
    ended = False
    if token:
        ended = await anyio.to_thread.run_sync(control_store(request).identities.end_session,
                                               token)
        server_state(request).auth.forget()
        await audit(request, caller, "logout", target=caller.id, details={"ended": ended})
    _log.info("%s signed out (session ended: %s)", caller.name, ended)
    response = JSONResponse({"ok": True, "ended": ended})
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax",
                           secure=server_state(request).settings.tls_enabled)
    return response
