"""The cost explorer's cost-view panels in a real browser (headless Chromium, Playwright).

Seeded: 12 LLM calls over two providers with cache reads and reasoning, three users, four
sessions, two failed calls. The token waterfall (each kind's cost, the cache savings),
unit economics, the attribution tree (default levels, then picked in the form: the URL
keeps them) and the provider × model table show exactly the API's numbers; no console
errors; desktop and phone screenshots; axe finds nothing serious; a phone never scrolls
sideways.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from browserkit import DESKTOP, PHONE, assert_accessible, loaded, no_sideways_scroll, shot, watch
from playwright.sync_api import Browser, Page
from server_payloads import encode, export_request, llm_span, new_trace_id
from serverkit import LiveServer

BASE = "/api/v1/analytics"


def _seed(url: str) -> None:
    spans = []
    for i in range(12):
        claude = i % 3 == 0
        attrs: dict[str, Any] = {
            "mentat.agent_id": f"agent-{i % 4}", "user.id": f"user-{i % 3}",
            "session.id": f"session-{i % 4}",
            "gen_ai.usage.cache_read.input_tokens": 400 * i,
            "gen_ai.usage.reasoning.output_tokens": 10 * i}
        spans.append(llm_span(
            new_trace_id(), model="claude-3-5-haiku-20241022" if claude else "gpt-4o",
            provider="anthropic" if claude else "openai", input_tokens=5_000 + 500 * i,
            output_tokens=300 + 20 * i, duration_ms=100 + 25 * i, error=i in (4, 7),
            attrs=attrs))
    body, headers = encode(export_request(spans, project_id="shop"))
    response = httpx.post(f"{url}/v1/traces", content=body, headers=headers, timeout=30)
    assert response.status_code == 200, response.text


def _api(url: str, page: Page, path: str, **params: str) -> Any:
    view = page.locator("#cost")
    window = {"start": view.get_attribute("data-start") or "",
              "end": view.get_attribute("data-end") or "",
              "filter": view.get_attribute("data-filter") or ""}
    answer = httpx.get(f"{url}{BASE}/{path}", params={**window, **params}, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _exacts(page: Page, selector: str) -> list[str]:
    return page.locator(selector).evaluate_all("els => els.map(e => e.dataset.exact)")


def _count_nodes(node: dict[str, Any]) -> int:
    return sum(1 + _count_nodes(c) for c in node["children"])


@pytest.mark.e2e
def test_cost_views_show_the_apis_numbers(live_server: LiveServer, browser: Browser,
                                          tmp_path: Path) -> None:
    url = live_server.url
    _seed(url)
    problems: list[str] = []
    page = browser.new_page(viewport=DESKTOP, color_scheme="light")
    watch(page, problems)
    page.goto(f"{url}/cost?range=24h", wait_until="networkidle")
    loaded(page, "cost")

    tokens = _api(url, page, "tokens")
    costs = {k["kind"]: k["cost"] for k in tokens["kinds"]}
    shown = dict(zip(page.locator("#tokens tbody tr[data-kind]").evaluate_all(
        "rows => rows.map(r => r.dataset.kind)"), _exacts(page, "#tokens tbody td[data-exact]"),
        strict=True))
    assert shown == {k: costs[k] for k in ("input", "cache_read", "output", "reasoning")}
    assert Decimal(costs["cache_read"]) > 0 and Decimal(costs["reasoning"]) > 0
    assert _exacts(page, "#cache-savings-value") == [tokens["cache_savings"]]
    assert Decimal(tokens["cache_savings"]) > 0
    assert _exacts(page, "#token-cost-value") == [tokens["token_cost"]]

    units = _api(url, page, "unit-economics")
    assert (units["num_traces"], units["num_successful_traces"], units["num_users"],
            units["num_sessions"]) == (12, 10, 3, 4)
    assert _exacts(page, "[data-unit]") == [units["cost_per_successful_trace"],
                                            units["cost_per_user"], units["cost_per_session"]]
    assert "10 of 12 traces" in page.locator('[data-unit-count="trace"]').inner_text()

    tree = _api(url, page, "attribution", levels="org_id,project_id,agent_id,model")
    assert _exacts(page, "#attribution-total") == [tree["tree"]["total_cost"]]
    nodes = page.locator("#attribution details, #attribution .leaf")
    assert nodes.count() == _count_nodes(tree["tree"])
    amounts = _exacts(page, "#attribution .amount")
    assert sorted(Decimal(a) for a in amounts) == sorted(
        Decimal(a) for a in _walk_costs(tree["tree"]))

    matrix = _api(url, page, "provider-models")
    assert [r["model"] for r in matrix["rows"]] == page.locator(
        "#provider-models tbody td:nth-child(2)").all_inner_texts()
    assert _exacts(page, "#provider-models tbody td[data-exact]") == [
        r["total_cost"] for r in matrix["rows"]]
    assert page.locator("#provider-models tbody td:nth-child(5)").first.inner_text().endswith("%")
    shot(page, tmp_path, "cost-views-desktop.png")

    # pick model → agent in the levels form: the URL keeps them, the tree follows
    page.select_option("#level-1", "model")
    page.select_option("#level-2", "agent_id")
    for n in (3, 4, 5):
        page.select_option(f"#level-{n}", "")
    page.locator("form[aria-label='Attribution levels'] button").click()
    page.wait_for_url("**level=model**")
    loaded(page, "cost")
    assert page.locator("#level-1").input_value() == "model"
    by_model = _api(url, page, "attribution", levels="model,agent_id")
    first = page.locator("#attribution > details > summary .key").all_inner_texts()
    assert first == [c["key"] for c in by_model["tree"]["children"]]
    assert _exacts(page, "#attribution-total") == [tree["tree"]["total_cost"]]
    assert_accessible(page)
    assert problems == []

    phone = browser.new_page(viewport=PHONE, color_scheme="dark")
    watch(phone, problems)
    phone.goto(f"{url}/cost?range=24h", wait_until="networkidle")
    loaded(phone, "cost")
    no_sideways_scroll(phone)
    shot(phone, tmp_path, "cost-views-phone.png")
    assert problems == []


def _walk_costs(node: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for child in node["children"]:
        out += [child["total_cost"], *_walk_costs(child)]
    return out


@pytest.mark.e2e
def test_an_empty_store_and_a_failing_view(live_server: LiveServer, browser: Browser) -> None:
    problems: list[str] = []
    page = browser.new_page(viewport=DESKTOP)
    watch(page, problems, allowed=lambda text: "/analytics/provider-models" in text
          or text.endswith("status of 503 (Service Unavailable)"))
    page.route("**/api/v1/analytics/provider-models*", lambda route: route.fulfill(
        status=503, json={"ok": False, "status": 503, "error": "Store unavailable",
                          "errors": [{"field": "store", "reason": "closed"}]}))
    page.goto(f"{live_server.url}/cost", wait_until="networkidle")
    loaded(page, "cost")
    assert page.locator("#tokens tbody").inner_text().strip() == "No tokens in this range."
    assert page.locator("#attribution").inner_text().strip() == "No spend in this range."
    assert page.locator('[data-unit="trace"]').inner_text() == "—"
    assert "Could not load" in page.locator("#provider-models tbody").inner_text()
    assert "Store unavailable" in page.locator("#provider-models tbody").inner_text()
    assert page.locator("#error").is_hidden(), "one panel failing is not the page failing"
    assert problems == []
