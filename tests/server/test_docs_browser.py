"""``/docs`` in a real browser (Debian's headless Chromium via Playwright): it renders
offline, under its CSP, without one error, failed request or request leaving 127.0.0.1."""

from __future__ import annotations

import shutil
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import sync_playwright
from serverkit import LiveServer

# ENVIRONMENT.md, "Headless Chromium": as root, and no background calls home
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


@pytest.mark.e2e
def test_docs_render_every_operation_offline_without_errors(live_server: LiveServer) -> None:
    chromium = shutil.which("chromium")
    assert chromium, "install Debian's chromium: make browser"
    document = httpx.get(f"{live_server.url}/openapi.json", timeout=10).json()
    num_operations = sum(len(methods) for methods in document["paths"].values())
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("console", lambda m: m.type == "error" and problems.append(m.text))
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
            page.on("response", lambda r: r.status >= 400 and problems.append(
                f"{r.status}: {r.url}"))
            page.on("request", lambda r: urlsplit(r.url).hostname not in ("127.0.0.1", None)
                    and problems.append(f"left 127.0.0.1: {r.url}"))
            page.goto(f"{live_server.url}/docs", wait_until="networkidle")
            page.wait_for_selector(".opblock", timeout=30_000)
            assert page.locator(".opblock").count() == num_operations
            # "Try it out" calls the API from the page: connect-src 'self' allows it
            page.locator("#operations-health-healthz_healthz_get").click()
            page.get_by_role("button", name="Try it out").click()
            page.get_by_role("button", name="Execute").click()
            status = page.locator(".live-responses-table .response .response-col_status")
            assert status.first.inner_text(timeout=10_000).strip() == "200"
        finally:
            browser.close()
    assert problems == []
