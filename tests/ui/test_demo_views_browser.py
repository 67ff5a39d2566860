"""Every dashboard view against real demo traffic, in Debian's headless Chromium.

One live server (module scope) is filled as ``mentatctl demo`` fills it: the demo's fake
OpenAI server (with its injected rate limits and server errors) and the two traffic
processes of :mod:`mentatlab.demo.traffic`, driving the real ``openai`` client through
``opentelemetry-instrumentation-openai-v2`` (OTLP/HTTP) and
``openinference-instrumentation-openai`` (OTLP/gRPC). Then every view of
:data:`mentatlab.ui.pages.VIEWS`, and the page of the most expensive trace, is opened at
desktop and phone width, light and dark, in one browser: zero console errors, zero failed
requests, zero requests leaving 127.0.0.1, no error state, axe finds nothing serious or
critical, no sideways scroll on a phone, and Tab from the top reaches every navigation
link, the range picker and the filter bar. Screenshots: ``<view>-demo-desktop.png`` and
``<view>-demo-phone.png``.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from browserkit import (
    CHROMIUM_ARGS,
    DESKTOP,
    PHONE,
    assert_accessible,
    no_sideways_scroll,
    shot,
    watch,
)
from playwright.sync_api import Browser, Page, sync_playwright
from serverkit import LiveServer, make_settings, run_live_server

from mentatlab.demo.fake_openai import FakeOpenAIConfig, FakeOpenAIServer
from mentatlab.demo.traffic import INSTRUMENTATIONS
from mentatlab.ui.pages import VIEWS

pytestmark = pytest.mark.e2e

RUNS = 2
"""Runs per demo agent (6 agents, 2-4 LLM calls a run): a few dozen traces."""
TRAFFIC_TIMEOUT_S = 120
TRACE = "/traces/{id}"
"""Stands for the most expensive trace's page in the parametrization."""
PATHS = [v.path for v in VIEWS] + [TRACE]
# what Tab must reach on every view (the bar only where the view has one)
_NAV = "header nav a"
_BAR = ".bar .ranges a, .bar form.filters input:not([type=hidden]), " \
       ".bar form.filters select, .bar form.filters button"
_REACHED = """(selector) => [...document.querySelectorAll(selector)]
    .indexOf(document.activeElement)"""


def _name(path: str) -> str:
    """The screenshot name of a view: ``overview``, ``ops``, ..., ``trace``."""
    return "trace" if path == TRACE else (path.strip("/") or "overview")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A live server (OTLP/HTTP and gRPC) holding the demo's traffic."""
    data_dir = tmp_path_factory.mktemp("demo") / "data"
    settings = make_settings(data_dir, grpc_port=_free_port(), resolve_wait_s=60.0)
    for server in run_live_server(settings):
        config = FakeOpenAIConfig(seed=7, rate_limit_p=0.05, server_error_p=0.03,
                                  latency_s=0.01)  # as `mentatctl demo` runs it
        with FakeOpenAIServer(config) as fake:
            procs = [subprocess.Popen(
                [sys.executable, "-m", "mentatlab.demo.traffic", "--instrumentation", inst,
                 "--openai-base-url", fake.base_url, "--otlp-http", server.url,
                 "--otlp-grpc", f"127.0.0.1:{server.state.grpc_port}", "--runs", str(RUNS)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for inst in INSTRUMENTATIONS]
            try:
                for proc in procs:
                    out, err = proc.communicate(timeout=TRAFFIC_TIMEOUT_S)
                    assert proc.returncode == 0, err[-3000:]
                    assert json.loads(out.splitlines()[-1])["summary"]["llm_calls"] > 0
            finally:
                for proc in procs:
                    if proc.poll() is None:
                        proc.kill()
                        proc.wait()
        yield server


@pytest.fixture(scope="module")
def costliest_trace(demo_server: LiveServer) -> str:
    """The id of the most expensive demo trace, as the API ranks them."""
    answer = httpx.get(f"{demo_server.url}/api/v1/traces", params={"sort": "cost", "limit": 1},
                       timeout=60)
    assert answer.status_code == 200, answer.text
    traces = answer.json()["traces"]
    assert traces, "the demo stored traces"
    return str(traces[0]["trace_id"])


@pytest.fixture(scope="module")
def one_browser() -> Iterator[Browser]:
    """One Chromium for the whole module (each check gets its own context)."""
    chromium = shutil.which("chromium")
    assert chromium, "install Debian's chromium: make browser"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def _open(browser: Browser, url: str, viewport: dict[str, int], scheme: str,
          problems: list[str]) -> Page:
    """``url`` in a fresh context, once its view has drawn its first data (if it has any)."""
    context = browser.new_context(viewport=viewport,  # type: ignore[arg-type]
                                  color_scheme=scheme)  # type: ignore[arg-type]
    page = context.new_page()
    watch(page, problems)
    page.goto(url, wait_until="load")
    if page.locator(".view[aria-busy]").count():
        page.wait_for_selector(".view[aria-busy=false]", timeout=30_000)
    try:
        page.wait_for_load_state("networkidle", timeout=5_000)
    except Exception:  # noqa: BLE001 — a live view may keep its socket or polls open
        pass
    assert page.locator("#main").is_visible()
    shown_errors = [t for t in page.locator("#main [role=alert]").all_inner_texts() if t.strip()]
    assert shown_errors == [], f"{url} shows an error state"
    return page


def _tab_reaches(page: Page, selector: str, max_presses: int = 80) -> list[int]:
    """Press Tab from the top of a freshly loaded page until every element of ``selector``
    had focus; the indexes (document order) of those that never did."""
    targets = page.locator(selector).count()
    reached: set[int] = set()
    for _ in range(max_presses):
        page.keyboard.press("Tab")
        reached.add(int(page.evaluate(_REACHED, selector)))
        if reached >= set(range(targets)):
            break
    return sorted(set(range(targets)) - reached)


@pytest.mark.parametrize("path", PATHS, ids=_name)
def test_view_with_demo_data(path: str, demo_server: LiveServer, costliest_trace: str,
                             one_browser: Browser, tmp_path: Path) -> None:
    url = demo_server.url + path.replace("{id}", costliest_trace) + "?range=24h"
    name = _name(path)
    backgrounds = {}
    for viewport, scheme in ((DESKTOP, "light"), (DESKTOP, "dark"), (PHONE, "light"),
                             (PHONE, "dark")):
        problems: list[str] = []  # per page: closing a context may abort what is pending
        page = _open(one_browser, url, viewport, scheme, problems)
        try:
            backgrounds[scheme] = page.evaluate(
                "getComputedStyle(document.body).backgroundColor")
            if viewport is DESKTOP and scheme == "light":
                assert page.locator(_NAV).count() >= len(VIEWS), "every view in the navigation"
                has_bar = page.locator(".bar .ranges").count() > 0  # not the trace page's crumbs
                if has_bar:
                    assert page.locator(_BAR).count() >= 6, "range picker and filter bar"
                wanted = f"{_NAV}, {_BAR}" if has_bar else _NAV
                missed = _tab_reaches(page, wanted)
                assert missed == [], [page.locator(wanted).nth(i).inner_text() or
                                      page.locator(wanted).nth(i).get_attribute("name")
                                      for i in missed]
                page.evaluate("document.activeElement && document.activeElement.blur()")
                page.mouse.move(0, 0)
                shot(page, tmp_path, f"{name}-demo-desktop.png")
            if viewport is PHONE:
                no_sideways_scroll(page)
                if scheme == "light":
                    shot(page, tmp_path, f"{name}-demo-phone.png")
            if not (viewport is PHONE and scheme == "dark"):
                assert_accessible(page)
            assert problems == [], (viewport, scheme)
        finally:
            page.context.close()
    assert backgrounds["light"] != backgrounds["dark"], "the dark theme follows the system"
