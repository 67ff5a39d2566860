"""The ``stack`` fixture: a real OIDC provider and a MentatLab server using it (oidckit)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

from oidckit import CLIENT_ID, CLIENT_SECRET, Stack, serve, start_provider  # noqa: E402
from serverkit import make_settings  # noqa: E402

from serve_process import free_port  # noqa: E402


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("oidc")
    port = free_port()
    provider = start_provider(folder / "provider", f"http://127.0.0.1:{port}/auth/callback")
    try:
        settings = make_settings(
            folder / "data", auth_required=True, oidc_issuer=provider.issuer,
            oidc_client_id=CLIENT_ID, oidc_client_secret=CLIENT_SECRET,
            oidc_scopes="openid email profile groups", oidc_role_claim="groups")
        for url, control in serve(settings, port):
            control.create_org("Acme", "acme")
            control.create_org("Globex", "globex")
            yield Stack(provider, url, control, settings)
    finally:
        provider.process.terminate()
        provider.process.wait(10)
