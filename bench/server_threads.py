"""Where the server process's CPU goes, per thread, during a full-speed OTLP/HTTP load.

Starts a real `mentatctl serve` (default settings unless ``--env``), sends one warm-up body
(the ingest workers start on it), then drives ``--clients`` client processes at batch
``--batch`` with fresh ids for ``--seconds`` s, and reads every thread's CPU time (user +
system, ``/proc/<pid>/task/<tid>/stat``) before and after. Python threads are named from
``py-spy dump`` (``MainThread`` is the event loop; ``mentatlab-span-writer`` frames and logs
group commits, ``mentatlab-span-inserter`` inserts behind the write-ahead log,
``mentatlab-resolver`` runs the attribution resolver; ``Thread-N`` is the process pool's
result thread); chDB's own threads keep their names (``ThreadPool``: queries and inserts,
``MergeMutate``: merges). The worker processes are reported as one line, from psutil.

Prints CPU µs per acknowledged span by thread name (threads of one name summed), and the
total for the server process and the whole tree. Several runs vary by ±15 % on a shared
2-core machine: compare settings with alternating runs (``--runs``).

Usage: cd bench && ../.venv/bin/python server_threads.py [--seconds 10] [--clients 4]
[--batch 500] [--runs 1] [--env KEY=VALUE ...]. Targets 127.0.0.1 only; bounded in time.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import psutil
from _load import run_load, warm_up
from _server import Server

_PY_SPY_THREAD = re.compile(r'Thread (0x[0-9A-Fa-f]+|\d+) \(\w+\): "([^"]+)"')


def _thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """Thread id → (kernel thread name, CPU seconds) of every thread of ``pid``."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[int, tuple[str, float]] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:  # the thread ended
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        out[int(tid)] = (name, (int(fields[11]) + int(fields[12])) / tick)
    return out


def _python_thread_names(pid: int) -> dict[int, str]:
    """Native thread id → Python thread name, from ``py-spy dump`` ({} without py-spy)."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        return {}
    dump = subprocess.run([py_spy, "dump", "--pid", str(pid)], capture_output=True,
                          text=True, timeout=60, check=False).stdout
    return {int(m.group(1), 0): m.group(2) for m in _PY_SPY_THREAD.finditer(dump)}


def _workers_cpu(proc: psutil.Process) -> float:
    total = 0.0
    for child in proc.children(recursive=True):
        try:
            times = child.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def one_run(args: argparse.Namespace, env: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        with Server(data, env) as srv:
            proc = psutil.Process(srv.pid)
            warm_up(srv.url)  # the workers start on the first body
            time.sleep(2)
            before, workers_before = _thread_cpu(srv.pid), _workers_cpu(proc)
            row = run_load(srv.url, args.batch, args.clients, args.seconds, unique=True)
            after, workers_after = _thread_cpu(srv.pid), _workers_cpu(proc)
            names = _python_thread_names(srv.pid)
    spans = max(int(row["acked_spans"]), 1)
    by_name: Counter[str] = Counter()
    for tid, (kernel_name, cpu_s) in after.items():
        used = cpu_s - before.get(tid, (kernel_name, 0.0))[1]
        by_name[names.get(tid, kernel_name)] += used
    server_s = sum(by_name.values())
    workers_s = workers_after - workers_before
    print(f"\n{row['spans_per_s']:,.0f} spans/s acknowledged, {row['errors']} errors, "
          f"load average {os.getloadavg()[0]:.1f}")
    print("| thread | CPU s | CPU µs/span |\n|---|---:|---:|")
    for name, cpu_s in by_name.most_common():
        if cpu_s >= 0.01:
            print(f"| {name} | {cpu_s:.2f} | {1e6 * cpu_s / spans:.1f} |")
    print(f"| **server process** | {server_s:.2f} | {1e6 * server_s / spans:.1f} |")
    print(f"| ingest workers (all) | {workers_s:.2f} | {1e6 * workers_s / spans:.1f} |")
    print(f"| **tree** | {server_s + workers_s:.2f} | "
          f"{1e6 * (server_s + workers_s) / spans:.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--env", nargs="*", default=[], metavar="KEY=VALUE",
                    help="extra server environment, e.g. MENTATLAB_RESOLVE_INTERVAL_S=0")
    args = ap.parse_args()
    env = dict(kv.split("=", 1) for kv in args.env)
    print(f"load average before: {os.getloadavg()}, env: {env or 'defaults'}")
    for _ in range(args.runs):
        one_run(args, env)


if __name__ == "__main__":
    main()
