"""Latency of every trace-analytics endpoint (issue 16) over 1M and 10M stored spans, via HTTP.

For each size the script

1. builds a chDB store of ``N`` spans over the last 30 days in the analytics shape of
   bench/_synthetic.py (traces with a root agent span and children, users, sessions, two
   prompt/agent versions, retries, fallbacks, error types, cached input), appended in
   500,000-span batches with writer commit stamps, runs one attribution-resolver pass and
   settles every trace (the quiet-period job of docs/decisions/0010, which stores each
   span's critical-path time and one row per trace), as a running server would have done;
   then merges each closed day of spans into one part (what the compaction job of
   docs/decisions/0016 leaves); the folder ``bench/data/analytics-<N>/`` is reused when
   present (``--rebuild`` to redo; an interrupted build resumes at the step it did not
   finish; a store whose settle watermark a migration reset is settled again);
2. starts a real ``mentatctl serve`` on it (127.0.0.1, free ports; bench/_server.py, stopped
   by its PID);
3. asks every endpoint of :data:`ENDPOINTS` over the last 30 days and the last 24 hours:
   one warm-up, then the median of ``--repeat`` timed requests (wall time of the HTTP
   request, answer read whole), with the answer's size.

A request that does not answer 200 is reported with its status, not timed. Target
(issue 16): every endpoint < 500 ms at 10M spans; the critical path of a 5,000-span trace
< 100 ms is bench/critical_path.py's.

Bounded: every request has a 300 s limit and nothing is asked after ``--max-minutes``;
only 127.0.0.1 is contacted; what it starts (the server) it stops.

Usage: .venv/bin/python bench/analytics.py [--spans 1000000,10000000] [--repeat 3]
       [--rebuild] [--max-minutes 60]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).parent))

from _server import Server  # noqa: E402
from _synthetic import synthetic_table  # noqa: E402
from query import CHUNK_ROWS, DATA, resolve  # noqa: E402

from mentatlab.errors import StoreUnavailable  # noqa: E402
from mentatlab.resolver.settle import Settler, read_settle_state  # noqa: E402
from mentatlab.storage.chdb_store import ChdbSpanStore  # noqa: E402
from mentatlab.storage.compaction import compact_closed_partitions  # noqa: E402

ENDPOINTS: list[tuple[str, str, dict[str, str]]] = [
    ("bottlenecks by span name", "/api/v1/analytics/bottlenecks", {}),
    ("bottlenecks by tool", "/api/v1/analytics/bottlenecks", {"group_by": "tool"}),
    ("latency by model", "/api/v1/analytics/latency", {"group_by": "model"}),
    ("latency by agent", "/api/v1/analytics/latency", {"group_by": "agent"}),
    ("reliability", "/api/v1/analytics/reliability", {}),
    ("attribution org>project>agent>model", "/api/v1/analytics/attribution",
     {"levels": "org_id,project_id,agent_id,model"}),
    ("unit economics", "/api/v1/analytics/unit-economics", {}),
    ("token waterfall", "/api/v1/analytics/tokens", {}),
    ("provider x model", "/api/v1/analytics/provider-models", {}),
    ("compare prompt_version v1/v2", "/api/v1/analytics/compare",
     {"field": "prompt_version", "a": "v1", "b": "v2"}),  # 24 h: only v2 there, a 422
    ("compare model gpt-4o-mini/gpt-4o", "/api/v1/analytics/compare",
     {"field": "model", "a": "gpt-4o-mini-2024-07-18", "b": "gpt-4o-2024-08-06"}),
    ("regressions", "/api/v1/analytics/regressions", {}),
    ("agent graph", "/api/v1/analytics/graph", {}),
    ("peers", "/api/v1/analytics/peers", {}),
    ("recommendations", "/api/v1/recommendations", {}),
]
"""(label, path, parameters besides the window) of every endpoint measured."""
WINDOWS = {"30d": timedelta(days=30), "24h": timedelta(hours=24)}
"""Window label → length, ending now."""
REQUEST_TIMEOUT_S = 300.0


def _build(folder: Path, n: int) -> None:
    """A resolved and settled store of ``n`` spans over 30 days at ``folder/spans``.

    Each step leaves a marker file in ``folder`` (``built``, ``resolved``, ``settled``), so
    an interrupted build resumes at the step it did not finish.
    """
    folder.mkdir(parents=True, exist_ok=True)
    # no read time limit: a backfill statement over 10M spans on a busy machine may take
    # longer than a user's query is allowed to
    with ChdbSpanStore(folder / "spans", query_timeout_s=0) as store:
        store.migrate()
        if not (folder / "built").exists():
            store.execute("TRUNCATE TABLE IF EXISTS spans")
            end_ns = time.time_ns()
            t0 = time.monotonic()
            for first in range(0, n, CHUNK_ROWS):
                rows = min(CHUNK_ROWS, n - first)
                table = synthetic_table(rows, days=30, seed=first, end_ns=end_ns,
                                        analytics=True)
                index = table.schema.get_field_index("ingested_at_ns")  # commit stamps
                _append(store, table.set_column(
                    index, table.schema.field(index),
                    pa.repeat(pa.scalar(time.time_ns(), pa.int64()), table.num_rows)))
                print(f"  inserted {first + rows:,} spans ({time.monotonic() - t0:.0f} s)",
                      flush=True)
            (folder / "built").touch()
        if not (folder / "resolved").exists():
            resolve_s, report = resolve(store)
            print(f"  resolved {report.num_traces:,} traces in {resolve_s:.0f} s", flush=True)
            (folder / "resolved").touch()
        # a migration that adds settled facts resets the settle watermark: settle again
        # here, or the server's settle job would do it while the endpoints are timed
        if not (folder / "settled").exists() or not read_settle_state(store):
            settle_s, settled = _settle(store)
            print(f"  settled {settled:,} traces in {settle_s:.0f} s", flush=True)
            (folder / "settled").touch()
            (folder / "compacted").unlink(missing_ok=True)
        if not (folder / "compacted").exists():
            # what the server's compaction job leaves (decision 0016): one part per closed
            # day of spans; the settled tables stay as ClickHouse's own merges leave them
            passed = compact_closed_partitions(store, max_partitions=10_000,
                                               budget_s=float("inf"))
            print(f"  compacted {len(passed.merged)} closed days in {passed.seconds:.0f} s",
                  flush=True)
            (folder / "compacted").touch()


def _append(store: ChdbSpanStore, table: pa.Table, attempts: int = 5) -> None:
    """Append one batch, retried after a pause when the insert times out on a busy machine
    (a retried part that landed anyway is a duplicate version of the same spans, which
    ``FINAL`` reads once)."""
    for attempt in range(attempts):
        try:
            store.append_batch(table)
            return
        except StoreUnavailable as exc:
            if attempt == attempts - 1:
                raise
            print(f"  insert failed ({exc}); retrying in 30 s", flush=True)
            time.sleep(30)


def _settle(store: ChdbSpanStore) -> tuple[float, int]:
    """Settle every trace: one settle pass with a clock far enough ahead that every trace
    has been quiet longer than the quiet period (the stored critical-path times, trace rows)."""
    t0 = time.perf_counter()
    later_ns = time.time_ns() + 10**12
    report = Settler(store, 60.0).run_pass(later_ns, now_ns=later_ns)
    return time.perf_counter() - t0, report.num_traces


def _time(client: httpx.Client, path: str, params: dict[str, str],
          repeat: int) -> tuple[str, float | None, int]:
    """(status, median ms or None, answer bytes) of ``repeat`` requests after a warm-up."""
    answer = client.get(path, params=params)
    if answer.status_code != 200:
        return str(answer.status_code), None, len(answer.content)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        answer = client.get(path, params=params)
        answer.read()
        times.append(1000 * (time.perf_counter() - t0))
    return "200", statistics.median(times), len(answer.content)


def run_size(n: int, repeat: int, rebuild: bool, deadline: float) -> str:
    """Build (or reuse), serve and measure one size; the Markdown table."""
    folder = DATA / f"analytics-{n}"
    if rebuild:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"{n:,} spans in {folder}", flush=True)
    _build(folder, n)
    now = datetime.now(UTC)
    results: dict[tuple[str, str], tuple[str, float | None, int]] = {}
    with Server(folder, {"MENTATLAB_LOG_LEVEL": "WARNING"}, grpc_port=0) as server, \
            httpx.Client(base_url=server.url, timeout=REQUEST_TIMEOUT_S) as client:
        print(f"  serving at {server.url} (PID {server.pid})", flush=True)
        for label, path, params in ENDPOINTS:
            for window, length in WINDOWS.items():
                if time.monotonic() > deadline:
                    raise RuntimeError("--max-minutes reached")
                window_params = {"start": (now - length).isoformat(), "end": now.isoformat(),
                                 **params}
                results[label, window] = _time(client, path, window_params, repeat)
                status, ms, size = results[label, window]
                print(f"  {label} {window}: {status} "
                      f"{'-' if ms is None else f'{ms:,.0f} ms'} {size:,} B", flush=True)
    load = os.getloadavg()
    lines = [f"#### {n:,} spans over 30 days (load average after: "
             f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f})", "",
             "| endpoint | last 30 days (ms) | last 24 h (ms) | answer (kB, 30 days) |",
             "|---|---|---|---|"]
    for label, _, _ in ENDPOINTS:
        cells = []
        for window in WINDOWS:
            status, ms, _ = results[label, window]
            cells.append(f"{ms:,.0f}" if ms is not None else f"HTTP {status}")
        lines.append(f"| {label} | {' | '.join(cells)} | {results[label, '30d'][2] / 1000:,.1f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spans", default="1000000,10000000", help="comma-separated sizes")
    ap.add_argument("--repeat", type=int, default=3, help="timed requests (median)")
    ap.add_argument("--rebuild", action="store_true", help="rebuild the stores")
    ap.add_argument("--max-minutes", type=float, default=60.0,
                    help="nothing is asked after this many minutes (the run then stops)")
    args = ap.parse_args()
    sizes = [int(s) for s in args.spans.split(",") if s.strip()]
    deadline = time.monotonic() + 60 * args.max_minutes
    print(f"load average before: {os.getloadavg()}", flush=True)
    started = time.monotonic()
    for n in sizes:
        print(run_size(n, args.repeat, args.rebuild, deadline), flush=True)
    print(f"\ntotal {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
