"""The product view in a real browser (Debian's headless Chromium via Playwright).

Seeded over OTLP: workflow ``support`` (agent ``triage``) runs 6 traces of prompt v1 about
an hour ago (100..150 ms) and 6 of prompt v2 half an hour ago (400..450 ms, every one
slower: a latency regression), users u0..u2; workflow ``billing`` runs 3 traces, one
failing. The view's numbers must be the API's (adoption, regressions, compare), with zero
console errors, failed requests or requests leaving 127.0.0.1; screenshots at desktop and
phone width; an empty server shows the empty states; a bad comparison says why.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from browserkit import DESKTOP, PHONE, assert_accessible, loaded, no_sideways_scroll, shot, watch
from playwright.sync_api import Browser, Page
from server_payloads import encode, export_request, llm_span, new_trace_id
from serverkit import LiveServer

MINUTE_NS = 60 * 10**9


def _seed(url: str) -> None:
    spans = []
    now_ns = time.time_ns()

    def add(ago_min: float, ms: int, error: bool = False, **attrs: str) -> None:
        span = llm_span(new_trace_id(), duration_ms=ms, error=error, attrs={
            f"mentat.{k}": v for k, v in attrs.items()})
        span.start_time_unix_nano = now_ns - int(ago_min * MINUTE_NS)
        span.end_time_unix_nano = span.start_time_unix_nano + ms * 1_000_000
        spans.append(span)

    for i in range(6):
        add(60 - i, 100 + 10 * i, agent_id="triage", workflow_id="support",
            prompt_version="v1", user_id=f"u{i % 3}")
        add(30 - i, 400 + 10 * i, agent_id="triage", workflow_id="support",
            prompt_version="v2", user_id=f"u{i % 3}")
    for i in range(3):
        add(40 - i, 200, error=i == 0, agent_id="clerk", workflow_id="billing", user_id="u9")
    body, headers = encode(export_request(spans, project_id="acme"))
    response = httpx.post(f"{url}/v1/traces", content=body, headers=headers, timeout=30)
    assert response.status_code == 200, response.text


def _api(url: str, page: Page, path: str, **params: str) -> Any:
    """The API's answer for the range and filter the page was rendered with."""
    view = page.locator("#product")
    window = {"start": view.get_attribute("data-start") or "",
              "end": view.get_attribute("data-end") or ""}
    return httpx.get(f"{url}/api/v1{path}", params={**window, **params}, timeout=30).json()


@pytest.mark.e2e
def test_product_numbers_are_the_apis(live_server: LiveServer, browser: Browser,
                                      tmp_path: Path) -> None:
    url = live_server.url
    _seed(url)
    problems: list[str] = []
    page = browser.new_page(viewport=DESKTOP, color_scheme="light")
    watch(page, problems)
    page.goto(f"{url}/product?range=24h", wait_until="networkidle")
    loaded(page, "product")
    assert page.locator("#empty").is_hidden()
    assert page.locator("#adoption-chart canvas").count() >= 1, "the chart is drawn"

    adoption = _api(url, page, "/analytics/adoption", bucket="hour")
    assert [(w["workflow_id"], w["num_traces"], w["num_users"]) for w in
            adoption["workflows"]] == [("support", 12, 3), ("billing", 3, 1)]
    rows = page.locator("#outcomes tbody tr")
    assert rows.count() == 2
    for n, w in enumerate(adoption["workflows"]):
        cells = rows.nth(n).locator("td")
        assert cells.nth(0).inner_text() == w["workflow_id"]
        assert cells.nth(1).inner_text() == str(w["num_traces"])
        assert cells.nth(2).inner_text() == str(w["num_users"])
        assert cells.nth(5).get_attribute("title") == f"{w['cost_per_success']} USD"
    assert rows.nth(1).locator("td").nth(3).inner_text() == "66.7%"  # 2 of 3 billing runs

    regressions = _api(url, page, "/analytics/regressions")
    [found] = regressions["regressions"]
    assert (found["agent_id"], found["version"], found["baseline"], found["metric"]) == (
        "triage", "v2", "v1", "latency_ms")
    row = page.locator("#regressions tbody tr")
    assert row.count() == 1
    texts = row.locator("td").all_inner_texts()
    assert texts[:2] == ["triage / chat", "prompt_version v2 (v1)"]
    assert texts[3] == "Latency p95"
    assert row.locator("td").nth(5).get_attribute("title") == (
        f"p = {found['p_value']}, adjusted {found['p_adjusted']}")
    summary = page.locator("#regressions-summary").inner_text()
    assert f"{regressions['num_tests']} tests" in summary
    shot(page, tmp_path, "product-desktop.png")
    assert_accessible(page)

    row.get_by_role("link", name="compare").click()
    page.wait_for_load_state("networkidle")
    loaded(page, "product")
    compare = _api(url, page, "/analytics/compare", field="prompt_version", a="v1", b="v2")
    latency = page.locator('#compare tbody tr[data-metric="latency_ms"] td')
    assert latency.nth(4).get_attribute("title") == str(compare["tests"]["latency_ms"]["p_value"])
    assert latency.nth(7).inner_text() == (
        "yes" if compare["tests"]["latency_ms"]["significant"] else "no")
    assert latency.nth(1).get_attribute("title") == f"{compare['a']['latency_p95_ms']} ms"
    rate = page.locator('#compare tbody tr[data-metric="success_rate"] td')
    assert "succeeded" in rate.nth(4).inner_text()  # not computed: compare's reason
    assert page.locator("#compare").is_visible()
    shot(page, tmp_path, "product-compare-desktop.png")

    phone = browser.new_page(viewport=PHONE, color_scheme="dark")
    watch(phone, problems)
    phone.goto(f"{url}/product?range=24h&field=prompt_version&a=v1&b=v2",
               wait_until="networkidle")
    loaded(phone, "product")
    no_sideways_scroll(phone)
    shot(phone, tmp_path, "product-phone.png")
    assert problems == []


@pytest.mark.e2e
def test_product_empty_and_a_bad_comparison(live_server: LiveServer, browser: Browser,
                                            tmp_path: Path) -> None:
    problems: list[str] = []
    page = browser.new_page(viewport=DESKTOP)
    watch(page, problems, allowed=lambda text: "analytics/compare" in text or "422" in text)
    page.goto(f"{live_server.url}/product?range=1h&a=v1&b=v9", wait_until="networkidle")
    loaded(page, "product")
    assert page.locator("#empty").is_visible()
    assert page.locator("#outcomes tbody").inner_text() == "No workflow runs in this range."
    assert "No significant regression" in page.locator("#regressions tbody").inner_text()
    assert "0 new versions" in page.locator("#regressions-summary").inner_text()
    note = page.locator("#compare-note").inner_text()
    assert note.startswith("Could not compare") and "a:" in note  # the field the API named
    assert page.locator("#compare").is_hidden()
    shot(page, tmp_path, "product-empty.png")
    assert problems == []
