"""A span's guardrail policy decisions in the trace view's span detail, in a real browser
(Debian's headless Chromium): a blocked span shows its decisions and no payload; zero
console errors or failed requests."""

from __future__ import annotations

from pathlib import Path

import httpx
from browserkit import DESKTOP, assert_accessible, loaded, shot, watch
from playwright.sync_api import Browser
from server_payloads import encode, export_request, llm_span, new_trace_id
from serverkit import LiveServer


def test_span_detail_shows_policy_decisions(live_server: LiveServer, browser: Browser,
                                            tmp_path: Path) -> None:
    url = live_server.url
    made = httpx.post(f"{url}/api/v1/policies", timeout=30, json={
        "id": "no-secret-prompts", "name": "no secret prompts", "action": "block",
        "condition": 'span.name == "leaky call"'})
    assert made.status_code == 201, made.text
    trace = new_trace_id()
    span = llm_span(trace, name="leaky call",
                    attrs={"gen_ai.input.messages": "the launch code is 0000"})
    body, headers = encode(export_request([span]))
    assert httpx.post(f"{url}/v1/traces", content=body, headers=headers,
                      timeout=60).status_code == 200
    problems: list[str] = []
    page = browser.new_page(viewport=DESKTOP, color_scheme="dark")
    watch(page, problems)
    page.goto(f"{url}/traces/{trace.hex()}?range=1h#span-{span.span_id.hex()}",
              wait_until="networkidle")
    loaded(page, "trace")
    page.wait_for_selector("#trace[data-detail]")
    detail = page.locator("#detail-body").inner_text()
    assert "Policy decisions (1)" in detail
    assert "no-secret-prompts" in detail and "block" in detail
    assert "dropped this span's payload" in detail
    assert "launch code" not in detail
    assert_accessible(page)
    shot(page, tmp_path, "trace-policy-decisions.png")
    assert problems == []
