"""The agent graph view and the trace view's critical path and replay scrubber, in a real
browser (Debian's headless Chromium): numbers and rows match the API, zero console
errors, failed requests or requests leaving 127.0.0.1; desktop and phone screenshots.

Seeded trace (ms after S; agent spans carry ``mentat.operation=agent``)::

    run     agent planner                 0 .. 400   checkpoint 50 replace {"step": "plan"}
      step  plain span                   10 .. 300
        write  agent writer              20 .. 200   checkpoint 100 {"draft": "v1"}
          search  tool, failed           30 ..  80
          again   agent planner (own)   100 .. 180   (writer → planner closes a cycle)
      search  tool                      300 .. 350
      cache   plain span                305 .. 340   (ran beside search: off the critical path)
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from browserkit import DESKTOP, PHONE, assert_accessible, loaded, no_sideways_scroll, shot, watch
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from playwright.sync_api import Browser, Page
from server_payloads import encode, export_request, kvs, new_span_id, new_trace_id
from serverkit import LiveServer

MS = 1_000_000


def _span(trace: bytes, parent: bytes, name: str, base: int, begin_ms: int, end_ms: int,
          attrs: dict[str, Any], *, error: bool = False,
          checkpoint: tuple[int, dict[str, Any], bool] | None = None) -> Span:
    span = Span(trace_id=trace, span_id=new_span_id(), parent_span_id=parent, name=name,
                kind=Span.SPAN_KIND_INTERNAL, start_time_unix_nano=base + begin_ms * MS,
                end_time_unix_nano=base + end_ms * MS, attributes=kvs(attrs))
    if error:
        span.status.code = 2
    if checkpoint is not None:
        at_ms, patch, replace = checkpoint
        span.events.add(time_unix_nano=base + at_ms * MS, name="mentat.checkpoint",
                        attributes=kvs({"mentat.checkpoint.patch": json.dumps(patch),
                                        "mentat.checkpoint.replace": replace}))
    return span


def _seed(url: str) -> str:
    base = (time.time_ns() // MS - 120_000) * MS
    trace = new_trace_id()
    agent = {"mentat.operation": "agent"}
    tool = {"mentat.operation": "tool", "mentat.tool_name": "search"}
    run = _span(trace, b"", "run", base, 0, 400, {**agent, "mentat.agent_id": "planner"},
                checkpoint=(50, {"step": "plan"}, True))
    step = _span(trace, run.span_id, "step", base, 10, 300, {})
    write = _span(trace, step.span_id, "write", base, 20, 200,
                  {**agent, "mentat.agent_id": "writer"}, checkpoint=(100, {"draft": "v1"}, False))
    failed = _span(trace, write.span_id, "search", base, 30, 80, tool, error=True)
    again = _span(trace, write.span_id, "again", base, 100, 180,
                  {**agent, "mentat.agent_id": "planner"})
    last = _span(trace, run.span_id, "search", base, 300, 350, tool)
    side = _span(trace, run.span_id, "cache", base, 305, 340, {})
    body, headers = encode(export_request([run, step, write, failed, again, last, side],
                                          project_id="acme"))
    response = httpx.post(f"{url}/v1/traces", content=body, headers=headers, timeout=120)
    assert response.status_code == 200, response.text
    return trace.hex()


def _api(url: str, path: str, **params: Any) -> Any:
    answer = httpx.get(f"{url}/api/v1{path}", params=params, timeout=60)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _wait_graph(url: str) -> Any:
    for _ in range(100):  # the resolver gives the tools their agent shortly after ingest
        graph = _api(url, "/analytics/graph")
        if len(graph["links"]) == 4:
            return graph
        time.sleep(0.1)
    raise AssertionError(graph)


@pytest.mark.e2e
def test_graph_view_matches_the_api_and_opens_traces(
        live_server: LiveServer, browser: Browser, tmp_path: Path) -> None:
    url = live_server.url
    _seed(url)
    graph = _wait_graph(url)
    problems: list[str] = []
    page = browser.new_page(viewport=DESKTOP, color_scheme="light")
    watch(page, problems)
    page.goto(f"{url}/graph?range=1h", wait_until="networkidle")
    loaded(page, "graph")
    rows = page.locator("#links tbody tr")
    got = [(r.get_attribute("data-source"), r.get_attribute("data-target"),
            r.locator("td").nth(2).inner_text()) for r in rows.all()]
    assert got == [(lk["source"], lk["target"], str(lk["count"])) for lk in graph["links"]]
    assert [r.get_attribute("data-node") for r in page.locator("#nodes tbody tr").all()] == [
        n["id"] for n in graph["nodes"]]
    # writer → planner closes the cycle planner → writer → planner: out of the Sankey
    assert [(lk["source"], lk["target"]) for lk in graph["links"] if lk["back_edge"]] == [
        ("agent:writer", "agent:planner")]
    assert "1 link closing a cycle" in page.locator("#sankey-note").inner_text()
    failing = page.locator('#links tbody tr[data-source="agent:writer"]'
                           '[data-target="tool:search"] td').nth(3)
    assert failing.inner_text() == "100%"
    for chart in ("deps", "sankey"):
        assert page.evaluate(f"!!echarts.getInstanceByDom(document.getElementById('{chart}'))")
    assert page.locator("#empty").is_hidden() and page.locator("#error").is_hidden()
    shot(page, tmp_path, "graph-desktop.png")
    assert_accessible(page)

    page.locator('#links tbody tr[data-source="agent:writer"][data-target="tool:search"] td'
                 ).nth(2).click()
    page.wait_for_url("**/traces?**")
    assert parse_qs(urlsplit(page.url).query) == {
        "range": ["1h"], "agent": ["writer"], "tool_name": ["search"]}
    loaded(page, "traces")
    assert page.locator("#trace-list tbody td.name a").all_inner_texts() == ["run"]

    phone = browser.new_page(viewport=PHONE, color_scheme="dark")
    watch(phone, problems)
    phone.goto(f"{url}/graph?range=1h", wait_until="networkidle")
    loaded(phone, "graph")
    no_sideways_scroll(phone)
    shot(phone, tmp_path, "graph-phone.png")

    phone.goto(f"{url}/graph?range=1h&agent=nobody", wait_until="networkidle")
    loaded(phone, "graph")
    assert phone.locator("#empty").is_visible()
    assert phone.locator("#links tbody").inner_text().strip() == "None."
    assert problems == []


def _faded(page: Page) -> set[str]:
    return {r.get_attribute("data-span-id") or "" for r in
            page.locator("#wf-rows .wf-row.wf-future").all()}


@pytest.mark.e2e
def test_trace_view_highlights_the_critical_path_and_replays(
        live_server: LiveServer, browser: Browser, tmp_path: Path) -> None:
    url = live_server.url
    trace = _seed(url)
    _wait_graph(url)
    timeline = _api(url, f"/traces/{trace}", view="timeline")
    problems: list[str] = []
    page = browser.new_page(viewport=DESKTOP, color_scheme="light")
    watch(page, problems)
    page.goto(f"{url}/traces/{trace}", wait_until="networkidle")
    loaded(page, "trace")
    page.wait_for_selector("#trace[data-replay-at]")
    highlighted = {r.get_attribute("data-span-id") for r in
                   page.locator("#wf-rows .wf-row[data-critical=true]").all()}
    assert highlighted == set(timeline["critical_path"]) and len(highlighted) >= 2
    cache = timeline["spans"]["span_id"][timeline["spans"]["name"].index("cache")]
    assert cache not in highlighted
    assert page.locator("#wf-rows .wf-row.wf-critical").count() == len(highlighted)

    # the detail shows the API's self and critical-path times of the span
    cols = timeline["spans"]
    pos = cols["span_id"].index(timeline["critical_path"][-1])
    page.locator(f'#wf-rows .wf-row[data-span-id="{cols["span_id"][pos]}"]').click()
    page.wait_for_selector(f'#trace[data-detail="{cols["span_id"][pos]}"]')
    detail = page.locator("#detail-body table.kv").first
    self_row = detail.locator("tr", has_text="Self time").locator("td").inner_text()
    cp_row = detail.locator("tr", has_text="Critical path").locator("td").inner_text()
    assert self_row == f"{cols['self_time_ms'][pos]:g} ms"
    assert cp_row == f"{cols['critical_path_ms'][pos]:g} ms · on the critical path"

    # at the end nothing is faded; the state is the last
    end = _api(url, f"/traces/{trace}/replay")
    assert json.loads(page.locator("#replay-state").inner_text()) == end["state"] == {
        "step": "plan", "draft": "v1"}
    assert _faded(page) == set()
    # scrub to 15% (60 ms): the search at 300 and the again at 100 have not started
    page.evaluate("""() => { const s = document.getElementById('scrub');
        s.value = String(Math.round(Number(s.max) * 0.15));
        s.dispatchEvent(new Event('input')); }""")
    page.wait_for_function("() => document.getElementById('trace').dataset.replayAt !== "
                           f"{json.dumps(end['at'])}")
    at = page.get_attribute("#trace", "data-replay-at")
    assert at is not None
    mid = _api(url, f"/traces/{trace}/replay", at=at)
    assert mid["state"] == {"step": "plan"} and mid["num_not_started"] == 3
    assert json.loads(page.locator("#replay-state").inner_text()) == mid["state"]
    assert _faded(page) == set(cols["span_id"]) - set(mid["spans"]["span_id"])
    page.get_by_role("button", name="Next event").click()
    page.wait_for_function("() => document.getElementById('trace').dataset.replayAt === "
                           f"{json.dumps(mid['next'])}")
    after = _api(url, f"/traces/{trace}/replay", at=mid["next"])
    assert json.loads(page.locator("#replay-state").inner_text()) == after["state"]
    shot(page, tmp_path, "trace-replay-desktop.png")
    assert_accessible(page)

    phone = browser.new_page(viewport=PHONE, color_scheme="light")
    watch(phone, problems)
    phone.goto(f"{url}/traces/{trace}", wait_until="networkidle")
    loaded(phone, "trace")
    phone.wait_for_selector("#trace[data-replay-at]")
    no_sideways_scroll(phone)
    shot(phone, tmp_path, "trace-replay-phone.png")
    assert problems == []
