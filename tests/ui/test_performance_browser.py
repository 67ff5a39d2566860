"""The performance view in a real browser: the latency table, histogram and peer ranks
show the API's numbers with zero console errors; empty state; desktop and phone shots."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from browserkit import DESKTOP, PHONE, assert_accessible, loaded, no_sideways_scroll, shot, watch
from playwright.sync_api import Browser
from server_payloads import encode, export_request, llm_span, new_trace_id
from serverkit import LiveServer


def _run(url: str, agent: str, root_ms: int, model: str, call_ms: int) -> None:
    trace = new_trace_id()
    root = llm_span(trace, name=f"invoke_agent {agent}", input_tokens=None,
                    output_tokens=None, duration_ms=root_ms, model="",
                    attrs={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": agent})
    call = llm_span(trace, parent=root.span_id, model=model, duration_ms=call_ms,
                    provider="anthropic" if model.startswith("claude") else "openai",
                    input_tokens=100 if model == "gpt-4o" else 2000, output_tokens=50)
    call.start_time_unix_nano = root.start_time_unix_nano + 1_000_000
    call.end_time_unix_nano = call.start_time_unix_nano + call_ms * 1_000_000
    body, headers = encode(export_request([root, call], project_id="acme"))
    response = httpx.post(f"{url}/v1/traces", content=body, headers=headers, timeout=30)
    assert response.status_code == 200, response.text


@pytest.mark.e2e
def test_performance_view_shows_the_api_numbers(live_server: LiveServer, browser: Browser,
                                                tmp_path: Path) -> None:
    url = live_server.url
    problems: list[str] = []
    page = browser.new_page(viewport=DESKTOP, color_scheme="light")
    watch(page, problems)
    page.goto(f"{url}/performance?range=1h", wait_until="networkidle")
    loaded(page, "performance")
    assert page.locator("#empty").is_visible(), "no spans yet: the empty state"
    assert "No spans to group by operation" in page.locator("#latency tbody").inner_text()
    assert "No agent ran" in page.locator("#peers tbody").inner_text()

    for i in range(6):
        _run(url, "triage", 300 + 100 * i, "gpt-4o", 80 + 40 * i)
    for i in range(3):
        _run(url, "writer", 1500 + 500 * i, "claude-sonnet-4", 900 + 300 * i)

    page.goto(f"{url}/performance?range=1h&by=model", wait_until="networkidle")
    loaded(page, "performance")
    api = httpx.get(f"{url}/api/v1/analytics/latency", timeout=30, params={
        "group_by": "model", "start": page.locator("#performance").get_attribute("data-start"),
        "end": page.locator("#performance").get_attribute("data-end")}).json()
    rows = page.locator("#latency tbody tr")
    assert rows.count() == len(api["groups"]) == 2
    for n, group in enumerate(api["groups"]):
        cells = rows.nth(n).locator("td")
        assert cells.nth(0).inner_text() == group["key"]
        assert cells.nth(1).inner_text() == str(group["num_spans"])
        for column, key in ((2, "p50_ms"), (3, "p90_ms"), (4, "p95_ms"), (5, "p99_ms")):
            title = cells.nth(column).get_attribute("title") or ""
            assert float(title.removesuffix(" ms")) == group[key], key  # the exact value
    assert rows.first.locator("td").first.inner_text() == "gpt-4o"  # 6 spans: busiest first
    assert page.locator("#histogram canvas").count() == 1
    assert "of gpt-4o (6 spans)" in page.locator("#histogram-of").inner_text()
    page.get_by_role("button", name="claude-sonnet-4").click()
    assert "of claude-sonnet-4 (3 spans)" in page.locator("#histogram-of").inner_text()

    peers = httpx.get(f"{url}/api/v1/analytics/peers", timeout=30, params={
        "start": page.locator("#performance").get_attribute("data-start"),
        "end": page.locator("#performance").get_attribute("data-end")}).json()["agents"]
    prow = page.locator("#peers tbody tr")
    assert prow.count() == len(peers) == 2
    for n, agent in enumerate(peers):
        cells = prow.nth(n).locator("td")
        assert cells.nth(0).inner_text() == agent["agent_id"]
        ranks = [float(r) for r in
                 prow.nth(n).locator("td[data-rank]").evaluate_all(
                     "cells => cells.map(c => c.dataset.rank)")]
        assert ranks == [agent[m]["percentile_rank"] for m in
                         ("cost_per_success", "latency_p50_ms", "tokens_per_success")]
        assert (cells.nth(3).get_attribute("title") or "").startswith(
            agent["cost_per_success"]["value"])
    by_agent = {a["agent_id"]: a for a in peers}
    assert by_agent["triage"]["latency_p50_ms"]["percentile_rank"] == 25  # faster of two
    assert page.locator("#error").is_hidden() and page.locator("#empty").is_hidden()
    page.mouse.move(0, 0)
    shot(page, tmp_path, "dashboard-performance-desktop.png")
    assert_accessible(page)

    phone = browser.new_page(viewport=PHONE, color_scheme="dark")
    watch(phone, problems)
    phone.goto(f"{url}/performance?range=1h&by=agent", wait_until="networkidle")
    loaded(phone, "performance")
    assert phone.locator("#latency tbody tr").count() == 2
    no_sideways_scroll(phone)
    shot(phone, tmp_path, "dashboard-performance-phone.png")
    assert_accessible(phone)
    assert problems == []
