"""The cost explorer in a real browser (Debian's headless Chromium via Playwright): seeded
spend of 11 agents, 4 models, 2 projects and 3 customers shows with the API's exact totals;
the crossed matrix keeps the top N and lumps the rest into "other" with the API's sums; the
breakdown and the range live in the URL; a cell opens its traces; the CSV links answer the
rows on screen; zero console errors, failed or off-host requests; axe, light and dark."""

from __future__ import annotations

import csv
import io
from collections import Counter
from decimal import Decimal
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
from playwright.sync_api import Browser, Page
from server_payloads import encode, export_request, llm_span, new_trace_id
from serverkit import LiveServer, make_settings, run_live_server

from mentatlab.analytics.query import GROUP_BY_COLUMNS

_DAY_NS = 24 * 3_600 * 1_000_000_000
AGENTS = tuple(f"agent-{n:02d}" for n in range(11))
MODELS = ("gpt-4o", "gpt-4o-mini", "claude-3-5-haiku-20241022")
UNPRICED = "acme-llama-3-8b-ft"
CUSTOMERS = ("globex", "initech", "umbrella")


def _seed(url: str) -> None:
    """66 priced calls (now), 6 unpriced, 5 three days old; some with metered CPU."""
    batches: dict[str, list[Any]] = {"acme": [], "globex-labs": []}
    for i in range(66):
        agent = AGENTS[i % len(AGENTS)]
        model = MODELS[i % len(MODELS)]
        attrs: dict[str, Any] = {"mentat.agent_id": agent,
                                 "mentat.customer_id": CUSTOMERS[i % len(CUSTOMERS)]}
        if i % 4 == 0:
            attrs["mentat.resource.cpu_core_seconds"] = 1_800.0 + i
        span = llm_span(new_trace_id(), model=model, input_tokens=1_000 * (1 + i % 11),
                        provider="anthropic" if model.startswith("claude") else "openai",
                        output_tokens=200 + 13 * i, attrs=attrs)
        batches["acme" if i % 3 else "globex-labs"].append(span)
    for i in range(6):
        batches["acme"].append(llm_span(new_trace_id(), model=UNPRICED, provider="self-hosted",
                                        input_tokens=5_000, output_tokens=100,
                                        attrs={"mentat.agent_id": AGENTS[i]}))
    for i in range(5):  # three days ago: in the 7d range, not in 24h
        span = llm_span(new_trace_id(), input_tokens=90_000, output_tokens=9_000,
                        attrs={"mentat.agent_id": "agent-old"})
        span.start_time_unix_nano -= 3 * _DAY_NS + i
        span.end_time_unix_nano -= 3 * _DAY_NS + i
        batches["acme"].append(span)
    for project, spans in batches.items():
        body, headers = encode(export_request(spans, project_id=project))
        response = httpx.post(f"{url}/v1/traces", content=body, headers=headers, timeout=30)
        assert response.status_code == 200, response.text


def _api(url: str, page: Page, **params: str) -> Any:
    """``/api/v1/cost`` for the window and filter the page was rendered with."""
    view = page.locator("#cost")
    window = {"start": view.get_attribute("data-start") or "",
              "end": view.get_attribute("data-end") or "",
              "filter": view.get_attribute("data-filter") or ""}
    answer = httpx.get(f"{url}/api/v1/cost", params={**window, **params}, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _exact(page: Page, selector: str) -> Decimal:
    return Decimal(page.locator(selector).get_attribute("data-exact") or "nan")


def _check_matrix(url: str, page: Page, by: str, cross: str, top: int) -> dict[str, Any]:
    """The matrix on screen is the API's top-N answer: every cell, "other", the total."""
    lumped = _api(url, page, group_by=f"{by},{cross}", top=str(top))
    full = _api(url, page, group_by=f"{by},{cross}")
    assert Decimal(lumped["total_cost"]) == Decimal(full["total_cost"])
    assert _exact(page, "#matrix-total") == Decimal(lumped["total_cost"])
    names = {r[by] for r in lumped["rows"]}
    kept = len({r[by] for r in full["rows"]}) > top
    assert (None in names) == kept, "an 'other' row exactly when keys were lumped"
    rows = page.locator("#matrix tbody tr")
    assert rows.count() == len(names) + 1, "one row per kept key (+ other) and the total"
    headers = page.locator("#matrix tbody th[scope=row]").all_inner_texts()
    assert ("other" in headers) == kept
    shown = sorted(Decimal(v) for v in page.locator("#matrix tbody td.heat[data-exact]")
                   .evaluate_all("cells => cells.map(c => c.dataset.exact)"))
    assert shown == sorted(Decimal(r["total_cost"]) for r in lumped["rows"])
    return lumped


@pytest.mark.e2e
def test_cost_explorer_shows_the_apis_numbers_and_keeps_its_state_in_the_url(
        live_server: LiveServer, browser: Browser, tmp_path: Path) -> None:
    url = live_server.url
    _seed(url)
    problems: list[str] = []
    page = browser.new_page(viewport=DESKTOP, color_scheme="light")
    watch(page, problems)
    page.goto(f"{url}/cost?range=7d", wait_until="networkidle")
    loaded(page, "cost")
    assert page.locator("#error").is_hidden() and page.locator("#empty").is_hidden()

    # spend by agent: one row per agent, the exact total is the API's
    table = _api(url, page, group_by="agent_id")
    assert len(table["rows"]) == len(AGENTS) + 1
    assert page.locator("#by-table tbody tr").count() == len(table["rows"])
    assert _exact(page, "#by-total") == Decimal(table["total_cost"])
    spend = page.locator('[data-metric="spend"]')
    assert spend.get_attribute("title") == f"{table['total_cost']} USD"
    first = page.locator("#by-table tbody tr").first.locator("td")
    costliest = max(table["rows"], key=lambda r: Decimal(r["total_cost"]))
    assert first.nth(0).inner_text() == costliest["agent_id"]
    assert first.nth(1).get_attribute("title") == f"{costliest['total_cost']} USD"

    # agent × model, top 8: the API's cells and "other"
    _check_matrix(url, page, "agent_id", "model", 8)
    assert "4 more agent and 0 more model keys" in page.locator("#matrix-note").inner_text()

    # trend stacked by agent (8 + other), sunburst drawn
    series = page.evaluate("echarts.getInstanceByDom(document.getElementById('trend'))"
                           ".getOption().series.map(s => s.name)")
    assert len(series) == 9 and series[-1] == "other"
    sunburst = page.evaluate("echarts.getInstanceByDom(document.getElementById('sunburst'))"
                             ".getOption().series[0].data.map(d => d.name)")
    assert sunburst == ["(none)"], "no org without auth: one ring for the org"
    rings = page.evaluate("""() => {
      const data = echarts.getInstanceByDom(document.getElementById('sunburst'))
        .getOption().series[0].data;
      const agents = data[0].children.flatMap((project) => project.children);
      return { total: data[0].exact, agents: agents.map((a) => a.name) };
    }""")
    assert Decimal(rings["total"]) == Decimal(table["total_cost"])
    assert "other" in rings["agents"], "agents past the top 8 lumped in the sunburst too"
    assert page.locator("#sunburst canvas").count() == 1

    # tokens and infrastructure from the ungrouped row
    totals = _api(url, page, group_by="")["rows"][0]
    token_rows = dict(zip(page.locator("#tokens tbody td:first-child").all_inner_texts(),
                          page.locator("#tokens tbody td:nth-child(2)").all_inner_texts(),
                          strict=True))
    assert token_rows["All tokens"] == f"{totals['input_tokens'] + totals['output_tokens']:,}"
    assert page.locator("#token-cost-value").get_attribute("title") == \
        f"{totals['token_cost']} USD"
    infra = sum(Decimal(totals[f"{k}_cost"]) for k in ("cpu", "memory", "gpu", "network",
                                                         "storage"))
    assert infra > 0 and Decimal((page.locator("#infra-total").get_attribute("title") or "")
                                 .removesuffix(" USD")) == infra
    assert page.locator("#infra-note").is_hidden()
    notice = page.locator("#unpriced")
    assert UNPRICED in notice.inner_text() and "claude" not in notice.inner_text()
    assert notice.get_by_role("link").get_attribute("href") == "/models?range=7d"

    # the CSV links answer exactly the rows on screen
    by_csv = page.request.get(url + (page.locator("#by-csv").get_attribute("href") or ""))
    assert by_csv.ok and by_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(by_csv.text())))
    assert {(r["agent_id"], Decimal(r["total_cost"])) for r in rows} == {
        (r["agent_id"], Decimal(r["total_cost"])) for r in table["rows"]}
    matrix_csv = page.request.get(url + (page.locator("#matrix-csv").get_attribute("href")
                                         or ""))
    lumped = list(csv.DictReader(io.StringIO(matrix_csv.text())))
    assert len(lumped) == page.locator("#matrix td.heat[data-exact]").count()
    assert sum(Decimal(r["total_cost"]) for r in lumped) == Decimal(table["total_cost"])
    assert Counter(r["lumped"] for r in lumped)["agent_id"] >= 1

    page.mouse.move(0, 0)
    shot(page, tmp_path, "cost-desktop.png")
    assert_accessible(page)

    # sorting is a click (and a URL), ascending on a second click
    page.get_by_role("button", name="Requests").click()
    assert "sort=requests&order=desc" in page.url
    requests = [int(t.replace(",", "")) for t in
                page.locator("#by-table tbody td:nth-child(3)").all_inner_texts()]
    assert requests == sorted(requests, reverse=True)
    page.get_by_role("button", name="Requests").click()
    assert "order=asc" in page.url
    assert page.locator("#by-table th[aria-sort=ascending]").inner_text().startswith("Requests")

    # a cell opens its traces with the range, the filters and both keys
    cell = page.locator("#matrix tbody td.heat a").first
    cell.click()
    page.wait_for_url("**/traces?**")
    page.wait_for_load_state("networkidle")  # the traces view's own requests finish
    query = parse_qs(urlsplit(page.url).query)
    assert query["range"] == ["7d"] and query["agent"][0] in (*AGENTS, "agent-old")
    assert query["model"][0] in (*MODELS, UNPRICED)

    # another breakdown: customer × project, top 2 — the URL and the numbers change
    page.goto(f"{url}/cost?range=7d", wait_until="networkidle")
    loaded(page, "cost")
    page.get_by_label("Group by").select_option("customer_id")
    page.get_by_label("Cross with").select_option("project_id")
    page.locator("#top").select_option("3")
    page.get_by_role("button", name="Show breakdown").click()
    page.wait_for_url("**/cost?range=7d&by=customer_id&cross=project_id&top=3")
    loaded(page, "cost")
    by_customer = _api(url, page, group_by="customer_id")
    assert page.locator("#by-table tbody tr").count() == len(CUSTOMERS) + 1  # + no customer
    assert _exact(page, "#by-total") == Decimal(by_customer["total_cost"])
    _check_matrix(url, page, "customer_id", "project_id", 3)
    link = page.locator("#matrix tbody td.heat a").first
    href = parse_qs(urlsplit(link.get_attribute("href") or "").query)
    assert href["customer_id"][0] in CUSTOMERS, "no filter-bar field: the canonical name"
    assert href["project"][0] in ("acme", "globex-labs")

    # the range picker keeps the breakdown and changes the numbers
    week = _exact(page, "#by-total")
    page.get_by_role("link", name="24h", exact=True).click()
    page.wait_for_url("**/cost?range=24h**")
    loaded(page, "cost")
    assert parse_qs(urlsplit(page.url).query)["by"] == ["customer_id"]
    day = _exact(page, "#by-total")
    assert day == Decimal(_api(url, page, group_by="customer_id")["total_cost"])
    assert day < week, "the three-day-old spans are out of the 24h range"

    # keyboard reaches the breakdown controls, the sort buttons and the CSV link
    page.goto(f"{url}/cost?range=7d", wait_until="networkidle")
    loaded(page, "cost")
    reached = tab_through(page, 60)
    for control in ("by", "cross", "top", "Show breakdown", "CSV of this table", "Spend",
                    "Requests"):
        assert control in reached, (control, reached)
    page.get_by_label("Group by").focus()
    page.keyboard.press("End")  # the last dimension, chosen with the keyboard alone
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/cost?**by={list(GROUP_BY_COLUMNS)[-1]}**")
    loaded(page, "cost")

    page.get_by_role("button", name="Dark theme").click()
    page.goto(f"{url}/cost?range=7d", wait_until="networkidle")
    loaded(page, "cost")
    assert_accessible(page)
    shot(page, tmp_path, "cost-dark.png")

    phone = browser.new_page(viewport=PHONE, color_scheme="light")
    watch(phone, problems)
    phone.goto(f"{url}/cost?range=7d", wait_until="networkidle")
    loaded(phone, "cost")
    no_sideways_scroll(phone)
    shot(phone, tmp_path, "cost-phone.png")
    assert problems == []


@pytest.mark.e2e
def test_an_empty_store_shows_what_to_do(
        live_server: LiveServer, browser: Browser, tmp_path: Path) -> None:
    problems: list[str] = []
    page = browser.new_page(viewport=DESKTOP, color_scheme="light")
    watch(page, problems)
    page.goto(f"{live_server.url}/cost", wait_until="networkidle")
    loaded(page, "cost")
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in page.locator("#empty").inner_text()
    assert page.locator("#by-table tbody").inner_text().strip() == "No spend in this range."
    assert page.locator("#trend").inner_text() == "No spend in this range."
    assert page.locator("#sunburst").inner_text() == "No spend in this range."
    assert page.locator("#unpriced").is_hidden() and page.locator("#error").is_hidden()
    assert _exact(page, "#by-total") == 0
    shot(page, tmp_path, "cost-empty.png")
    assert_accessible(page)
    assert problems == []


@pytest.mark.e2e
def test_an_api_error_shows_the_error_state(live_server: LiveServer, browser: Browser) -> None:
    problems: list[str] = []
    page = browser.new_page(viewport=DESKTOP)
    watch(page, problems, allowed=lambda text: "/api/v1/cost" in text
          or text.endswith("status of 503 (Service Unavailable)"))
    page.route("**/api/v1/cost*", lambda route: route.fulfill(status=503, json={
        "ok": False, "status": 503, "error": "Store unavailable",
        "errors": [{"field": "store", "reason": "chDB session closed"}]}))
    page.goto(f"{live_server.url}/cost", wait_until="networkidle")
    loaded(page, "cost")
    assert page.locator("#error").inner_text() == (
        "Could not load the cost: /cost: Store unavailable (store: chDB session closed)")
    assert page.locator("#empty").is_hidden(), "an error is not empty"
    assert problems == []


@pytest.mark.e2e
@pytest.mark.parametrize(("rates_off", "why"), [
    (False, "no span in this range carries metered resources"),
    (True, "every infrastructure rate in force is 0")])
def test_zero_infrastructure_says_why(_isolated_data_dir: Path, browser: Browser,
                                      rates_off: bool, why: str) -> None:
    overrides: dict[str, Any] = {}
    if rates_off:
        _isolated_data_dir.mkdir(parents=True, exist_ok=True)
        pricing = _isolated_data_dir / "pricing.toml"
        pricing.write_text("[infrastructure]\ndefaults = false\n")
        overrides["pricing_file"] = pricing
    for server in run_live_server(make_settings(_isolated_data_dir, **overrides)):
        attrs: dict[str, Any] = {"mentat.agent_id": "solo"}
        if rates_off:  # metered, but nothing to charge it at
            attrs["mentat.resource.cpu_core_seconds"] = 3_600.0
        body, headers = encode(export_request([llm_span(attrs=attrs)]))
        response = httpx.post(f"{server.url}/v1/traces", content=body, headers=headers,
                              timeout=30)
        assert response.status_code == 200, response.text
        problems: list[str] = []
        page = browser.new_page(viewport=DESKTOP)
        watch(page, problems)
        page.goto(f"{server.url}/cost?range=1h", wait_until="networkidle")
        loaded(page, "cost")
        assert page.locator("#infra-total").inner_text() == "$0.00"
        note = page.locator("#infra-note")
        assert why in note.inner_text()
        assert note.get_by_role("link").get_attribute("href") == "/models?range=1h"
        assert "mentatctl prices show" in note.inner_text()
        assert page.locator("#unpriced").is_hidden(), "gpt-4o is priced"
        assert problems == []
