"""OpenID Connect sign-in for people: provider metadata and keys, ID tokens, role claim.

The server is a confidential client of one OIDC provider (``oidc_issuer``) using the
authorization code flow with PKCE (S256). The provider's discovery document and signing
keys (JWKS) are fetched at the first sign-in, never at import or start, and kept; the
keys are fetched again once when a token names a key id they lack (key rotation).

An ID token is accepted only when its signature verifies against the provider's keys and
``iss`` is the issuer, ``aud`` holds the client id (``azp`` is the client id when there are
several audiences), ``exp`` is in the future and ``iat`` not, and ``nonce`` is the one this
sign-in sent (all with ``oidc_leeway_s`` of clock skew).

Role claim (``oidc_role_claim``, default ``groups``): a list of strings (or one
space-separated string) whose entries ``<org_id>:<role>`` (role one of ``owner``, ``admin``,
``member``, ``viewer``, ``billing``) give the person that role in that org. Other entries
are ignored. See :func:`roles_from_claim`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from mentatlab.access.roles import USER_ROLES
from mentatlab.errors import FieldError, StoreUnavailable, Unauthenticated
from mentatlab.settings import Settings

__all__ = [
    "ID_TOKEN_ALGORITHMS",
    "OidcClient",
    "OidcConfig",
    "ProviderUnavailable",
    "SignInRefused",
    "merge_userinfo",
    "roles_from_claim",
]

ID_TOKEN_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
                       "ES384", "ES512", "EdDSA")
"""Asymmetric signature algorithms accepted on ID tokens (never ``none`` or HMAC)."""
_MAX_CLAIM_ENTRIES = 1_000


class SignInRefused(Unauthenticated):
    """A sign-in step failed its checks (401): bad state, code, or ID token.

    ``field`` names what was refused (``state``, ``code``, ``id_token``...).
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.errors = [FieldError(field, reason)]


class ProviderUnavailable(StoreUnavailable):
    """The OIDC provider could not be reached or answered nonsense (HTTP 503).

    A :class:`StoreUnavailable` in the error table: like a store, an outside service the
    server needs is down, and the client may retry (``Retry-After``).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"The sign-in provider is unavailable: {reason}")
        self.errors = [FieldError("oidc_issuer", reason)]


@dataclass(frozen=True, slots=True)
class OidcConfig:
    """The OIDC settings the sign-in needs (see docs/settings.md)."""

    issuer: str
    client_id: str
    client_secret: str
    scopes: str
    role_claim: str
    default_org: str
    default_role: str
    leeway_s: int
    redirect_url: str
    """Empty: derived from the request (``/auth/callback`` on the host it came to)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> OidcConfig | None:
        """The OIDC configuration, or None when ``oidc_issuer`` is unset (OIDC off)."""
        if not settings.oidc_issuer:
            return None
        return cls(settings.oidc_issuer, settings.oidc_client_id,
                   settings.oidc_client_secret, settings.oidc_scopes, settings.oidc_role_claim,
                   settings.oidc_default_org, settings.oidc_default_role,
                   settings.oidc_leeway_s, settings.oidc_redirect_url)


def roles_from_claim(value: Any) -> dict[str, str]:
    """Org id → role from a role claim value.

    Args:
        value: the claim: a list of strings, or one string of space-separated entries;
            entries look like ``acme:admin``. Anything else (None, numbers, unknown roles,
            entries without a colon) gives nothing.

    Returns:
        ``{org_id: role}``; when an org is named twice the stronger role wins (the order
        of ``USER_ROLES``: owner, admin, member, viewer, billing).
    """
    entries = value.split() if isinstance(value, str) else value
    if not isinstance(entries, list):
        return {}
    rank = {role: i for i, role in enumerate(USER_ROLES)}
    out: dict[str, str] = {}
    for entry in entries[:_MAX_CLAIM_ENTRIES]:
        if not isinstance(entry, str):
            continue
        org, sep, role = entry.rpartition(":")
        if not sep or not org or role not in rank:
            continue
        if org not in out or rank[role] < rank[out[org]]:
            out[org] = role
    return out


class OidcClient:
    """The provider's metadata and keys (fetched lazily, cached) and the ID-token check.

    Args:
        config: the OIDC settings.
        timeout_s: timeout of each request to the provider, in seconds.
    """

    def __init__(self, config: OidcConfig, timeout_s: float = 10.0) -> None:
        self.config = config
        self.timeout_s = timeout_s
        self._metadata: dict[str, Any] | None = None
        self._keys: KeySet | None = None

    async def metadata(self) -> dict[str, Any]:
        """The provider's discovery document (``/.well-known/openid-configuration``).

        Raises:
            ProviderUnavailable: unreachable, not JSON, or its ``issuer`` is not exactly the
                configured one (OIDC Discovery 1.0 §4.3).
        """
        if self._metadata is None:
            url = f"{self.config.issuer.rstrip('/')}/.well-known/openid-configuration"
            document = await self._get_json(url)
            if document.get("issuer") != self.config.issuer:  # identical, slash included
                raise ProviderUnavailable(f"Expected the discovery document of issuer "
                                          f"{self.config.issuer!r}, got issuer "
                                          f"{document.get('issuer')!r} (set oidc_issuer "
                                          "to exactly that)")
            for needed in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not isinstance(document.get(needed), str):
                    raise ProviderUnavailable(f"Discovery document lacks {needed}")
            self._metadata = document
        return self._metadata

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s) as client:
                response = await client.get(url, headers={"accept": "application/json"})
                response.raise_for_status()
                body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ProviderUnavailable(f"Cannot read {url}: {exc}") from exc
        if not isinstance(body, dict):
            raise ProviderUnavailable(f"Expected a JSON object from {url}")
        return body

    async def _key_set(self, refresh: bool = False) -> KeySet:
        if self._keys is None or refresh:
            jwks = await self._get_json((await self.metadata())["jwks_uri"])
            try:
                self._keys = KeySet.import_key_set(jwks)  # type: ignore[arg-type]
            except (JoseError, ValueError, TypeError, KeyError) as exc:
                raise ProviderUnavailable(f"The provider's JWKS is unusable: {exc}") from exc
        return self._keys

    async def validate_id_token(self, id_token: str, nonce: str,
                                now: float | None = None) -> dict[str, Any]:
        """Check an ID token and return its claims.

        Args:
            id_token: the compact JWS from the token endpoint.
            nonce: the nonce this sign-in sent in the authorization request.
            now: the time to check ``exp``/``iat`` against, in Unix seconds (default now).

        Raises:
            SignInRefused: (field ``id_token``) bad signature or form, wrong issuer or
                audience, expired, issued in the future, or another nonce.
            ProviderUnavailable: the provider's keys cannot be fetched.
        """
        try:
            token = await self._decode(id_token)
        except (JoseError, ValueError) as exc:
            raise SignInRefused("id_token", f"ID token refused: {exc}") from exc
        claims = dict(token.claims)
        registry = jwt.JWTClaimsRegistry(
            now=int(now if now is not None else time.time()), leeway=self.config.leeway_s,
            iss={"essential": True, "value": self.config.issuer},
            aud={"essential": True, "value": self.config.client_id},
            sub={"essential": True}, exp={"essential": True}, iat={"essential": True},
            nonce={"essential": True, "value": nonce})
        try:
            registry.validate(claims)
        except JoseError as exc:
            raise SignInRefused("id_token", f"ID token refused: {exc}") from exc
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != self.config.client_id:
            raise SignInRefused("id_token", "ID token refused: several audiences and azp "
                                f"is not {self.config.client_id!r}")
        return claims

    async def _decode(self, id_token: str) -> jwt.Token:
        keys = await self._key_set()
        try:
            return jwt.decode(id_token, keys, algorithms=list(ID_TOKEN_ALGORITHMS))
        except InvalidKeyIdError:
            # the provider may have rotated its keys since they were fetched: once more
            return jwt.decode(id_token, await self._key_set(refresh=True),
                              algorithms=list(ID_TOKEN_ALGORITHMS))


def merge_userinfo(claims: Mapping[str, Any], userinfo: Mapping[str, Any]) -> dict[str, Any]:
    """ID-token claims completed by the UserInfo answer (same ``sub`` only).

    Raises:
        SignInRefused: (field ``userinfo``) the UserInfo ``sub`` differs (OIDC Core §5.3.2).
    """
    if userinfo.get("sub") != claims.get("sub"):
        raise SignInRefused("userinfo", "UserInfo answered for another subject")
    return {**userinfo, **claims}
