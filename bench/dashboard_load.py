"""Dashboard load time and bytes per view, in Debian's headless Chromium, over N stored spans.

For each data shape (``30d``: spans spread over the last 30 days, views opened with
``?range=30d``; ``hour``: spans over the last 90 minutes, about two thirds in the last
hour, views opened with ``?range=1h``) the script

1. builds a fresh chDB store of ``--spans`` spans with bench/query.py's loader
   (``bench/_synthetic.py`` tables appended in 500,000-span batches with writer commit
   stamps) and runs one resolver pass over it (the backfill a server does on a store it
   never resolved), so the server starts on resolved data, as a running server has;
2. starts a real ``mentatctl serve`` on it (127.0.0.1, free ports; bench/_server.py, stopped
   by its PID with SIGTERM);
3. opens every view of :data:`mentatlab.ui.pages.VIEWS` and the most expensive trace's page
   (``/traces/<id>`` from ``GET /api/v1/traces?sort=cost&limit=1``) ``--repeat`` times, each
   in a fresh browser context (cold cache), and measures

   * **load**: the ``load`` event (``PerformanceNavigationTiming.loadEventStart``, ms after
     navigation start);
   * **drawn**: when the view's root element (``.view``) got ``aria-busy="false"``, the
     dashboard's "first data drawn" signal (ms after navigation start; "coming" pages have
     no data and show "-");
   * **first load**: bytes received for the page and everything it loaded, as transferred
     (compressed, headers included: CDP ``Network.loadingFinished.encodedDataLength``);
   * **again**: bytes of opening the same view once more in that context (warm cache: the
     vendored ECharts is not fetched again, the dashboard's own files answer 304).

Medians over the repeats, one Markdown table per shape. Targets (issue 15): load and
drawn < 1 s, first load < 1 MB compressed.

Bounded: every wait has a time limit and no view is opened after ``--max-minutes`` (the
build and the resolver pass are bounded by the data size); only 127.0.0.1 is contacted
(a request elsewhere aborts the run); what it starts (the server, the browser) it stops.
Store folders are ``bench/data/dashboard-<shape>-<spans>/`` (git-ignored), rebuilt each
run (the data is relative to now); ``--keep-data`` keeps them.

Usage: .venv/bin/python bench/dashboard_load.py [--spans 10000000] [--shapes 30d,hour]
       [--repeat 3] [--max-minutes 90] [--keep-data]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests" / "ui"))

from _server import Server  # noqa: E402
from browserkit import CHROMIUM_ARGS, DESKTOP  # noqa: E402
from playwright.sync_api import Browser, sync_playwright  # noqa: E402
from playwright.sync_api import Error as PlaywrightError  # noqa: E402
from query import DATA, build, resolve  # noqa: E402

from mentatlab.storage.chdb_store import ChdbSpanStore  # noqa: E402
from mentatlab.ui.pages import VIEWS  # noqa: E402

SHAPES = {"30d": (30.0, "30d"), "hour": (1.5 / 24, "1h")}
"""Shape → (days the spans are spread over, the views' ``range``)."""
PAGE_TIMEOUT_MS = 30_000
"""Longest wait for a page's load event or first data (ms)."""
SETTLE_MS = 5_000
"""Longest wait for the network to go quiet after the first data, so late bytes count (ms)."""

# Records when the view's root element first says aria-busy="false" (ms after navigation
# start). An init script runs before the page's own scripts and is not subject to its CSP.
_DRAWN_PROBE = """
(() => {
  window.__drawnMs = null;
  const check = (el) => {
    if (window.__drawnMs === null && el && el.classList && el.classList.contains("view")
        && el.getAttribute("aria-busy") === "false") {
      window.__drawnMs = performance.now();
    }
  };
  new MutationObserver((records) => {
    for (const r of records) {
      check(r.target);
      for (const n of r.addedNodes || []) {
        check(n);
        if (n.querySelectorAll) n.querySelectorAll(".view").forEach(check);
      }
    }
  }).observe(document, {subtree: true, childList: true, attributes: true,
                        attributeFilter: ["aria-busy"]});
})();
"""
_HAS_VIEW = "document.querySelector('.view[aria-busy]') !== null"


@dataclass
class Sample:
    """One cold load of one view."""

    load_ms: float
    drawn_ms: float | None
    first_bytes: int
    num_requests: int
    again_bytes: int
    problems: list[str] = field(default_factory=list)
    """Failed requests, requests leaving 127.0.0.1, no data drawn in time."""


@dataclass
class Row:
    """The samples of one view."""

    label: str
    samples: list[Sample] = field(default_factory=list)


def _median(values: list[float]) -> float:
    return float(statistics.median(values))


def _open_view(browser: Browser, url: str, deadline: float) -> Sample:
    """One cold load of ``url`` in a fresh context, then a warm one in the same context.

    A view that draws no data within :data:`PAGE_TIMEOUT_MS` gets ``drawn_ms`` infinite and
    a problem, as do failed requests and requests leaving 127.0.0.1 (the run goes on).

    Raises:
        RuntimeError: the run's time is up.
    """
    if time.monotonic() > deadline:
        raise RuntimeError("--max-minutes reached")
    context = browser.new_context(viewport=DESKTOP, color_scheme="light")  # type: ignore[arg-type]
    try:
        page = context.new_page()
        page.add_init_script(_DRAWN_PROBE)
        problems: list[str] = []
        page.on("request", lambda r: urlsplit(r.url).hostname not in ("127.0.0.1", None)
                and problems.append(f"left 127.0.0.1: {r.url}"))
        page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
        cdp = context.new_cdp_session(page)
        cdp.send("Network.enable")
        received: list[int] = []
        cdp.on("Network.loadingFinished",
               lambda e: received.append(int(e.get("encodedDataLength", 0))))

        def visit() -> tuple[float, float | None]:
            page.goto(url, wait_until="load", timeout=PAGE_TIMEOUT_MS)
            drawn: float | None = None
            if page.evaluate(_HAS_VIEW):
                # polled from here (the probe holds the time): wait_for_function would
                # evaluate a string, which the page's CSP refuses
                until = time.monotonic() + PAGE_TIMEOUT_MS / 1000
                while (value := page.evaluate("window.__drawnMs")) is None:
                    if time.monotonic() > until:
                        problems.append(f"no data drawn in {PAGE_TIMEOUT_MS} ms")
                        value = float("inf")
                        break
                    page.wait_for_timeout(20)
                drawn = float(value)
            try:
                page.wait_for_load_state("networkidle", timeout=SETTLE_MS)
            except Exception:  # noqa: BLE001 — a live view may keep polling; count what came
                pass
            load = float(page.evaluate(
                "performance.getEntriesByType('navigation')[0].loadEventStart"))
            return load, drawn

        load_ms, drawn_ms = visit()
        first_bytes, num_requests = sum(received), len(received)
        received.clear()
        visit()
        again_bytes = sum(received)
        return Sample(load_ms, drawn_ms, first_bytes, num_requests, again_bytes,
                      sorted(set(problems)))
    finally:
        context.close()


def _costliest_trace(url: str, range_key: str) -> str:
    days = 31 if range_key == "30d" else 1
    answer = httpx.get(f"{url}/api/v1/traces", timeout=120, params={
        "sort": "cost", "limit": 1,
        "start": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - days * 86400))})
    answer.raise_for_status()
    return str(answer.json()["traces"][0]["trace_id"])


def _build(folder: Path, n: int, days: float) -> None:
    """A fresh, resolved store of ``n`` spans over ``days`` at ``folder/spans``."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    with ChdbSpanStore(folder / "spans") as store:
        store.migrate()
        t0 = time.monotonic()
        build(store, n, days=days)
        build_s = time.monotonic() - t0
        resolve_s, report = resolve(store)
    print(f"  built {n:,} spans in {build_s:.0f} s, resolved {report.num_traces:,} traces "
          f"in {resolve_s:.0f} s", flush=True)


def _table(shape: str, n: int, range_key: str, rows: list[Row]) -> str:
    load = os.getloadavg()
    lines = [f"#### {shape}: {n:,} spans, views at `?range={range_key}` "
             f"(load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f})", "",
             "| view | load event (ms) | first data drawn (ms) | first load (kB, gzip) "
             "| requests | same view again (kB) |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        s = row.samples
        drawn = [x.drawn_ms for x in s if x.drawn_ms is not None]
        lines.append(
            f"| `{row.label}` | {_median([x.load_ms for x in s]):,.0f} "
            f"| {f'{_median(drawn):,.0f}' if drawn else '- (coming)'} "
            f"| {_median([x.first_bytes for x in s]) / 1000:,.0f} "
            f"| {_median([x.num_requests for x in s]):.0f} "
            f"| {_median([x.again_bytes for x in s]) / 1000:,.1f} |")
    notes = [f"* `{row.label}`: {problem}" for row in rows
             for problem in sorted({p for x in row.samples for p in x.problems})]
    if notes:
        lines += ["", "Problems (the figures of these views are not valid):", *notes]
    return "\n".join(lines)


def run_shape(browser: Browser, shape: str, n: int, repeat: int, deadline: float,
              keep_data: bool) -> str:
    """Build, serve and measure one shape; the Markdown table."""
    days, range_key = SHAPES[shape]
    folder = DATA / f"dashboard-{shape}-{n}"
    print(f"{shape}: building {n:,} spans over {days * 24:.1f} h in {folder}", flush=True)
    _build(folder, n, days)
    try:
        with Server(folder, {"MENTATLAB_LOG_LEVEL": "WARNING"},  # its store: folder/spans
                    grpc_port=0) as server:
            print(f"  serving at {server.url} (PID {server.pid})", flush=True)
            paths = [v.path for v in VIEWS]
            trace_path = f"/traces/{_costliest_trace(server.url, range_key)}"
            paths.insert(paths.index("/traces") + 1, trace_path)
            rows = [Row("/traces/{id}" if p == trace_path else p) for p in paths]
            t0 = time.monotonic()
            for _ in range(repeat):
                for row, path in zip(rows, paths, strict=True):
                    url = f"{server.url}{path}?range={range_key}"
                    try:
                        row.samples.append(_open_view(browser, url, deadline))
                    except PlaywrightError as exc:  # a page that does not load: noted
                        inf = float("inf")
                        row.samples.append(Sample(inf, inf, 0, 0, 0, [str(exc)[:300]]))
            print(f"  measured {len(paths)} views x {repeat} in {time.monotonic() - t0:.0f} s",
                  flush=True)
            return _table(shape, n, range_key, rows)
    finally:
        if not keep_data:
            shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spans", type=int, default=10_000_000, help="spans per shape")
    ap.add_argument("--shapes", default="30d,hour", help="comma-separated: 30d, hour")
    ap.add_argument("--repeat", type=int, default=3, help="cold loads per view (median)")
    ap.add_argument("--max-minutes", type=float, default=90.0,
                    help="no view is opened after this many minutes (the run then stops)")
    ap.add_argument("--keep-data", action="store_true", help="keep the store folders")
    args = ap.parse_args()
    shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    unknown = set(shapes) - set(SHAPES)
    if unknown:
        ap.error(f"--shapes: unknown {sorted(unknown)}; choose from {sorted(SHAPES)}")
    chromium = shutil.which("chromium")
    if not chromium:
        ap.error("Debian's chromium is missing: make browser")
    deadline = time.monotonic() + 60 * args.max_minutes
    started = time.monotonic()
    print(f"load average before: {os.getloadavg()}", flush=True)
    tables = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            for shape in shapes:
                tables.append(run_shape(browser, shape, args.spans, args.repeat, deadline,
                                        args.keep_data))
                print(tables[-1], flush=True)
        finally:
            browser.close()
    print(f"\ntotal {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
