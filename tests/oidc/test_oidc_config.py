"""The role claim's grammar, sign-in without (or with an unreachable) provider, and the
ID-token check against key confusion."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import OctKey
from oidckit import CLIENT_ID, CLIENT_SECRET, Stack
from serverkit import make_settings, open_in_process

from mentatlab.access.oidc import OidcClient, OidcConfig, SignInRefused, roles_from_claim
from mentatlab.errors import ConfigError
from mentatlab.settings import load_settings
from serve_process import free_port


@pytest.mark.parametrize(("claim", "roles"), [
    (["acme:admin", "globex:viewer"], {"acme": "admin", "globex": "viewer"}),
    ("acme:member globex:billing", {"acme": "member", "globex": "billing"}),
    (["acme:viewer", "acme:owner", "acme:member"], {"acme": "owner"}),  # strongest wins
    (["team:a:admin"], {"team:a": "admin"}),  # org ids may hold colons
    (["engineering", "acme:superuser", ":admin", 7, None], {}),
    (None, {}), (42, {}), ({"acme": "admin"}, {}),
])
def test_roles_from_claim(claim: Any, roles: dict[str, str]) -> None:
    assert roles_from_claim(claim) == roles


def test_oidc_needs_a_client_id_and_secret(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="oidc_client_id"):
        load_settings(data_dir=tmp_path, oidc_issuer="https://id.example.com")
    with pytest.raises(ConfigError, match="oidc_default_role"):
        load_settings(data_dir=tmp_path, oidc_default_role="root")
    with pytest.raises(ConfigError, match="http"):
        load_settings(data_dir=tmp_path, oidc_issuer="id.example.com", oidc_client_id="a",
                      oidc_client_secret="b")


async def test_sign_in_without_oidc_is_404(tmp_path: Path) -> None:
    async with open_in_process(make_settings(tmp_path, auth_required=True)) as server:
        for path in ("/auth/login", "/auth/callback?code=x&state=y"):
            answer = await server.client.get(path)
            assert answer.status_code == 404, answer.text
            assert answer.json()["errors"][0]["field"] == "oidc_issuer"


async def test_an_unreachable_provider_is_503_and_never_fetched_at_start(tmp_path: Path) -> None:
    issuer = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    settings = make_settings(tmp_path, auth_required=True, oidc_issuer=issuer,
                             oidc_client_id=CLIENT_ID, oidc_client_secret=CLIENT_SECRET)
    async with open_in_process(settings) as server:
        assert (await server.client.get("/readyz")).status_code == 200
        answer = await server.client.get("/auth/login")
        assert answer.status_code == 503, answer.text
        assert answer.json()["errors"][0]["field"] == "oidc_issuer"


@pytest.mark.e2e
@pytest.mark.xdist_group("oidc")
async def test_a_token_signed_with_the_client_secret_is_refused(stack: Stack) -> None:
    """Key confusion: an HMAC token keyed with the (shared) client secret is no ID token."""
    config = OidcConfig.from_settings(stack.settings)
    assert config is not None
    client = OidcClient(config)
    now = 1_900_000_000
    claims = {"iss": config.issuer, "aud": CLIENT_ID, "sub": "alice", "nonce": "n",
              "iat": now, "exp": now + 60}
    forged = jwt.encode({"alg": "HS256"}, claims, OctKey.import_key(CLIENT_SECRET.encode()))
    with pytest.raises(SignInRefused) as refused:
        await client.validate_id_token(forged, "n", now=now)
    assert refused.value.errors[0].field == "id_token"
