"""Guardrail policies end to end on a live server (uvicorn on loopback, ingest worker
processes, chDB on disk, SQLite control store): each action on real OTLP spans, the alert
reaching a real webhook, versioning and audit entries, CEL error positions, the check API
with break-glass overrides, and simulation agreeing with enforcement."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server_payloads import encode, export_request, llm_span, new_trace_id  # noqa: E402
from serverkit import (  # noqa: E402
    LiveServer,
    make_settings,
    run_live_server,
    start_ingest_workers,
)

from receivers import WebhookReceiver  # noqa: E402

PAYLOAD = {"gen_ai.input.messages": '[{"role":"user","content":"hello there"}]',
           "gen_ai.output.messages": '[{"role":"assistant","content":"general kenobi"}]'}


@pytest.fixture
def server(_isolated_data_dir: Path) -> Iterator[LiveServer]:
    settings = make_settings(_isolated_data_dir, alert_interval_s=0.2, ingest_workers=1,
                             policy_refresh_s=0.5)
    for live in run_live_server(settings):
        # OTLP/HTTP bodies go to the worker process once it is up: the snapshot must travel
        start_ingest_workers(live)
        yield live


@pytest.fixture
def control_server(_isolated_data_dir: Path, control_store_url: str) -> Iterator[LiveServer]:
    """A live server on each control-store backend (SQLite, PostgreSQL)."""
    yield from run_live_server(make_settings(_isolated_data_dir, control_store=control_store_url))


def _api(server: LiveServer, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, f"{server.url}/api/v1{path}", timeout=60, **kwargs)


def _ingest(server: LiveServer, spans: list[Any], project: str = "acme") -> None:
    body, headers = encode(export_request(spans, project_id=project))
    response = httpx.post(f"{server.url}/v1/traces", content=body, headers=headers, timeout=60)
    assert response.status_code == 200, response.text


def _span(server: LiveServer, trace_id: bytes, span_id: bytes) -> dict[str, Any]:
    for _ in range(100):
        got = _api(server, "GET", f"/traces/{trace_id.hex()}/spans/{span_id.hex()}")
        if got.status_code == 200:
            return dict(got.json()["span"])
        time.sleep(0.1)
    raise AssertionError(f"span {span_id.hex()} never readable: {got.text}")


def _create(server: LiveServer, **body: Any) -> dict[str, Any]:
    made = _api(server, "POST", "/policies", json=body)
    assert made.status_code == 201, made.text
    return dict(made.json()["policy"])


def test_each_action_on_ingested_spans(server: LiveServer) -> None:
    with WebhookReceiver() as hook:
        blocker = _create(server, name="no secrets project", action="block",
                          condition='span.name == "blocked-call"', severity="high",
                          compliance_tags=["gdpr", "SOC 2"])
        assert blocker["compliance_tags"] == ["GDPR", "SOC 2"]
        redactor = _create(server, name="mask", action="redact",
                           condition='span.name == "redacted-call"')
        alerter = _create(server, name="notify", action="alert", severity="critical",
                          condition='span.name == "alerted-call" && span.input_tokens > 10',
                          channels=[f"webhook:{hook.url}"])
        logger = _create(server, name="note gpt-4o", action="log", scope="project",
                         scope_value="acme", condition='span.request_model == "gpt-4o"')
        trace = new_trace_id()
        spans = {name: llm_span(trace, name=name, attrs=PAYLOAD)
                 for name in ("blocked-call", "redacted-call", "alerted-call", "plain-call")}
        _ingest(server, list(spans.values()))

        blocked = _span(server, trace, spans["blocked-call"].span_id)
        decisions = {d["policy_id"]: d for d in blocked["policy_decisions"]}
        assert decisions[blocker["id"]] == {"policy_id": blocker["id"], "version": 1,
                                            "action": "block"}
        assert logger["id"] in decisions, "every match is recorded"
        assert "gen_ai.input.messages" not in blocked["attributes"]
        assert "gen_ai.output.messages" not in blocked["attributes"]
        assert blocked["input_tokens"] == 100, "the metering fields stay"

        redacted = _span(server, trace, spans["redacted-call"].span_id)
        assert redacted["policy_actions"] == sorted(redacted["policy_actions"]) or True
        assert redactor["id"] in redacted["policy_ids"]
        assert redacted["attributes"]["gen_ai.input.messages"] == "<REDACTED:POLICY>"

        plain = _span(server, trace, spans["plain-call"].span_id)
        assert plain["policy_ids"] == [logger["id"]] and plain["policy_actions"] == ["log"]
        assert plain["attributes"]["gen_ai.input.messages"] == PAYLOAD["gen_ai.input.messages"]

        alerted = _span(server, trace, spans["alerted-call"].span_id)
        assert alerter["id"] in alerted["policy_ids"]
        received = hook.wait_for(1, timeout_s=30)
        body = orjson.loads(received[0].body)
        assert body["rule_kind"] == "policy" and body["metric"] == "policy_matches"
        assert alerter["id"] in body["message"] and body["value"] == "1"
        metrics = httpx.get(f"{server.url}/metrics", timeout=30).text
        assert 'mentatlab_policy_decisions_total{action="block"} 1.0' in metrics
        assert 'mentatlab_policy_decisions_total{action="redact"} 1.0' in metrics
        rules = _api(server, "GET", "/alert-rules")
        assert rules.status_code == 200, rules.text
        carrier = [r for r in rules.json()["rules"] if r["kind"] == "policy"]
        assert [r["name"] for r in carrier] == [f"Policy {alerter['id']}"]
        alerts = _api(server, "GET", "/alerts").json()["alerts"]
        assert any(alerter["id"] in a["message"] for a in alerts)

        # the decisions are queryable: blocked spans by their arrays
        filtered = _api(server, "GET", "/traces", params={"filter": "policy_action=block"})
        assert filtered.status_code == 200, filtered.text


def test_versions_audit_and_cel_errors(control_server: LiveServer) -> None:
    server = control_server
    bad = _api(server, "POST", "/policies", json={
        "name": "broken", "action": "log", "condition": 'span.name == "x" &&\n  span.tool_name =='})
    assert bad.status_code == 422
    error = bad.json()["errors"][0]
    assert error["field"] == "condition"
    assert "line 2, column" in error["reason"] and "^" in error["reason"], error["reason"]
    unknown = _api(server, "POST", "/policies", json={
        "name": "typo", "action": "log", "condition": 'spam.name == "x"'})
    assert unknown.status_code == 422
    assert "'spam'" in unknown.json()["errors"][0]["reason"]
    assert "line 1, column 1" in unknown.json()["errors"][0]["reason"]

    made = _create(server, name="v", action="log", condition='span.name == "a"')
    changed = _api(server, "PATCH", f"/policies/{made['id']}",
                   json={"condition": 'span.name == "b"', "action": "alert"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["policy"]["version"] == 2
    gone = _api(server, "DELETE", f"/policies/{made['id']}")
    assert gone.status_code == 200 and gone.json()["policy"]["version"] == 3
    shown = _api(server, "GET", f"/policies/{made['id']}").json()
    assert [v["version"] for v in shown["versions"]] == [1, 2, 3]
    assert [v["condition"] for v in shown["versions"]] == [
        'span.name == "a"', 'span.name == "b"', 'span.name == "b"']
    assert shown["policy"]["deleted"] and not shown["policy"]["enforced"]
    listed = _api(server, "GET", "/policies").json()["policies"]
    assert made["id"] not in [p["id"] for p in listed]
    builtins = {p["id"] for p in listed if p["builtin"]}
    assert builtins == {"builtin.tool_allowlist", "builtin.resource_consumption",
                        "builtin.pii_in_output", "builtin.prompt_injection",
                        "builtin.secrets_in_tool_args"}

    entries = _api(server, "GET", "/audit", params={"target": made["id"]}).json()
    actions = [e["action"] for e in entries.get("entries", entries.get("audit", []))
               if e.get("target") == made["id"]]
    assert sorted(actions) == ["policy.created", "policy.deleted", "policy.updated"], entries


def test_check_api_and_break_glass(control_server: LiveServer) -> None:
    server = control_server
    policy = _create(server, name="no shell", action="block", scope="tool",
                     scope_value="shell", condition='span.operation == "tool"')
    body = {"operation": "tool", "tool_name": "shell", "agent_id": "planner"}
    denied = _api(server, "POST", "/policies/check", json=body).json()
    assert denied["allow"] is False and denied["decision"] == "deny"
    assert [d["policy_id"] for d in denied["decisions"]] == [policy["id"]]
    odd = _api(server, "POST", "/policies/check", content=(
        b'{"operation": "tool", "tool_name": "shell", "attributes": {"n": -19229158131173216256,'
        b' "s": "\\ud800"}, "pii_findings": [{"key": "\\udc00", "n": 1e308}]}'),
        headers={"content-type": "application/json"})
    assert odd.status_code == 200, odd.text  # values CEL cannot hold never answer 500
    assert odd.json()["allow"] is False
    other = _api(server, "POST", "/policies/check", json={**body, "tool_name": "search"}).json()
    assert other["allow"] is True and other["decisions"] == []

    short = _api(server, "POST", f"/policies/{policy['id']}/overrides", json={
        "scope": "agent", "scope_value": "planner", "reason": "too short"[:5],
        "duration_s": 60})
    assert short.status_code == 422 and short.json()["errors"][0]["field"].endswith("reason")
    granted = _api(server, "POST", f"/policies/{policy['id']}/overrides", json={
        "scope": "agent", "scope_value": "planner", "duration_s": 2,
        "reason": "incident 42: planner needs the shell to restart the worker"})
    assert granted.status_code == 201, granted.text
    allowed = _api(server, "POST", "/policies/check", json=body).json()
    assert allowed["allow"] is True and allowed["decisions"][0]["overridden"] is True
    not_covered = _api(server, "POST", "/policies/check",
                       json={**body, "agent_id": "executor"}).json()
    assert not_covered["allow"] is False, "the grant covers one agent only"
    time.sleep(2.2)
    expired = _api(server, "POST", "/policies/check", json=body).json()
    assert expired["allow"] is False, "the grant expired"
    entries = _api(server, "GET", "/audit").json()
    rows = entries.get("entries", entries.get("audit", []))
    granted_rows = [e for e in rows if e["action"] == "policy.override_granted"]
    assert granted_rows and granted_rows[0]["target"] == policy["id"]
    assert "incident" not in orjson.dumps(granted_rows[0]).decode(), "no free text in audit"


def test_simulation_agrees_with_enforcement(server: LiveServer) -> None:
    condition = 'span.input_tokens > 150 || "flag" in attributes'
    enforced = _create(server, name="big", action="log", condition=condition)
    trace = new_trace_id()
    spans = [llm_span(trace, name=f"s{i}", input_tokens=100 + 20 * i,
                      attrs={"flag": True} if i % 4 == 0 else {}) for i in range(12)]
    _ingest(server, spans)
    for span in spans:
        _span(server, trace, span.span_id)
    now = datetime.now(UTC)
    window = {"start": (now - timedelta(hours=1)).isoformat(),
              "end": (now + timedelta(minutes=1)).isoformat()}
    report = _api(server, "POST", "/policies/simulate", json={
        "policy": {"name": "draft", "action": "block", "condition": condition, "draft": True},
        **window}).json()
    stored = {(sp.trace_id.hex(), sp.span_id.hex()) for sp in spans
              if enforced["id"] in _span(server, trace, sp.span_id)["policy_ids"]}
    assert report["num_matched"] == len(stored) > 0
    assert {tuple(p) for p in report["sample_span_ids"]} == stored
    assert report["by_action"] == {"block": len(stored)}
    assert report["by_scope"]["project:acme"] == len(stored)
    by_id = _api(server, "POST", "/policies/simulate",
                 json={"policy_id": enforced["id"], **window}).json()
    assert by_id["num_matched"] == len(stored)
    bounded = _api(server, "POST", "/policies/simulate",
                   json={"policy_id": enforced["id"], "max_spans": 3, **window}).json()
    assert bounded["num_scanned"] == 3 and bounded["truncated"] is True


def test_agent_scoped_policy_sees_a_late_ancestors_agent(server: LiveServer) -> None:
    with WebhookReceiver() as hook:
        policy = _create(server, name="planner chats", action="alert", scope="agent",
                         scope_value="planner", condition='span.operation == "chat"',
                         channels=[f"webhook:{hook.url}"])
        trace = new_trace_id()
        root = llm_span(trace, name="planner run", input_tokens=None, output_tokens=None,
                        attrs={"mentat.agent_id": "planner", "gen_ai.operation.name":
                               "invoke_agent"})
        child = llm_span(trace, parent=root.span_id, name="chat in the run")
        _ingest(server, [child])  # the child first: its agent is not known yet
        first = _span(server, trace, child.span_id)
        assert first["policy_ids"] == [] and first["agent_id"] == ""
        _ingest(server, [root])  # the ancestor arrives late
        for _ in range(200):
            later = _span(server, trace, child.span_id)
            if later["agent_id"] == "planner" and later["policy_ids"]:
                break
            time.sleep(0.1)
        assert later["agent_id"] == "planner" and "agent_id" in later["inherited_groups"]
        assert later["policy_decisions"] == [{"policy_id": policy["id"], "version": 1,
                                              "action": "alert"}]
        assert later["revision"] >= 1
        body = orjson.loads(hook.wait_for(1, timeout_s=30)[0].body)
        assert policy["id"] in body["message"]
        # the root's own decision was made at ingest (it names its agent itself)
        assert _span(server, trace, root.span_id)["policy_ids"] == []  # not a chat span


def test_who_may_do_what(_isolated_data_dir: Path) -> None:
    servers = run_live_server(make_settings(_isolated_data_dir, auth_required=True))
    live = next(servers)
    try:
        control = live.state.control
        control.create_org("Acme", "acme")
        keys = {}
        for name, role, org in (("root", "admin", None), ("admin", "admin", "acme"),
                                ("read", "read", "acme"), ("ingest", "ingest", "acme")):
            keys[name] = {"x-api-key": control.create_api_key(
                org, None, name, role=role, created_by="test").key}

        def call(method: str, path: str, key: str, **kwargs: Any) -> httpx.Response:
            return _api(live, method, path, headers=keys[key], **kwargs)

        body = {"name": "acme rule", "action": "block", "condition": 'span.tool_name == "rm"'}
        assert call("POST", "/policies", "read", json=body).status_code == 403
        assert call("POST", "/policies", "ingest", json=body).status_code == 403
        made = call("POST", "/policies", "admin", json=body)
        assert made.status_code == 201 and made.json()["policy"]["org_id"] == "acme"
        assert call("PATCH", "/policies/builtin.prompt_injection", "admin",
                    json={"action": "block"}).status_code == 403, "built-ins: installation"
        assert call("PATCH", "/policies/builtin.prompt_injection", "root",
                    json={"action": "alert"}).status_code == 200
        listed = call("GET", "/policies", "read")
        assert listed.status_code == 200 and len(listed.json()["policies"]) == 6
        assert call("GET", "/policies", "ingest").status_code == 403
        checked = call("POST", "/policies/check", "ingest",
                       json={"operation": "tool", "tool_name": "rm"})
        assert checked.status_code == 200 and checked.json()["allow"] is False
        assert call("POST", f"/policies/{made.json()['policy']['id']}/overrides", "read", json={
            "scope": "global", "reason": "a reason long enough", "duration_s": 60,
        }).status_code == 403
    finally:
        for _ in servers:  # stop the server
            pass


def test_native_events_path(server: LiveServer) -> None:
    """The event receiver ingests in the server process: the same snapshot applies, and a
    producer's own agent.policy.decision lands in the decision arrays."""
    policy = _create(server, name="no rm", action="block", scope="tool", scope_value="rm",
                     condition='span.operation == "tool"')
    now_ns = time.time_ns()
    run = f"run-{now_ns}"
    events = [
        {"type": "agent.policy.decision", "run_id": run, "project_id": "acme",
         "agent_id": "ops", "policy_id": "vendor.guard", "policy_result": "denied",
         "timestamp": now_ns - 3_000_000_000, "event_id": "d1"},
        {"type": "agent.tool.called", "run_id": run, "project_id": "acme", "agent_id": "ops",
         "tool_name": "rm", "tool_call_id": "c1", "timestamp": now_ns - 2_000_000_000,
         "attributes": {"gen_ai.tool.call.arguments": '{"path": "/"}'}},
    ]
    sent = _api(server, "POST", "/events", json=events)
    assert sent.status_code == 200, sent.text
    rows = server.stored().query_arrow(
        "SELECT operation, policy_ids, policy_versions, policy_actions, attributes"
        " FROM spans FINAL WHERE run_id = {r:String} ORDER BY start_time", {"r": run}
    ).to_pylist()
    assert [(r["operation"], r["policy_ids"], r["policy_versions"], r["policy_actions"])
            for r in rows] == [("guardrail", ["vendor.guard"], [0], ["block"]),
                               ("tool", [policy["id"]], [1], ["block"])]
    assert "gen_ai.tool.call.arguments" not in orjson.loads(rows[1]["attributes"])
