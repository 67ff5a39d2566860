"""Query latency of the named analytics queries over 1M and 10M stored spans (chDB).

Builds a store per size under bench/data/ (reused when present), spread over 30 days,
then builds the hourly rollups as the server's background job does (`refresh_rollups`,
timed) and times `cost_by(group_by=[model], bucket=day)` and `get_overview` over the whole
range (median of 5 after one warm-up), through the rollups and raw (`use_rollups=False`).
Spans are inserted in batches like the writer does, so the table has the parts a live
server would have; `--optimize` first merges closed partitions as the background
compaction job does.

Usage: .venv/bin/python bench/query.py [--sizes 1000000,10000000] [--optimize] [--no-raw]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _synthetic import synthetic_table  # noqa: E402

from mentatlab.analytics.cost import cost_by  # noqa: E402
from mentatlab.analytics.overview import get_overview  # noqa: E402
from mentatlab.analytics.query import QueryParams, TimeRange  # noqa: E402
from mentatlab.storage.chdb_store import ChdbSpanStore  # noqa: E402
from mentatlab.storage.rollup import refresh_rollups  # noqa: E402

DATA = Path(__file__).parent / "data"
CHUNK_ROWS = 500_000


def build(store: ChdbSpanStore, n: int) -> None:
    have = store.query_arrow("SELECT count() AS n FROM spans").column("n")[0].as_py()
    if have >= n:
        return
    end_ns = time.time_ns()
    t0 = time.monotonic()
    for start in range(have, n, CHUNK_ROWS):
        rows = min(CHUNK_ROWS, n - start)
        store.append_batch(synthetic_table(rows, seed=start, end_ns=end_ns))
        print(f"  inserted {start + rows:,} rows ({time.monotonic() - t0:.0f} s)", flush=True)


def timed(fn, repeat: int = 5) -> float:  # type: ignore[no-untyped-def]
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000000,10000000")
    ap.add_argument("--optimize", action="store_true")
    ap.add_argument("--no-raw", action="store_true", help="skip the raw-path timings")
    args = ap.parse_args()
    now = datetime.now(UTC)
    params_model_day = QueryParams(
        TimeRange(now - timedelta(days=31), now + timedelta(hours=1)),
        group_by=["model"],
        bucket="day",
    )
    params_all = QueryParams(TimeRange(now - timedelta(days=31), now + timedelta(hours=1)))
    print("| spans | rollup build (s) | cost by model by day (ms) | overview (ms) |"
          " raw cost by model by day (ms) | raw overview (ms) | parts | load avg |")
    print("|---|---|---|---|---|---|---|---|")
    for n in (int(s) for s in args.sizes.split(",")):
        with ChdbSpanStore(DATA / f"spans-v2-{n}") as store:
            store.migrate()
            build(store, n)
            if args.optimize:
                store.execute("OPTIMIZE TABLE spans FINAL")
            t0 = time.perf_counter()
            report = refresh_rollups(store)
            build_s = time.perf_counter() - t0
            parts = (
                store.query_arrow(
                    "SELECT count() AS n FROM system.parts WHERE table = 'spans' AND active"
                )
                .column("n")[0]
                .as_py()
            )
            a = timed(lambda: cost_by(store, params_model_day))  # noqa: B023
            b = timed(lambda: get_overview(store, params_all))  # noqa: B023
            raw_a = raw_b = float("nan")
            if not args.no_raw:
                raw_a = timed(lambda: cost_by(store, params_model_day, use_rollups=False))  # noqa: B023
                raw_b = timed(lambda: get_overview(store, params_all, use_rollups=False))  # noqa: B023
            load = os.getloadavg()
            print(f"| {n:,} | {build_s:.1f} ({report.hours_built} h) | {a:.0f} | {b:.0f} |"
                  f" {raw_a:.0f} | {raw_b:.0f} | {parts} |"
                  f" {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} |", flush=True)

if __name__ == "__main__":
    main()
