"""The reliability view in a real browser: seeded runs (successes, retried rate limits, a
context-length failure, a tool loop, an agent cycle that timed out) show the API's rates,
heatmap, taxonomy (whose links open the failing traces), loops and cycles; empty and
error states; zero console errors; desktop and phone screenshots; axe."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from browserkit import DESKTOP, PHONE, assert_accessible, loaded, no_sideways_scroll, shot, watch
from playwright.sync_api import Browser, Page
from server_payloads import encode, export_request, llm_span, new_trace_id
from serverkit import LiveServer

AGENT = {"gen_ai.operation.name": "invoke_agent"}
SEARCH = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search",
          "gen_ai.tool.call.arguments": '{"q": "refund policy"}'}
RATE_LIMIT = {"error.type": "RateLimitError", "http.response.status_code": 429}
CONTEXT = {"error.type": "BadRequestError", "http.response.status_code": 400,
           "mentat.error_type": "context_length_exceeded"}


def _run(agent: str = "planner", root_error: bool = False,
         root_attrs: dict[str, Any] | None = None) -> tuple[bytes, Any, list[Any]]:
    trace = new_trace_id()
    root = llm_span(trace, name="run", input_tokens=None, output_tokens=None, error=root_error,
                    attrs={**AGENT, "gen_ai.agent.name": agent, **(root_attrs or {})})
    return trace, root, [root]


def _child(trace: bytes, parent: Any, name: str = "chat", error: bool = False,
           **attrs: Any) -> Any:
    return llm_span(trace, parent=parent.span_id, name=name, error=error, attrs=attrs)


def _seed(url: str) -> None:
    spans: list[Any] = []
    for _ in range(4):  # plain successes
        trace, root, run = _run()
        spans += [*run, _child(trace, root)]
    for _ in range(2):  # a rate limit, then a retry that works: the run succeeds
        trace, root, run = _run()
        spans += [*run, _child(trace, root, error=True, **RATE_LIMIT),
                  _child(trace, root, **{"mentat.is_retry": True})]
    trace, root, run = _run(root_error=True)  # the run fails: context too long
    spans += [*run, _child(trace, root, error=True, **CONTEXT)]
    trace, root, run = _run()  # the same search three times: a loop
    spans += [*run, *(_child(trace, root, name="execute_tool search", **SEARCH)
                      for _ in range(3))]
    trace, a, run = _run("A", root_error=True, root_attrs={"error.type": "TimeoutError"})
    b = llm_span(trace, parent=a.span_id, name="B", attrs={**AGENT, "gen_ai.agent.name": "B"})
    inner = llm_span(trace, parent=b.span_id, name="A",
                     attrs={**AGENT, "gen_ai.agent.name": "A"})
    spans += [*run, b, inner]  # A → B → A, and A timed out: a deadlock suspect
    body, headers = encode(export_request(spans, project_id="acme"))
    response = httpx.post(f"{url}/v1/traces", content=body, headers=headers, timeout=30)
    assert response.status_code == 200, response.text


def _api(url: str, page: Page) -> Any:
    view = page.locator("#reliability")
    answer = httpx.get(f"{url}/api/v1/analytics/reliability", params={
        "start": view.get_attribute("data-start") or "",
        "end": view.get_attribute("data-end") or "",
        "filter": view.get_attribute("data-filter") or ""}, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _percent(rate: float) -> str:
    """What Intl's percent format with at most one decimal shows (en-US)."""
    return f"{rate * 100:.1f}".removesuffix(".0") + "%"


def _metric(page: Page, name: str) -> str:
    return page.locator(f'[data-metric="{name}"]').inner_text()


@pytest.mark.e2e
def test_reliability_view_shows_the_apis_numbers(live_server: LiveServer, browser: Browser,
                                                 tmp_path: Path) -> None:
    url = live_server.url
    _seed(url)
    problems: list[str] = []
    page = browser.new_page(viewport=DESKTOP, color_scheme="light")
    watch(page, problems)
    page.goto(f"{url}/reliability?range=24h", wait_until="networkidle")
    loaded(page, "reliability")
    assert page.locator("#error").is_hidden() and page.locator("#empty").is_hidden()
    body = _api(url, page)
    traces = body["traces"]
    # by hand: 9 runs, 7 ok (the context failure and the timed-out A are not)
    assert (traces["num_traces"], traces["num_ok"]) == (9, 7)
    assert _metric(page, "trace_success") == _percent(traces["success_rate"]) == "77.8%"
    assert _metric(page, "trace_detail").startswith("7 of 9 runs; 1 ended in a timeout")
    assert _metric(page, "loop_detail") == "1 run"
    assert _metric(page, "span_success") == _percent(body["spans"]["success_rate"])
    assert _metric(page, "retry_rate") == _percent(body["retries"]["retry_rate"])
    assert _metric(page, "retry_success") == "100%"  # both retries worked
    assert _metric(page, "fallback_rate") == "0%"
    assert _metric(page, "loop_rate") == _percent(body["loop_detected"]["rate"]) == "11.1%"

    # the heatmap draws the API's cells
    option = ("echarts.getInstanceByDom(document.getElementById('heatmap')).getOption()")
    drawn = page.evaluate(f"{option}.series[0].data.map(d => d[2])")
    assert page.evaluate(f"{option}.visualMap[0].dimension") == 2, "coloured by failures"
    assert sorted(drawn) == sorted(c["num_failed"] for c in body["heatmap"]["cells"])
    assert sum(drawn) == body["spans"]["num_failed"] == 5

    # taxonomy: a row per class then its categories, each linking to its traces
    rows = page.locator("#taxonomy tbody tr")
    expected = []
    for cls in body["errors"]["by_class"]:
        expected.append((cls["error_class"], str(cls["num_failed"])))
        expected += [(c["error_category"], str(c["num_failed"]))
                     for c in body["errors"]["by_category"]
                     if c["error_class"] == cls["error_class"]]
    assert [(r.locator("td").nth(0).inner_text(), r.locator("td").nth(1).inner_text())
            for r in rows.all()] == expected
    assert ("rate_limit", "2") in expected and ("context_length_exceeded", "1") in expected

    # loops and cycles
    [loop] = body["loop_detected"]["loops"]
    assert page.locator("#loops tbody a").inner_text() == loop["trace_id"]
    [cycle] = body["cycles"]["traces"]
    cycle_row = page.locator("#cycles tbody tr").first.locator("td")
    assert cycle_row.nth(0).inner_text() == cycle["trace_id"]
    assert cycle_row.nth(1).inner_text() == "A → B → A"
    assert cycle_row.nth(2).inner_text() == "yes: timed out"
    assert body["deadlock_suspects"]["num_traces"] == 1

    page.mouse.move(0, 0)
    shot(page, tmp_path, "reliability-desktop.png")
    assert_accessible(page)

    # drill-down: the rate_limit row opens the trace list filtered to it
    page.locator("#taxonomy a", has_text="rate_limit").click()
    page.wait_for_url("**/traces?**")
    query = parse_qs(urlsplit(page.url).query)
    assert query["error_category"] == ["rate_limit"] and query["range"] == ["24h"]
    page.wait_for_load_state("networkidle")
    listed = httpx.get(f"{url}/api/v1/traces",
                       params={"filter": "error_category=rate_limit"}, timeout=30).json()
    assert len(listed["traces"]) == 2
    page.goto(f"{url}/reliability?range=24h", wait_until="networkidle")
    loaded(page, "reliability")
    page.locator("#cycles tbody a").click()
    page.wait_for_url(f"**/traces/{cycle['trace_id']}**")
    page.wait_for_load_state("networkidle")  # the trace page's requests all answered

    phone = browser.new_page(viewport=PHONE, color_scheme="light")
    watch(phone, problems)
    phone.goto(f"{url}/reliability?range=24h", wait_until="networkidle")
    loaded(phone, "reliability")
    no_sideways_scroll(phone)
    shot(phone, tmp_path, "reliability-phone.png")
    assert problems == []


@pytest.mark.e2e
def test_reliability_empty_and_error_states(live_server: LiveServer, browser: Browser,
                                            tmp_path: Path) -> None:
    problems: list[str] = []
    page = browser.new_page(viewport=DESKTOP, color_scheme="light")
    watch(page, problems)
    page.goto(f"{live_server.url}/reliability", wait_until="networkidle")
    loaded(page, "reliability")
    assert page.locator("#empty").is_visible() and page.locator("#error").is_hidden()
    assert page.locator("#heatmap").inner_text() == "No failed step in this range."
    assert page.locator("#taxonomy tbody").inner_text().strip() == (
        "No failed span in this range.")
    assert _metric(page, "trace_success") == "—"
    shot(page, tmp_path, "reliability-empty.png")
    assert_accessible(page)

    broken = browser.new_page(viewport=DESKTOP)
    watch(broken, problems, allowed=lambda text: "/analytics/reliability" in text
          or text.endswith("status of 503 (Service Unavailable)"))
    broken.route("**/api/v1/analytics/reliability*", lambda route: route.fulfill(
        status=503, json={"ok": False, "status": 503, "error": "Store unavailable",
                          "errors": [{"field": "store", "reason": "chDB session closed"}]}))
    broken.goto(f"{live_server.url}/reliability", wait_until="networkidle")
    loaded(broken, "reliability")
    assert broken.locator("#error").inner_text() == (
        "Could not load reliability: /analytics/reliability: Store unavailable "
        "(store: chDB session closed)")
    assert problems == []
