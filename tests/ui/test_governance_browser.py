"""The governance view in a real browser (Debian's headless Chromium): policy decisions,
PII findings, security signals, retention, erasure receipts and the audit timeline show the
API's numbers; the audit filter and the draft-policy simulation work; zero console errors
or failed requests, axe finds nothing serious, it fits a phone. Screenshots (desktop,
phone) go to the test's folder and, for a person to look at, to /tmp."""

from __future__ import annotations

import json
import shutil
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
    watch,
)
from playwright.sync_api import Browser, Page
from server_payloads import encode, export_request, llm_span, new_trace_id
from serverkit import LiveServer

MESSAGES = json.dumps([{"role": "user", "parts": [
    {"type": "text", "content": "Refund order QX-88123 to dana.scully@fbi.gov please"}]}])


def _seed(url: str) -> None:
    """Two policies (block the shell tool, log big prompts), 6 spans: 2 shell calls, 3 with
    an email in their messages, 1 of user u-erased; then that user's erasure."""
    for body in ({"name": "no shell", "action": "block", "severity": "high",
                  "condition": 'span.tool_name == "shell"'},
                 {"name": "big prompt", "action": "log",
                  "condition": "span.input_tokens > 500"}):
        made = httpx.post(f"{url}/api/v1/policies", json=body, timeout=30)
        assert made.status_code == 201, made.text
    spans = [llm_span(new_trace_id(), name="execute_tool shell", input_tokens=10,
                      attrs={"gen_ai.operation.name": "execute_tool",
                             "gen_ai.tool.name": "shell", "mentat.agent_id": "ops"})
             for _ in range(2)]
    spans += [llm_span(new_trace_id(), input_tokens=900,
                       attrs={"gen_ai.input.messages": MESSAGES}) for _ in range(3)]
    spans.append(llm_span(new_trace_id(), attrs={"mentat.user_id": "u-erased"}))
    body, headers = encode(export_request(spans, project_id="support"))
    answer = httpx.post(f"{url}/v1/traces", content=body, headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    erased = httpx.post(f"{url}/api/v1/governance/erasures", json={"user_id": "u-erased"},
                        timeout=120)
    assert erased.status_code == 200, erased.text


def _api(page: Page, url: str, path: str, **extra: str) -> Any:
    view = page.locator("#governance")
    params = {"start": view.get_attribute("data-start"),
              "end": view.get_attribute("data-end"), **extra}
    answer = httpx.get(f"{url}/api/v1{path}", params=params, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _metric(page: Page, name: str) -> str:
    return page.locator(f"[data-metric={name}]").inner_text()


def _keep(tmp_path: Path, name: str) -> None:
    shutil.copyfile(tmp_path / name, Path("/tmp") / name)


@pytest.mark.e2e
def test_governance_view_shows_the_apis_numbers(live_server: LiveServer, browser: Browser,
                                                tmp_path: Path) -> None:
    url = live_server.url
    _seed(url)
    problems: list[str] = []
    page = browser.new_page(viewport=DESKTOP, color_scheme="light")
    # the simulation of a condition with a syntax error answers 422, on purpose
    # (the response, and the browser's console line about it)
    watch(page, problems, allowed=lambda text: text.endswith("/api/v1/policies/simulate")
          or "status of 422" in text)
    page.goto(f"{url}/governance?range=24h", wait_until="networkidle")
    loaded(page, "governance")

    decisions = _api(page, url, "/governance/decisions", bucket="hour")
    assert decisions["num_blocked"] == 2, decisions
    assert decisions["by_action"] == {"block": 2, "log": 3}, decisions
    assert _metric(page, "num_decisions") == "5"
    assert _metric(page, "num_blocked") == "2"
    policy_rows = page.locator("#policies tbody tr")
    assert policy_rows.count() == len(decisions["policies"]) == 2
    assert policy_rows.nth(0).locator("td").nth(2).inner_text() == "3"
    assert page.locator("#decisions-chart canvas").count() == 1

    pii = _api(page, url, "/governance/pii")
    assert pii["by_category"][0]["category"] == "EMAIL_ADDRESS"
    assert _metric(page, "num_pii") == str(pii["num_findings"]) == "3"
    first = page.locator("#pii-categories tbody tr").nth(0).locator("td")
    assert first.nth(0).inner_text() == "EMAIL_ADDRESS" and first.nth(1).inner_text() == "3"
    assert page.locator("#pii-attributes tbody").inner_text().count("gen_ai.input.messages") == 1

    signals = _api(page, url, "/governance/signals")
    assert "blocked_action" in {f["kind"] for f in signals["findings"]}
    assert page.locator("#signals tbody tr").count() == len(signals["findings"])
    assert "blocked action" in page.locator("#signals tbody").inner_text()

    assert page.locator("#erasures tbody tr").count() == 1
    assert "user_id" in page.locator("#erasures tbody").inner_text()
    assert _metric(page, "num_erasures") == "1"
    assert "Spans" in page.locator("#retention").inner_text()

    # the audit timeline, then filtered to the policy changes
    assert page.locator("#audit tbody tr").count() >= 3
    page.locator("#audit-filter [name=action]").fill("policy.*")
    page.locator("#audit-filter button[type=submit]").click()
    page.wait_for_function("() => [...document.querySelectorAll('#audit tbody tr')]"
                           ".every(r => r.cells[2].textContent.startsWith('policy.'))")
    changes = httpx.get(f"{url}/api/v1/audit", params={"action": "policy.*"}, timeout=30).json()
    assert len(changes["entries"]) >= 2  # the two made here, and the built-ins
    assert page.locator("#audit tbody tr").count() == len(changes["entries"])

    # a draft policy simulated over the same spans matches what ingest recorded
    page.locator("#simulate [name=condition]").fill('span.tool_name == "shell"')
    page.locator("#simulate button[type=submit]").click()
    page.locator("#simulation-samples").wait_for()
    assert "Would have matched2" in page.locator("#simulation").inner_text().replace("\n", "")
    assert page.locator("#simulation-samples tbody tr").count() == 2
    # a CEL error is shown next to the condition
    page.locator("#simulate [name=condition]").fill('span.tool_name == ')
    page.locator("#simulate button[type=submit]").click()
    page.locator("#simulate .field-error").wait_for()

    shot(page, tmp_path, "governance-desktop.png")
    _keep(tmp_path, "governance-desktop.png")
    assert_accessible(page)

    phone = browser.new_page(viewport=PHONE, color_scheme="dark")
    watch(phone, problems)
    phone.goto(f"{url}/governance?range=24h", wait_until="networkidle")
    loaded(phone, "governance")
    no_sideways_scroll(phone)
    shot(phone, tmp_path, "governance-phone.png")
    _keep(tmp_path, "governance-phone.png")
    assert problems == []
