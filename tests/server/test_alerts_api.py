"""Alert rules through the REST API, evaluated by the server's own alert job, notifying a
real webhook receiver; validation errors and tenancy."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from server_payloads import encode, export_request, llm_span
from serverkit import InProcess, make_settings, open_in_process
from test_api import assert_error_shape

from receivers import WebhookReceiver


async def _wait_alerts(env: InProcess, count: int, timeout_s: float = 20) -> list[Any]:
    for _ in range(int(timeout_s * 10)):
        alerts = (await env.client.get("/api/v1/alerts")).json()["alerts"]
        if len(alerts) >= count and all(d["status"] != "pending"
                                        for a in alerts for d in a["deliveries"]):
            return list(alerts)
        await asyncio.sleep(0.1)
    raise AssertionError(f"expected {count} alerts, got {alerts}")


async def test_a_budget_made_over_the_api_notifies_the_webhook(_isolated_data_dir: Path) -> None:
    settings = make_settings(_isolated_data_dir, alert_interval_s=0.2)
    with WebhookReceiver() as hook:
        async with open_in_process(settings) as env:
            c = env.client
            made = await c.post("/api/v1/alert-rules", json={
                "name": "acme monthly", "kind": "budget", "period": "month",
                "limit_amount": "0.01", "thresholds": ["0.5", "1"],
                "filters": {"project": "acme"},
                "channels": [f"webhook:{hook.url}?token=secret"]})
            assert made.status_code == 200, made.text
            rule = made.json()["rule"]
            assert rule["filters"] == {"project_id": "acme"} and rule["state"] == "ok"
            assert rule["channels"] == [f"webhook:http://127.0.0.1:{hook.port}"]  # no token
            # gpt-4o at 2.50/10.00 USD per 1M tokens: 3000 in + 500 out = 0.0125 USD
            span = llm_span(input_tokens=3000, output_tokens=500)
            body, headers = encode(export_request([span], project_id="acme"))
            assert (await c.post("/v1/traces", content=body, headers=headers)).status_code == 200
            alerts = await _wait_alerts(env, 2)
            assert {a["threshold"] for a in alerts} == {"0.005", "0.01"}
            delivered = [a for a in alerts if a["deliveries"]]
            assert len(delivered) == 1 and delivered[0]["threshold"] == "0.01"
            assert delivered[0]["deliveries"][0]["status"] == "sent"
            received = hook.wait_for(1, 10)
            assert received[0].json()["value"] == "0.0125"
            assert received[0].path.endswith("?token=secret")
            listed = (await c.get("/api/v1/alert-rules")).json()["rules"]
            assert [(r["name"], r["state"], r["last_value"]) for r in listed] == [
                ("acme monthly", "firing", "0.0125")]
            metrics = (await c.get("/metrics")).text
            assert 'mentatlab_job_leader{job="alerts"} 1.0' in metrics
            assert 'mentatlab_alert_deliveries_total{outcome="sent"} 1.0' in metrics
            off = await c.patch(f"/api/v1/alert-rules/{rule['id']}", json={"enabled": False})
            assert off.status_code == 200 and off.json()["rule"]["enabled"] is False
            gone = await c.delete(f"/api/v1/alert-rules/{rule['id']}")
            assert gone.status_code == 200
            assert_error_shape(await c.get(f"/api/v1/alert-rules/{rule['id']}"), 404)
            assert (await c.get("/api/v1/alerts")).json()["alerts"] == []


async def test_bad_rules_are_422_naming_the_field(app_client: InProcess) -> None:
    c = app_client.client
    cases = [
        ({"name": "x", "kind": "budget", "period": "year", "limit_amount": "5",
          "channels": ["webhook:https://h.example/x"]}, "period"),
        ({"name": "x", "kind": "threshold", "metric": "error_rate", "threshold": "0.1",
          "channels": ["webhook:ftp://h.example/x"]}, "channels[0]"),
        ({"name": "x", "kind": "threshold", "metric": "p95", "threshold": "1",
          "channels": ["email:ops@example.org"]}, "metric"),
        ({"name": "x", "kind": "budget", "period": "day", "limit_amount": "abc",
          "channels": ["email:ops@example.org"]}, "limit_amount"),
    ]
    for body, field in cases:
        error = assert_error_shape(await c.post("/api/v1/alert-rules", json=body), 422)
        assert any(e["field"].endswith(field) for e in error["errors"]), (field, error)
    good = {"name": "dup", "kind": "threshold", "metric": "errors", "op": ">",
            "threshold": "10", "channels": ["email:ops@example.org"]}
    assert (await c.post("/api/v1/alert-rules", json=good)).status_code == 200
    assert_error_shape(await c.post("/api/v1/alert-rules", json=good), 422)  # name taken
    assert (await c.get("/api/v1/alert-rules")).json()["rules"][0]["name"] == "dup"


async def test_an_org_key_sees_and_makes_only_its_org_rules(_isolated_data_dir: Path) -> None:
    settings = make_settings(_isolated_data_dir, auth_required=True, alert_interval_s=0)
    async with open_in_process(settings) as env:
        control = env.state.control
        for org in ("acme", "globex"):
            control.create_org(org, org)
        keys = [control.create_api_key(org, None, "k", role="admin").key
                for org in ("acme", "globex")]
        acme, globex = ({"authorization": f"Bearer {key}"} for key in keys)
        rule = {"name": "spend", "kind": "budget", "period": "day", "limit_amount": "5",
                "channels": ["email:ops@example.org"]}
        c = env.client
        made = await c.post("/api/v1/alert-rules", json=rule, headers=acme)
        assert made.status_code == 200, made.text
        assert made.json()["rule"]["filters"] == {"org_id": "acme"}
        rule_id = made.json()["rule"]["id"]
        assert_error_shape(await c.post("/api/v1/alert-rules", json={**rule, "org_id": "globex"},
                                        headers=acme), 403)
        assert (await c.get("/api/v1/alert-rules", headers=globex)).json()["rules"] == []
        assert_error_shape(await c.get(f"/api/v1/alert-rules/{rule_id}", headers=globex), 404)
        assert_error_shape(await c.delete(f"/api/v1/alert-rules/{rule_id}", headers=globex), 404)
        assert len((await c.get("/api/v1/alert-rules", headers=acme)).json()["rules"]) == 1
