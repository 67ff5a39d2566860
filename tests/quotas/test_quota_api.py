"""``/api/v1/quotas`` on a live server with auth on: the installation sets an org's limits
freely, the org's own admin reads them and may only tighten, bad input answers 422 naming
the field, each change is audited and in force on the server at once."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

from serverkit import LiveServer, make_settings, run_live_server  # noqa: E402

from mentatlab.server.routes.quotas import loosens  # noqa: E402

DEFAULT_KEY_QUERIES_PER_MIN = 600


@dataclass
class Installation:
    server: LiveServer
    keys: dict[str, dict[str, str]]
    """Key name → headers carrying it."""
    key_ids: dict[str, str]

    def call(self, method: str, key: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.keys[key], **kwargs.pop("headers", {})}
        return httpx.request(method, f"{self.server.url}/api/v1/quotas", timeout=30,
                             headers=headers, **kwargs)


@pytest.fixture
def installation(_isolated_data_dir: Path) -> Iterator[Installation]:
    settings = make_settings(_isolated_data_dir, auth_required=True,
                             quota_key_queries_per_min=DEFAULT_KEY_QUERIES_PER_MIN,
                             quota_org_queries_per_min=0)
    for server in run_live_server(settings):
        control = server.state.control
        control.create_org("Acme", "acme")
        control.create_org("Globex", "globex")
        keys: dict[str, dict[str, str]] = {}
        key_ids: dict[str, str] = {}
        for name, role, org, project in (("installation", "admin", None, None),
                                         ("admin", "admin", "acme", None),
                                         ("project-admin", "admin", "acme", "web"),
                                         ("read", "read", "acme", None)):
            if project is not None:
                control.create_project("acme", project, project)
            issued = control.create_api_key(org, project, name, role=role, created_by="test")
            keys[name] = {"x-api-key": issued.key}
            key_ids[name] = issued.info.id
        yield Installation(server, keys, key_ids)


def _field(response: httpx.Response) -> str:
    body = response.json()
    assert body["ok"] is False and body["status"] == response.status_code
    return str(body["errors"][0]["field"])


def test_the_installation_sets_and_clears_an_orgs_limits(installation: Installation) -> None:
    put = installation.call("PUT", "installation", json={
        "org_id": "acme", "limits": {"key_queries_per_min": 5_000, "org_ingest_spans_per_min": 0}})
    assert put.status_code == 200, put.text
    quota = put.json()["quota"]
    assert quota["overrides"] == {"key_queries_per_min": 5_000, "org_ingest_spans_per_min": 0}
    assert quota["limits"]["key_queries_per_min"] == 5_000, "raised above the setting"
    state = installation.server.state
    assert state.quotas.overrides == {"acme": quota["overrides"]}, "in force at once"

    listed = installation.call("GET", "installation").json()
    assert listed["defaults"]["key_queries_per_min"] == DEFAULT_KEY_QUERIES_PER_MIN
    assert [q["org_id"] for q in listed["quotas"]] == ["acme"], "every org with overrides"
    globex = installation.call("GET", "installation", params={"org_id": "globex"}).json()
    assert globex["quotas"] == [{"org_id": "globex", "overrides": {},
                                 "limits": listed["defaults"]}]

    back = installation.call("PUT", "installation", json={
        "org_id": "acme", "limits": {"key_queries_per_min": None}})
    assert back.json()["quota"]["overrides"] == {"org_ingest_spans_per_min": 0}, "null: setting"

    cleared = installation.call("DELETE", "installation", params={"org_id": "acme"})
    assert cleared.status_code == 200 and cleared.json()["cleared"] is True
    assert installation.call("DELETE", "installation", params={"org_id": "acme"}
                             ).json()["cleared"] is False
    assert state.quotas.overrides == {}

    entries = state.control.audit.entries(org_id="acme", action="quota.*")
    actor = f"key:{installation.key_ids['installation']}"
    assert [(e.action, e.actor, e.target) for e in entries] == [
        ("quota.cleared", actor, "acme"), ("quota.set", actor, "acme"),
        ("quota.set", actor, "acme")], "newest first; a no-op clear is not recorded"
    assert entries[2].details == {"key_queries_per_min": 5_000, "org_ingest_spans_per_min": 0}


def test_an_orgs_own_admin_may_only_tighten(installation: Installation) -> None:
    mine = installation.call("GET", "admin")
    assert mine.status_code == 200, mine.text
    assert mine.json()["quotas"][0]["org_id"] == "acme"

    tighter = installation.call("PUT", "admin", json={"limits": {"key_queries_per_min": 100}})
    assert tighter.status_code == 200, tighter.text
    assert tighter.json()["quota"]["limits"]["key_queries_per_min"] == 100
    unlimited_org = installation.call("PUT", "admin", json={
        "limits": {"org_queries_per_min": 50}})
    assert unlimited_org.status_code == 200, "any limit tightens an unlimited one"

    for value in (101, 0, None):  # higher, unlimited, back to the (higher) setting
        raised = installation.call("PUT", "admin", json={
            "limits": {"key_queries_per_min": value}})
        assert raised.status_code == 403, (value, raised.text)
        assert _field(raised) == "limits.key_queries_per_min"
        assert "only tighten" in raised.json()["errors"][0]["reason"]
    refused_clear = installation.call("DELETE", "admin")
    assert refused_clear.status_code == 403 and _field(refused_clear).startswith("limits.")
    assert installation.server.state.quotas.overrides["acme"]["key_queries_per_min"] == 100

    other = installation.call("PUT", "admin", json={
        "org_id": "globex", "limits": {"key_queries_per_min": 1}})
    assert other.status_code == 403 and _field(other) == "org_id"
    assert installation.call("GET", "admin", params={"org_id": "globex"}).status_code == 403


@pytest.mark.parametrize(("key", "status"), [("read", 403), ("project-admin", 403)])
def test_callers_without_the_orgs_settings_are_refused(
        installation: Installation, key: str, status: int) -> None:
    for method, kwargs in (("GET", {}), ("PUT", {"json": {"limits": {"key_queries_per_min": 1}}}),
                           ("DELETE", {})):
        answer = installation.call(method, key, **kwargs)
        assert answer.status_code == status, (method, answer.text)
    assert installation.server.state.quotas.overrides == {}


@pytest.mark.parametrize(("body", "field"), [
    ({"org_id": "acme", "limits": {"key_queries_per_min": -1}}, "limits.key_queries_per_min"),
    ({"org_id": "acme", "limits": {"key_queries_per_min": 10**13}}, "limits.key_queries_per_min"),
    ({"org_id": "acme", "limits": {"key_queries_per_min": "many"}}, "limits.key_queries_per_min"),
    ({"org_id": "acme", "limits": {"queries": 1}}, "limits.queries"),
    ({"org_id": "acme", "limits": {}}, "limits"),
    ({"org_id": "acme"}, "limits"),
    ({"limits": {"key_queries_per_min": 1}}, "org_id"),
    ({"org_id": "nope", "limits": {"key_queries_per_min": 1}}, "org_id"),
    ({"org_id": "a b", "limits": {"key_queries_per_min": 1}}, "org_id"),
    ({"org_id": "acme", "limits": {"key_queries_per_min": 1}, "extra": 1}, "extra"),
])
def test_bad_changes_answer_422_naming_the_field(
        installation: Installation, body: dict[str, Any], field: str) -> None:
    answer = installation.call("PUT", "installation", json=body)
    assert answer.status_code == 422, answer.text
    assert _field(answer) == field
    assert installation.server.state.control.quotas.all() == {}


def test_unreadable_bodies_and_a_missing_org_are_never_a_500(
        installation: Installation) -> None:
    garbage = installation.call("PUT", "installation", content=b"{not json",
                                headers={"content-type": "application/json"})
    assert garbage.status_code in (400, 422), garbage.text
    assert installation.call("DELETE", "installation").status_code == 422
    assert _field(installation.call("DELETE", "installation")) == "org_id"


@pytest.mark.parametrize(("new", "current", "looser"), [
    (5, 0, False), (0, 0, False), (5, 10, False), (10, 10, False), (11, 10, True),
    (0, 10, True)])
def test_loosens(new: int, current: int, looser: bool) -> None:
    assert loosens(new, current) is looser
