"""Latency of the recommendations (`list_recommendations`, every kind) over N spans.

Builds a fresh chDB store of N synthetic spans (bench/_synthetic.py: traces of ~8 spans
over 30 days) in a temporary folder, with the columns the recommendations read filled in
too: every 4 consecutive traces form a session (`session_id`), 3 % of spans are retries
(`is_retry`, failing as the data says), and 40 % of LLM calls carry one of 64 prompt-prefix
hashes (4,096 of 8,192 characters). Inserted in 500,000-span batches like the writer does,
then times `list_recommendations` (what `GET /api/v1/recommendations` runs, with the
default prices) over the last 1, 7 and 30 days: median of 3 after one warm-up, and each
kind's share in the 30-day case.

Usage: .venv/bin/python bench/recommendations.py [--spans 1000000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _synthetic import SPANS_PER_TRACE, synthetic_table  # noqa: E402

from mentatlab.analytics.query import QueryParams, TimeRange  # noqa: E402
from mentatlab.analytics.recommendations import KINDS, list_recommendations  # noqa: E402
from mentatlab.pipeline.price import Price  # noqa: E402
from mentatlab.storage.chdb_store import ChdbSpanStore  # noqa: E402


def _with_recommendation_columns(table: pa.Table) -> pa.Table:
    n = table.num_rows
    rng = np.random.default_rng(7)
    trace = np.arange(n) // SPANS_PER_TRACE
    session = pa.array([f"s{s:x}" for s in (trace // 4).tolist()], pa.string())
    llm = pc.not_equal(table.column("request_model"), "").to_numpy(zero_copy_only=False)
    hashed = llm & (rng.random(n) < 0.4)
    hashes = np.where(hashed, rng.integers(1, 65, n).astype(np.uint64) * 0x9E3779B97F4A7C15,
                      np.uint64(0)).astype(np.uint64)
    columns = {
        "session_id": session,
        "is_retry": pa.array(rng.random(n) < 0.03),
        "prompt_prefix_hash": pa.array(hashes, pa.uint64()),
        "prompt_prefix_chars": pa.array(np.where(hashed, 4096, 0).astype(np.uint32)),
        "prompt_chars": pa.array(np.where(hashed, 8192, 0).astype(np.uint32)),
    }
    for name, values in columns.items():
        index = table.schema.get_field_index(name)
        table = table.set_column(index, table.schema.field(index), values)
    return table


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spans", type=int, default=1_000_000)
    args = parser.parse_args()
    price = Price()
    with tempfile.TemporaryDirectory() as folder:
        store = ChdbSpanStore(Path(folder) / "spans")
        store.migrate()
        end_ns = time.time_ns()
        table = _with_recommendation_columns(synthetic_table(args.spans, end_ns=end_ns))
        for i in range(0, args.spans, 500_000):
            store.append_batch(table.slice(i, 500_000))
        end = datetime.fromtimestamp(end_ns / 1e9, UTC) + timedelta(minutes=1)
        print(f"{args.spans:,} spans; load average {os.getloadavg()[0]:.2f}")
        for days in (1, 7, 30):
            params = QueryParams(TimeRange(end - timedelta(days=days), end))
            times = []
            for _ in range(4):
                t0 = time.perf_counter()
                result = list_recommendations(store, params, price)
                times.append(time.perf_counter() - t0)
            kinds = sorted({r.kind for r in result.recommendations})
            print(f"| {days} d | {len(result.recommendations)} recommendations "
                  f"({', '.join(kinds)}) | {statistics.median(times[1:]) * 1000:.0f} ms |")
        params = QueryParams(TimeRange(end - timedelta(days=30), end))
        for kind in KINDS:
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                list_recommendations(store, params, price, [kind])
                times.append(time.perf_counter() - t0)
            print(f"|   {kind} (30 d) | {statistics.median(times) * 1000:.0f} ms |")
        print(f"load average after: {os.getloadavg()[0]:.2f}")
        store.close()


if __name__ == "__main__":
    main()
