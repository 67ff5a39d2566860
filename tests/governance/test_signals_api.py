"""The oversight and security routes on a live server with auth on, fed over OTLP/HTTP:
approvals, version registration (audited) and flags, security findings, scope and errors."""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

from serverkit import LiveServer, make_settings, run_live_server  # noqa: E402
from signal_spans import has_policy_columns  # noqa: E402

from mentatlab.storage.control import ControlStore  # noqa: E402

NS = 1_000_000_000


@dataclass
class Installation:
    server: LiveServer
    control: ControlStore
    keys: dict[str, str]

    def call(self, method: str, path: str, key: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, f"{self.server.url}{path}", timeout=30,
                             headers={"x-api-key": self.keys[key]}, **kwargs)


@pytest.fixture
def installation(_isolated_data_dir: Path) -> Iterator[Installation]:
    for server in run_live_server(make_settings(_isolated_data_dir, auth_required=True)):
        control = server.state.control
        control.create_org("Acme", "acme")
        control.create_org("Globex", "globex")
        keys = {}
        for name, role, org in (("ingest", "ingest", "acme"), ("read", "read", "acme"),
                                ("admin", "admin", "acme"), ("globex", "admin", "globex")):
            keys[name] = control.create_api_key(org, None, name, role=role).key
        yield Installation(server, control, keys)


def _attr(key: str, value: str) -> dict[str, Any]:
    return {"key": key, "value": {"stringValue": value}}


def _span(n: int, start_ns: int, end_ns: int, attrs: dict[str, str]) -> dict[str, Any]:
    return {"traceId": f"{n:032x}", "spanId": f"{n:016x}", "name": f"step-{n}", "kind": 1,
            "startTimeUnixNano": str(start_ns), "endTimeUnixNano": str(end_ns),
            "attributes": [_attr(k, v) for k, v in attrs.items()]}


def _send(inst: Installation, spans: list[dict[str, Any]]) -> None:
    body = {"resourceSpans": [{"resource": {"attributes": [_attr("service.name", "svc")]},
                               "scopeSpans": [{"spans": spans}]}]}
    answer = inst.call("POST", "/v1/traces", "ingest", json=body)
    assert answer.status_code == 200, answer.text


def test_approvals_over_otlp(installation: Installation) -> None:
    now = time.time_ns()
    _send(installation, [
        _span(1, now - 600 * NS, now - 599 * NS, {"mentat.approval.state": "requested",
                                                  "mentat.approval.id": "refund-1",
                                                  "mentat.agent_id": "support"}),
        _span(2, now - 300 * NS, now - 240 * NS, {"mentat.approval.state": "approved",
                                                  "mentat.approval.id": "refund-1",
                                                  "mentat.approval.reviewer": "user:9"}),
        _span(3, now - 120 * NS, now - 119 * NS, {"mentat.approval.state": "requested",
                                                  "mentat.agent_id": "support"}),
    ])
    answer = installation.call("GET", "/api/v1/governance/approvals", "read",
                               params={"group_by": "agent"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    total = body["total"]
    assert (total["num_requested"], total["num_decided"], total["num_approved"]) == (2, 1, 1)
    assert total["wait_ms_p50"] == 360_000.0 and total["approval_rate"] == 1.0
    assert total["queue_length"] == 1 and body["group_by"] == "agent_id"
    assert [g["key"] for g in body["groups"]] == [{"agent_id": "support"}]
    assert body["oldest_pending"][0]["approval_id"] == f"{3:032x}:{3:016x}"
    bad = installation.call("GET", "/api/v1/governance/approvals", "read",
                            params={"group_by": "model"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "group_by"
    other = installation.call("GET", "/api/v1/governance/approvals", "globex").json()
    assert other["total"]["num_requested"] == 0  # another org's approvals stay unseen


def test_versions_register_flag_and_audit(installation: Installation) -> None:
    template = "Summarize the ticket in {n} words."
    digest = hashlib.sha256(template.encode()).hexdigest()
    register = {"kind": "prompt", "name": "summary", "version": "v1", "content": template}
    first = installation.call("POST", "/api/v1/governance/versions", "admin", json=register)
    assert first.status_code == 200, first.text
    assert first.json()["created"] is True and first.json()["version"]["content_hash"] == digest
    again = installation.call("POST", "/api/v1/governance/versions", "admin",
                              json={**register, "content": None, "content_hash": digest.upper()})
    assert again.status_code == 200 and again.json()["created"] is False
    changed = installation.call("POST", "/api/v1/governance/versions", "admin",
                                json={**register, "content": template + "!"})
    assert changed.status_code == 409 and changed.json()["errors"][0]["field"] == "content_hash"
    assert installation.call("POST", "/api/v1/governance/versions", "read",
                             json=register).status_code == 403
    both = installation.call("POST", "/api/v1/governance/versions", "admin",
                             json={**register, "content_hash": digest})
    assert both.status_code == 422 and both.json()["errors"][0]["field"] == "content_hash"
    elsewhere = installation.call("POST", "/api/v1/governance/versions", "admin",
                                  json={**register, "org_id": "globex"})
    assert elsewhere.status_code == 403
    audited = installation.control.audit.entries(org_id="acme", action="version.registered")
    assert len(audited) == 1 and audited[0].details["content_hash"] == digest

    now = time.time_ns()
    _send(installation, [
        _span(10, now - 60 * NS, now - 59 * NS, {
            "mentat.prompt_version": "v1", "traceloop.prompt.key": "summary",
            "traceloop.prompt.template": template}),
        _span(11, now - 50 * NS, now - 49 * NS, {
            "mentat.prompt_version": "v1", "traceloop.prompt.key": "summary",
            "traceloop.prompt.version_hash": "deadbeef"}),
        _span(12, now - 40 * NS, now - 39 * NS, {
            "mentat.prompt_version": "v2", "traceloop.prompt.key": "summary"}),
    ])
    listed = installation.call("GET", "/api/v1/governance/versions", "read").json()
    assert [(v["name"], v["version"]) for v in listed["versions"]] == [("summary", "v1")]
    flags = installation.call("GET", "/api/v1/governance/versions/unregistered", "read").json()
    got = sorted((f["status"], f["version"], f["content_hash"], f["registered_hash"])
                 for f in flags["flags"])
    assert got == [("changed", "v1", "deadbeef", digest), ("unregistered", "v2", "", "")]
    assert flags["num_versions_seen"] == 3
    assert installation.call("GET", "/api/v1/governance/versions/unregistered",
                             "globex").json()["flags"] == []


def test_security_findings_and_who_may_read_them(installation: Installation) -> None:
    now = time.time_ns()
    _send(installation, [_span(20, now - 30 * NS, now - 29 * NS, {
        "mentat.agent_id": "ops", "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "shell"})])
    answer = installation.call("GET", "/api/v1/governance/signals", "admin")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    # the policy signals need span migration 9's columns (the policies part)
    policy_kinds = set() if has_policy_columns(installation.server.state.store) else {
        "prompt_injection_burst", "blocked_action"}
    assert set(body["unavailable"]) == policy_kinds
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for finding in body["findings"]:
        by_kind.setdefault(finding["kind"], []).append(finding)
    (tool,) = by_kind["new_tool"]
    assert tool["subject"] == {"org_id": "acme", "agent_id": "ops", "tool_name": "shell"}
    assert tool["severity"] == "low" and tool["evidence"] == [f"{20:032x}:{20:016x}"]
    # both keys used so far (ingest, admin) were created outside the API: no audit record
    assert {(f["subject"]["name"], f["severity"]) for f in by_kind["new_key"]} == {
        ("ingest", "high"), ("admin", "high")}
    assert body["findings"][0]["severity"] == "high"
    only_tools = installation.call("GET", "/api/v1/governance/signals", "admin", params={
        "kind": "new_tool", "min_severity": "medium"}).json()
    assert only_tools["findings"] == [] and only_tools["unavailable"] == {}
    assert installation.call("GET", "/api/v1/governance/signals", "read").status_code == 403
    bad = installation.call("GET", "/api/v1/governance/signals", "admin",
                            params={"kind": "everything"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "kind"
    bad = installation.call("GET", "/api/v1/governance/signals", "admin",
                            params={"min_severity": "critical"})
    assert bad.status_code == 422
    globex = installation.call("GET", "/api/v1/governance/signals", "globex").json()
    assert {f["subject"].get("name") for f in globex["findings"]} == {"globex"}
