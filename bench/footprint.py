"""Footprint of a real `mentatctl serve` with the default settings (issue 18, item 4).

Measures, per run:

* **startup to ready**: process start (``Popen``) to the first 200 from ``/readyz`` (store
  open, writer alive), polled every 20 ms, wall seconds and the server's CPU seconds; on a
  new data folder (the store's tables are created) and again, after the run, on the filled
  one (a restart);
* **idle**: the process tree (server, forkserver, ingest workers, resource tracker) 8 s
  after ready, on the new store and after the restart;
* **under load**: the peak of the tree, sampled every 0.25 s, during a bounded full-speed
  OTLP/HTTP burst (``--clients`` client processes, batch 500, fresh ids, for ``--seconds``
  s or ``--max-requests`` requests per client, whichever first), then the tree again
  5 s after the burst.

Per process it reports RSS (resident, what the targets are about: < 300 MiB idle, < 600
MiB under load, summed over the tree), USS (pages only that process holds) and PSS
(shared pages divided among their users; the tree's PSS sum counts a shared page once),
from psutil's ``memory_full_info`` (``/proc/<pid>/smaps_rollup``).

Usage: cd bench && ../.venv/bin/python footprint.py [--runs 3] [--seconds 10]
[--clients 2] [--env KEY=VALUE ...]. Default settings apart from a temporary data dir and
free ports; targets 127.0.0.1 only; bounded in time and request count.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
from _load import run_load
from _server import free_port

MiB = 2**20


def _tree(proc: psutil.Process) -> list[psutil.Process]:
    return [proc, *proc.children(recursive=True)]


def _role(p: psutil.Process, server_pid: int) -> str:
    if p.pid == server_pid:
        return "server"
    try:
        cmd = " ".join(p.cmdline())
    except psutil.Error:
        return "?"
    if p.ppid() != server_pid:
        return "worker"  # forked by the forkserver
    if "forkserver" in cmd:
        return "forkserver"
    if "resource_tracker" in cmd:
        return "resource_tracker"
    return "child"


def breakdown(proc: psutil.Process) -> list[dict[str, Any]]:
    """RSS/USS/PSS (MiB) of every process of the tree."""
    rows = []
    for p in _tree(proc):
        try:
            mem = p.memory_full_info()
            rows.append({"pid": p.pid, "role": _role(p, proc.pid), "rss": mem.rss / MiB,
                         "uss": mem.uss / MiB, "pss": mem.pss / MiB})
        except psutil.Error:
            continue
    return rows


def tree_rss(proc: psutil.Process) -> float:
    total = 0
    for p in _tree(proc):
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total / MiB


def _fmt(rows: list[dict[str, Any]]) -> str:
    lines = [f"    {r['role']:<17} pid {r['pid']:>7}  RSS {r['rss']:6.0f}  USS {r['uss']:6.0f}  "
             f"PSS {r['pss']:6.0f} MiB" for r in rows]
    lines.append(f"    {'total':<29} RSS {sum(r['rss'] for r in rows):6.0f}  "
                 f"USS {sum(r['uss'] for r in rows):6.0f}  PSS {sum(r['pss'] for r in rows):6.0f} MiB")
    return "\n".join(lines)


def _start(tmp: str, extra_env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str, float,
                                                        float]:
    """Start `mentatctl serve` on ``tmp``/data; wait for /readyz.

    Returns:
        The process, its URL, wall seconds from ``Popen`` to ready, and the server's CPU
        seconds (user + system) at that moment.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, **extra_env}
    with open(Path(tmp) / "server.log", "ab") as log:
        started = time.monotonic()
        popen = subprocess.Popen(
            [sys.executable, "-m", "mentatlab.cli.main", "serve", "--host", "127.0.0.1",
             "--port", str(port), "--grpc-port", "0", "--data-dir", str(Path(tmp) / "data")],
            env=env, stdout=subprocess.DEVNULL, stderr=log)
    with httpx.Client(timeout=1) as client:
        while time.monotonic() - started < 60:
            try:
                if client.get(f"{url}/readyz").status_code == 200:
                    ready_s = time.monotonic() - started
                    times = psutil.Process(popen.pid).cpu_times()
                    return popen, url, ready_s, times.user + times.system
            except httpx.HTTPError:
                pass
            if popen.poll() is not None:
                raise RuntimeError(f"server exited; see {tmp}/server.log")
            time.sleep(0.02)
    popen.kill()
    raise RuntimeError("server not ready in 60 s")


def _stop(popen: subprocess.Popen[bytes]) -> None:
    popen.send_signal(signal.SIGTERM)
    try:
        popen.wait(30)
    except subprocess.TimeoutExpired:
        popen.kill()


def one_run(args: argparse.Namespace, extra_env: dict[str, str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        popen, url, ready_s, ready_cpu_s = _start(tmp, extra_env)  # a new, empty store
        try:
            proc = psutil.Process(popen.pid)
            time.sleep(8)
            idle = breakdown(proc)
            peak = [0.0]
            stop = threading.Event()

            def sample() -> None:
                while not stop.is_set():
                    peak[0] = max(peak[0], tree_rss(proc))
                    stop.wait(0.25)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            load = run_load(url, 500, args.clients, args.seconds,
                            max_requests=args.max_requests, unique=True, content=args.content)
            load_rows = breakdown(proc)  # at the end of the burst
            stop.set()
            sampler.join()
            peak[0] = max(peak[0], sum(r["rss"] for r in load_rows))
            time.sleep(5)
            after = breakdown(proc)
        finally:
            _stop(popen)
        popen, url, restart_s, restart_cpu_s = _start(tmp, extra_env)  # the store exists
        try:
            time.sleep(8)
            restart_idle = breakdown(psutil.Process(popen.pid))
        finally:
            _stop(popen)
        return {"ready_s": ready_s, "ready_cpu_s": ready_cpu_s, "restart_s": restart_s,
                "restart_cpu_s": restart_cpu_s, "restart_idle": restart_idle, "idle": idle, "end_of_load": load_rows,
                "peak_rss": peak[0], "after": after, "load": load}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--max-requests", type=int, default=400,
                        help="per client (batch 500 each)")
    parser.add_argument("--content", action="store_true",
                        help="spans carry chat messages (the redact stage scans them)")
    parser.add_argument("--env", action="append", default=[],
                        help="KEY=VALUE for the server (default: none, default settings)")
    args = parser.parse_args()
    extra_env = dict(kv.split("=", 1) for kv in args.env)
    print(f"load average before: {os.getloadavg()}  env: {extra_env or 'defaults'}", flush=True)
    runs = []
    for n in range(args.runs):
        r = one_run(args, extra_env)
        runs.append(r)
        load = r["load"]
        print(f"run {n + 1}: ready in {r['ready_s']:.2f} s ({r['ready_cpu_s']:.2f} CPU-s; "
              f"restart on the filled store {r['restart_s']:.2f} s, "
              f"{r['restart_cpu_s']:.2f} CPU-s); idle tree RSS "
              f"{sum(x['rss'] for x in r['idle']):.0f} MiB; load {load['spans_per_s']:.0f} "
              f"spans/s acked ({load['acked_spans']} spans, {load['errors']} errors), peak tree "
              f"RSS {r['peak_rss']:.0f} MiB; 5 s after {sum(x['rss'] for x in r['after']):.0f} "
              f"MiB; idle after the restart {sum(x['rss'] for x in r['restart_idle']):.0f} MiB",
              flush=True)
        print("  idle (8 s after ready):\n" + _fmt(r["idle"]))
        print("  end of burst:\n" + _fmt(r["end_of_load"]))
    print(f"median: ready {statistics.median(r['ready_s'] for r in runs):.2f} s "
          f"({statistics.median(r['ready_cpu_s'] for r in runs):.2f} CPU-s), restart "
          f"{statistics.median(r['restart_s'] for r in runs):.2f} s "
          f"({statistics.median(r['restart_cpu_s'] for r in runs):.2f} CPU-s), idle RSS "
          f"{statistics.median(sum(x['rss'] for x in r['idle']) for r in runs):.0f} MiB, "
          f"peak under load {statistics.median(r['peak_rss'] for r in runs):.0f} MiB")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
