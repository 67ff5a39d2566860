"""The ops view in a real browser (Debian's headless Chromium): while the test ingests
spans, the charts (from WS /api/v1/live/stats) and the live feed (WS /api/v1/live) change
without a reload; errors by type and firing alerts match the API; zero console errors,
failed requests or requests leaving 127.0.0.1 (the WebSockets pass the strict CSP); axe
light and dark; keyboard; screenshots."""

from __future__ import annotations

import time
from collections.abc import Iterator
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
from server_payloads import encode, export_request, llm_span
from serverkit import LiveServer, make_settings, run_live_server

from receivers import WebhookReceiver

# the sum of the request-rate chart's "Requests" line: with ?every=1 each point is the
# requests of one second, so the sum is the requests of the charted minute
_CHARTED_REQUESTS = """() => {
  const chart = echarts.getInstanceByDom(document.getElementById("rate-chart"));
  const series = chart.getOption().series.find((s) => s.name === "Requests");
  return series.data.reduce((sum, point) => sum + point[1], 0);
}"""


@pytest.fixture
def alerting_server(_isolated_data_dir: Path) -> Iterator[LiveServer]:
    """A live server whose alert evaluator runs every 0.2 s."""
    yield from run_live_server(make_settings(_isolated_data_dir, alert_interval_s=0.2))


def _ingest(url: str, spans: list[Any]) -> None:
    body, headers = encode(export_request(spans, project_id="acme"))
    response = httpx.post(f"{url}/v1/traces", content=body, headers=headers, timeout=30)
    assert response.status_code == 200, response.text


def _seed(url: str, hook_url: str) -> int:
    """An error-rate rule that fires, and 6 calls of which 4 failed: 3 rate limits, 1 timeout.

    Returns the number of LLM calls sent.
    """
    rule = httpx.post(f"{url}/api/v1/alert-rules", timeout=30, json={
        "name": "error rate above 10%", "kind": "threshold", "metric": "error_rate",
        "op": ">", "threshold": "0.1", "window_s": 600, "channels": [f"webhook:{hook_url}"]})
    assert rule.status_code == 200, rule.text
    spans = [llm_span(error=True, attrs={"error.type": "RateLimitError"}) for _ in range(3)]
    spans += [llm_span(error=True, attrs={"error.type": "TimeoutError"}, duration_ms=900),
              llm_span(duration_ms=300), llm_span(duration_ms=200)]
    _ingest(url, spans)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        rules = httpx.get(f"{url}/api/v1/alert-rules", timeout=30).json()["rules"]
        if rules[0]["state"] == "firing":
            return len(spans)
        time.sleep(0.1)
    raise AssertionError("the error-rate rule did not fire")


def _wait_charted(page: Page, wanted: int, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    charted = None
    while time.monotonic() < deadline:
        charted = page.evaluate(_CHARTED_REQUESTS)
        if charted == wanted:
            return
        time.sleep(0.1)
    raise AssertionError(f"expected {wanted} requests charted, got {charted}")


@pytest.mark.e2e
def test_the_ops_view_updates_while_spans_arrive(
        alerting_server: LiveServer, browser: Browser, tmp_path: Path) -> None:
    url = alerting_server.url
    with WebhookReceiver() as hook:
        _check_the_view_live(url, _seed(url, hook.url), browser, tmp_path)


def _check_the_view_live(url: str, seeded: int, browser: Browser, tmp_path: Path) -> None:
    problems: list[str] = []
    page = browser.new_page(viewport=DESKTOP, color_scheme="light")
    watch(page, problems)
    page.goto(f"{url}/ops?every=1&range=1h", wait_until="load")
    loaded(page, "ops")
    assert page.locator("#empty").is_hidden()
    _wait_charted(page, seeded)  # the backfill, or the next intervals, hold the seed
    page.evaluate("window.notReloaded = true")

    # errors by type and firing alerts, as the API says
    view = page.locator("#ops")
    api = httpx.get(f"{url}/api/v1/cost", timeout=30, params={
        "group_by": "error_category", "start": view.get_attribute("data-start") or "",
        "end": view.get_attribute("data-end") or ""}).json()
    wanted = sorted((r["error_category"], r["error_spans"]) for r in api["rows"]
                    if r["error_spans"])
    assert wanted == [("rate_limit", 3), ("timeout", 1)]
    shown = sorted((r.locator("td").nth(0).inner_text(), int(r.locator("td").nth(1).inner_text()))
                   for r in page.locator("#error-types tbody tr").all())
    assert shown == wanted
    page.wait_for_selector("#firing tbody td.state-firing", timeout=10_000)
    assert page.locator("#firing tbody tr").first.locator("td").nth(1).inner_text() == \
        "error rate above 10%"

    # new spans: the request chart and the card change, the feed shows them on top
    _ingest(url, [llm_span(name=f"live call {i}", duration_ms=150) for i in range(4)])
    _wait_charted(page, seeded + 4)
    page.wait_for_selector("#feed tbody tr[data-span-id] >> text=live call 3", timeout=10_000)
    newest = page.locator("#feed tbody tr").first.inner_text()
    assert "live call" in newest
    assert page.locator("#feed tbody tr[data-span-id]").count() == 4, "spans since the page opened"
    assert page.evaluate("window.notReloaded") is True, "updated without a reload"

    # paused, the feed holds new spans back; resumed, they show on top
    page.get_by_role("button", name="Pause").click()
    _ingest(url, [llm_span(name="while paused")])
    page.wait_for_selector("#feed-note >> text=1 new spans waiting", timeout=10_000)
    assert page.locator("#feed tbody >> text=while paused").count() == 0
    page.get_by_role("button", name="Resume").click()
    assert "while paused" in page.locator("#feed tbody tr").first.inner_text()
    _wait_charted(page, seeded + 5)

    shot(page, tmp_path, "ops-desktop.png")
    assert_accessible(page)
    page.get_by_role("button", name="Dark theme").click()
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    assert_accessible(page)
    shot(page, tmp_path, "ops-dark.png")
    page.set_viewport_size(PHONE)
    page.reload(wait_until="load")
    loaded(page, "ops")
    page.wait_for_selector("#connection >> text=charts on, feed on")
    _ingest(url, [llm_span(name="on a phone")])
    page.wait_for_selector("#feed >> text=on a phone", timeout=10_000)
    no_sideways_scroll(page)
    shot(page, tmp_path, "ops-phone.png")
    assert problems == []


@pytest.mark.e2e
def test_an_empty_store_shows_the_empty_state_and_keyboard_reaches_the_controls(
        live_server: LiveServer, browser: Browser, tmp_path: Path) -> None:
    problems: list[str] = []
    page = browser.new_page(viewport=DESKTOP, color_scheme="dark")
    watch(page, problems)
    page.goto(live_server.url + "/ops", wait_until="load")
    loaded(page, "ops")
    page.wait_for_selector("#empty", state="visible", timeout=10_000)
    assert "OTEL_EXPORTER_OTLP_ENDPOINT=" + live_server.url in page.locator("#empty").inner_text()
    page.wait_for_selector("#error-types >> text=No errors in this range.")
    page.wait_for_selector("#firing >> text=No alert is firing.")
    assert page.locator('[data-metric="requests"]').inner_text() == "0"
    assert page.locator('[data-metric="spend"]').inner_text() == "$0.00"
    page.wait_for_selector("#connection >> text=charts on, feed on")
    shot(page, tmp_path, "ops-empty.png")
    reached = tab_through(page, 80)
    for control in ("Skip to content", "Ops", "every", "Set", "All alerts and budgets", "Pause"):
        assert control in reached, (control, "; ".join(map(str, reached)))
    page.locator("#pause").focus()
    page.keyboard.press("Enter")
    assert page.locator("#pause").get_attribute("aria-pressed") == "true"
    assert_accessible(page)
    # the first span hides the empty state, without a reload
    _ingest(live_server.url, [llm_span(name="first ever")])
    page.get_by_role("button", name="Resume").click()
    page.wait_for_selector("#feed >> text=first ever", timeout=10_000)
    assert page.locator("#empty").is_hidden()
    assert problems == []


@pytest.mark.e2e
def test_refusals_and_api_errors_show_the_error_state(
        live_server: LiveServer, browser: Browser) -> None:
    problems: list[str] = []
    page = browser.new_page(viewport=DESKTOP)
    watch(page, problems, allowed=lambda text: "/api/v1/cost" in text
          or text.endswith("status of 503 (Service Unavailable)"))
    page.route("**/api/v1/cost?*", lambda route: route.fulfill(status=503, json={
        "ok": False, "status": 503, "error": "Store unavailable",
        "errors": [{"field": "store", "reason": "chDB session closed"}]}))

    def refuse(ws: Any) -> None:  # what the server answers a filter outside the scope
        ws.send('{"ok": false, "status": 403, "error": "Forbidden", "errors": '
                '[{"field": "filter.org_id", "reason": "outside your scope"}]}')
        ws.close(code=1008, reason="policy")

    page.route_web_socket("**/api/v1/live/stats?*", refuse)
    page.goto(live_server.url + "/ops", wait_until="load")
    loaded(page, "ops")
    page.wait_for_selector("#error-types >> text=Could not load the errors.")
    page.wait_for_selector("#connection >> text=charts refused")
    error = page.locator("#error")
    assert error.is_visible() and error.get_attribute("role") == "alert"
    assert sorted(error.inner_text().splitlines()) == [
        "/cost: Store unavailable (store: chDB session closed)",
        "Live stats: Forbidden (filter.org_id: outside your scope)"]
    assert problems == []
