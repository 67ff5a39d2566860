"""A real `mentatctl serve` subprocess for tests: start on free ports, wait ready, stop."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_serve(data_dir: Path, port: int, *, grpc_port: int = 0, log: Path,
                env: dict[str, str] | None = None,
                args: list[str] | None = None) -> subprocess.Popen[bytes]:
    """Start `mentatctl serve` on 127.0.0.1 (output appended to ``log``, extra CLI ``args``);
    does not wait."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "mentatlab.cli.main", "serve", "--host", "127.0.0.1",
             "--port", str(port), "--grpc-port", str(grpc_port), "--data-dir", str(data_dir),
             *(args or [])],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})


def wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path, timeout_s: float = 90, *,
               verify: ssl.SSLContext | bool = True) -> None:
    """Poll ``url``/readyz until 200 (``verify``: httpx's, for an https ``url``); fail with the
    log's tail if the server exits or stalls."""
    deadline = time.monotonic() + timeout_s
    while True:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            if httpx.get(f"{url}/readyz", timeout=2, verify=verify).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, (f"server not ready in {timeout_s} s:\n"
                                             + log.read_text()[-3000:])
        time.sleep(0.2)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 20 s."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
