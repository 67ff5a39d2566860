"""Latency of the reliability analytics (`get_reliability`, what
`GET /api/v1/analytics/reliability` runs) over N spans.

Builds a fresh chDB store of N synthetic spans (bench/_synthetic.py: traces of ~8 spans
over 30 days) in a temporary folder, with the reliability columns filled in here, column
by column (numpy, no loop per row):

* each trace's spans form a chain (every span's parent is the one before it), so root
  outcomes and the agent call graph are real;
* 10% of spans are agent spans (``operation = agent``) of 4 agents: many traces hold a
  repeated agent and some a cycle (A → ... → B → ... → A);
* failed spans (3%) get a class and category from 6 pairs, and some roots time out;
* 5% of spans are retries (`is_retry`), 1% fallbacks; tool spans (15%) get one of 6
  argument hashes, so some traces call a tool 3+ times with the same arguments.

Times `get_reliability` over the last 1, 7 and 30 days (median of 3 after one warm-up),
and prints the load average.

Usage: .venv/bin/python bench/reliability.py [--spans 1000000]
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _synthetic import synthetic_table  # noqa: E402

from mentatlab.analytics.query import QueryParams, TimeRange  # noqa: E402
from mentatlab.analytics.reliability import get_reliability  # noqa: E402
from mentatlab.storage.chdb_store import ChdbSpanStore  # noqa: E402

CATEGORIES = [("provider", "rate_limit"), ("provider", "timeout"),
              ("provider", "upstream_error"), ("model", "context_length_exceeded"),
              ("tooling", "tool_error"), ("unknown", "unknown")]
AGENTS = ["planner", "researcher", "writer", "critic"]


def _strings(values: list[str], idx: np.ndarray) -> pa.Array:
    return pa.DictionaryArray.from_arrays(pa.array(idx.astype(np.int32)),
                                          pa.array(values)).cast(pa.string())


def with_reliability_columns(table: pa.Table, seed: int = 1) -> pa.Table:
    """``table`` with parent chains, agent spans, categories, retries and argument hashes."""
    rng = np.random.default_rng(seed)
    n = table.num_rows
    trace = table.column("trace_id").combine_chunks()
    span = table.column("span_id").combine_chunks()
    first = np.ones(n, bool)
    first[1:] = np.asarray(pa.compute.not_equal(trace.slice(1), trace.slice(0, n - 1)))
    parent_idx = np.where(first, 0, np.arange(n) - 1)
    parent = pa.compute.if_else(pa.array(first), "", span.take(pa.array(parent_idx)))
    operation = np.asarray(table.column("operation").to_numpy(zero_copy_only=False))
    is_agent = rng.random(n) < 0.10
    agent_idx = rng.integers(0, len(AGENTS), n)
    op = np.where(is_agent, "agent", operation)
    name = np.where(is_agent, np.array(AGENTS)[agent_idx],
                    np.asarray(table.column("name").to_numpy(zero_copy_only=False)))
    failed = np.asarray(table.column("status").to_numpy(zero_copy_only=False)) != "ok"
    timed_out = failed & first & (rng.random(n) < 0.5)
    status = np.where(timed_out, "timeout", np.where(failed, "error", "ok"))
    cat_idx = rng.integers(0, len(CATEGORIES), n)
    cls = np.where(failed, np.array([c for c, _ in CATEGORIES])[cat_idx], "")
    cat = np.where(failed, np.array([c for _, c in CATEGORIES])[cat_idx], "")
    cat = np.where(timed_out, "timeout", cat)
    cls = np.where(timed_out, "provider", cls)
    is_tool = op == "tool"
    args = np.where(is_tool, np.char.add("h", rng.integers(0, 6, n).astype(str)), "")
    columns = {
        "parent_span_id": parent,
        "operation": pa.array(op, pa.string()),
        "name": pa.array(name, pa.string()),
        "agent_id": pa.array(np.where(is_agent, np.array(AGENTS)[agent_idx], ""), pa.string()),
        "status": pa.array(status, pa.string()),
        "error_class": pa.array(cls, pa.string()),
        "error_category": pa.array(cat, pa.string()),
        "is_retry": pa.array(rng.random(n) < 0.05),
        "is_fallback": pa.array(rng.random(n) < 0.01),
        "tool_args_hash": pa.array(args, pa.string()),
    }
    for column, values in columns.items():
        index = table.schema.get_field_index(column)
        table = table.set_column(index, table.schema.field(index), values)
    return table


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spans", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        store = ChdbSpanStore(Path(folder) / "spans")
        store.migrate()
        end_ns = time.time_ns()
        table = with_reliability_columns(synthetic_table(args.spans, end_ns=end_ns))
        for i in range(0, args.spans, 500_000):
            store.append_batch(table.slice(i, 500_000))
        end = datetime.fromtimestamp(end_ns / 1e9, UTC) + timedelta(minutes=1)
        print(f"{args.spans:,} spans; load average {os.getloadavg()}")
        for days in (1, 7, 30):
            params = QueryParams(TimeRange(end - timedelta(days=days), end))
            times = []
            for _ in range(4):
                t0 = time.perf_counter()
                r = get_reliability(store, params)
                times.append(time.perf_counter() - t0)
            print(f"| {days} d | {r.num_spans:,} spans, {r.traces.num_traces:,} traces, "
                  f"{r.num_loop_traces:,} loops, {r.num_cycle_traces:,} cycles "
                  f"({r.num_deadlock_suspects:,} suspects{', truncated' if r.cycles_truncated else ''}) "
                  f"| {statistics.median(times[1:]) * 1000:.0f} ms |")
        print(f"load average after: {os.getloadavg()}")
        store.close()


if __name__ == "__main__":
    main()
