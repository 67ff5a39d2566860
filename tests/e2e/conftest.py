from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mentatlab.demo.fake_openai import FakeOpenAIServer
from serve_process import free_port, start_serve, stop, wait_ready


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
    env = {"MENTATLAB_DATA_DIR": str(data_dir)}
    proc = start_serve(data_dir, http_port, grpc_port=grpc_port, log=log_path, env=env)
    url = f"http://127.0.0.1:{http_port}"
    try:
        wait_ready(proc, url, log_path)
        yield RunningServer(url, f"127.0.0.1:{grpc_port}", data_dir, proc.pid)
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def fake_openai() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server
