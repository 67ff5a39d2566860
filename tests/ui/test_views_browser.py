"""The models and alerts views in a real browser (Debian's headless Chromium): seeded data
(an unpriced model, a budget that fired) shows with zero console errors, failed requests or
requests leaving 127.0.0.1; axe finds nothing serious, light and dark; screenshots."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from browserkit import (
    DESKTOP,
    PHONE,
    assert_accessible,
    loaded,
    no_sideways_scroll,
    shot,
    tab_through,
    watch,
)
from playwright.sync_api import Browser
from server_payloads import encode, export_request, llm_span
from serverkit import LiveServer, make_settings, run_live_server

from receivers import WebhookReceiver


@pytest.fixture
def alerting_server(_isolated_data_dir: Path) -> Iterator[LiveServer]:
    """A live server whose alert evaluator runs every 0.2 s."""
    yield from run_live_server(make_settings(_isolated_data_dir, alert_interval_s=0.2))


def _seed(url: str, hook_url: str) -> None:
    """gpt-4o calls and an unpriced self-hosted model; a budget of 0.01 USD that fires."""
    made = httpx.post(f"{url}/api/v1/alert-rules", timeout=30, json={
        "name": "acme monthly", "kind": "budget", "period": "month", "limit_amount": "0.01",
        "thresholds": ["0.5", "1"], "filters": {"project": "acme"},
        "channels": [f"webhook:{hook_url}"]})
    assert made.status_code == 200, made.text
    rule = httpx.post(f"{url}/api/v1/alert-rules", timeout=30, json={
        "name": "error rate", "kind": "threshold", "metric": "error_rate", "op": ">",
        "threshold": "0.5", "window_s": 600, "channels": [f"webhook:{hook_url}"]})
    assert rule.status_code == 200, rule.text
    spans = [llm_span(input_tokens=3_000 * (i + 1), output_tokens=500) for i in range(3)]
    spans += [llm_span(model="acme-llama-3-8b-ft", provider="self-hosted",
                       input_tokens=12_345, output_tokens=1_000) for _ in range(2)]
    for span in spans[3:]:  # a minute older than the last one, so "last seen" orders them
        span.start_time_unix_nano -= 60 * 10**9
        span.end_time_unix_nano -= 60 * 10**9
    spans.append(llm_span(model="zeta-small", provider="self-hosted", input_tokens=10,
                          output_tokens=5))
    body, headers = encode(export_request(spans, project_id="acme"))
    response = httpx.post(f"{url}/v1/traces", content=body, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        alerts = httpx.get(f"{url}/api/v1/alerts", timeout=30).json()["alerts"]
        if len(alerts) >= 2 and all(d["status"] != "pending"
                                    for a in alerts for d in a["deliveries"]):
            return
        time.sleep(0.1)
    raise AssertionError("the budget did not fire")


@pytest.mark.e2e
def test_models_and_alerts_show_the_seeded_data(
        alerting_server: LiveServer, browser: Browser, tmp_path: Path) -> None:
    url = alerting_server.url
    with WebhookReceiver() as hook:
        _seed(url, hook.url)
    problems: list[str] = []
    page = browser.new_page(viewport=DESKTOP, color_scheme="light")
    watch(page, problems)

    page.goto(f"{url}/models?range=24h", wait_until="networkidle")
    loaded(page, "models")
    rows = page.locator("#unpriced tbody tr")
    assert rows.count() == 2, "the seeded unpriced models"
    cells = rows.first.locator("td")
    assert cells.nth(0).inner_text() == "self-hosted"
    assert cells.nth(1).inner_text() == "acme-llama-3-8b-ft"
    assert cells.nth(2).inner_text() == "2"
    assert cells.nth(3).inner_text() == "24,690", "counts with separators"
    snippet = page.locator("#pricing-snippet").inner_text()
    assert 'provider = "self-hosted"\nmodel = "acme-llama-3-8b-ft"' in snippet
    assert "mentatctl reprice" in page.locator("#how-to-price").inner_text()
    assert page.locator("#all-priced").is_hidden() and page.locator("#error").is_hidden()
    assert "genai-prices@" in page.locator("#token-source").inner_text()
    rates = page.locator("#infra-rates tbody tr")
    assert rates.count() >= 6
    first_rate = rates.first.locator("td").nth(1)
    assert (first_rate.get_attribute("title") or "").endswith(" USD"), "exact value on hover"
    page.mouse.move(0, 0)
    shot(page, tmp_path, "dashboard-models-desktop.png")
    assert_accessible(page)

    page.get_by_role("link", name="Last seen").click()
    page.wait_for_url("**/models?range=24h&sort=last_seen")
    loaded(page, "models")
    names = page.locator("#unpriced tbody tr td:nth-child(2)").all_inner_texts()
    assert names == ["zeta-small", "acme-llama-3-8b-ft"], "newest first"
    page.get_by_label("Find a model").fill("llama")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url("**/models?range=24h&sort=last_seen&q=llama")
    loaded(page, "models")
    assert page.locator("#unpriced tbody tr td:nth-child(2)").all_inner_texts() == [
        "acme-llama-3-8b-ft"]
    page.get_by_label("Find a model").fill("gpt")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url("**/models?range=24h&sort=last_seen&q=gpt")
    loaded(page, "models")
    assert "No unpriced model matches" in page.locator("#unpriced tbody").inner_text()

    page.goto(f"{url}/alerts", wait_until="networkidle")
    loaded(page, "alerts")
    budget = page.locator("#budgets tbody tr")
    assert budget.count() == 1
    cells = budget.first.locator("td")
    assert cells.nth(0).inner_text() == "acme monthly"
    assert cells.nth(1).inner_text() == "firing"
    listed = httpx.get(f"{url}/api/v1/alert-rules", timeout=30).json()["rules"]
    spend = next(r for r in listed if r["kind"] == "budget")["last_value"]
    assert (cells.nth(2).get_attribute("title") or "").startswith(f"{spend} USD")
    assert cells.nth(3).inner_text() == "$0.01"
    assert page.locator("#rules tbody tr").first.locator("td").first.inner_text() == "error rate"
    history = page.locator("#history tbody tr")
    assert history.count() == 2
    assert "sent" in history.all_inner_texts()[0] + history.all_inner_texts()[1]
    assert page.locator("#empty").is_hidden() and page.locator("#error").is_hidden()
    page.mouse.move(0, 0)
    shot(page, tmp_path, "dashboard-alerts-desktop.png")
    assert_accessible(page)

    page.get_by_role("button", name="Dark theme").click()
    for view in ("models", "alerts"):
        page.goto(f"{url}/{view}", wait_until="networkidle")
        loaded(page, view)
        assert_accessible(page)
    shot(page, tmp_path, "dashboard-alerts-dark.png")

    phone = browser.new_page(viewport=PHONE, color_scheme="light")
    watch(phone, problems)
    for view in ("models", "alerts"):
        phone.goto(f"{url}/{view}", wait_until="networkidle")
        loaded(phone, view)
        no_sideways_scroll(phone)
        shot(phone, tmp_path, f"dashboard-{view}-phone.png")
    assert problems == []


@pytest.mark.e2e
def test_empty_models_and_alerts_say_what_to_do(
        live_server: LiveServer, browser: Browser, tmp_path: Path) -> None:
    problems: list[str] = []
    page = browser.new_page(viewport=DESKTOP, color_scheme="light")
    watch(page, problems)
    page.goto(live_server.url + "/models", wait_until="networkidle")
    loaded(page, "models")
    assert page.locator("#all-priced").inner_text() == \
        "Every model seen in this range is priced."
    assert page.locator("#how-to-price").is_hidden()
    reached = tab_through(page, 60)
    for control in ("Models", "Alerts", "7d", "Apply", "q", "Search"):
        assert control in reached, (control, reached)
    assert_accessible(page)
    page.goto(live_server.url + "/alerts", wait_until="networkidle")
    loaded(page, "alerts")
    assert "mentatctl budgets add" in page.locator("#empty").inner_text()
    assert page.locator("#history tbody").inner_text() == "No alert has fired yet."
    shot(page, tmp_path, "dashboard-alerts-empty.png")
    assert_accessible(page)
    assert problems == []


@pytest.mark.e2e
@pytest.mark.parametrize(("view", "api"), [("models", "/api/v1/unpriced"),
                                           ("alerts", "/api/v1/alert-rules")])
def test_an_api_error_shows_the_views_error_state(
        live_server: LiveServer, browser: Browser, view: str, api: str) -> None:
    problems: list[str] = []
    page = browser.new_page(viewport=DESKTOP)
    watch(page, problems, allowed=lambda text: api in text
           or text.endswith("status of 503 (Service Unavailable)"))
    page.route(f"**{api}*", lambda route: route.fulfill(status=503, json={
        "ok": False, "status": 503, "error": "Store unavailable",
        "errors": [{"field": "store", "reason": "chDB session closed"}]}))
    page.goto(f"{live_server.url}/{view}", wait_until="networkidle")
    loaded(page, view)
    assert page.locator("#error").inner_text() == (
        f"Could not load the {view}: {api.removeprefix('/api/v1')}: Store unavailable "
        "(store: chDB session closed)")
    assert page.locator("#empty, #all-priced").first.is_hidden(), "an error is not empty"
    assert problems == []
