"""Latency of the agent graph over N spans, and of replaying one 5,000-span trace.

    .venv/bin/python bench/graph_replay.py [--spans 1000000] [--trace-spans 5000]

Graph: a fresh chDB store of N synthetic spans (bench/_synthetic.py, traces of ~8 spans
over 30 days, inserted in 500,000-span batches like the writer), reshaped so every query
path of :mod:`mentatlab.analytics.graph` has work: each span's parent is the previous
span of its trace (chains), about 10% of the LLM spans become agent calls of a sub-agent
with their own agent id (so the parent self-join runs), the other spans inherit. Times
``get_agent_graph`` over the last 1, 7 and 30 days (median of 3 after a warm-up).

Replay: the critical-path benchmark's 5,000-span trace (bench/critical_path.py: steps,
fan-outs, skewed children, orphans, open spans) with a checkpoint on every 10th span,
stored, then ``get_replay`` (the store read, the tree, the replay) at 20 instants across
the trace: median and worst.
"""

from __future__ import annotations

import argparse
import json
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

from _synthetic import synthetic_table  # noqa: E402
from critical_path import build_trace  # noqa: E402

from mentatlab.analytics.graph import get_agent_graph  # noqa: E402
from mentatlab.analytics.query import QueryParams, TimeRange  # noqa: E402
from mentatlab.analytics.replay import get_replay  # noqa: E402
from mentatlab.model.schema import spans_to_arrow  # noqa: E402
from mentatlab.model.span import CanonicalSpan, Operation, SpanStatus  # noqa: E402
from mentatlab.storage.chdb_store import ChdbSpanStore  # noqa: E402

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _with_calls(table: pa.Table, seed: int = 7) -> pa.Table:
    """Chains of parents and ~10% agent calls (see the module doc)."""
    rng = np.random.default_rng(seed)
    n = table.num_rows
    trace = table.column("trace_id").to_numpy(zero_copy_only=False)
    span = table.column("span_id").to_numpy(zero_copy_only=False)
    same = np.concatenate([[False], trace[1:] == trace[:-1]])
    parent = np.where(same, np.roll(span, 1), "")
    op = table.column("operation").to_numpy(zero_copy_only=False)
    agent = table.column("agent_id").to_numpy(zero_copy_only=False)
    call = (op == "chat") & (rng.random(n) < 0.1) & same
    op = np.where(call, "agent", op)
    agent = np.where(call, np.char.add(agent.astype(str), "-sub"), agent)
    inherited = np.where(call | ~same, 0, 1).astype(np.uint8)
    for name, values, typ in (("parent_span_id", parent, pa.string()),
                              ("operation", op, None), ("agent_id", agent, None),
                              ("inherited", inherited, pa.uint8())):
        index = table.schema.get_field_index(name)
        column = pa.array(values.astype(str) if typ != pa.uint8() else values, pa.string()
                          if typ is None or typ == pa.string() else typ)
        table = table.set_column(index, table.schema.field(index),
                                 column.cast(table.schema.field(index).type))
    return table


def bench_graph(num_spans: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        store = ChdbSpanStore(Path(folder) / "spans")
        store.migrate()
        end_ns = time.time_ns()
        table = _with_calls(synthetic_table(num_spans, end_ns=end_ns))
        calls = pc.sum(pc.equal(table.column("operation"), "agent")).as_py()
        for i in range(0, num_spans, 500_000):
            store.append_batch(table.slice(i, 500_000))
        end = datetime.fromtimestamp(end_ns / 1e9, UTC) + timedelta(minutes=1)
        print(f"{num_spans:,} spans, {calls:,} agent calls")
        for days in (1, 7, 30):
            params = QueryParams(TimeRange(end - timedelta(days=days), end))
            times = []
            for _ in range(4):
                t0 = time.perf_counter()
                graph = get_agent_graph(store, params)
                times.append(time.perf_counter() - t0)
            print(f"| graph | {days} d | {graph.num_nodes} nodes, {graph.num_links} links | "
                  f"{statistics.median(times[1:]) * 1000:.0f} ms |")
        store.close()


def bench_replay(num_spans: int) -> None:
    ids, parents, starts, ends, opened = build_trace(num_spans)
    base_ns = time.time_ns() - 3600 * 10**9
    trace_id = "5e" * 16
    spans = []
    for row, (span_id, parent, start, end, is_open) in enumerate(
            zip(ids, parents, starts, ends, opened, strict=True)):
        begin = _EPOCH + timedelta(microseconds=(base_ns + start) // 1000)
        finish = _EPOCH + timedelta(microseconds=(base_ns + end) // 1000)
        events = [] if row % 10 else [{"name": "mentat.checkpoint", "time_ns": base_ns + start,
                                       "attributes": {
                                           "mentat.checkpoint.patch": json.dumps(
                                               {f"k{row % 50}": row, "step": row}),
                                           "mentat.checkpoint.replace": row == 0}}]
        spans.append(CanonicalSpan(
            trace_id=trace_id, span_id=span_id, parent_span_id=parent, name=f"s{row % 40}",
            kind="internal", start_time=begin, end_time=finish,
            duration_ms=(end - start) / 1e6, status=SpanStatus.OK, operation=Operation.TOOL,
            org_id="acme", project_id="p", service_name="svc", ingested_at_ns=1,
            events=json.dumps(events),
            attributes='{"mentat.span.open": true}' if is_open else "{}"))
    with tempfile.TemporaryDirectory() as folder:
        store = ChdbSpanStore(Path(folder) / "spans")
        store.migrate()
        store.append_batch(spans_to_arrow(spans))
        first = get_replay(store, trace_id, None, {"org_id": "acme"})  # warm-up
        assert first is not None
        span_ns = first.end_ns - first.start_ns
        times = []
        for k in range(20):
            at = first.start_ns + span_ns * k // 19
            t0 = time.perf_counter()
            replay = get_replay(store, trace_id, at, {"org_id": "acme"})
            times.append((time.perf_counter() - t0) * 1000)
            assert replay is not None
        print(f"| replay | {num_spans:,}-span trace, {first.num_checkpoints} checkpoints | "
              f"median {statistics.median(times):.0f} ms, worst {max(times):.0f} ms |")
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--trace-spans", type=int, default=5000)
    args = parser.parse_args()
    bench_replay(args.trace_spans)
    bench_graph(args.spans)


if __name__ == "__main__":
    main()
