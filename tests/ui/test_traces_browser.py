"""The trace explorer in a real browser (Debian's headless Chromium): the trace list's
filters, sorts and pages change the rows and the URL; the costliest trace opens as a
waterfall whose root shows its subtree cost; span detail; keyboard-only use; a trace of
10,000 spans opens and scrolls with a bounded number of rows in the DOM; axe light and
dark; zero console errors, failed requests or requests leaving 127.0.0.1."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

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
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from playwright.sync_api import Browser, Page
from server_payloads import encode, export_request, llm_span, new_trace_id
from serverkit import LiveServer

MAX_ROWS_IN_DOM = 80
"""Rows a virtual waterfall may hold at once (a screenful plus overscan)."""


def _at(span: Span, base_ns: int, start_ms: float, duration_ms: float) -> Span:
    span.start_time_unix_nano = base_ns + int(start_ms * 1e6)
    span.end_time_unix_nano = span.start_time_unix_nano + int(duration_ms * 1e6)
    return span


def _send(url: str, spans: list[Span], project: str = "acme") -> None:
    body, headers = encode(export_request(spans, project_id=project))
    response = httpx.post(f"{url}/v1/traces", content=body, headers=headers, timeout=120)
    assert response.status_code == 200, response.text


def _agent_trace(url: str, name: str, steps: int, tokens: int, base_ns: int,
                 duration_ms: float, model: str = "gpt-4o", error: bool = False) -> str:
    """A root (no cost of its own) → ``steps`` "agent.step" spans → one LLM call each."""
    trace = new_trace_id()
    root = _at(llm_span(trace, name=name, input_tokens=None, output_tokens=None,
                        attrs={"mentat.agent_id": name.split()[0]}), base_ns, 0, duration_ms)
    spans = [root]
    for i in range(steps):
        step = _at(llm_span(trace, parent=root.span_id, name="agent.step", input_tokens=None,
                            output_tokens=None), base_ns, 1 + i * 10, 9)
        call = _at(llm_span(trace, parent=step.span_id, model=model, input_tokens=tokens,
                            output_tokens=tokens // 10, attrs={"step.index": i},
                            error=error and i == steps - 1), base_ns, 2 + i * 10, 6)
        spans += [step, call]
    _send(url, spans)
    return trace.hex()


def _seed(url: str) -> dict[str, str]:
    now = time.time_ns() - 60 * 10**9
    return {
        "support": _agent_trace(url, "support agent", 6, 20_000, now - 3 * 10**9, 900),
        "billing": _agent_trace(url, "billing agent", 2, 5_000, now - 2 * 10**9, 4_000,
                                error=True),
        "summary": _agent_trace(url, "summarize notes", 1, 1_000, now - 10**9, 200,
                                model="gpt-4o-mini"),
    }


def _api(url: str, path: str, **params: Any) -> Any:
    answer = httpx.get(f"{url}/api/v1{path}", params=params, timeout=60)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _names(page: Page) -> list[str]:
    return page.locator("#trace-list tbody td.name a").all_inner_texts()


def _query(page: Page) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query)


@pytest.mark.e2e
def test_trace_list_filters_sorts_pages_and_opens_the_costliest_waterfall(
        live_server: LiveServer, browser: Browser, tmp_path: Path) -> None:
    url = live_server.url
    ids = _seed(url)
    problems: list[str] = []
    page = browser.new_page(viewport=DESKTOP, color_scheme="light")
    watch(page, problems)

    page.goto(f"{url}/traces?range=1h", wait_until="networkidle")
    loaded(page, "traces")
    newest = _api(url, "/traces", start="2000-01-01T00:00:00Z")["traces"]
    assert _names(page) == [t["root_name"] for t in newest]
    assert _names(page) == ["summarize notes", "billing agent", "support agent"]
    assert page.locator("#empty").is_hidden() and page.locator("#error").is_hidden()
    shot(page, tmp_path, "traces-desktop.png")
    assert_accessible(page)

    # keyboard only: Tab reaches the search, the orders and every trace's link
    reached = tab_through(page, 60)
    for control in ("q", "min_cost", "min_duration_ms", "Search", "Costliest", "Longest",
                    "summarize notes", "billing agent", "support agent"):
        assert control in reached, (control, reached)
    page.get_by_role("link", name="Costliest").click()
    page.wait_for_url("**/traces?range=1h&sort=cost")
    loaded(page, "traces")
    costliest = _api(url, "/traces", sort="cost")["traces"]
    assert _names(page) == [t["root_name"] for t in costliest]
    assert _names(page)[0] == "support agent"
    first_cost = page.locator("#trace-list tbody tr").first.locator("td.num").last
    assert first_cost.get_attribute("title") == f"{costliest[0]['total_cost']} USD"

    page.get_by_role("link", name="Longest").click()
    page.wait_for_url("**/traces?range=1h&sort=duration")
    loaded(page, "traces")
    assert _names(page) == ["billing agent", "support agent", "summarize notes"]

    page.get_by_label("Root span name").fill("AGENT")
    page.get_by_label("Min duration (ms)").fill("1000")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url("**/traces?range=1h&sort=duration&q=AGENT&min_cost=&min_duration_ms=1000")
    loaded(page, "traces")
    assert _names(page) == ["billing agent"]

    page.goto(f"{url}/traces?range=1h&min_cost={costliest[1]['total_cost']}",
              wait_until="networkidle")
    loaded(page, "traces")
    top_two = {c["trace_id"] for c in costliest[:2]}
    expected = [t["root_name"] for t in newest if t["trace_id"] in top_two]
    assert len(expected) == 2 and _names(page) == expected
    page.goto(f"{url}/traces?range=1h&q=no+such+root", wait_until="networkidle")
    loaded(page, "traces")
    assert _names(page) == [] and page.locator("#empty").is_visible()

    # the shell's filter bar: status is the trace's status, model a span's model
    page.goto(f"{url}/traces?range=1h", wait_until="networkidle")
    loaded(page, "traces")
    page.get_by_label("Status").select_option("error")
    page.locator("form.filters").first.get_by_role("button", name="Apply").click()
    page.wait_for_url("**/traces?*status=error*")
    loaded(page, "traces")
    assert _names(page) == ["billing agent"]
    page.goto(f"{url}/traces?range=1h&model=gpt-4o-mini", wait_until="networkidle")
    loaded(page, "traces")
    assert _names(page) == ["summarize notes"]

    # pages of 2: next, then previous
    page.goto(f"{url}/traces?range=1h&limit=2", wait_until="networkidle")
    loaded(page, "traces")
    assert _names(page) == ["summarize notes", "billing agent"]
    assert page.locator("#prev-page").count() == 0
    page.get_by_role("link", name="Next →").click()
    page.wait_for_url("**/traces?range=1h&limit=2&offset=2")
    loaded(page, "traces")
    assert _names(page) == ["support agent"] and page.locator("#next-page").is_hidden()
    page.get_by_role("link", name="← Previous").click()
    page.wait_for_url("**/traces?range=1h&limit=2")
    loaded(page, "traces")
    assert _names(page) == ["summarize notes", "billing agent"]

    # the overview's top traces open their waterfall
    page.goto(f"{url}/?range=1h", wait_until="networkidle")
    loaded(page, "overview")
    page.locator("#top-traces tbody a").first.click()
    page.wait_for_url(f"**/traces/{ids['support']}*")
    loaded(page, "trace")
    assert page.locator("#error").is_hidden() and page.locator(".wf-row").count() == 2

    # the costliest trace's waterfall: its root reads its subtree's cost, not $0
    page.goto(f"{url}/traces?range=1h&sort=cost", wait_until="networkidle")
    loaded(page, "traces")
    page.locator("#trace-list tbody td.name a").first.click()
    page.wait_for_url(f"**/traces/{ids['support']}?range=1h&sort=cost")
    loaded(page, "trace")
    assert page.get_by_role("link", name="← All traces").get_attribute("href") == \
        "/traces?range=1h&sort=cost"
    tree = _api(url, f"/traces/{ids['support']}")
    root = page.locator(".wf-row").first
    own, subtree, unattributed = (root.locator(".num").nth(i) for i in range(3))
    assert subtree.get_attribute("title") == f"{tree['total_cost']} USD"
    assert tree["total_cost"] == tree["roots"][0]["subtree_cost"] != "0"
    assert own.get_attribute("title") == "0 USD" and unattributed.inner_text() == "—"
    metric = page.locator('[data-metric="total_cost"]')
    assert metric.get_attribute("title") == f"{tree['total_cost']} USD"
    assert page.locator('[data-metric="num_spans"]').inner_text() == "13"
    # the six "agent.step" siblings start as one collapsed group
    group = page.locator(".wf-row.wf-group")
    assert group.count() == 1 and "agent.step × 6" in group.inner_text()
    assert page.locator(".wf-row").count() == 2
    assert_accessible(page)

    # keyboard only: Tab reaches the waterfall, arrows move, Enter opens
    page.locator("body").focus()
    for _ in range(60):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.getAttribute('role')") == "treeitem":
            break
    assert page.evaluate("document.activeElement.textContent").startswith("▾support agent")
    page.keyboard.press("ArrowDown")
    assert "agent.step × 6" in page.evaluate("document.activeElement.textContent")
    page.keyboard.press("Enter")  # a group opens
    assert page.locator(".wf-row").count() == 2 + 6 + 6
    page.keyboard.press("ArrowDown")  # the first step
    page.keyboard.press("ArrowDown")  # its LLM call
    assert page.evaluate("document.activeElement.textContent").startswith("chat gpt-4o")
    page.keyboard.press("Enter")
    page.wait_for_selector("#trace[data-detail]")
    detail = page.locator("#detail-body")
    call = tree["roots"][0]["children"][0]["children"][0]
    assert page.locator("#trace").get_attribute("data-detail") == call["span_id"]
    assert "step.index" in detail.inner_text() and "Price source: genai-prices@" in \
        detail.inner_text()
    assert detail.locator("text=Subtree total").count() == 1
    assert "inherited from an ancestor" in detail.inner_text(), "the agent came from the root"
    assert page.url.endswith(f"#span-{call['span_id']}")
    page.keyboard.press("ArrowLeft")  # to its parent step
    page.keyboard.press("ArrowLeft")  # fold the step
    assert page.evaluate("document.activeElement.getAttribute('aria-expanded')") == "false"
    # the parent link in the detail selects the parent span
    detail.get_by_role("link", name="agent.step").click()
    step_id = tree["roots"][0]["children"][0]["span_id"]
    page.wait_for_selector(f'#trace[data-detail="{step_id}"]')
    assert "Children (1)" in detail.inner_text()
    page.mouse.move(0, 0)
    shot(page, tmp_path, "trace-desktop.png")
    assert_accessible(page)

    page.get_by_role("button", name="Dark theme").click()
    assert_accessible(page)
    shot(page, tmp_path, "trace-dark.png")
    page.goto(f"{url}/traces?range=1h", wait_until="networkidle")
    loaded(page, "traces")
    assert_accessible(page)

    phone = browser.new_page(viewport=PHONE, color_scheme="light")
    watch(phone, problems)
    phone.goto(f"{url}/traces?range=1h", wait_until="networkidle")
    loaded(phone, "traces")
    no_sideways_scroll(phone)
    shot(phone, tmp_path, "traces-phone.png")
    phone.goto(f"{url}/traces/{ids['support']}?range=1h#span-{call['span_id']}",
               wait_until="networkidle")
    loaded(phone, "trace")
    phone.wait_for_selector("#trace[data-detail]")
    no_sideways_scroll(phone)
    shot(phone, tmp_path, "trace-phone.png")
    assert problems == []


def _big_trace(url: str, steps: int = 1111, per_step: int = 8) -> tuple[str, str]:
    """A trace of 1 + steps × (1 + per_step) spans (10,000 by default): an agent loop.

    Returns the trace id and the span id of the last span (named "final answer").
    """
    trace = new_trace_id()
    base = time.time_ns() - 120 * 10**9
    root = _at(llm_span(trace, name="agent run", input_tokens=None, output_tokens=None),
               base, 0, steps * 10 + 5)
    spans = [root]
    names = ["chat gpt-4o", "tool search", "tool fetch", "chat gpt-4o-mini"]
    for i in range(steps):
        step = _at(llm_span(trace, parent=root.span_id, name="agent.step", input_tokens=None,
                            output_tokens=None), base, 1 + i * 10, 9)
        spans.append(step)
        for k in range(per_step):
            last = i == steps - 1 and k == per_step - 1
            spans.append(_at(llm_span(trace, parent=step.span_id,
                                      name="final answer" if last else names[k % 4],
                                      input_tokens=100 + k, output_tokens=10),
                             base, 1 + i * 10 + k, 1))
    for start in range(0, len(spans), 2_500):
        _send(url, spans[start:start + 2_500])
    return trace.hex(), spans[-1].span_id.hex()


@pytest.mark.e2e
def test_a_trace_of_10000_spans_opens_and_scrolls(
        live_server: LiveServer, browser: Browser, tmp_path: Path) -> None:
    url = live_server.url
    trace_id, last_span = _big_trace(url)
    sizes: dict[str, tuple[int, float, int]] = {}
    for view in ("tree", "timeline"):
        began = time.monotonic()
        answer = httpx.get(f"{url}/api/v1/traces/{trace_id}", params={"view": view},
                           timeout=120)
        sizes[view] = (len(answer.content), time.monotonic() - began,
                       answer.num_bytes_downloaded)
        assert answer.status_code == 200 and answer.json()["num_spans"] == 10_000
    print("10,000-span trace (bytes, on the wire, s):", sizes)  # noqa: T201 — the report's
    assert sizes["timeline"][0] * 3 < sizes["tree"][0], "the waterfall's answer is compact"
    problems: list[str] = []
    page = browser.new_page(viewport=DESKTOP, color_scheme="light")
    watch(page, problems)
    began = time.monotonic()
    page.goto(f"{url}/traces/{trace_id}", wait_until="commit")
    loaded(page, "trace")
    opened_s = time.monotonic() - began
    print(f"10,000-span trace open: {opened_s:.2f} s")  # noqa: T201 — the report's figure
    assert page.locator('[data-metric="num_spans"]').inner_text() == "10,000"
    assert page.locator(".wf-row").count() == 2, "root and the collapsed loop of 1,111 steps"
    page.get_by_role("button", name="Expand repeated spans").click()
    assert page.locator(".wf-row").count() <= MAX_ROWS_IN_DOM
    assert page.evaluate("document.getElementById('wf-rows').getAttribute('style')") == \
        f"height: {10_001 * 30}px;", "one row per span plus the group's"
    # scroll to the bottom: the last span is drawn, and still only a screenful of rows
    page.locator("#wf-scroll").evaluate("el => { el.scrollTop = el.scrollHeight; }")
    last = page.locator(f'.wf-row[data-span-id="{last_span}"]')
    last.wait_for()
    assert last.is_visible() and "final answer" in last.inner_text()
    assert page.locator(".wf-row").count() <= MAX_ROWS_IN_DOM
    last.click()
    page.wait_for_selector(f'#trace[data-detail="{last_span}"]')
    # keyboard: Home and End reach both ends of the 10,001 rows
    page.keyboard.press("Home")
    assert page.evaluate("document.activeElement.textContent").startswith("▾agent run")
    page.keyboard.press("End")
    assert "final answer" in page.evaluate("document.activeElement.textContent")
    assert page.locator(".wf-row").count() <= MAX_ROWS_IN_DOM
    shot(page, tmp_path, "trace-10k-desktop.png")
    assert problems == []


@pytest.mark.e2e
@pytest.mark.parametrize(("trace_id", "shown"), [
    ("not-a-trace", "Invalid trace id (trace_id: Expected 32 hex characters"),
    ("ab" * 16, f"Trace not found (trace_id: No spans for {'ab' * 16})"),
])
def test_a_bad_or_unknown_trace_shows_the_apis_reason(
        live_server: LiveServer, browser: Browser, trace_id: str, shown: str) -> None:
    problems: list[str] = []
    page = browser.new_page(viewport=DESKTOP)
    watch(page, problems, allowed=lambda text: "/api/v1/traces/" in text
          or "the server responded with a status of 4" in text)
    page.goto(f"{live_server.url}/traces/{trace_id}", wait_until="networkidle")
    loaded(page, "trace")
    error = page.locator("#error")
    assert error.is_visible() and shown in error.inner_text()
    assert page.locator(".trace-layout").is_hidden()
    assert_accessible(page)
    assert problems == []
