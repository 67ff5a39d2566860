"""Latency of the version comparison (`compare_versions`, field `model`) over N spans.

Builds a fresh chDB store of N synthetic spans (bench/_synthetic.py: traces of ~8 spans
over 30 days, 6 models) in a temporary folder, inserted in 500,000-span batches like the
writer does, then times `compare_versions(field="model")` between two models over the
last 1, 7 and 30 days (median of 3 after one warm-up). Models are picked by rank of span
count (0: the most used), so a pair of frequent or rare models can be timed.

Usage: .venv/bin/python bench/compare.py [--spans 1000000] [--models 0,1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _synthetic import synthetic_table  # noqa: E402

from mentatlab.analytics.compare import compare_versions  # noqa: E402
from mentatlab.analytics.query import QueryParams, TimeRange  # noqa: E402
from mentatlab.storage.chdb_store import ChdbSpanStore  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--models", default="0,1", help="ranks of the two models compared")
    args = parser.parse_args()
    ranks = [int(r) for r in args.models.split(",")]
    with tempfile.TemporaryDirectory() as folder:
        store = ChdbSpanStore(Path(folder) / "spans")
        store.migrate()
        end_ns = time.time_ns()
        table = synthetic_table(args.spans, end_ns=end_ns)
        for i in range(0, args.spans, 500_000):
            store.append_batch(table.slice(i, 500_000))
        models = store.query_arrow(
            "SELECT request_model AS m, count() AS c FROM spans WHERE m != '' GROUP BY m "
            "ORDER BY c DESC").to_pylist()
        a, b = models[ranks[0]]["m"], models[ranks[1]]["m"]
        end = datetime.fromtimestamp(end_ns / 1e9, UTC) + timedelta(minutes=1)
        print(f"{args.spans:,} spans, model {a} vs {b}")
        for days in (1, 7, 30):
            params = QueryParams(TimeRange(end - timedelta(days=days), end))
            times = []
            for _ in range(4):
                t0 = time.perf_counter()
                result = compare_versions(store, params, "model", a, b)
                times.append(time.perf_counter() - t0)
            print(f"| {days} d | {result.a.num_units:,} / {result.b.num_units:,} traces "
                  f"({result.num_mixed:,} mixed) | {statistics.median(times[1:]) * 1000:.0f} ms |")
        store.close()


if __name__ == "__main__":
    main()
