"""Start and stop a real `mentatctl serve` for benchmarks (free ports, temp data dir)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A `mentatctl serve` subprocess; use as a context manager.

    Its log goes to ``data_dir.parent / "server.log"``. ``grpc_port`` None picks a free
    port; 0 runs without the OTLP/gRPC receiver.
    """

    def __init__(self, data_dir: Path, extra_env: dict[str, str] | None = None,
                 *, grpc_port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.grpc_port = free_port() if grpc_port is None else grpc_port  # 0: no gRPC
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **(extra_env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        cmd = [
            sys.executable,
            "-m",
            "mentatlab.cli.main",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--grpc-port",
            str(self.grpc_port),
            "--data-dir",
            str(self.data_dir),
        ]
        self.proc = subprocess.Popen(
            cmd,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=open(self.data_dir.parent / "server.log", "wb"),
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError("server exited early; see server.log")
            time.sleep(0.2)
        raise RuntimeError("server did not become ready in 60 s")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __exit__(self, *exc: object) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def bootstrap_key(data: Path, role: str = "ingest") -> str:
    """The first API key of a new data folder (``mentatctl keys create --bootstrap``), org
    ``bench``; ``role`` is ``ingest``, ``read`` or ``admin``.

    Raises:
        subprocess.CalledProcessError: the command failed (the folder already has a key).
    """
    done = subprocess.run(
        [sys.executable, "-m", "mentatlab.cli.main", "keys", "create", "--bootstrap",
         "--data-dir", str(data), "--org", "bench", "--role", role, "--name", "bench"],
        capture_output=True, text=True, check=True, timeout=120)
    return done.stdout.strip()
