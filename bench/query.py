"""Query latency of the named analytics queries over 1M and 10M stored spans (chDB).

Builds a store per size under bench/data/ (reused when present), spread over 30 days,
then times `cost_by(group_by=[model], bucket=day)` and `get_overview` over the whole range
(median of 5 after one warm-up). Spans are inserted in batches like the writer does,
so the table has the parts a live server would have; `--optimize` first merges closed
partitions as the background compaction job does.

Usage: .venv/bin/python bench/query.py [--sizes 1000000,10000000] [--optimize]
"""

from __future__ import annotations

import argparse
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
    args = ap.parse_args()
    now = datetime.now(UTC)
    params_model_day = QueryParams(
        TimeRange(now - timedelta(days=31), now + timedelta(hours=1)),
        group_by=["model"],
        bucket="day",
    )
    params_all = QueryParams(TimeRange(now - timedelta(days=31), now + timedelta(hours=1)))
    print("| spans | cost by model by day (ms) | overview (ms) | parts |\n|---|---|---|---|")
    for n in (int(s) for s in args.sizes.split(",")):
        with ChdbSpanStore(DATA / f"spans-v2-{n}") as store:
            store.migrate()
            build(store, n)
            if args.optimize:
                store.execute("OPTIMIZE TABLE spans FINAL")
            parts = (
                store.query_arrow(
                    "SELECT count() AS n FROM system.parts WHERE table = 'spans' AND active"
                )
                .column("n")[0]
                .as_py()
            )
            a = timed(lambda: cost_by(store, params_model_day))  # noqa: B023
            b = timed(lambda: get_overview(store, params_all))  # noqa: B023
            print(f"| {n:,} | {a:.0f} | {b:.0f} | {parts} |", flush=True)


if __name__ == "__main__":
    main()
