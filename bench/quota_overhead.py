"""What quotas cost ingest: OTLP/HTTP with auth on, default quotas against every quota off.

Two measures:

* the check alone, in process: µs per ingest request (request rate + span budget, key and
  org buckets), min of 5 runs of 100,000;
* end to end against a real `mentatctl serve` on loopback (auth on, one ingest key of one
  org, ``MENTATLAB_INGEST_WORKERS=0``), alternating runs with the default quotas and with
  every ``quota_*`` set to 0, so drift of the shared machine hits both sides alike.

Usage: .venv/bin/python bench/quota_overhead.py [--seconds 8] [--rounds 3] [--batch 100]
[--clients 4]. Bounded in time; targets 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from _load import run_load
from _server import Server

from mentatlab.access.principal import Principal
from mentatlab.access.roles import Permission
from mentatlab.server.quotas import QuotaLimits, Quotas
from mentatlab.storage.control import ControlStore, migrate_control_store

_OFF = {f"MENTATLAB_QUOTA_{scope}_{what}": "0" for scope in ("KEY", "ORG")
        for what in ("INGEST_REQUESTS_PER_S", "INGEST_SPANS_PER_MIN", "QUERIES_PER_MIN")}


def check_cost_us(batch: int, runs: int = 5, calls: int = 100_000) -> float:
    """µs of one ingest request's checks, key and org buckets on (min of ``runs``)."""
    principal = Principal.for_key("k1", "bench", "ingest", "acme", None)
    best_s = float("inf")
    for _ in range(runs):
        quotas = Quotas(QuotaLimits(key_ingest_requests_per_s=10**9,
                                    org_ingest_requests_per_s=10**9,
                                    key_ingest_spans_per_min=10**12,
                                    org_ingest_spans_per_min=10**12))
        t0 = time.perf_counter()
        for _ in range(calls):
            quotas.admit_request(principal, Permission.INGEST)
            quotas.admit_spans(principal, batch)
        best_s = min(best_s, time.perf_counter() - t0)
    return best_s / calls * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--clients", type=int, default=4)
    args = ap.parse_args()
    print(f"check alone: {check_cost_us(args.batch):.2f} µs per ingest request", flush=True)
    print(f"load average before: {os.getloadavg()}", flush=True)
    figures: dict[str, list[float]] = {"default quotas": [], "quotas off": []}
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        url = f"sqlite:///{data_dir / 'control.db'}"
        migrate_control_store(url)
        control = ControlStore(url)
        control.create_org("Bench", "bench")
        key = control.create_api_key("bench", None, "bench", role="ingest",
                                     created_by="bench").key
        control.close()
        base = {"MENTATLAB_AUTH_REQUIRED": "true", "MENTATLAB_INGEST_WORKERS": "0"}
        for _ in range(args.rounds):
            for name, env in (("default quotas", base), ("quotas off", {**base, **_OFF})):
                with Server(data_dir, env, grpc_port=0) as srv:
                    time.sleep(1)
                    row = run_load(srv.url, args.batch, args.clients, args.seconds,
                                   unique=True, headers={"x-api-key": key})
                assert row["errors"] == 0, row
                figures[name].append(row["spans_per_s"])
                print(name, f"{row['spans_per_s']:,.0f} spans/s", f"p50 {row['p50_ms']:.1f} ms",
                      f"p99 {row['p99_ms']:.1f} ms", flush=True)
    on = statistics.median(figures["default quotas"])
    off = statistics.median(figures["quotas off"])
    print(f"\nmedian spans/s: default quotas {on:,.0f}, quotas off {off:,.0f} "
          f"({(off - on) / off:+.1%} lost with quotas)")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
