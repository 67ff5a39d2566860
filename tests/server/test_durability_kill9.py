"""A 200 means the spans survive ``kill -9``: start ``mentatctl serve``, load it, kill, check.

With and without the write-ahead log (decision 0022); with it, also a kill while the log
is being replayed at start, after which every acknowledged span is stored exactly once."""

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
import pytest
from server_payloads import encode, export_request, llm_span, new_trace_id

from mentatlab.storage.chdb_store import ChdbSpanStore
from serve_process import start_serve, wait_ready

SPANS_PER_BATCH = 50


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


WAL_ENV = {"MENTATLAB_WAL": "1", "MENTATLAB_WAL_INSERT_INTERVAL_S": "1.5"}
"""The log on, inserts held back as long as allowed, so a kill leaves spans only logged."""
NO_WAL_ENV = {"MENTATLAB_WAL": "0"}
"""The log off (it is on by default): every request waits for its insert."""


def start_server(data_dir: Path, port: int, log: Path,
                 env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    proc = start_serve(data_dir, port, log=log,
                       env={"MENTATLAB_LOG_LEVEL": "WARNING", **(env or {})})
    wait_ready(proc, f"http://127.0.0.1:{port}", log)
    return proc


def load_and_kill(proc: subprocess.Popen[bytes], port: int) -> list[str]:
    """Two clients post 50-span traces until >= 20 are acknowledged, then SIGKILL the server
    mid-load; the acknowledged trace ids."""
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
    return acked


@pytest.mark.parametrize("wal", [False, True], ids=["insert-then-ack", "wal"])
def test_acknowledged_spans_survive_kill_9(tmp_path: Path, wal: bool) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    log = tmp_path / "server.log"
    env = WAL_ENV if wal else NO_WAL_ENV
    acked = load_and_kill(start_server(data_dir, port, log, env), port)
    if wal:  # the kill left acknowledged spans that only the log holds
        assert list((data_dir / "spans" / "_wal").glob("wal-*.log"))

    proc = start_server(data_dir, port, log, env)
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


def test_a_kill_during_replay_stores_every_acknowledged_span_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    wal_dir = data_dir / "spans" / "_wal"
    port = free_port()
    log = tmp_path / "server.log"
    acked = load_and_kill(start_server(data_dir, port, log, WAL_ENV), port)
    assert list(wal_dir.glob("wal-*.log"))

    # Restart, and kill again as soon as the replay has begun (inserts of 1 MiB each).
    replay_env = {**WAL_ENV, "MENTATLAB_WAL_INSERT_BYTES": str(1024 * 1024)}
    offset = log.stat().st_size
    proc = start_serve(data_dir, port, log=log,
                       env={"MENTATLAB_LOG_LEVEL": "WARNING", **replay_env})
    try:
        deadline = time.monotonic() + 90
        while b"replaying the write-ahead log" not in log.read_bytes()[offset:]:
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the replay never started"
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert list(wal_dir.glob("wal-*.log")), "the replay had finished before the kill"

    proc = start_server(data_dir, port, log, replay_env)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            for trace in acked[:5]:
                assert http.get(f"/api/v1/traces/{trace}").json()["num_spans"] == \
                    SPANS_PER_BATCH
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert not list(wal_dir.glob("wal-*.log")), "a clean stop leaves an empty log"

    with ChdbSpanStore(data_dir / "spans") as store:
        repeated = store.query_arrow(
            "SELECT trace_id, span_id, ingested_at_ns, count() AS n FROM spans"
            " GROUP BY trace_id, span_id, ingested_at_ns HAVING n > 1")
        assert repeated.num_rows == 0, f"spans stored twice: {repeated.to_pylist()[:5]}"
        per_trace = store.query_arrow(
            "SELECT trace_id, uniqExact(span_id) AS n FROM spans GROUP BY trace_id")
    counts = dict(zip(per_trace.column("trace_id").to_pylist(),
                      per_trace.column("n").to_pylist(), strict=True))
    lost = [t for t in acked if counts.get(t) != SPANS_PER_BATCH]
    assert not lost, f"{len(lost)} of {len(acked)} acknowledged traces incomplete"
