"""Sensitive actions through the real API land in the audit log; ``GET /api/v1/audit``
filters, pages and is scoped to the caller's org. On SQLite and PostgreSQL control stores.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

from serverkit import LiveServer, make_settings, run_live_server  # noqa: E402

from mentatlab.storage.control import ControlStore  # noqa: E402

HOOK = "webhook:http://127.0.0.1:9/never-called"


@dataclass
class Site:
    server: LiveServer
    control: ControlStore
    root: str
    """An installation-wide admin key."""
    root_id: str

    def call(self, key: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, self.server.url + path, headers={"x-api-key": key},
                             timeout=30, **kwargs)

    def audit(self, key: str, **params: Any) -> httpx.Response:
        return self.call(key, "GET", "/api/v1/audit", params=params)

    def ok(self, key: str, method: str, path: str, **kwargs: Any) -> Any:
        response = self.call(key, method, path, **kwargs)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
def site(_isolated_data_dir: Path, control_store_url: str) -> Iterator[Site]:
    # no built-in policies: their creation at start would add installation-wide entries
    settings = make_settings(_isolated_data_dir, auth_required=True,
                             control_store=control_store_url, policy_builtins=False)
    for server in run_live_server(settings):
        control: ControlStore = server.state.control
        issued = control.create_api_key(None, None, "root", role="admin", created_by="test")
        yield Site(server, control, issued.key, issued.info.id)


def actions(entries: list[dict[str, Any]]) -> list[str]:
    return [e["action"] for e in reversed(entries)]


def test_sensitive_actions_through_the_api_are_recorded(site: Site) -> None:
    root = site.root
    site.ok(root, "POST", "/api/v1/orgs", json={"name": "Acme", "id": "acme"})
    admin = site.ok(root, "POST", "/api/v1/keys", json={"org_id": "acme", "role": "admin",
                                                        "name": "ops"})["key"]
    read = site.ok(admin["secret"], "POST", "/api/v1/keys", json={"role": "read"})["key"]
    rotated = site.ok(admin["secret"], "POST", f"/api/v1/keys/{read['id']}/rotate")["key"]
    site.ok(admin["secret"], "DELETE", f"/api/v1/keys/{rotated['id']}")
    member = site.ok(admin["secret"], "POST", "/api/v1/members",
                     json={"email": "ana@acme.test", "role": "viewer"})["member"]
    site.ok(admin["secret"], "POST", "/api/v1/members",
            json={"email": "ana@acme.test", "role": "billing"})
    site.ok(admin["secret"], "DELETE", f"/api/v1/members/{member['user_id']}")
    budget = site.ok(admin["secret"], "POST", "/api/v1/alert-rules", json={
        "name": "monthly", "kind": "budget", "period": "month", "limit_amount": "100",
        "channels": [HOOK]})["rule"]
    site.ok(admin["secret"], "PATCH", f"/api/v1/alert-rules/{budget['id']}",
            json={"enabled": False})
    site.ok(admin["secret"], "DELETE", f"/api/v1/alert-rules/{budget['id']}")
    rule = site.ok(admin["secret"], "POST", "/api/v1/alert-rules", json={
        "name": "errors", "kind": "threshold", "metric": "errors", "threshold": "5",
        "channels": [HOOK]})["rule"]
    site.ok(admin["secret"], "DELETE", f"/api/v1/alert-rules/{rule['id']}")
    site.ok(admin["secret"], "POST", "/api/v1/reprice",
            params={"since": (datetime.now(UTC) - timedelta(hours=1)).isoformat()})
    csv = site.call(admin["secret"], "GET", "/api/v1/cost", params={"format": "csv"})
    assert csv.status_code == 200

    entries = site.audit(admin["secret"], limit=100).json()["entries"]
    assert actions(entries) == [
        "org.created", "key.created", "key.created", "key.rotated", "key.revoked",
        "member.role_changed", "member.role_changed", "member.removed", "budget.created",
        "budget.updated", "budget.deleted", "alert_rule.created", "alert_rule.deleted",
        "reprice", "export"]
    by_action = {e["action"]: e for e in reversed(entries)}  # newest of each
    created = [e for e in entries if e["action"] == "key.created"]
    assert created[-1]["actor"] == f"key:{site.root_id}"
    assert created[-1]["target"] == admin["id"] and created[-1]["details"]["role"] == "admin"
    assert created[0]["actor"] == f"key:{admin['id']}" and created[0]["target"] == read["id"]
    assert by_action["key.rotated"]["details"]["new_key_id"] == rotated["id"]
    assert by_action["member.role_changed"]["details"] == {
        "role": "billing", "previous_role": "viewer"}  # ids only: no email (issue 17)
    assert all(e["org_id"] == "acme" for e in entries)
    assert not any(admin["secret"] in str(e) or read["secret"] in str(e) for e in entries)
    assert site.control.audit.verify().ok


def _seed(site: Site) -> dict[str, str]:
    keys = {}
    for org in ("acme", "globex"):
        site.ok(site.root, "POST", "/api/v1/orgs", json={"name": org.title(), "id": org})
        keys[org] = site.ok(site.root, "POST", "/api/v1/keys", json={
            "org_id": org, "role": "admin", "name": f"{org}-admin"})["key"]["secret"]
    keys["acme-read"] = site.ok(keys["acme"], "POST", "/api/v1/keys",
                                json={"role": "read"})["key"]["secret"]
    keys["acme-web"] = site.ok(keys["acme"], "POST", "/api/v1/keys", json={
        "role": "admin", "project_id": "web"})["key"]["secret"]
    site.ok(keys["acme-web"], "POST", "/api/v1/keys", json={"role": "ingest",
                                                            "project_id": "web"})
    return keys


def test_reads_are_scoped_to_the_callers_org_and_project(site: Site) -> None:
    keys = _seed(site)
    acme = site.audit(keys["acme"]).json()["entries"]
    assert acme and {e["org_id"] for e in acme} == {"acme"}
    globex = site.audit(keys["globex"]).json()["entries"]
    assert {e["org_id"] for e in globex} == {"globex"}
    assert len(globex) == 2  # its org and its admin key
    web = site.audit(keys["acme-web"]).json()["entries"]
    assert [e["project_id"] for e in web] == ["web", "web"]
    everything = site.audit(site.root).json()["entries"]
    assert {e["org_id"] for e in everything} == {"acme", "globex"}
    only = site.audit(site.root, org_id="globex").json()["entries"]
    assert only == globex
    refused = site.audit(keys["acme"], org_id="globex")
    assert refused.status_code == 403 and "org_id" in refused.text
    assert site.audit(keys["acme-read"]).status_code == 403  # no read_audit
    assert site.call("", "GET", "/api/v1/audit").status_code == 401


def test_filters_and_paging(site: Site) -> None:
    _seed(site)
    root = site.root
    everything = site.audit(root).json()["entries"]
    assert [e["seq"] for e in everything] == list(range(len(everything), 0, -1))
    by_root = site.audit(root, actor=f"key:{site.root_id}").json()["entries"]
    assert by_root and all(e["actor"] == f"key:{site.root_id}" for e in by_root)
    assert len(by_root) == 4  # two orgs, two keys
    assert {e["action"] for e in site.audit(root, action="org.created").json()["entries"]} \
        == {"org.created"}
    family = site.audit(root, action="key.*").json()["entries"]
    assert len(family) == len(everything) - 2
    middle = everything[3]["at"]
    newer = site.audit(root, since=middle).json()["entries"]
    older = site.audit(root, until=middle).json()["entries"]
    assert len(newer) + len(older) == len(everything)
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert site.audit(root, since=future).json()["entries"] == []
    pages: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        page = site.audit(root, **params).json()
        pages += [e["seq"] for e in page["entries"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == [e["seq"] for e in everything]


@pytest.mark.parametrize(("params", "status", "field"), [
    ({"since": "yesterday"}, 422, "since"),
    ({"until": "3000-01-01T00:00:00Z"}, 422, "until"),
    ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, 400, "since"),
    ({"limit": 0}, 422, "limit"),
    ({"limit": 1001}, 422, "limit"),
    ({"cursor": 2**63}, 422, "cursor"),
    ({"action": "key.created; drop"}, 422, "action"),
    ({"actor": "x" * 201}, 422, "actor"),
    ({"actor": "key:\x00"}, 422, "actor"),
    ({"org_id": "acme\n"}, 422, "org_id"),
])
def test_bad_parameters_are_refused_naming_the_field(site: Site, params: dict[str, Any],
                                                     status: int, field: str) -> None:
    response = site.audit(site.root, **params)
    assert response.status_code == status, response.text
    assert field in response.text


def _mentatctl(*args: str) -> subprocess.CompletedProcess[str]:
    """The real command (a Rich console sized from ``COLUMNS`` at start, not at import)."""
    return subprocess.run([sys.executable, "-m", "mentatlab.cli.main", *args],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "200"})


def test_mentatctl_audit_list_reads_through_the_api(site: Site) -> None:
    keys = _seed(site)
    done = _mentatctl("audit", "list", "--url", site.server.url, "--api-key", keys["globex"],
                      "--action", "key.*")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "key.created" in done.stdout and "globex" in done.stdout
    assert "org.created" not in done.stdout and "acme" not in done.stdout
    refused = _mentatctl("audit", "list", "--url", site.server.url, "--api-key",
                         keys["acme-read"])
    assert refused.returncode != 0 and "403" in refused.stdout + refused.stderr
