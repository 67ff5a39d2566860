from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from mentatlab.demo.fake_openai import FakeOpenAIServer


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class RunningServer:
    url: str
    grpc_target: str
    data_dir: Path
    pid: int


@pytest.fixture(scope="module")
def mentat_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A real `mentatctl serve` process on free ports and a temporary data folder."""
    data_dir = tmp_path_factory.mktemp("e2e-data")
    http_port, grpc_port = free_port(), free_port()
    log_path = data_dir / "server.log"
    env = {**os.environ, "MENTATLAB_DATA_DIR": str(data_dir)}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mentatlab.cli.main", "serve", "--host", "127.0.0.1",
             "--port", str(http_port), "--grpc-port", str(grpc_port),
             "--data-dir", str(data_dir)], stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{http_port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, log_path.read_text()[-3000:]
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "server not ready in 90 s"
            time.sleep(0.2)
        yield RunningServer(url, f"127.0.0.1:{grpc_port}", data_dir, proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def fake_openai() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server
