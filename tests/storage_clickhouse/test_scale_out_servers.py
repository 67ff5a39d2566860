"""Scale-out end to end: two stateless `mentatctl serve` nodes on one ClickHouse span store
(the chDB-backed HTTP endpoint) and one PostgreSQL control store."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(data_dir: Path, span_store: str, control_store: str,
           ) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MENTATLAB_DATA_DIR": str(data_dir),
           "MENTATLAB_SPAN_STORE": span_store, "MENTATLAB_CONTROL_STORE": control_store}
    with (data_dir / "server.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mentatlab.cli.main", "serve", "--host", "127.0.0.1",
             "--port", str(port), "--grpc-port", "0", "--data-dir", str(data_dir)],
            stdout=log, stderr=subprocess.STDOUT, env=env)
    return proc, f"http://127.0.0.1:{port}"


def _wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 90
    while True:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "server not ready in 90 s:\n" + log.read_text()[-3000:]
        time.sleep(0.2)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def two_nodes(clickhouse_server: dict[str, Any], postgres_url: str,
              tmp_path: Path) -> Iterator[tuple[str, str]]:
    span_store = (f"clickhouse://default@{clickhouse_server['host']}:{clickhouse_server['port']}"
                  f"/mentat_nodes_{uuid.uuid4().hex[:8]}?compress=false")
    nodes = [_serve(tmp_path / f"node{i}", span_store, postgres_url) for i in range(2)]
    try:
        for i, (proc, url) in enumerate(nodes):
            _wait_ready(proc, url, tmp_path / f"node{i}" / "server.log")
        yield nodes[0][1], nodes[1][1]
    finally:
        for proc, _ in nodes:
            _stop(proc)


def _attr(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    return {"key": key, "value": {"stringValue": value}}


def _otlp_json(trace_id: str, spans: int) -> dict[str, Any]:
    now_ns = time.time_ns()
    return {"resourceSpans": [{
        "resource": {"attributes": [_attr("service.name", "scale-out-test")]},
        "scopeSpans": [{"scope": {"name": "test"}, "spans": [{
            "traceId": trace_id, "spanId": f"{i + 1:016x}", "name": "chat gpt-4o", "kind": 3,
            "startTimeUnixNano": str(now_ns - 2_000_000_000 + i),
            "endTimeUnixNano": str(now_ns - 1_000_000_000 + i),
            "attributes": [_attr("gen_ai.system", "openai"),
                           _attr("gen_ai.operation.name", "chat"),
                           _attr("gen_ai.request.model", "gpt-4o"),
                           _attr("gen_ai.usage.input_tokens", 1000),
                           _attr("gen_ai.usage.output_tokens", 100)],
        } for i in range(spans)]}]}]}


def test_nodes_share_spans_and_control_data(two_nodes: tuple[str, str]) -> None:
    ingest, read = two_nodes
    trace_id = uuid.uuid4().hex
    sent = httpx.post(f"{ingest}/v1/traces", json=_otlp_json(trace_id, 3), timeout=30)
    assert sent.status_code == 200, sent.text
    # A 2xx means committed to ClickHouse: the other node sees the spans at once.
    overview = httpx.get(f"{read}/api/v1/overview", timeout=30).json()
    assert overview["num_spans"] == 3
    assert overview["requests"] == 3
    assert float(overview["spend"]) > 0
    trace = httpx.get(f"{read}/api/v1/traces/{trace_id}", timeout=30)
    assert trace.status_code == 200, trace.text
    # Re-sent spans (the client retried) still count once.
    again = httpx.post(f"{read}/v1/traces", json=_otlp_json(trace_id, 3), timeout=30)
    assert again.status_code == 200
    assert httpx.get(f"{ingest}/api/v1/overview", timeout=30).json()["num_spans"] == 3
    # The control store is shared: an org made on one node is seen (unique) on the other.
    name = f"acme-{uuid.uuid4().hex[:6]}"
    assert httpx.post(f"{ingest}/api/v1/orgs", json={"name": name}, timeout=30).status_code in (
        200, 201)
    duplicate = httpx.post(f"{read}/api/v1/orgs", json={"name": name}, timeout=30)
    assert duplicate.status_code == 422, duplicate.text
