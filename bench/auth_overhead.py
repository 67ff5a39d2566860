"""What authentication costs ingest: the same OTLP/HTTP load with auth off and on.

A real `mentatctl serve` on 127.0.0.1 (a fresh data folder per run) takes OTLP/HTTP
protobuf from ``--clients`` client processes (bench/_load.py, fresh ids on every request
so every span reaches the store) for ``--seconds`` s per batch size. With auth on, the
server has ``MENTATLAB_AUTH_REQUIRED=true`` and every request carries an org-scoped
``ingest`` key issued by ``mentatctl keys create --bootstrap``: each request resolves the
key (cached for ``auth_cache_s``), checks the route's permission and the quotas, and fixes
the key's org on every span. Runs alternate off and on, ``--rounds`` times each, so drift
of the machine hits both alike; each server first takes 2 s of load not counted. Prints each run and the median loss per batch size.
Bounded in time; targets 127.0.0.1 only.

``--micro`` instead times the per-request check alone, in process: the key lookup from
the cache with the permission check (mean of 20,000), and a cache miss (the control-store
lookup a node makes once per key per ``auth_cache_s``; mean of 200).

Usage: .venv/bin/python bench/auth_overhead.py [--seconds 10] [--rounds 3] [--batches 1 100]
       [--clients 4] [--micro]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from _load import run_load
from _server import Server, bootstrap_key


def _run(auth: bool, args: argparse.Namespace) -> list[dict[str, float]]:
    env = {"MENTATLAB_INGEST_WORKERS": "2", "MENTATLAB_AUTH_REQUIRED": str(auth).lower()}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        headers = {"x-api-key": bootstrap_key(data)} if auth else {}
        rows = []
        with Server(data, env, grpc_port=0) as server:
            run_load(server.url, 100, 1, 2.0, unique=True, headers=headers)  # warm-up
            for batch in args.batches:
                row = run_load(server.url, batch, args.clients, args.seconds, unique=True,
                               headers=headers)
                row["auth"] = auth
                print({k: row[k] for k in ("auth", "batch", "spans_per_s", "p50_ms", "p99_ms",
                                           "errors", "status")}, flush=True)
                rows.append(row)
        return rows


def micro() -> None:
    """Time the key check alone: a cached lookup and a miss."""
    import asyncio

    from mentatlab.access.roles import Permission
    from mentatlab.server.auth import Authenticator
    from mentatlab.server.components import open_control_store
    from mentatlab.settings import load_settings

    with tempfile.TemporaryDirectory() as tmp:
        control = open_control_store(load_settings(data_dir=Path(tmp)))
        control.create_org("bench", "bench")
        key = control.create_api_key("bench", None, "bench", role="ingest").key
        auth = Authenticator(control, auth_required=True, cache_s=0.5)

        async def measure() -> tuple[float, float]:
            await auth.for_key(key)
            t0 = time.perf_counter()
            for _ in range(20_000):
                (await auth.for_key(key)).require(Permission.INGEST)
            hit = (time.perf_counter() - t0) / 20_000
            t0 = time.perf_counter()
            for _ in range(200):
                auth.forget()
                await auth.for_key(key)
            return hit, (time.perf_counter() - t0) / 200

        hit, miss = asyncio.run(measure())
        control.close()
    print(f"key check from the cache: {hit * 1e6:.1f} µs; cache miss (SQLite lookup in a "
          f"thread): {miss * 1e3:.2f} ms; load average {os.getloadavg()}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 100])
    ap.add_argument("--micro", action="store_true")
    args = ap.parse_args()
    if args.micro:
        micro()
        return
    print(f"load average before: {os.getloadavg()}", flush=True)
    runs: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    for _ in range(args.rounds):
        for auth in (False, True):
            runs[auth].extend(_run(auth, args))
    print("\n| batch | auth off spans/s (median) | auth on spans/s (median) | loss | "
          "p99 off ms | p99 on ms | errors on |\n|---|---|---|---|---|---|---|")
    for batch in args.batches:
        off = [r for r in runs[False] if r["batch"] == batch]
        on = [r for r in runs[True] if r["batch"] == batch]
        off_rate = statistics.median(r["spans_per_s"] for r in off)
        on_rate = statistics.median(r["spans_per_s"] for r in on)
        print(f"| {batch} | {off_rate:,.0f} | {on_rate:,.0f} | "
              f"{100 * (off_rate - on_rate) / off_rate:+.1f}% | "
              f"{statistics.median(r['p99_ms'] for r in off):.1f} | "
              f"{statistics.median(r['p99_ms'] for r in on):.1f} | "
              f"{sum(r['errors'] for r in on)} |")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
