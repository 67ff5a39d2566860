"""OTLP/HTTP protobuf ingest benchmark against a real `mentatctl serve` on loopback.

Measures, for batch sizes 1, 100 and 500: sustained throughput (spans/s) with several
client processes, request latency p50/p99; then p99 latency at batch 100 under a fixed
load of half the measured batch-500 maximum; end-to-end visibility lag (200 received →
trace queryable through the REST API); server RSS idle and under load.

Usage: .venv/bin/python bench/ingest.py [--seconds 10] [--clients 4] [--workers 0]
``--stages`` instead times each in-process stage (CPU time, min of 5, 2,000 spans).
(``--workers`` sets MENTATLAB_INGEST_WORKERS of the server; ``--batches 500`` runs only
the listed batch sizes before the half-load run.) The clients (bench/_load.py) re-send 20
pre-built bodies, so after the first 20 requests per client the server's dedup drops every
span before the store insert; ``--unique-ids`` sends fresh ids on every request instead
(every span reaches the store), as bench/scale_out.py does. ``--auth`` runs the server with
``auth_required`` and sends an API key on every request (one ``admin`` key from
``mentatctl keys create --bootstrap``, so the visibility-lag reads use it too). ``--grpc``
sends the loads as OTLP/gRPC ``Export`` calls with the same bodies (the visibility lag
stays OTLP/HTTP).
Bounded in time and count; targets 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import psutil
from _load import HEADERS, run_load, warm_up
from _otlp_payload import make_request
from _server import Server, bootstrap_key


def visibility_lag(url: str, headers: dict[str, str], samples: int = 20) -> list[float]:
    lags = []
    with httpx.Client(timeout=10, headers=headers) as client:
        for _ in range(samples):
            tid = os.urandom(16)
            body = make_request(5, trace_id=tid)
            r = client.post(f"{url}/v1/traces", content=body, headers=HEADERS)
            assert r.status_code == 200, r.text
            t0 = time.perf_counter()
            deadline = t0 + 10
            while time.perf_counter() < deadline:
                if client.get(f"{url}/api/v1/traces/{tid.hex()}").status_code == 200:
                    break
                time.sleep(0.005)
            lags.append(time.perf_counter() - t0)
    return lags


def _tree(proc: psutil.Process) -> list[psutil.Process]:
    return [proc, *proc.children(recursive=True)]


def _tree_rss(proc: psutil.Process) -> int:
    return sum(p.memory_info().rss for p in _tree(proc))


def _tree_cpu_s(proc: psutil.Process) -> float:
    total = 0.0
    for p in _tree(proc):
        times = p.cpu_times()
        total += times.user + times.system
    return total


def stages(total_spans: int = 2000) -> None:
    """CPU time per stage of the in-process pipeline (min of 5 runs), one core."""
    from mentatlab.model.schema import spans_to_arrow
    from mentatlab.pipeline.workers import build_pipeline
    from mentatlab.receivers.otlp_http import decode_protobuf
    from mentatlab.settings import load_settings

    with tempfile.TemporaryDirectory() as tmp:
        pipeline = build_pipeline(load_settings(data_dir=Path(tmp)))
    bodies = [make_request(500, seed=i) for i in range(total_spans // 500)]
    stage = {p.name: p for p in pipeline.processors}  # by name: the list grows (issue 17)
    (price,) = (p for p in pipeline.table_processors if p.name == "price")
    best: dict[str, float] = {}
    for _ in range(6):
        # price runs last, over the Arrow table (PriceColumns); "arrow" builds the table
        # of the unpriced spans it prices
        took = dict.fromkeys(("decode", "normalize", "classify", "arrow", "price"), 0.0)
        for body in bodies:
            t0 = time.thread_time()
            raw = decode_protobuf(body).spans
            t1 = time.thread_time()
            spans = pipeline.normalizer(raw).spans
            t2 = time.thread_time()
            spans = stage["classify"](spans)
            t3 = time.thread_time()
            table = spans_to_arrow(spans)
            t4 = time.thread_time()
            price(table)
            t5 = time.thread_time()
            for key, dt in zip(took, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True):
                took[key] += dt
        best = {k: min(v, best.get(k, v)) for k, v in took.items()}
    total_s = sum(best.values())
    print(f"per {total_spans} spans (CPU ms): "
          + ", ".join(f"{k} {1000 * v:.1f}" for k, v in best.items())
          + f"; total {1000 * total_s:.1f} ms = {total_spans / total_s:,.0f} spans/s per core"
          + f"; load average {os.getloadavg()}")
    # the whole in-process pipeline as the server runs it: every stage, Arrow included
    run_s = float("inf")
    for _ in range(6):
        raws = [decode_protobuf(body).spans for body in bodies]
        t0 = time.thread_time()
        for raw in raws:
            pipeline.run(raw)
        run_s = min(run_s, time.thread_time() - t0)
    names = ["normalize", *(p.name for p in pipeline.processors), "arrow",
             *(p.name for p in pipeline.table_processors)]
    print(f"pipeline.run ({' → '.join(names)}): {1e6 * run_s / total_spans:.2f} CPU µs/span,"
          " decode excluded")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 100, 500])
    ap.add_argument("--stages", action="store_true")
    ap.add_argument("--unique-ids", action="store_true",
                    help="fresh span/trace ids per request (no dedup short-cut)")
    ap.add_argument("--wal", action=argparse.BooleanOptionalAction, default=None,
                    help="MENTATLAB_WAL=1 (acknowledge once logged, decision 0022) or, with"
                         " --no-wal, 0 (once inserted); neither: the default (on)")
    ap.add_argument("--auth", action="store_true",
                    help="MENTATLAB_AUTH_REQUIRED=true, every request with an API key")
    ap.add_argument("--grpc", action="store_true",
                    help="send the loads as OTLP/gRPC Export calls (same bodies)")
    args = ap.parse_args()
    if args.stages:
        stages()
        return
    print(f"load average before: {os.getloadavg()}, workers={args.workers}, wal={args.wal}, "
          f"auth={args.auth}, grpc={args.grpc}", flush=True)
    env = {"MENTATLAB_INGEST_WORKERS": str(args.workers)}
    if args.wal is not None:
        env["MENTATLAB_WAL"] = "1" if args.wal else "0"
    if args.auth:
        env["MENTATLAB_AUTH_REQUIRED"] = "true"
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        headers = {"x-api-key": bootstrap_key(data, "admin")} if args.auth else {}
        with Server(data, env) as srv:
            _measure(srv, args, headers)


def _measure(srv: Server, args: argparse.Namespace, headers: dict[str, str]) -> None:
    """Run the loads against ``srv`` and print the table."""
    proc = psutil.Process(srv.pid)
    warm_up(srv.url, headers=headers)  # the workers start on the first body
    target = f"grpc://127.0.0.1:{srv.grpc_port}" if args.grpc else srv.url
    time.sleep(2)
    rss_idle = _tree_rss(proc)
    rows = []
    peak_rss = rss_idle
    for batch in args.batches:
        cpu0 = _tree_cpu_s(proc)
        row = run_load(target, batch, args.clients, args.seconds, unique=args.unique_ids,
                       headers=headers)
        row["server_cpu_cores"] = (_tree_cpu_s(proc) - cpu0) / args.seconds
        peak_rss = max(peak_rss, _tree_rss(proc))
        rows.append(row)
        print(row, flush=True)
    max500 = rows[-1]["spans_per_s"]
    half_rate = max500 / 2 / 100 / args.clients  # requests/s per client at batch 100
    half = run_load(target, 100, args.clients, args.seconds, rate_rps_per_client=half_rate,
                    unique=args.unique_ids, headers=headers)
    peak_rss = max(peak_rss, _tree_rss(proc))
    print("half-load", half, flush=True)
    lags = visibility_lag(srv.url, headers)
    print(
        "\n| batch | clients | spans/s | p50 ms | p99 ms | errors | server CPU (cores) | server CPU µs/span |\n|---|---|---|---|---|---|---|---|"
    )
    for r in rows:
        per_span_us = 1e6 * r["server_cpu_cores"] / max(r["spans_per_s"], 1e-9)
        print(
            f"| {r['batch']} | {r['clients']} | {r['spans_per_s']:,.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['errors']} | {r['server_cpu_cores']:.2f} | {per_span_us:.0f} |"
        )
    print(
        f"| 100 @ half of max ({half['spans_per_s']:,.0f} spans/s) | {args.clients} | | {half['p50_ms']:.1f} | {half['p99_ms']:.1f} | {half['errors']} |"
    )
    print(
        f"\nvisibility lag: median {1000 * statistics.median(lags):.0f} ms, max {1000 * max(lags):.0f} ms"
    )
    print(
        f"server RSS (with worker processes): idle {rss_idle / 2**20:.0f} MiB, "
        f"under load (peak sampled) {peak_rss / 2**20:.0f} MiB"
    )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
