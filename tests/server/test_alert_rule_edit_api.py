"""``PATCH /api/v1/alert-rules/{id}`` changes a rule's definition (the dashboard's edit
form): given fields replace, the rest (hidden channel secrets included) stay, the result is
checked as on creation (422 naming the field), the rule restarts from ``ok`` and the change
is audited."""

from __future__ import annotations

from typing import Any

import pytest
from serverkit import InProcess
from test_api import assert_error_shape

BUDGET = {"name": "acme monthly", "kind": "budget", "period": "month", "limit_amount": "500",
          "thresholds": ["0.5", "1"], "filters": {"project": "acme"},
          "channels": ["webhook:https://hooks.example.com/x?token=secret"]}


async def _made(env: InProcess, body: dict[str, Any]) -> dict[str, Any]:
    made = await env.client.post("/api/v1/alert-rules", json=body)
    assert made.status_code == 200, made.text
    rule: dict[str, Any] = made.json()["rule"]
    return rule


async def test_an_edit_replaces_the_given_fields_and_keeps_the_rest(
        app_client: InProcess) -> None:
    c = app_client.client
    rule = await _made(app_client, BUDGET)
    changed = await c.patch(f"/api/v1/alert-rules/{rule['id']}", json={
        "name": "acme monthly (raised)", "limit_amount": "750.50", "thresholds": ["0.8"],
        "filters": {"project_id": "acme", "model": "gpt-4o"}})
    assert changed.status_code == 200, changed.text
    after = changed.json()["rule"]
    assert after["id"] == rule["id"] and after["kind"] == "budget"
    assert (after["name"], after["limit_amount"], after["thresholds"], after["period"]) == (
        "acme monthly (raised)", "750.5", ["0.8"], "month")
    assert after["filters"] == {"project_id": "acme", "model": "gpt-4o"}
    assert after["channels"] == rule["channels"], "channels not given: kept"
    stored = app_client.state.control.alerts.get_rule(rule["id"])
    assert stored.spec.channels == ("webhook:https://hooks.example.com/x?token=secret",)
    assert after["state"] == "ok"
    entry = app_client.state.control.audit.entries(action="budget.updated")[0]
    assert entry.target == rule["id"]
    assert entry.details == {"changed": ["filters", "limit_amount", "name", "thresholds"]}

    off = await c.patch(f"/api/v1/alert-rules/{rule['id']}", json={"enabled": False})
    assert off.json()["rule"]["enabled"] is False
    assert off.json()["rule"]["limit_amount"] == "750.5", "enabling alone changes nothing else"


@pytest.mark.parametrize(("change", "field"), [
    ({"limit_amount": "0"}, "limit_amount"),
    ({"limit_amount": "-5"}, "limit_amount"),
    ({"limit_amount": "lots"}, "limit_amount"),
    ({"period": "year"}, "period"),
    ({"thresholds": ["11"]}, "thresholds"),
    ({"channels": ["webhook:ftp://h.example/x"]}, "channels[0]"),
    ({"filters": {"colour": "red"}}, "filters.colour"),
    ({"name": ""}, "name"),
    ({}, "enabled"),
    ({"enabled": None}, "enabled"),
])
async def test_a_bad_edit_is_422_naming_the_field_and_changes_nothing(
        app_client: InProcess, change: dict[str, Any], field: str) -> None:
    rule = await _made(app_client, BUDGET)
    answer = await app_client.client.patch(f"/api/v1/alert-rules/{rule['id']}", json=change)
    assert_error_shape(answer, 422)
    assert answer.json()["errors"][0]["field"] == field
    again = (await app_client.client.get(f"/api/v1/alert-rules/{rule['id']}")).json()["rule"]
    assert again == rule


async def test_a_threshold_rule_is_edited_and_an_unknown_one_is_404(
        app_client: InProcess) -> None:
    rule = await _made(app_client, {
        "name": "errors", "kind": "threshold", "metric": "error_rate", "op": ">",
        "threshold": "0.05", "window_s": 600, "channels": ["email:oncall@example.com"]})
    changed = await app_client.client.patch(f"/api/v1/alert-rules/{rule['id']}", json={
        "threshold": "0.1", "window_s": 60, "op": ">=",
        "channels": ["email:a@example.com,b@example.com"]})
    assert changed.status_code == 200, changed.text
    after = changed.json()["rule"]
    assert (after["threshold"], after["window_s"], after["op"]) == ("0.1", 60, ">=")
    assert after["channels"] == ["email:a@example.com,b@example.com"]
    short = await app_client.client.patch(f"/api/v1/alert-rules/{rule['id']}",
                                          json={"window_s": 5})
    assert_error_shape(short, 422)
    assert short.json()["errors"][0]["field"] == "window_s"
    missing = await app_client.client.patch("/api/v1/alert-rules/nope", json={"name": "x"})
    assert_error_shape(missing, 404)
