"""Scale-out ingest: 1, 2 and 4 `mentatctl serve` nodes on one ClickHouse span store.

One ClickHouse test endpoint (tests/clickhouse_endpoint.py: the ClickHouse HTTP interface
over chDB, in a child process) is the shared span store; for each node count N a fresh
database on it and N nodes (``MENTATLAB_SPAN_STORE=clickhouse://default@127.0.0.1:<port>/
<db>?compress=false``, each its own data dir, HTTP port, SQLite control store, no gRPC).
Client processes (bench/_load.py) post OTLP/HTTP protobuf bodies round-robin across the
nodes, with fresh span ids on every request, for ``--seconds`` s (and at most
``--max-requests`` per client). Reported per N: total and per-node spans/s acknowledged,
p50/p99 request latency, 503 and other non-2xx counts, CPU (cores) of the nodes (with
their ingest workers), of the endpoint and of the clients, the nodes' write latency
(``mentatlab_write_latency_seconds`` from `/metrics`: per request, from submit to the
writer until the store acknowledged; its sum over the wall time is the mean number of
requests waiting on the store), the endpoint's lock wait (latency of a
``SELECT 1`` probe every 100 ms, against its idle latency) and, at the end, the stored
count (``count() FROM spans FINAL``) against the acknowledged count, and the bytes per
stored span on disk (active parts, before background merges finish).

``--endpoint-only`` first measures the endpoint alone: Arrow inserts through
`ClickHouseSpanStore.append_batch` from one thread (the endpoint serializes requests),
for each ``--insert-rows`` batch size: the store's ceiling without any node.

Usage: .venv/bin/python bench/scale_out.py [--nodes 1 2 4] [--seconds 15] [--clients 4]
       [--batch 500] [--workers 0] [--endpoint-only]
       [--control-store URL]
Bounded in time and count; 127.0.0.1 only; every process it starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psutil
import pyarrow as pa
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))

from _load import run_load  # noqa: E402
from _otlp_payload import UniqueBodies  # noqa: E402
from _server import Server  # noqa: E402

from clickhouse_endpoint import EndpointProcess  # noqa: E402
from mentatlab.storage.clickhouse_store import ClickHouseSpanStore  # noqa: E402


def _cpu_s(procs: list[psutil.Process]) -> float:
    total = 0.0
    for proc in procs:
        for p in [proc, *proc.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                times = p.cpu_times()
                total += times.user + times.system
    return total


def _load_avg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


class _Probe:
    """``SELECT 1`` to the endpoint every ``period_s``; latencies in s."""

    def __init__(self, url: str, period_s: float = 0.1) -> None:
        self.url = url
        self.period_s = period_s
        self.latencies: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self._stop.wait(self.period_s):
                t0 = time.perf_counter()
                client.get(self.url, params={"query": "SELECT 1"})
                self.latencies.append(time.perf_counter() - t0)

    def __enter__(self) -> _Probe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=35)


def _idle_probe_ms(url: str, samples: int = 20) -> float:
    times = []
    with httpx.Client(timeout=10) as client:
        for _ in range(samples):
            t0 = time.perf_counter()
            client.get(url, params={"query": "SELECT 1"})
            times.append(time.perf_counter() - t0)
            time.sleep(0.02)
    return 1000 * statistics.median(times)


def _commits(url: str) -> tuple[float, float, float]:
    """(store commits, their total seconds, spans accepted) from a node's /metrics."""
    count = total = accepted = 0.0
    text = httpx.get(f"{url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "mentatlab_write_latency_seconds_count":
                count += sample.value
            elif sample.name == "mentatlab_write_latency_seconds_sum":
                total += sample.value
            elif sample.name == "mentatlab_spans_accepted_total":
                accepted += sample.value
    return count, total, accepted


def _pipeline_tables(rows: int, count: int = 4) -> list[pa.Table]:
    """Arrow tables of ``rows`` spans as a node commits them (decoded, normalized, priced).

    (bench/_synthetic.py spreads spans over 30 days: one insert would touch ~30 daily
    partitions, which live ingest never does.)
    """
    from mentatlab.pipeline.workers import build_pipeline
    from mentatlab.receivers.decode import decode_otlp_protobuf
    from mentatlab.settings import load_settings

    with tempfile.TemporaryDirectory() as tmp:
        pipeline = build_pipeline(load_settings(data_dir=Path(tmp)))
    tables = []
    for k in range(count):
        bodies = UniqueBodies(rows, client=k)
        tables.append(pipeline.run(decode_otlp_protobuf(bodies.next()).spans).table)
    return tables


def endpoint_only(endpoint: EndpointProcess, rows_list: list[int], seconds: float) -> None:
    """Insert pipeline-made Arrow batches straight into the endpoint; print rows/s per size."""
    ep = psutil.Process(endpoint.pid)
    print("\n| insert rows | inserts | rows/s | mean insert ms | endpoint CPU (cores) |"
          " load avg |\n|---|---|---|---|---|---|")
    for rows in rows_list:
        database = f"bench_direct_{uuid.uuid4().hex[:8]}"
        with ClickHouseSpanStore(endpoint.host, endpoint.port, database=database,
                                 compress=False) as store:
            store.migrate()
            tables = _pipeline_tables(rows)
            store.append_batch(tables[0])  # warm-up (re-sent rows: ReplacingMergeTree keeps one)
            cpu0, t0, n = _cpu_s([ep]), time.monotonic(), 0
            while time.monotonic() - t0 < seconds and n < 100_000:
                store.append_batch(tables[n % len(tables)])
                n += 1
            elapsed = time.monotonic() - t0
            cpu = (_cpu_s([ep]) - cpu0) / elapsed
            print(f"| {rows:,} | {n} | {n * rows / elapsed:,.0f} | {1000 * elapsed / n:.1f} |"
                  f" {cpu:.2f} | {_load_avg()} |", flush=True)
            store.execute(f"DROP DATABASE IF EXISTS `{database}`")


def run_nodes(endpoint: EndpointProcess, n: int, args: argparse.Namespace,
              tmp: Path) -> dict[str, Any]:
    """Start ``n`` nodes on a fresh database, drive the load, check counts; one table row."""
    database = f"bench_scale_{n}_{uuid.uuid4().hex[:8]}"
    env = {"MENTATLAB_SPAN_STORE": f"clickhouse://default@{endpoint.host}:{endpoint.port}"
                                   f"/{database}?compress=false",
           "MENTATLAB_GRPC_PORT": "0", "MENTATLAB_INGEST_WORKERS": str(args.workers)}
    if args.control_store:
        env["MENTATLAB_CONTROL_STORE"] = args.control_store
    servers = [Server(tmp / f"n{n}-node{i}" / "data", env, grpc_port=0) for i in range(n)]
    for s in servers:
        s.data_dir.parent.mkdir(parents=True)
    with contextlib.ExitStack() as stack:
        for s in servers:
            stack.push(s.__exit__)  # stops whatever did start, also if another start fails
        with ThreadPoolExecutor(n) as pool:  # start together: migrations race as in production
            list(pool.map(lambda s: s.__enter__(), servers))
        urls = [s.url for s in servers]
        node_procs = [psutil.Process(s.pid) for s in servers]
        ep_proc = psutil.Process(endpoint.pid)
        time.sleep(2)  # ingest workers and the startup resolver pass settle
        idle_ms = _idle_probe_ms(endpoint.url)
        commits0 = [_commits(u) for u in urls]
        load_before = _load_avg()
        cpu_nodes0, cpu_ep0 = _cpu_s(node_procs), _cpu_s([ep_proc])
        with _Probe(endpoint.url) as probe:
            row = run_load(urls, args.batch, args.clients, args.seconds,
                           max_requests=args.max_requests, unique=True)
        window = row["elapsed_s"]
        cpu_nodes = (_cpu_s(node_procs) - cpu_nodes0) / window
        cpu_ep = (_cpu_s([ep_proc]) - cpu_ep0) / window
        commits1 = [_commits(u) for u in urls]
        load_after = _load_avg()
        with ClickHouseSpanStore(endpoint.host, endpoint.port, database=database,
                                 compress=False) as store:
            stored = int(store.query_arrow("SELECT count() AS n FROM spans FINAL")
                         .column("n")[0].as_py())
            disk = store.query_arrow(
                "SELECT sum(rows) AS r, sum(bytes_on_disk) AS b FROM system.parts"
                " WHERE database = currentDatabase() AND table = 'spans' AND active")
            disk_rows, disk_bytes = (int(disk.column(c)[0].as_py() or 0) for c in ("r", "b"))
    num_commits = sum(b[0] - a[0] for a, b in zip(commits0, commits1, strict=True))
    commit_s = sum(b[1] - a[1] for a, b in zip(commits0, commits1, strict=True))
    accepted = sum(b[2] - a[2] for a, b in zip(commits0, commits1, strict=True))
    probe_ms = sorted(1000 * x for x in probe.latencies) or [float("nan")]
    row.update({
        "nodes": n, "database": database, "per_node_spans_per_s": row["spans_per_s"] / n,
        "node_cpu_cores": cpu_nodes, "endpoint_cpu_cores": cpu_ep,
        "client_cpu_cores": row["client_cpu_s"] / window,
        "commits": num_commits, "rows_per_commit": accepted / num_commits if num_commits else 0,
        "commit_ms": 1000 * commit_s / num_commits if num_commits else float("nan"),
        "commit_busy": commit_s / window,
        "probe_idle_ms": idle_ms, "probe_p50_ms": probe_ms[len(probe_ms) // 2],
        "probe_p99_ms": probe_ms[min(len(probe_ms) - 1, int(len(probe_ms) * 0.99))],
        "stored": stored,
        "bytes_per_span": disk_bytes / disk_rows if disk_rows else float("nan"),
        "load_before": load_before, "load_after": load_after,
    })
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, nargs="*", default=[1, 2, 4])
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--max-requests", type=int, default=5_000, help="per client")
    ap.add_argument("--workers", type=int, default=0, help="MENTATLAB_INGEST_WORKERS per node")
    ap.add_argument("--control-store", default="", help="MENTATLAB_CONTROL_STORE for all nodes"
                    " (default: each node's own SQLite)")
    ap.add_argument("--endpoint-only", action="store_true")
    ap.add_argument("--insert-rows", type=int, nargs="+", default=[500, 5000])
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args()
    print(f"load average before: {_load_avg()}; {os.cpu_count()} cores; "
          f"batch {args.batch}, {args.clients} clients, {args.seconds} s, "
          f"ingest workers {args.workers}",
          flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="mentat-scale-") as tmp_name:
        tmp = Path(tmp_name)
        with EndpointProcess(tmp / "endpoint") as endpoint:
            if args.endpoint_only:
                endpoint_only(endpoint, args.insert_rows, min(args.seconds, 10))
            for n in args.nodes:
                row = run_nodes(endpoint, n, args, tmp)
                rows.append(row)
                print(json.dumps({k: v for k, v in row.items() if k != "status"}
                                 | {"status": {str(k): v for k, v in row["status"].items()}},
                                 default=str), flush=True)
    print("\n| nodes | spans/s total | spans/s per node | p50 ms | p99 ms | 503 | other non-2xx |"
          " CPU nodes / endpoint / clients (cores) | write latency mean ms |"
          " requests waiting on the store (mean) | endpoint probe p50 / p99 ms (idle) | acked = stored |"
          " bytes/span on disk | load avg before → after |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        s503 = r["status"].get(503, 0)
        other = r["errors"] - s503
        print(f"| {r['nodes']} | {r['spans_per_s']:,.0f} | {r['per_node_spans_per_s']:,.0f} |"
              f" {r['p50_ms']:.0f} | {r['p99_ms']:.0f} | {s503} | {other} |"
              f" {r['node_cpu_cores']:.2f} / {r['endpoint_cpu_cores']:.2f} /"
              f" {r['client_cpu_cores']:.2f} |"
              f" {r['commit_ms']:.0f} |"
              f" {r['commit_busy']:.2f} |"
              f" {r['probe_p50_ms']:.0f} / {r['probe_p99_ms']:.0f} ({r['probe_idle_ms']:.1f}) |"
              f" {r['acked_spans']:,} {'=' if r['acked_spans'] == r['stored'] else '≠'}"
              f" {r['stored']:,} | {r['bytes_per_span']:.0f} |"
              f" {r['load_before']} → {r['load_after']} |")
    if args.json:
        args.json.write_text(json.dumps(rows, default=str, indent=1))
    if any(r["acked_spans"] != r["stored"] for r in rows):
        raise SystemExit("stored count differs from acknowledged count")


if __name__ == "__main__":
    main()
