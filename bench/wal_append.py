"""What a group commit costs on the request path: a write-ahead log append vs a chDB insert.

CPU time of the process, all threads (``process_time``) and wall time per batch of N spans, in-process, on a temporary
folder: ``WriteAheadLog.append`` (Arrow IPC + CRC-32 + write, optionally fsync) against
``ChdbSpanStore.append_batch`` (decision 0003's ArrowStream file insert), and the replay
rate of the log into an empty store. Bounded (a few hundred batches); local disk only.

Usage: PYTHONPATH=src .venv/bin/python bench/wal_append.py [--spans 500] [--batches 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "storage"))

from spanfactory import make_table  # noqa: E402

from mentatlab.model.schema import SPAN_SCHEMA  # noqa: E402
from mentatlab.storage.chdb_store import ChdbSpanStore  # noqa: E402
from mentatlab.storage.wal import WriteAheadLog, replay_into  # noqa: E402


def _timed(fn: object, calls: list[object]) -> tuple[list[float], list[float]]:
    cpu, wall = [], []
    for arg in calls:
        c0, w0 = time.process_time(), time.perf_counter()
        fn(*arg)  # type: ignore[operator]
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return cpu, wall


def _row(name: str, spans: int, cpu: list[float], wall: list[float]) -> str:
    cpu_us = 1e6 * statistics.median(cpu) / spans
    p99 = sorted(wall)[int(0.99 * (len(wall) - 1))]
    return (f"| {name} | {1000 * statistics.median(cpu):.2f} | {cpu_us:.1f} | "
            f"{1000 * statistics.median(wall):.2f} | {1000 * p99:.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spans", type=int, default=500)
    ap.add_argument("--batches", type=int, default=200)
    args = ap.parse_args()
    n, count = args.spans, args.batches
    tables = [make_table(range(i * n, (i + 1) * n)) for i in range(count)]
    print(f"load average before: {os.getloadavg()}; {count} batches of {n} spans")
    print("\n| per batch | CPU ms (median) | CPU µs/span | wall ms (median) | wall ms (p99) |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        wal = WriteAheadLog(Path(tmp) / "wal")
        cpu, wall = _timed(wal.append, [(i + 1, t) for i, t in enumerate(tables)])
        print(_row("WAL append (write, no fsync)", n, cpu, wall))
        wal.close()
        synced = WriteAheadLog(Path(tmp) / "wal-fsync", fsync=True)
        cpu, wall = _timed(synced.append, [(i + 1, t) for i, t in enumerate(tables[:50])])
        print(_row("WAL append + fsync", n, cpu, wall))
        synced.close()
        with ChdbSpanStore(Path(tmp) / "spans") as store:
            store.migrate()
            cpu, wall = _timed(store.append_batch, [(t,) for t in tables[:40]])
            print(_row("chDB insert (ArrowStream file)", n, cpu, wall))
        with ChdbSpanStore(Path(tmp) / "replayed") as store:
            store.migrate()
            started = time.perf_counter()
            report = replay_into(store, WriteAheadLog(Path(tmp) / "wal"), SPAN_SCHEMA,
                                 insert_bytes=32 * 1024 * 1024)
            took = time.perf_counter() - started
        print(f"\nreplay: {report.spans_inserted:,} spans in {took:.2f} s "
              f"({report.spans_inserted / took:,.0f} spans/s)")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
