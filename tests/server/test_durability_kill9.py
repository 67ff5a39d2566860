"""A 200 means the spans survive ``kill -9``: start ``mentatctl serve``, load it, kill, check."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import httpx
import psutil
from server_payloads import encode, export_request, llm_span, new_trace_id

from serve_process import start_serve, wait_ready

SPANS_PER_BATCH = 50


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(data_dir: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    proc = start_serve(data_dir, port, log=log, env={"MENTATLAB_LOG_LEVEL": "WARNING"})
    wait_ready(proc, f"http://127.0.0.1:{port}", log)
    return proc


def test_acknowledged_spans_survive_kill_9(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    log = tmp_path / "server.log"
    proc = start_server(data_dir, port, log)
    acked: list[str] = []
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(timeout=10) as http:
            while not stop.is_set():
                trace = new_trace_id()
                spans = [llm_span(trace) for _ in range(SPANS_PER_BATCH)]
                body, headers = encode(export_request(spans))
                try:
                    response = http.post(f"http://127.0.0.1:{port}/v1/traces", content=body,
                                         headers=headers)
                except httpx.HTTPError:
                    return  # the server died mid-request: not acknowledged
                if response.status_code == 200:
                    acked.append(trace.hex())

    threads = [threading.Thread(target=client) for _ in range(2)]
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 20
        while len(acked) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        helpers = psutil.Process(proc.pid).children(recursive=True)  # forkserver + workers
        os.kill(proc.pid, signal.SIGKILL)  # mid-load: requests are in flight
        proc.wait(10)
        _, lingering = psutil.wait_procs(helpers, timeout=15)
        assert not lingering, f"worker processes outlived the killed server: {lingering}"
    finally:
        stop.set()
        for t in threads:
            t.join(15)
        if proc.poll() is None:
            proc.kill()
    assert len(acked) >= 20, f"only {len(acked)} batches acknowledged before the kill"

    proc = start_server(data_dir, port, log)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            missing = []
            for trace in acked:
                answer = http.get(f"/api/v1/traces/{trace}")
                if answer.status_code != 200 or answer.json()["num_spans"] != SPANS_PER_BATCH:
                    missing.append(trace)
            assert not missing, f"{len(missing)} of {len(acked)} acknowledged traces lost"
            overview = http.get("/api/v1/overview").json()
            assert overview["num_spans"] >= len(acked) * SPANS_PER_BATCH
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
