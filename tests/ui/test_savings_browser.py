"""The savings view in a real browser (Debian's headless Chromium): the cards show the
API's numbers, with zero console errors or failed requests, axe finds nothing serious,
it fits a phone; the empty and error states say what happened. Screenshots (desktop,
phone) go to the test's folder and, for a person to look at, to /tmp."""

from __future__ import annotations

import shutil
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
    watch,
)
from playwright.sync_api import Browser, Page
from server_payloads import encode, export_request, llm_span, new_trace_id
from serverkit import LiveServer

PROMPT = ("Answer as the support agent of ACME; cite the policy. " * 200)[:8190]


def _seed(url: str) -> None:
    """12 gpt-4o retries (9 failing) and 11 claude calls repeating one long prompt."""
    spans = [llm_span(new_trace_id(), input_tokens=1000, output_tokens=100, error=i < 9,
                      attrs={"mentat.is_retry": True, "mentat.attempt": 2,
                             "mentat.agent_id": "fetcher"}) for i in range(12)]
    spans += [llm_span(new_trace_id(), model="claude-sonnet-4", provider="anthropic",
                       input_tokens=4000, output_tokens=100,
                       attrs={"input.value": PROMPT, "mentat.agent_id": "writer"})
              for _ in range(11)]
    body, headers = encode(export_request(spans, project_id="web"))
    response = httpx.post(f"{url}/v1/traces", content=body, headers=headers, timeout=30)
    assert response.status_code == 200, response.text


def _api_answer(page: Page, url: str) -> dict[str, object]:
    view = page.locator("#savings")
    params = {"start": view.get_attribute("data-start"), "end": view.get_attribute("data-end")}
    answer: dict[str, object] = httpx.get(f"{url}/api/v1/recommendations", params=params,
                                          timeout=30).json()
    return answer


def _keep(tmp_path: Path, name: str) -> None:
    shutil.copyfile(tmp_path / name, Path("/tmp") / name)


@pytest.mark.e2e
def test_savings_cards_show_the_apis_numbers(live_server: LiveServer, browser: Browser,
                                             tmp_path: Path) -> None:
    url = live_server.url
    _seed(url)
    problems: list[str] = []
    page = browser.new_page(viewport=DESKTOP, color_scheme="light")
    watch(page, problems)
    page.goto(f"{url}/savings?range=24h", wait_until="networkidle")
    loaded(page, "savings")
    body = _api_answer(page, url)
    recs = body["recommendations"]
    assert isinstance(recs, list) and [r["kind"] for r in recs] == [
        "prompt_caching", "failing_retries"]
    total = page.locator("#total")
    assert total.get_attribute("title") == f"{body['total_saving_per_month']} USD"
    assert total.inner_text().startswith("$")
    cards = page.locator("#recommendations > li")
    assert cards.count() == len(recs)
    for i, rec in enumerate(recs):
        one = cards.nth(i)
        assert one.get_attribute("data-kind") == rec["kind"]
        assert one.locator("h2").inner_text() == rec["title"]
        saving = one.locator("[data-metric=saving_per_month]")
        assert saving.get_attribute("title") == f"{rec['saving_per_month']} USD"
        for name, value in rec["evidence"].items():
            shown = one.locator(f"dd[data-name={name}]").get_attribute("title")
            if isinstance(value, str):
                assert shown == value, name
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                assert float(shown or "nan") == value, name  # JS prints 0.0 as "0"
        links = one.locator(".samples a")
        assert links.count() == len(rec["sample_trace_ids"]) > 0
        assert links.first.get_attribute("href") == f"/traces/{rec['sample_trace_ids'][0]}"
    retry = cards.nth(1)
    assert retry.locator("dd[data-name=retry_failure_rate]").inner_text() == "75%"  # 9 / 12
    assert page.locator("#empty").is_hidden() and page.locator("#error").is_hidden()
    page.mouse.move(0, 0)
    shot(page, tmp_path, "dashboard-savings-desktop.png")
    _keep(tmp_path, "dashboard-savings-desktop.png")
    assert_accessible(page)

    retry.locator(".samples a").first.click()
    page.wait_for_url("**/traces/*")
    # the trace page's own requests (timeline, replay) finish before the next navigation,
    # which would otherwise abort them and count as failed requests
    page.wait_for_load_state("networkidle")

    page.get_by_role("button", name="Dark theme").click()
    page.goto(f"{url}/savings?range=24h", wait_until="networkidle")
    loaded(page, "savings")
    assert_accessible(page)

    phone = browser.new_page(viewport=PHONE, color_scheme="light")
    watch(phone, problems)
    phone.goto(f"{url}/savings?range=24h", wait_until="networkidle")
    loaded(phone, "savings")
    no_sideways_scroll(phone)
    shot(phone, tmp_path, "dashboard-savings-phone.png")
    _keep(tmp_path, "dashboard-savings-phone.png")
    assert problems == []


@pytest.mark.e2e
def test_savings_empty_and_error_states(live_server: LiveServer, browser: Browser,
                                        tmp_path: Path) -> None:
    url = live_server.url
    problems: list[str] = []
    page = browser.new_page(viewport=DESKTOP, color_scheme="light")
    watch(page, problems)
    page.goto(f"{url}/savings", wait_until="networkidle")
    loaded(page, "savings")
    assert page.locator("#empty").is_visible()
    assert "Nothing to recommend" in page.locator("#empty").inner_text()
    assert page.locator("#total").get_attribute("title") == "0 USD"
    assert page.locator("#recommendations > li").count() == 0
    assert problems == []

    failing = browser.new_page(viewport=DESKTOP, color_scheme="light")
    failing.route("**/api/v1/recommendations*", lambda route: route.fulfill(
        status=503, content_type="application/json",
        body='{"ok": false, "status": 503, "error": "Store unavailable", "errors": []}'))
    failing.goto(f"{url}/savings", wait_until="networkidle")
    loaded(failing, "savings")
    error = failing.locator("#error")
    assert error.is_visible() and "Could not load the recommendations" in error.inner_text()
    assert failing.locator("#total").inner_text() == "—"
