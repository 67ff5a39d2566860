"""The alerts view's forms in a real browser (Debian's headless Chromium) with auth on: an
org's admin key signs in, creates a budget (a bad limit first: the API's own reason shows
next to the field), edits it, creates a threshold rule, disables and deletes it — each
change checked through the REST API; a read key gets no form and no button. Zero console
errors, failed or off-host requests beyond the expected 422; axe light and dark; keyboard;
screenshots."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from browserkit import (
    DESKTOP,
    PHONE,
    assert_accessible,
    loaded,
    no_sideways_scroll,
    shot,
    watch,
)
from playwright.sync_api import Browser, Page, expect
from serverkit import LiveServer

HOOK = "webhook:https://hooks.example.com/mentatlab?token=secret"


def _expected_refusals(url: str) -> Callable[[str], bool]:
    """The sign-in page's 401 and the 422 the bad limit provokes (URL and console line)."""
    expected = {f"{url}/alerts", f"{url}/api/v1/alert-rules"}
    return lambda text: text in expected or text.endswith(
        ("(Unauthorized)", "(Unprocessable Entity)"))


def _sign_in(page: Page, url: str, key: str) -> None:
    page.goto(f"{url}/alerts", wait_until="networkidle")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("#alerts", timeout=30_000)
    loaded(page, "alerts")


def _rules(url: str, key: str) -> dict[str, dict[str, Any]]:
    answer = httpx.get(f"{url}/api/v1/alert-rules", headers={"x-api-key": key}, timeout=30)
    return {r["name"]: r for r in answer.json()["rules"]}


@pytest.mark.e2e
def test_an_admin_creates_edits_disables_and_deletes_rules_through_the_forms(
        auth_server: LiveServer, browser: Browser, tmp_path: Path) -> None:
    url = auth_server.url
    control = auth_server.state.control
    control.create_org("Acme", "acme")
    admin = control.create_api_key("acme", None, "acme admin", role="admin").key
    problems: list[str] = []
    page = browser.new_page(viewport=DESKTOP, color_scheme="light")
    watch(page, problems, allowed=_expected_refusals(url))
    _sign_in(page, url, admin)
    assert page.locator("#empty").is_visible(), "no rule yet"

    # a bad limit: the API's reason, word for word, under the Limit field
    page.locator("#budget-details > summary").click()
    budget = page.locator("#budget-form")
    budget.get_by_label("Name").fill("acme monthly")
    budget.get_by_label("Limit").fill("-5")
    budget.get_by_label("Channels").fill(HOOK)
    budget.get_by_role("button", name="Create budget").click()
    error = budget.locator('.field-error[data-field="limit_amount"]')
    error.wait_for()
    refused = httpx.post(f"{url}/api/v1/alert-rules", headers={"x-api-key": admin}, timeout=30,
                         json={"name": "x", "kind": "budget", "period": "month",
                               "limit_amount": "-5", "channels": [HOOK]})
    assert refused.status_code == 422
    assert error.inner_text() == refused.json()["errors"][0]["reason"]
    assert budget.get_by_label("Limit").get_attribute("aria-invalid") == "true"
    assert _rules(url, admin) == {}
    page.mouse.move(0, 0)
    shot(page, tmp_path, "alert-form-desktop.png")
    assert_accessible(page)

    # the budget, created
    budget.get_by_label("Limit").fill("500")
    budget.get_by_label("Notify at").fill("0.5, 1")
    budget.get_by_label("Filters").fill("project_id=web")
    budget.get_by_role("button", name="Create budget").click()
    row = page.locator("#budgets tbody tr", has_text="acme monthly")
    row.wait_for()
    made = _rules(url, admin)["acme monthly"]
    assert (made["kind"], made["period"], made["limit_amount"], made["thresholds"]) == (
        "budget", "month", "500", ["0.5", "1"])
    assert made["filters"] == {"org_id": "acme", "project_id": "web"}
    assert row.locator("td").nth(3).inner_text() == "$500.00"
    assert page.locator("#empty").is_hidden()
    assert budget.is_hidden(), "the form folds away"

    # edit it: the limit changes, the channel (listed without its token) is kept
    page.get_by_role("button", name="Edit budget acme monthly").click()
    assert budget.get_by_label("Limit").input_value() == "500"
    assert budget.get_by_label("Filters").input_value() == "project_id=web"
    budget.get_by_label("Limit").fill("750")
    budget.get_by_role("button", name="Save changes").click()
    expect(row.locator("td").nth(3)).to_have_text("$750.00", timeout=30_000)
    edited = _rules(url, admin)["acme monthly"]
    assert edited["id"] == made["id"] and edited["limit_amount"] == "750"
    stored = control.alerts.get_rule(made["id"])
    assert stored.spec.channels == (HOOK,), "the secret token survives the edit"

    # a threshold rule, created
    page.locator("#threshold-details > summary").click()
    rule_form = page.locator("#threshold-form")
    rule_form.get_by_label("Name").fill("errors")
    rule_form.get_by_label("Metric").select_option("error_rate")
    rule_form.get_by_label("Fires when").select_option(">")
    rule_form.get_by_label("Threshold").fill("0.05")
    rule_form.get_by_label("Window (s)").fill("600")
    rule_form.get_by_label("Channels").fill("email:oncall@example.com")
    rule_form.get_by_role("button", name="Create rule").click()
    rule_row = page.locator("#rules tbody tr", has_text="errors")
    rule_row.wait_for()
    rule = _rules(url, admin)["errors"]
    assert (rule["metric"], rule["op"], rule["threshold"], rule["window_s"]) == (
        "error_rate", ">", "0.05", 600)

    # disable with the keyboard, then delete after a confirmation
    page.get_by_role("button", name="Disable rule errors").focus()
    page.keyboard.press("Enter")
    expect(rule_row.locator("td").nth(1)).to_have_text("disabled", timeout=30_000)
    assert _rules(url, admin)["errors"]["enabled"] is False
    page.get_by_role("button", name="Delete rule errors").click()
    page.locator("#confirm").get_by_role("button", name="Cancel").click()
    assert "errors" in _rules(url, admin)
    page.get_by_role("button", name="Delete rule errors").click()
    page.locator("#confirm").get_by_role("button", name="Delete").click()
    rule_row.wait_for(state="detached")
    assert set(_rules(url, admin)) == {"acme monthly"}
    actions = [e.action for e in control.audit.entries(org_id="acme")]
    for action in ("budget.created", "budget.updated", "alert_rule.created",
                   "alert_rule.updated", "alert_rule.deleted"):
        assert action in actions, (action, actions)

    page.get_by_role("button", name="Dark theme").click()
    page.reload(wait_until="networkidle")
    loaded(page, "alerts")
    page.locator("#budget-details > summary").click()
    assert_accessible(page)

    phone = browser.new_page(viewport=PHONE, color_scheme="light")
    watch(phone, problems, allowed=_expected_refusals(url))
    phone.context.add_cookies(page.context.cookies())
    phone.goto(f"{url}/alerts", wait_until="networkidle")
    loaded(phone, "alerts")
    phone.get_by_role("button", name="Edit budget acme monthly").click()
    no_sideways_scroll(phone)
    shot(phone, tmp_path, "alert-form-phone.png")
    assert_accessible(phone)
    assert problems == []


@pytest.mark.e2e
def test_keyboard_reaches_the_forms_and_the_row_buttons(
        auth_server: LiveServer, browser: Browser) -> None:
    url = auth_server.url
    control = auth_server.state.control
    control.create_org("Acme", "acme")
    admin = control.create_api_key("acme", None, "acme admin", role="admin").key
    made = httpx.post(f"{url}/api/v1/alert-rules", headers={"x-api-key": admin}, timeout=30,
                      json={"name": "daily", "kind": "budget", "period": "day",
                            "limit_amount": "20", "channels": [HOOK]})
    assert made.status_code == 200, made.text
    problems: list[str] = []
    page = browser.new_page(viewport=DESKTOP)
    watch(page, problems, allowed=_expected_refusals(url))
    _sign_in(page, url, admin)
    reached: list[str] = []
    for _ in range(40):
        page.keyboard.press("Tab")
        reached.append(page.evaluate(
            "(() => { const e = document.activeElement;"
            " return e.getAttribute('aria-label') || e.textContent.trim(); })()"))
        if reached[-1] == "New budget" and reached.count("New budget") == 1:
            page.keyboard.press("Enter")  # opens the form: its fields come next
    for name in ("Edit budget daily", "Disable budget daily", "Delete budget daily",
                 "New budget", "Create budget", "New threshold rule"):
        assert name in reached, (name, reached)
    assert page.locator("#budget-form").is_visible()
    assert problems == []


@pytest.mark.e2e
def test_a_read_key_gets_no_form_and_no_button(
        auth_server: LiveServer, browser: Browser) -> None:
    url = auth_server.url
    control = auth_server.state.control
    control.create_org("Acme", "acme")
    admin = control.create_api_key("acme", None, "acme admin", role="admin").key
    read = control.create_api_key("acme", None, "dashboard", role="read").key
    made = httpx.post(f"{url}/api/v1/alert-rules", headers={"x-api-key": admin}, timeout=30,
                      json={"name": "daily", "kind": "budget", "period": "day",
                            "limit_amount": "20", "channels": [HOOK]})
    assert made.status_code == 200, made.text
    problems: list[str] = []
    page = browser.new_page(viewport=DESKTOP)
    watch(page, problems, allowed=_expected_refusals(url))
    _sign_in(page, url, read)
    assert page.locator("#budgets tbody tr").first.locator("td").first.inner_text() == "daily"
    assert page.locator("#rule-forms").count() == 0
    assert page.locator("#budgets thead th").all_inner_texts()[-1] == "Notifies"
    assert page.locator("main button").count() == 0
    assert_accessible(page)
    assert problems == []
