"""The Ops view's "Ingest health" panel in a real browser (Debian's headless Chromium):
after OTLP ingest it shows what ``/api/v1/system/ingest`` answers (accepted and rejected
spans, the write-ahead log against its limits, the running ingest worker, the RSS) and
follows new ingest without a reload; it adds nothing to the tab order; axe finds nothing
serious; it fits a 390 px phone (no sideways scroll, nothing cut off); screenshots."""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from browserkit import (
    DESKTOP,
    DOCS_IMG,
    PHONE,
    assert_accessible,
    loaded,
    no_sideways_scroll,
    shot,
    watch,
)
from playwright.sync_api import Browser, Page
from server_payloads import encode, export_request, llm_span, new_trace_id
from serverkit import LiveServer, make_settings, run_live_server

MiB = 2**20


@pytest.fixture
def wal_server(_isolated_data_dir: Path) -> Iterator[LiveServer]:
    """A live server with the write-ahead log on and one ingest worker."""
    yield from run_live_server(make_settings(
        _isolated_data_dir, wal=True, ingest_workers=1, ingest_workers_idle_s=300.0,
        wal_max_memory_bytes=32 * MiB, wal_max_disk_bytes=64 * MiB,
        write_buffer_spans=200_000, write_buffer_bytes=64 * MiB))


def _ingest(url: str, spans: list[Any]) -> None:
    body, headers = encode(export_request(spans))
    response = httpx.post(f"{url}/v1/traces", content=body, headers=headers, timeout=60)
    assert response.status_code == 200, response.text


def _text(page: Page, name: str) -> str:
    return page.locator(f'[data-ingest="{name}"]').inner_text()


def _title(page: Page, name: str) -> str:
    return page.locator(f'[data-ingest="{name}"]').get_attribute("title") or ""


def _wait_title(page: Page, name: str, wanted: str, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while wanted not in _title(page, name):
        assert time.monotonic() < deadline, (name, wanted, _title(page, name))
        time.sleep(0.1)


def _nothing_cut_off(page: Page) -> None:
    """Every figure of the panel lies within the viewport's width."""
    width = page.viewport_size["width"] if page.viewport_size else 0
    for box in page.locator("#ingest-health dt, #ingest-health dd").all():
        bounds = box.bounding_box()
        assert bounds is not None and bounds["x"] >= 0, box.inner_text()
        assert bounds["x"] + bounds["width"] <= width, (box.inner_text(), bounds, width)


@pytest.mark.e2e
def test_the_ingest_health_panel_shows_the_servers_figures(
        wal_server: LiveServer, browser: Browser, tmp_path: Path) -> None:
    url = wal_server.url
    trace = new_trace_id()
    bad = llm_span(trace)
    bad.span_id = b"\x00" * 8  # refused as invalid
    _ingest(url, [llm_span(trace) for _ in range(25)] + [bad])

    problems: list[str] = []
    page = browser.new_page(viewport=DESKTOP, color_scheme="light")
    watch(page, problems)
    page.goto(f"{url}/ops", wait_until="load")
    loaded(page, "ops")
    _wait_title(page, "accepted", "25 spans accepted")
    api = httpx.get(f"{url}/api/v1/system/ingest", timeout=30).json()
    assert api["spans"]["accepted_total"] == 25 and api["spans"]["rejected_total"]["invalid"] == 1

    assert re.fullmatch(r"[\d.,]+/s", _text(page, "accepted")), _text(page, "accepted")
    assert "invalid" in _text(page, "rejected") and "backpressure" in _text(page, "rejected")
    assert "invalid: 1 since start" in _title(page, "rejected")
    assert re.fullmatch(r"last \d+ s", _text(page, "window"))
    assert _text(page, "buffer_spans") == "0 of 200,000"
    assert _text(page, "buffer_bytes") == "0 B of 64 MiB"
    assert re.fullmatch(r"[\d.,]+ (ms|s)", _text(page, "commit_wait")), _text(page, "commit_wait")
    assert _text(page, "wal") == "on"
    assert _text(page, "wal_memory").endswith(" of 32 MiB")
    assert _text(page, "wal_disk").endswith(" of 64 MiB")
    assert _text(page, "wal_failures") == "0"
    assert _text(page, "workers") == "1 of 1 running"
    assert _text(page, "live_dropped") == "0 since start"
    throughput = page.locator("#ingest-health .ingest-group").filter(has_text="Throughput")
    assert throughput.locator('[data-ingest="live_dropped"]').count() == 1  # beside the rates
    rss = _text(page, "rss")
    assert re.fullmatch(r"[\d.,]+ (MiB|GiB)", rss), rss
    assert "processes; the server alone" in _title(page, "rss")
    # no control in the panel: the tab order (and the nav) stay as they were
    focusable = page.locator("#ingest-health a, #ingest-health button, #ingest-health input, "
                             "#ingest-health select, #ingest-health [tabindex]")
    assert focusable.count() == 0

    # new ingest shows on the next refresh, without a reload
    page.evaluate("window.notReloaded = true")
    _ingest(url, [llm_span() for _ in range(10)])
    _wait_title(page, "accepted", "35 spans accepted")
    assert page.evaluate("window.notReloaded") is True

    _nothing_cut_off(page)
    page.locator("#ingest-health").scroll_into_view_if_needed()
    shot(page, tmp_path, "ops-ingest-desktop.png")
    assert_accessible(page)
    page.get_by_role("button", name="Dark theme").click()
    assert_accessible(page)

    page.set_viewport_size(PHONE)
    page.reload(wait_until="load")
    loaded(page, "ops")
    _wait_title(page, "accepted", "35 spans accepted")
    no_sideways_scroll(page)
    _nothing_cut_off(page)
    shot(page, tmp_path, "ops-ingest-phone.png")
    panel = tmp_path / "ops-ingest-panel-phone.png"
    page.locator("#ingest-health").screenshot(path=str(panel))
    assert panel.stat().st_size > 10_000, "a blank panel"
    if os.environ.get("MENTATLAB_UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(panel, DOCS_IMG / panel.name)
    assert problems == []


@pytest.mark.e2e
def test_a_refused_ingest_health_shows_the_reason(
        live_server: LiveServer, browser: Browser) -> None:
    problems: list[str] = []
    page = browser.new_page(viewport=DESKTOP)
    watch(page, problems, allowed=lambda text: "/system/ingest" in text
          or text.endswith("status of 403 (Forbidden)"))
    page.route("**/api/v1/system/ingest?*", lambda route: route.fulfill(status=403, json={
        "ok": False, "status": 403, "error": "Forbidden",
        "errors": [{"field": "permission", "reason": "needs read_spans"}]}))
    page.goto(live_server.url + "/ops", wait_until="load")
    loaded(page, "ops")
    page.wait_for_selector('#error:has-text("/system/ingest: Forbidden")', timeout=10_000)
    assert "/system/ingest: Forbidden (permission: needs read_spans)" in \
        page.locator("#error").inner_text().splitlines()
    assert {_text(page, name) for name in ("accepted", "wal", "workers", "rss")} == {"—"}
    assert problems == []
