"""Latency of the regressions analysis (`find_regressions`) over N spans.

Builds a fresh chDB store of N synthetic spans (bench/_synthetic.py: traces of ~8 spans
over 30 days, 40 projects with 1-3 agents) in a temporary folder, inserted in 500,000-span
batches like the writer does, with a prompt version on every span: `v1` before a cut-over
12 hours ago, `v2` after it. Over the last 1 and 7 days, every (agent, operation) then has
a new version (v2) whose baseline is v1, so each answer makes the most comparisons it
may (`MAX_VERSIONS`, 20; the rest are listed as skipped). Times `find_regressions` for all
four fields and for `model` alone (nothing new: the discovery scan only), median of 3
after one warm-up.

Usage: .venv/bin/python bench/regressions.py [--spans 1000000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _synthetic import synthetic_table  # noqa: E402

from mentatlab.analytics.query import QueryParams, TimeRange  # noqa: E402
from mentatlab.analytics.regressions import find_regressions  # noqa: E402
from mentatlab.storage.chdb_store import ChdbSpanStore  # noqa: E402

CUT_OVER = timedelta(hours=12)


def _with_versions(table: pa.Table, cut_ns: int) -> pa.Table:
    """``prompt_version`` v1 before ``cut_ns``, v2 from it (by span start)."""
    start_ns = table.column("start_time").cast(pa.int64()).to_numpy()
    versions = pa.array(np.where(start_ns < cut_ns, "v1", "v2"))
    index = table.schema.get_field_index("prompt_version")
    field = table.schema.field(index)
    return table.set_column(index, field, versions.cast(field.type))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spans", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        store = ChdbSpanStore(Path(folder) / "spans")
        store.migrate()
        end_ns = time.time_ns()
        cut_ns = end_ns - int(CUT_OVER.total_seconds() * 1e9)
        table = _with_versions(synthetic_table(args.spans, end_ns=end_ns), cut_ns)
        for i in range(0, args.spans, 500_000):
            store.append_batch(table.slice(i, 500_000))
        end = datetime.fromtimestamp(end_ns / 1e9, UTC) + timedelta(minutes=1)
        print(f"{args.spans:,} spans, prompt v2 from {CUT_OVER} before the end")
        for days in (1, 7):
            params = QueryParams(TimeRange(end - timedelta(days=days), end))
            for fields in (None, ["model"]):
                times = []
                for _ in range(4):
                    t0 = time.perf_counter()
                    result = find_regressions(store, params, fields)
                    times.append(time.perf_counter() - t0)
                compared = sum(v.skipped_reason is None for v in result.versions)
                print(f"| {days} d | {'all' if fields is None else fields[0]} | "
                      f"{len(result.versions)} new, {compared} compared, "
                      f"{result.num_tests} tests, {len(result.regressions)} regressions | "
                      f"{statistics.median(times[1:]) * 1000:.0f} ms |")
        store.close()


if __name__ == "__main__":
    main()
