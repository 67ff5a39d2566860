"""Bottlenecks and version comparison over settled traces, at N spans.

Builds a fresh chDB store of N synthetic spans (bench/_synthetic.py: traces of ~8 spans
over 30 days) in a temporary folder, inserted in 500,000-span batches like the writer
does; times `compare_versions(field="model")` on raw spans (before settling, the old
path); runs the settle job once over the whole store (the first pass after an upgrade:
reads, critical paths in Python, `span_timing` and `trace_facts` writes) and times it;
then times `get_bottlenecks` per group-by and `compare_versions` again (now from
`trace_facts`) over the last 1, 7 and 30 days (median of 3 after one warm-up).

Usage: .venv/bin/python bench/bottlenecks.py [--spans 1000000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _synthetic import synthetic_table  # noqa: E402
from _timing import median_ms  # noqa: E402

from mentatlab.analytics.bottlenecks import get_bottlenecks  # noqa: E402
from mentatlab.analytics.compare import compare_versions  # noqa: E402
from mentatlab.analytics.query import QueryParams, TimeRange  # noqa: E402
from mentatlab.resolver.settle import Settler  # noqa: E402
from mentatlab.storage.chdb_store import ChdbSpanStore  # noqa: E402

DAYS = (1, 7, 30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spans", type=int, default=1_000_000)
    args = parser.parse_args()
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
        a, b = models[0]["m"], models[1]["m"]
        end = datetime.fromtimestamp(end_ns / 1e9, UTC) + timedelta(minutes=1)
        print(f"{args.spans:,} spans, load average {os.getloadavg()[0]:.1f}")

        def compare(days: int) -> float:
            params = QueryParams(TimeRange(end - timedelta(days=days), end))
            return median_ms(lambda: compare_versions(store, params, "model", a, b))

        raw = {d: compare(d) for d in DAYS}
        t0 = time.perf_counter()
        report = Settler(store, 60.0).run_pass(end_ns + 10**12, now_ns=end_ns + 10**12)
        settle_s = time.perf_counter() - t0
        print(f"settle pass: {report.num_traces:,} traces, {report.num_spans:,} spans in "
              f"{settle_s:.1f} s ({report.num_spans / settle_s:,.0f} spans/s)")
        settled = {d: compare(d) for d in DAYS}
        print("| query | 1 day | 7 days | 30 days |\n|---|---|---|---|")
        print(f"| compare (model), raw spans | {' | '.join(f'{raw[d]:.0f} ms' for d in DAYS)} |")
        print(f"| compare (model), trace_facts | "
              f"{' | '.join(f'{settled[d]:.0f} ms' for d in DAYS)} |")
        for group_by in ("name", "tool", "model", "agent", "operation"):
            cells = []
            for days in DAYS:
                window = TimeRange(end - timedelta(days=days), end)
                cells.append(median_ms(lambda w=window, g=group_by: get_bottlenecks(  # type: ignore[misc]
                    store, w, {}, g)))
            print(f"| bottlenecks (group_by={group_by}) | "
                  f"{' | '.join(f'{c:.0f} ms' for c in cells)} |")
        print(f"load average after: {os.getloadavg()[0]:.1f}")
        store.close()


if __name__ == "__main__":
    main()
