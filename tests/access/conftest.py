"""A live server with auth on, two orgs, and a caller of every kind (keys and people)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

from serverkit import LiveServer, make_settings, run_live_server  # noqa: E402

from mentatlab.storage.control import ControlStore  # noqa: E402


@dataclass(frozen=True)
class Caller:
    """How a test caller authenticates: headers (API key) or a session cookie."""

    name: str
    role: str
    """The matrix role (``key:read``, ``owner``, ``anonymous``...)."""
    headers: dict[str, str] = field(default_factory=dict)
    cookies: dict[str, str] = field(default_factory=dict)
    installation: bool = False
    project: bool = False

    @property
    def ws_query(self) -> str:
        key = self.headers.get("x-api-key")
        return f"?api_key={key}" if key else ""


@dataclass
class Installation:
    server: LiveServer
    control: ControlStore
    callers: dict[str, Caller]

    @property
    def url(self) -> str:
        return self.server.url


def make_callers(control: ControlStore) -> dict[str, Caller]:
    """Every kind of caller on org ``acme`` (project ``web``), plus installation admin."""
    control.create_org("Acme", "acme")
    control.create_org("Globex", "globex")
    control.create_project("acme", "web", "web")
    callers: dict[str, Caller] = {"anonymous": Caller("anonymous", "anonymous")}

    def key(name: str, role: str, org: str | None, project: str | None = None) -> None:
        secret = control.create_api_key(org, project, name, role=role, created_by="test").key
        callers[name] = Caller(name, f"key:{role}", {"x-api-key": secret},
                               installation=org is None, project=project is not None)

    key("ingest", "ingest", "acme")
    key("read", "read", "acme")
    key("admin", "admin", "acme")
    key("project-read", "read", "acme", "web")
    key("project-admin", "admin", "acme", "web")
    key("installation-admin", "admin", None)
    read_key = control.list_api_keys("acme")
    read_id = next(k.id for k in read_key if k.name == "read")
    token, _ = control.identities.create_session(key_id=read_id, ttl_s=3600)
    callers["read-session"] = Caller("read-session", "key:read", cookies={"mentat_session": token})
    for role in ("owner", "admin", "member", "viewer", "billing"):
        user = control.identities.ensure_user(f"{role}@acme.test", role.title())
        control.identities.set_role(user.id, "acme", role)
        token, _ = control.identities.create_session(user_id=user.id, org_id="acme", ttl_s=3600)
        callers[f"user-{role}"] = Caller(f"user-{role}", role,
                                         cookies={"mentat_session": token})
    return callers


@pytest.fixture
def installation(_isolated_data_dir: Path) -> Iterator[Installation]:
    settings = make_settings(_isolated_data_dir, auth_required=True)
    for server in run_live_server(settings):
        control = server.state.control
        yield Installation(server, control, make_callers(control))
