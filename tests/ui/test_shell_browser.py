"""The dashboard shell in headless Chromium (issue 15): the display time zone (URL, stored
choice, browser's zone) changes the times, buckets and chart axis the page shows, each
checked against the API asked with the same ``tz``; a custom range; the org, workflow
and provider filters; the overview's today, month, budget and firing-alert numbers;
"Sign in with <provider>" against the real OIDC provider of tests/oidc."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

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

_HOUR_NS = 3_600 * 10**9
KOLKATA = "Asia/Kolkata"


def _seed(url: str) -> None:
    """48 calls over the last 6 days at varied hours: two workflows, two providers."""
    spans = []
    now_ns = time.time_ns()
    for i in range(48):
        span = llm_span(new_trace_id(), input_tokens=10_000 * (1 + i % 4), output_tokens=2_000,
                        provider="openai" if i % 3 else "anthropic",
                        model="gpt-4o" if i % 3 else "claude-3-5-sonnet-20241022",
                        duration_ms=200 + 10 * i, error=i % 11 == 0,
                        attrs={"gen_ai.agent.name": f"agent{i % 3}",
                               "mentat.workflow_id": "triage" if i % 2 else "billing"})
        age_ns = i * 3 * _HOUR_NS + (i % 4) * 17 * 60 * 10**9 if i else 60 * 10**9
        duration_ns = span.end_time_unix_nano - span.start_time_unix_nano
        span.start_time_unix_nano = now_ns - age_ns - duration_ns
        span.end_time_unix_nano = now_ns - age_ns
        spans.append(span)
    body, headers = encode(export_request(spans, project_id="acme"))
    response = httpx.post(f"{url}/v1/traces", content=body, headers=headers, timeout=30)
    assert response.status_code == 200, response.text


@pytest.fixture
def alerting_server(_isolated_data_dir: Path) -> Iterator[LiveServer]:
    """A live server whose alert evaluator runs every 0.2 s."""
    yield from run_live_server(make_settings(_isolated_data_dir, alert_interval_s=0.2))


def _window(page: Page) -> dict[str, str]:
    view = page.locator("#overview")
    return {"start": view.get_attribute("data-start") or "",
            "end": view.get_attribute("data-end") or "",
            "filter": view.get_attribute("data-filter") or ""}


def _api(url: str, path: str, **params: str) -> Any:
    answer = httpx.get(f"{url}/api/v1{path}", params=params, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _chart_points(page: Page) -> list[list[Any]]:
    """The trend's ECharts data: [axis value, number, exact decimal, bucket ISO]."""
    points: list[list[Any]] = page.evaluate(
        "echarts.getInstanceByDom(document.getElementById('trend'))"
        ".getOption().series[0].data")
    return points


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.mark.e2e
def test_the_display_zone_changes_url_times_buckets_and_axis_and_is_remembered(
        live_server: LiveServer, browser: Browser, tmp_path: Path) -> None:
    url = live_server.url
    _seed(url)
    problems: list[str] = []
    page = browser.new_page(viewport=DESKTOP, color_scheme="light")
    watch(page, problems)
    page.goto(f"{url}/?range=7d", wait_until="networkidle")
    loaded(page, "overview")
    assert page.locator("html").get_attribute("data-tz") == "UTC"
    assert "times in UTC" in page.locator("#tz-note").inner_text()
    utc_points = _chart_points(page)

    page.get_by_label("Time zone", exact=True).fill(KOLKATA)
    page.get_by_role("button", name="Set zone").click()
    page.wait_for_url("**tz=Asia%2FKolkata*")
    loaded(page, "overview")
    assert page.locator("html").get_attribute("data-tz") == KOLKATA
    assert "times in Asia/Kolkata" in page.locator("#tz-note").inner_text()
    assert "(Asia/Kolkata)" in page.locator("#trend-title").inner_text()
    # buckets: the cost API asked with the same tz; each bar's axis value is its bucket
    # instant shifted by +05:30, so the axis (useUTC) reads Kolkata's wall clock
    trend = _api(url, "/cost", **_window(page), group_by="", bucket="day", tz=KOLKATA)
    points = _chart_points(page)
    assert [p[3] for p in points] == [r["bucket"] for r in trend["rows"]]
    assert all(p[3].endswith("T18:30:00Z") for p in points), "local midnights"
    assert all(p[0] - _instant(p[3]).timestamp() * 1000 == 19_800_000 for p in points)
    assert [p[3] for p in points] != [p[3] for p in utc_points]
    assert sum(float(p[1]) for p in points) == pytest.approx(
        sum(float(p[1]) for p in utc_points))
    # times in tables: the top traces' start on Kolkata's wall clock
    top = _api(url, "/traces", **_window(page), sort="cost", limit="5")["traces"]
    shown = page.locator("#top-traces tbody tr").first.locator("td").nth(1).inner_text()
    local = _instant(top[0]["start_time"]).astimezone(ZoneInfo(KOLKATA))
    assert shown == local.strftime("%Y-%m-%d %H:%M:%S")
    # spend today in the zone matches the API's today for that zone
    today = _api(url, "/overview", period="today", tz=KOLKATA)
    assert page.locator('[data-metric="spend_today"]').get_attribute("title") == \
        f"{today['spend']} USD"

    # remembered: a URL without tz opens in the stored zone, and its links carry it
    page.goto(f"{url}/?range=24h", wait_until="networkidle")
    loaded(page, "overview")
    assert page.locator("html").get_attribute("data-tz") == KOLKATA
    assert "tz=Asia%2FKolkata" in (page.get_by_role("link", name="7d").get_attribute("href")
                                   or "")
    page.get_by_role("button", name="UTC", exact=True).click()
    page.wait_for_url("**tz=UTC*")
    loaded(page, "overview")
    page.goto(f"{url}/?range=24h", wait_until="networkidle")
    loaded(page, "overview")
    assert "tz=" not in page.url and page.locator("html").get_attribute("data-tz") == "UTC"
    assert problems == []

    # the browser's zone, half an hour off too
    context = browser.new_context(viewport=DESKTOP, timezone_id="America/St_Johns")
    other = context.new_page()
    watch(other, problems)
    other.goto(f"{url}/?range=7d", wait_until="networkidle")
    loaded(other, "overview")
    other.get_by_role("button", name="Browser's zone (America/St_Johns)").click()
    other.wait_for_url("**tz=America%2FSt_Johns*")
    loaded(other, "overview")
    trend = _api(url, "/cost", **_window(other), group_by="", bucket="day",
                 tz="America/St_Johns")
    assert [p[3] for p in _chart_points(other)] == [r["bucket"] for r in trend["rows"]]
    other.goto(f"{url}/?range=7d", wait_until="networkidle")
    loaded(other, "overview")
    assert other.locator("html").get_attribute("data-tz") == "America/St_Johns", "remembered"
    context.close()
    assert problems == []


@pytest.mark.e2e
def test_a_custom_range_in_the_display_zone_and_the_new_filters_narrow_the_numbers(
        live_server: LiveServer, browser: Browser) -> None:
    url = live_server.url
    _seed(url)
    problems: list[str] = []
    page = browser.new_page(viewport=DESKTOP, color_scheme="light")
    watch(page, problems)
    page.goto(f"{url}/?range=7d&tz={KOLKATA}", wait_until="networkidle")
    loaded(page, "overview")
    zone = ZoneInfo(KOLKATA)
    end = datetime.now(UTC).astimezone(zone).replace(second=0, microsecond=0)
    start = end - timedelta(days=2, hours=5)
    page.get_by_label("From", exact=True).fill(start.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_label("To", exact=True).fill(end.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_role("button", name="Show range").click()
    page.wait_for_url("**range=custom*")
    loaded(page, "overview")
    assert "from=" in page.url and "to=" in page.url and "tz=Asia%2FKolkata" in page.url
    window = _window(page)
    assert _instant(window["start"]) == start.astimezone(UTC)
    assert _instant(window["end"]) == end.astimezone(UTC)
    assert page.locator("#overview").get_attribute("data-bucket") == "hour", "2 days: hours"
    custom = _api(url, "/overview", **window)
    assert 0 < custom["requests"] < 48
    assert page.locator('[data-metric="requests"]').inner_text() == str(custom["requests"])
    assert page.locator(".ranges a[aria-current=true]").inner_text() == "custom"

    page.goto(f"{url}/?range=7d", wait_until="networkidle")
    loaded(page, "overview")
    total = int(page.locator('[data-metric="requests"]').inner_text())
    for label, value, field in (("Workflow", "triage", "workflow_id"),
                                ("Provider", "anthropic", "provider")):
        page.goto(f"{url}/?range=7d", wait_until="networkidle")
        loaded(page, "overview")
        page.get_by_label(label, exact=True).fill(value)
        page.get_by_role("button", name="Apply").click()
        page.wait_for_url(f"**{label.lower()}={value}*")
        loaded(page, "overview")
        assert page.locator("#overview").get_attribute("data-filter") == f"{field}={value}"
        narrowed = _api(url, "/overview", **_window(page))
        assert 0 < narrowed["requests"] < total
        assert page.locator('[data-metric="requests"]').inner_text() == \
            str(narrowed["requests"])
    page.goto(f"{url}/?range=7d&org=nobody", wait_until="networkidle")
    loaded(page, "overview")
    assert page.locator("#overview").get_attribute("data-filter") == "org_id=nobody"
    assert page.locator('[data-metric="requests"]').inner_text() == "0"
    assert problems == []


@pytest.mark.e2e
def test_overview_today_month_budget_and_firing_alerts_match_the_api(
        alerting_server: LiveServer, browser: Browser, tmp_path: Path) -> None:
    url = alerting_server.url
    _seed(url)
    for name, limit in (("acme monthly", "0.01"), ("acme daily", "1000")):
        made = httpx.post(f"{url}/api/v1/alert-rules", timeout=30, json={
            "name": name, "kind": "budget", "period": "month" if "month" in name else "day",
            "limit_amount": limit, "thresholds": ["0.5"], "filters": {"project": "acme"},
            "channels": ["webhook:http://127.0.0.1:9/closed"]})
        assert made.status_code == 200, made.text
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        rules = _api(url, "/alert-rules")["rules"]
        if all(r["last_value"] is not None for r in rules) and any(
                r["state"] == "firing" for r in rules):
            break
        time.sleep(0.2)
    assert any(r["state"] == "firing" for r in rules), rules
    problems: list[str] = []
    page = browser.new_page(viewport=DESKTOP, color_scheme="light")
    watch(page, problems)
    page.goto(f"{url}/?range=7d&tz={KOLKATA}", wait_until="networkidle")
    loaded(page, "overview")
    rules = _api(url, "/alert-rules")["rules"]
    today = _api(url, "/overview", period="today", tz=KOLKATA)
    month = _api(url, "/overview", period="month", tz=KOLKATA)
    assert page.locator('[data-metric="spend_today"]').get_attribute("title") == \
        f"{today['spend']} USD"
    assert page.locator('[data-metric="spend_month"]').get_attribute("title") == \
        f"{month['spend']} USD"
    ratios = {r["name"]: float(r["last_value"]) / float(r["limit_amount"]) for r in rules}
    highest = max(ratios, key=lambda n: ratios[n])
    assert highest == "acme monthly" and ratios[highest] > 1
    card = page.locator('[data-metric="budget_use"]')
    shown = float(card.inner_text().replace(",", "").rstrip("%"))
    assert shown == pytest.approx(ratios[highest] * 100, abs=0.05)
    budget = next(r for r in rules if r["name"] == highest)
    assert card.get_attribute("title") == \
        f"{budget['last_value']} of {budget['limit_amount']} (month)"
    assert "acme monthly" in page.locator('[data-metric="budget_detail"]').inner_text()
    firing = [r for r in rules if r["state"] == "firing"]
    assert page.locator('[data-metric="firing"]').inner_text() == str(len(firing)) != "0"
    latest = _api(url, "/alerts", state="firing", limit="1")["alerts"]
    assert latest and latest[0]["rule_name"] in page.locator(
        '[data-metric="firing_detail"]').inner_text()
    workflows = page.locator("#top-workflows tbody tr")
    assert workflows.count() == 2
    by_workflow = _api(url, "/cost", **_window(page), group_by="workflow_id")["rows"]
    costliest = max(by_workflow, key=lambda r: float(r["total_cost"]))
    assert workflows.first.locator("td").first.inner_text() == costliest["workflow_id"]
    for metric, view in (("spend_today", "/cost"), ("budget_use", "/alerts"),
                         ("firing", "/alerts")):
        link = page.locator(f'a.card:has([data-metric="{metric}"])')
        assert (link.get_attribute("href") or "").startswith(view), metric
    page.mouse.move(0, 0)
    shot(page, tmp_path, "dashboard-overview-desktop.png")
    assert_accessible(page)
    page.get_by_role("button", name="Dark theme").click()
    shot(page, tmp_path, "dashboard-overview-dark.png")
    assert_accessible(page)

    phone = browser.new_page(viewport=PHONE, color_scheme="light")
    watch(phone, problems)
    phone.goto(f"{url}/?range=7d&tz={KOLKATA}", wait_until="networkidle")
    loaded(phone, "overview")
    assert phone.locator("#bar-more").get_attribute("open") is None, "filters folded"
    assert phone.get_by_label("Workflow", exact=True).is_hidden()
    no_sideways_scroll(phone)
    shot(phone, tmp_path, "dashboard-overview-phone.png")
    phone.locator("#bar-more > summary").click()
    assert phone.get_by_label("Workflow", exact=True).is_visible()
    no_sideways_scroll(phone)
    assert_accessible(phone)
    assert problems == []


@pytest.mark.e2e
def test_keyboard_reaches_the_zone_and_custom_range_controls(
        live_server: LiveServer, browser: Browser) -> None:
    page = browser.new_page(viewport=DESKTOP)
    page.goto(live_server.url + "/", wait_until="networkidle")
    loaded(page, "overview")
    reached = tab_through(page, 60)
    for control in ("org", "workflow", "provider", "custom-from", "custom-to", "Show range",
                    "tz", "Set zone", "tz-browser"):
        assert control in reached, (control, reached)


sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "oidc"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


@pytest.mark.e2e
@pytest.mark.xdist_group("oidc")
def test_sign_in_with_the_oidc_provider_by_the_button(
        browser: Browser, tmp_path: Path, _isolated_data_dir: Path) -> None:
    from oidckit import CLIENT_ID, CLIENT_SECRET, PASSWORD, serve, start_provider

    from serve_process import free_port

    port = free_port()
    provider = start_provider(tmp_path / "provider", f"http://127.0.0.1:{port}/auth/callback")
    try:
        settings = make_settings(
            _isolated_data_dir, auth_required=True, oidc_issuer=provider.issuer,
            oidc_client_id=CLIENT_ID, oidc_client_secret=CLIENT_SECRET,
            oidc_scopes="openid email profile groups", oidc_role_claim="groups",
            oidc_provider_name="Acme SSO")
        served = serve(settings, port)
        url, control = next(served)
        try:
            control.create_org("Acme", "acme")
            provider.set_user("ada", {"email": "ada@acme.test", "name": "Ada",
                                      "groups": ["acme:viewer"]})
            problems: list[str] = []
            page = browser.new_page(viewport=DESKTOP, color_scheme="light")
            first = f"{url}/"
            # the provider's own pages ask it for a favicon it does not have (404)
            missing: list[str] = []
            page.on("response", lambda r: r.status == 404 and missing.append(r.url))
            watch(page, problems, allowed=lambda text: text == first or text.endswith((
                "status of 401 (Unauthorized)", "status of 404 (Not Found)"))
                or text.startswith(provider.issuer))
            page.goto(first, wait_until="networkidle")
            button = page.get_by_role("link", name="Sign in with Acme SSO")
            assert button.is_visible() and page.get_by_label("API key", exact=True).is_visible()
            shot(page, tmp_path, "dashboard-signin-oidc.png")
            assert_accessible(page)
            page.emulate_media(color_scheme="dark")
            assert_accessible(page)
            page.emulate_media(color_scheme="light")
            button.click()
            page.wait_for_url(f"{provider.issuer}/**")
            page.locator("input[name=login]").fill("ada")
            page.locator("input[name=password]").fill(PASSWORD)
            page.locator("button[type=submit]").click()
            consent = page.locator("form[action$='/confirm'] button")
            if consent.count():
                consent.click()
            page.wait_for_selector("#overview", timeout=30_000)
            loaded(page, "overview")
            assert page.url.startswith(url)
            me = page.evaluate("fetch('/api/v1/me').then((r) => r.json())")
            assert (me["kind"], me["name"], me["role"]) == ("user", "ada@acme.test", "viewer")
            assert problems == []
            assert all(u.startswith(provider.issuer) for u in missing), missing
        finally:
            served.close()
    finally:
        provider.process.terminate()
        provider.process.wait(10)
