"""Latency of the latency percentiles (every group-by) and peer ranks over N spans.

Builds a fresh chDB store of N synthetic spans (bench/_synthetic.py: traces of ~8 spans
over 30 days, 6 models, 4 tools, every span carrying its agent's id as its own) in a
temporary folder, inserted in 500,000-span batches like the writer does, then times
``latency_by`` for each group-by and ``rank_peers`` over the last 1, 7 and 30 days
(median of 3 after one warm-up). Also times the RED metrics' per-batch count
(``RedMetrics.observe_batch``) on 10,000-span batches, the ingest-side cost.

Usage: .venv/bin/python bench/latency.py [--spans 1000000]
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _synthetic import synthetic_table  # noqa: E402
from _timing import median_ms  # noqa: E402

from mentatlab.analytics.latency import LATENCY_GROUPS, latency_by  # noqa: E402
from mentatlab.analytics.peers import rank_peers  # noqa: E402
from mentatlab.analytics.query import QueryParams, TimeRange  # noqa: E402
from mentatlab.server.red_metrics import RedMetrics  # noqa: E402
from mentatlab.storage.chdb_store import ChdbSpanStore  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spans", type=int, default=1_000_000)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as folder:
        store = ChdbSpanStore(Path(folder) / "spans")
        store.migrate()
        end_ns = time.time_ns()
        table = synthetic_table(args.spans, end_ns=end_ns)
        for i in range(0, args.spans, 500_000):
            store.append_batch(table.slice(i, 500_000))
        end = datetime.fromtimestamp(end_ns / 1e9, UTC) + timedelta(minutes=1)
        print(f"{args.spans:,} spans")
        print("| window | " + " | ".join(f"latency by {g}" for g in LATENCY_GROUPS)
              + " | peers |")
        for days in (1, 7, 30):
            params = QueryParams(TimeRange(end - timedelta(days=days), end))
            cells = [f"{median_ms(functools.partial(latency_by, store, params, g)):.0f} ms"
                     for g in LATENCY_GROUPS]
            peers_ms = median_ms(functools.partial(rank_peers, store, params))
            print(f"| {days} d | " + " | ".join(cells) + f" | {peers_ms:.0f} ms |")
        store.close()
        red = RedMetrics()
        batches = [table.slice(i, 10_000) for i in range(0, min(args.spans, 200_000), 10_000)]
        t0 = time.perf_counter()
        for batch in batches:
            red.observe_batch(batch)
        per_batch_ms = (time.perf_counter() - t0) * 1000 / len(batches)
        print(f"RED observe_batch: {per_batch_ms:.2f} ms per 10,000-span batch "
              f"({len(batches)} batches, {red.label_sets()} label sets)")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
