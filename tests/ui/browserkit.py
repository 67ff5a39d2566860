"""Browser-test kit of the dashboard: Debian's headless Chromium through Playwright, a
watcher for console errors and off-host requests, screenshots and axe checks."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, sync_playwright

__all__ = ["DESKTOP", "PHONE", "assert_accessible", "browser", "loaded",
           "no_sideways_scroll", "shot", "tab_through", "watch"]

# ENVIRONMENT.md, "Headless Chromium": as root, and no background calls home
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def browser() -> Iterator[Browser]:
    chromium = shutil.which("chromium")
    assert chromium, "install Debian's chromium: make browser"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def watch(page: Page, problems: list[str], allowed: Callable[[str], bool] = lambda _: False
           ) -> None:
    """Record console errors, page errors, failed or refused requests and off-host ones."""
    page.on("console", lambda m: m.type == "error" and not allowed(m.text)
            and problems.append(m.text))
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
    page.on("response", lambda r: r.status >= 400 and not allowed(r.url)
            and problems.append(f"{r.status}: {r.url}"))
    page.on("request", lambda r: urlsplit(r.url).hostname not in ("127.0.0.1", None)
            and problems.append(f"left 127.0.0.1: {r.url}"))


def loaded(page: Page, view: str) -> None:
    """Wait until the view's script has filled it (``aria-busy`` false)."""
    page.wait_for_selector(f"#{view}[aria-busy=false]", timeout=30_000)


_NAMES = ("(e => [e.getAttribute('aria-label'), e.labels?.[0]?.textContent.trim(), e.name, e.id,"
          " e.tagName === 'SELECT' ? '' : e.textContent.trim()].filter(Boolean))"
          "(document.activeElement)")


def tab_through(page: Page, presses: int) -> list[str]:
    """Press Tab ``presses`` times; every name each focused element goes by, in order
    (its aria-label, label, ``name``, id and text, those it has)."""
    reached: list[str] = []
    for _ in range(presses):
        page.keyboard.press("Tab")
        reached += page.evaluate(_NAMES)
    return reached


def no_sideways_scroll(page: Page) -> None:
    """The page fits a phone's width."""
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"no sideways scroll on a phone, got {width}px"


def shot(page: Page, tmp_path: Path, name: str) -> None:
    """Screenshot into the test's folder; into docs/img too with MENTATLAB_UPDATE_SCREENSHOTS=1
    (so a test run never dirties the checkout)."""
    target = tmp_path / name
    page.screenshot(path=str(target), full_page=True)
    assert target.stat().st_size > 10_000, "a blank screenshot"
    if os.environ.get("MENTATLAB_UPDATE_SCREENSHOTS") == "1":
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(target, DOCS_IMG / name)


def assert_accessible(page: Page) -> None:
    """axe-core (bundled in axe-playwright-python, run in the page) finds nothing serious."""
    answer = Axe().run(page).response
    assert answer["passes"], "axe ran"
    violations = answer["violations"]
    bad = [f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']]}"
           for v in violations if v["impact"] in ("serious", "critical")]
    assert bad == [], bad
