"""Start-up time and idle RSS of `mentatctl serve` (ingest_workers=0), pii_mode off vs redact.

Usage: cd bench && ../.venv/bin/python pii_startup.py — two rounds, the modes alternated;
"ready" is process start to the first 200 from /readyz. Targets 127.0.0.1 only.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_and_measure(mode: str) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "mentatlab.cli.main", "serve", "--host", "127.0.0.1",
             "--port", str(port), "--grpc-port", "0", "--data-dir", str(Path(tmp) / "d")],
            env={**os.environ, "MENTATLAB_PII_MODE": mode, "MENTATLAB_INGEST_WORKERS": "0"},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = started + 120
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
            ready_s = time.monotonic() - started
            rss_mib = psutil.Process(proc.pid).memory_info().rss / 2**20
        finally:
            proc.terminate()
            proc.wait(30)
        return ready_s, rss_mib


def main() -> None:
    print(f"load average before: {os.getloadavg()}")
    for n in range(2):
        for mode in ("off", "redact"):
            ready_s, rss_mib = start_and_measure(mode)
            print(f"round {n + 1} {mode}: ready in {ready_s:.2f} s, RSS {rss_mib:.0f} MiB",
                  flush=True)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
