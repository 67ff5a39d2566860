"""The overview in a real browser (Debian's headless Chromium via Playwright): seeded data
shows its numbers and chart with zero console errors, failed requests or requests leaving
127.0.0.1; the range picker changes the URL and the numbers; screenshots for the docs."""

from __future__ import annotations

import time
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
    tab_through,
    watch,
)
from playwright.sync_api import Browser, Page
from server_payloads import encode, export_request, llm_span, new_trace_id
from serverkit import LiveServer

_HOUR_NS = 3_600 * 1_000_000_000
AGENTS = ("planner", "researcher", "writer", "critic", "router", "summarizer")


def _seed(url: str) -> None:
    """60 gpt-4o calls over the last 7 days: 6 agents of different spend, 7 errors."""
    spans = []
    now_ns = time.time_ns()
    for i in range(60):
        agent = AGENTS[i % len(AGENTS)]
        span = llm_span(new_trace_id(), input_tokens=20_000 * (1 + i % len(AGENTS)),
                        output_tokens=4_000, duration_ms=300 + 40 * i, error=i % 9 == 0,
                        attrs={"gen_ai.agent.name": agent})
        # the first 12 in the last hour (the 1h range), the rest spread over 7 days
        age_ns = i * 60 * 10**9 if i < 12 else (i % 7) * 24 * _HOUR_NS + (i % 5) * _HOUR_NS
        duration_ns = span.end_time_unix_nano - span.start_time_unix_nano
        span.start_time_unix_nano = now_ns - age_ns - duration_ns
        span.end_time_unix_nano = now_ns - age_ns
        spans.append(span)
    body, headers = encode(export_request(spans, project_id="acme"))
    response = httpx.post(f"{url}/v1/traces", content=body, headers=headers, timeout=30)
    assert response.status_code == 200, response.text


def _api(url: str, page: Page, path: str, **params: str) -> Any:
    """The API's answer for the range and filter the page was rendered with."""
    view = page.locator("#overview")
    window = {"start": view.get_attribute("data-start") or "",
              "end": view.get_attribute("data-end") or ""}
    return httpx.get(f"{url}/api/v1{path}", params={**window, **params}, timeout=30).json()


@pytest.mark.e2e
def test_overview_shows_seeded_numbers_and_chart_and_the_range_changes_them(
        live_server: LiveServer, browser: Browser, tmp_path: Path) -> None:
    url = live_server.url
    _seed(url)
    problems: list[str] = []
    page = browser.new_page(viewport=DESKTOP, color_scheme="light")
    watch(page, problems)
    page.goto(f"{url}/?range=7d", wait_until="networkidle")
    loaded(page, "overview")
    overview = _api(url, page, "/overview")
    assert overview["requests"] == 60
    spend = page.locator('[data-metric="spend"]')
    assert spend.get_attribute("title") == f"{overview['spend']} USD", "exact value on hover"
    assert spend.inner_text().startswith("$")
    assert page.locator('[data-metric="requests"]').inner_text() == "60"
    assert page.locator('[data-metric="success_rate"]').inner_text().endswith("%")
    assert page.locator('[data-metric="latency_p95_ms"]').inner_text().endswith(("ms", " s"))
    assert page.locator("#trend canvas").count() >= 1, "the chart is drawn"
    rows = page.locator("#top-agents tbody tr")
    assert rows.count() == 5
    costliest = max(_api(url, page, "/cost", group_by="agent_id")["rows"],
                    key=lambda r: float(r["total_cost"]))
    assert rows.first.locator("td").first.inner_text() == costliest["agent_id"]
    traces = page.locator("#top-traces tbody tr")
    assert traces.count() == 5
    top = _api(url, page, "/traces", sort="cost", limit="5")["traces"]
    assert traces.first.locator("td").nth(2).get_attribute("title") == \
        f"{top[0]['total_cost']} USD"
    assert page.locator("#empty").is_hidden() and page.locator("#error").is_hidden()
    page.mouse.move(0, 0)
    shot(page, tmp_path, "overview-seeded-desktop.png")
    assert_accessible(page)

    page.get_by_role("link", name="1h", exact=True).click()
    page.wait_for_url("**/?range=1h")
    loaded(page, "overview")
    recent = _api(url, page, "/overview")
    assert 0 < recent["requests"] < 60
    assert page.locator('[data-metric="requests"]').inner_text() == str(recent["requests"])

    page.get_by_label("Status").select_option("error")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url("**/?range=1h&*status=error*")
    loaded(page, "overview")
    assert page.locator("#overview").get_attribute("data-filter") == "status=error"

    page.get_by_role("button", name="Dark theme").click()
    assert page.locator("html").get_attribute("data-theme") == "dark"
    page.goto(f"{url}/?range=7d", wait_until="networkidle")
    loaded(page, "overview")
    assert page.locator("html").get_attribute("data-theme") == "dark", "kept in localStorage"
    shot(page, tmp_path, "overview-seeded-dark.png")
    assert_accessible(page)

    phone = browser.new_page(viewport=PHONE, color_scheme="light")
    watch(phone, problems)
    phone.goto(f"{url}/?range=7d", wait_until="networkidle")
    loaded(phone, "overview")
    no_sideways_scroll(phone)
    shot(phone, tmp_path, "overview-seeded-phone.png")
    assert problems == []


@pytest.mark.e2e
def test_an_empty_store_shows_the_empty_state_and_keyboard_reaches_the_controls(
        live_server: LiveServer, browser: Browser, tmp_path: Path) -> None:
    problems: list[str] = []
    page = browser.new_page(viewport=DESKTOP, color_scheme="light")
    watch(page, problems)
    page.goto(live_server.url + "/", wait_until="networkidle")
    loaded(page, "overview")
    assert page.locator("#empty").is_visible()
    assert "OTEL_EXPORTER_OTLP_ENDPOINT=" + live_server.url in page.locator("#empty").inner_text()
    assert page.locator('[data-metric="spend"]').inner_text() == "$0.00"
    reached = tab_through(page, 34)  # skip link, brand, 15 views, theme, ranges, filters
    assert reached[0] == "Skip to content"
    for control in ("Overview", "Cost", "24h", "7d", "Dark theme", "Apply"):
        assert control in reached, (control, reached)
    shot(page, tmp_path, "dashboard-overview-empty.png")
    assert_accessible(page)
    assert problems == []


@pytest.mark.e2e
def test_with_auth_on_a_read_key_signs_in_and_sees_only_its_org(
        auth_server: LiveServer, browser: Browser, tmp_path: Path) -> None:
    server = auth_server
    control = server.state.control
    for org, num_spans in (("acme", 2), ("other", 5)):
        control.create_org(org.title(), org)
        ingest_key = control.create_api_key(org, None, "ingest", role="ingest").key
        body, headers = encode(export_request([llm_span() for _ in range(num_spans)]))
        response = httpx.post(f"{server.url}/v1/traces", content=body, timeout=30,
                              headers={**headers, "x-api-key": ingest_key})
        assert response.status_code == 200, response.text
    read_key = control.create_api_key("acme", None, "dashboard", role="read").key
    problems: list[str] = []
    page = browser.new_page(viewport=DESKTOP, color_scheme="light")
    first = f"{server.url}/?range=1h"  # the sign-in page answers 401, as the matrix says
    watch(page, problems, allowed=lambda text: text == first or text.endswith(
        "status of 401 (Unauthorized)"))
    page.goto(first, wait_until="networkidle")
    assert page.get_by_role("heading", name="Sign in").is_visible()
    shot(page, tmp_path, "dashboard-signin.png")
    assert_accessible(page)
    page.get_by_label("API key").fill(read_key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("#overview", timeout=30_000)
    loaded(page, "overview")
    assert page.url == first
    assert page.locator('[data-metric="requests"]').inner_text() == "2", "acme's only"
    cookie = {c["name"]: c for c in page.context.cookies()}["mentat_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert problems == []


@pytest.mark.e2e
def test_an_api_error_shows_the_error_state_with_the_apis_reason(
        live_server: LiveServer, browser: Browser) -> None:
    problems: list[str] = []
    page = browser.new_page(viewport=DESKTOP)
    watch(page, problems, allowed=lambda text: "/api/v1/overview" in text
           or text.endswith("status of 503 (Service Unavailable)"))
    page.route("**/api/v1/overview?*", lambda route: route.fulfill(status=503, json={
        "ok": False, "status": 503, "error": "Store unavailable",
        "errors": [{"field": "store", "reason": "chDB session closed"}]}))
    page.goto(live_server.url + "/", wait_until="networkidle")
    loaded(page, "overview")
    error = page.locator("#error")
    assert error.is_visible()
    assert error.inner_text() == ("Could not load the overview: /overview: Store unavailable "
                                  "(store: chDB session closed)")
    assert page.locator('[data-metric="spend"]').inner_text() == "—"
    assert page.locator("#empty").is_hidden(), "an error is not an empty store"
    assert problems == []
