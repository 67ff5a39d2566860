"""Key lifecycle through `mentatctl`, on two server processes sharing one control store.

`mentatctl keys create --bootstrap` issues the first admin key straight into the control
store; every later step goes through a node's API with the CLI. Both nodes cache key
lookups; a key revoked or rotated through one node must be refused by the other within
1 s (``auth_cache_s`` is 0.5 s). Runs on SQLite and PostgreSQL control stores.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scale_out"))

from nodes import Node, start_node  # noqa: E402

from serve_process import stop  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

REVOCATION_BOUND_S = 1.0


def _cli(env: dict[str, str], *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "mentatlab.cli.main", *args],
                          env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=120)
    if ok:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.fixture
def two_nodes(control_store_url: str, tmp_path: Path) -> Iterator[tuple[list[Node], dict]]:
    env = {"MENTATLAB_CONTROL_STORE": control_store_url, "MENTATLAB_AUTH_REQUIRED": "true",
           "MENTATLAB_ALERT_INTERVAL_S": "0", "MENTATLAB_URL": "", "MENTATLAB_API_KEY": ""}
    boot = _cli(env, "keys", "create", "--bootstrap", "--data-dir", str(tmp_path / "a"),
                "--name", "first-admin")
    assert "admin key" in boot.stderr and "whole installation" in boot.stderr
    env["BOOTSTRAP_KEY"] = boot.stdout.strip()
    assert env["BOOTSTRAP_KEY"].startswith("mtl_")
    nodes: list[Node] = []
    try:
        for name in ("a", "b"):
            nodes.append(start_node(tmp_path / name, env))
        yield nodes, env
    finally:
        for node in nodes:
            stop(node.proc)


def _status(node: Node, key: str, path: str = "/api/v1/overview") -> int:
    return httpx.get(f"{node.url}{path}", headers={"x-api-key": key}, timeout=30).status_code


def _refused_on_both_within_bound(nodes: list[Node], key: str, since: float) -> None:
    assert _status(nodes[0], key) == 401  # the node that revoked forgets at once
    time.sleep(max(0.0, since + REVOCATION_BOUND_S - time.monotonic()))
    assert _status(nodes[1], key) == 401


def test_keys_from_bootstrap_to_revocation_on_every_node(
        two_nodes: tuple[list[Node], dict]) -> None:
    nodes, env = two_nodes
    a, b = nodes
    admin = {**env, "MENTATLAB_URL": a.url, "MENTATLAB_API_KEY": env["BOOTSTRAP_KEY"]}
    _cli(admin, "orgs", "create", "Acme", "--id", "acme")
    org_admin = _cli(admin, "keys", "create", "--org", "acme", "--role", "admin",
                     "--name", "acme-admin").stdout.strip()
    as_org_admin = {**admin, "MENTATLAB_API_KEY": org_admin}
    reader = _cli(as_org_admin, "keys", "create", "--role", "read", "--name", "dash").stdout
    reader = reader.strip()
    # an org admin cannot make an installation-wide key or one of another org
    refused = _cli(as_org_admin, "orgs", "create", "Globex", "--id", "globex", ok=False)
    assert refused.returncode != 0 and "403" in refused.stdout + refused.stderr

    # both nodes know the key, and cache it
    assert _status(a, reader) == 200 and _status(b, reader) == 200
    listed = _cli(as_org_admin, "keys", "list").stdout
    assert "dash" in listed and "read" in listed and reader not in listed
    key_id = next(k["id"] for k in httpx.get(
        f"{a.url}/api/v1/keys", headers={"x-api-key": org_admin}, timeout=30).json()["keys"]
        if k["name"] == "dash")
    assert _status(a, reader) == 200 and _status(b, reader) == 200

    revoked = _cli(as_org_admin, "keys", "revoke", key_id)
    since = time.monotonic()
    assert key_id in revoked.stdout
    _refused_on_both_within_bound(nodes, reader, since)

    # rotation: the old key stops everywhere, the new one works everywhere
    ingest = _cli(as_org_admin, "keys", "create", "--name", "agent").stdout.strip()
    ingest_id = next(k["id"] for k in httpx.get(
        f"{a.url}/api/v1/keys", headers={"x-api-key": org_admin}, timeout=30).json()["keys"]
        if k["name"] == "agent")
    body = {"resourceSpans": []}
    assert httpx.post(f"{b.url}/v1/traces", json=body, headers={"x-api-key": ingest},
                      timeout=30).status_code == 200
    assert _status(b, ingest) == 403  # an ingest key never reads
    rotated = _cli(as_org_admin, "keys", "rotate", ingest_id)
    since = time.monotonic()
    new_key = rotated.stdout.strip()
    assert new_key.startswith("mtl_") and new_key != ingest
    assert httpx.post(f"{a.url}/v1/traces", json=body, headers={"x-api-key": ingest},
                      timeout=30).status_code == 401
    time.sleep(max(0.0, since + REVOCATION_BOUND_S - time.monotonic()))
    for node in nodes:
        assert httpx.post(f"{node.url}/v1/traces", json=body, headers={"x-api-key": ingest},
                          timeout=30).status_code == 401
        assert httpx.post(f"{node.url}/v1/traces", json=body, headers={"x-api-key": new_key},
                          timeout=30).status_code == 200


def test_members_through_the_cli(two_nodes: tuple[list[Node], dict]) -> None:
    nodes, env = two_nodes
    admin = {**env, "MENTATLAB_URL": nodes[1].url, "MENTATLAB_API_KEY": env["BOOTSTRAP_KEY"]}
    _cli(admin, "orgs", "create", "Acme", "--id", "acme")
    set_out = _cli(admin, "members", "set", "ana@acme.test", "viewer", "--org", "acme").stdout
    assert "ana@acme.test is viewer of acme" in set_out
    _cli(admin, "members", "set", "ana@acme.test", "billing", "--org", "acme")
    listed = _cli(admin, "members", "list", "--org", "acme").stdout
    assert "ana@acme.test" in listed and "billing" in listed and "viewer" not in listed
    members = httpx.get(f"{nodes[0].url}/api/v1/members", params={"org_id": "acme"},
                        headers={"x-api-key": env["BOOTSTRAP_KEY"]}, timeout=30).json()
    user_id = members["members"][0]["user_id"]
    _cli(admin, "members", "remove", user_id, "--org", "acme")
    assert "ana@acme.test" not in _cli(admin, "members", "list", "--org", "acme").stdout
    bad = _cli(admin, "members", "set", "ana@acme.test", "superuser", "--org", "acme", ok=False)
    assert bad.returncode != 0 and "role" in bad.stdout + bad.stderr


def test_bootstrap_refuses_a_bad_role(control_store_url: str, tmp_path: Path) -> None:
    env = {"MENTATLAB_CONTROL_STORE": control_store_url}
    done = _cli(env, "keys", "create", "--bootstrap", "--data-dir", str(tmp_path),
                "--role", "root", ok=False)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "role" in done.stdout + done.stderr
