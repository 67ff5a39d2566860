"""What attribution inheritance costs ingest: the same load with the resolver on and off.

A real `mentatctl serve` on 127.0.0.1 (a fresh data folder per run) takes OTLP/HTTP
protobuf from 4 client processes (bench/_load.py, fresh ids on every request so every span
reaches the store) for ``--seconds`` s. The traces are agent-shaped (an ``invoke_agent``
root naming its agent and reporting roll-up usage, 8 chat calls and a tool call below it,
none naming an agent: bench/_otlp_payload.py), so the resolver writes a second version of
9 spans in 10 and prices every root's unattributed usage. Runs alternate on and off
(``MENTATLAB_RESOLVE_INTERVAL_S=0``), ``--rounds`` times each; for each run: acknowledged
spans/s, request p50/p99, and with the resolver on, how long after the load it took to
reach the last acknowledged commit (``mentatlab_resolver_lag_seconds`` back to 0) and how
many versions it wrote. Bounded in time; targets 127.0.0.1 only.

With ``--baseline-src DIR`` (the ``src`` folder of another checkout, e.g. a git worktree
of the commit before attribution inheritance), a third run per round serves the same load
from that code (``PYTHONPATH``), so the whole cost of inheritance (the pipeline's
``attribute`` stage plus the resolver) is measured against the code without it.

Usage: .venv/bin/python bench/resolver_overhead.py [--seconds 20] [--rounds 2] [--batch 500]
       [--baseline-src /tmp/mentat-baseline/src]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from _load import run_load
from _server import Server


def _metric(url: str, name: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=30).text
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def _run(mode: str, seconds: float, batch: int, baseline_src: str | None
         ) -> dict[str, float]:
    env = {"MENTATLAB_INGEST_WORKERS": "2"}
    resolver_on = mode == "on"
    if mode == "off":
        env["MENTATLAB_RESOLVE_INTERVAL_S"] = "0"
    if mode == "baseline" and baseline_src:
        env["PYTHONPATH"] = baseline_src
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        with Server(data, env, grpc_port=0) as server:
            row = run_load(server.url, batch, 4, seconds, unique=True, agent_traces=True)
            catch_up_s = float("nan")
            versions = 0.0
            if resolver_on:
                t0 = time.monotonic()
                while time.monotonic() - t0 < 300:
                    if _metric(server.url, "mentatlab_resolver_lag_seconds") == 0.0:
                        break
                    time.sleep(0.2)
                catch_up_s = time.monotonic() - t0
                versions = _metric(server.url, "mentatlab_resolver_versions_total")
    return {"spans_per_s": row["spans_per_s"], "p50_ms": row["p50_ms"],
            "p99_ms": row["p99_ms"], "errors": row["errors"], "catch_up_s": catch_up_s,
            "versions": versions, "acked": row["acked_spans"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--baseline-src", default=None,
                    help="src folder of the code to compare with (e.g. a git worktree)")
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()}", flush=True)
    modes = ["baseline", "off", "on"] if args.baseline_src else ["off", "on"]
    results: dict[str, list[dict[str, float]]] = {m: [] for m in modes}
    print("| run | spans/s | p50 ms | p99 ms | errors | catch-up after load (s) |"
          " versions written | acked spans | load avg |")
    print("|---|---|---|---|---|---|---|---|---|")
    for _ in range(args.rounds):
        for mode in modes:
            row = _run(mode, args.seconds, args.batch, args.baseline_src)
            results[mode].append(row)
            load = os.getloadavg()
            print(f"| {mode} | {row['spans_per_s']:,.0f} | {row['p50_ms']:.1f} |"
                  f" {row['p99_ms']:.1f} | {row['errors']:.0f} | {row['catch_up_s']:.1f} |"
                  f" {row['versions']:,.0f} | {row['acked']:,.0f} |"
                  f" {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} |", flush=True)
    median = {m: statistics.median(r["spans_per_s"] for r in rows) for m, rows in results.items()}
    for mode in modes[:-1]:
        print(f"median spans/s: {mode} {median[mode]:,.0f}, on {median['on']:,.0f}:"
              f" {100 * (median[mode] - median['on']) / median[mode]:+.1f}% lost", flush=True)


if __name__ == "__main__":
    main()
