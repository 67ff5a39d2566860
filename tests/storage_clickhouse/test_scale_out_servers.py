"""Scale-out end to end: two stateless `mentatctl serve` nodes on one ClickHouse span store
(the chDB-backed HTTP endpoint) and one PostgreSQL control store."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from serve_process import free_port, start_serve, stop, wait_ready

pytestmark = pytest.mark.slow


def _serve(data_dir: Path, span_store: str, control_store: str,
           ) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {"MENTATLAB_DATA_DIR": str(data_dir),
           "MENTATLAB_SPAN_STORE": span_store, "MENTATLAB_CONTROL_STORE": control_store}
    proc = start_serve(data_dir, port, log=data_dir / "server.log", env=env)
    return proc, f"http://127.0.0.1:{port}"


@pytest.fixture
def two_nodes(clickhouse_server: dict[str, Any], postgres_url: str,
              tmp_path: Path) -> Iterator[tuple[str, str]]:
    span_store = (f"clickhouse://default@{clickhouse_server['host']}:{clickhouse_server['port']}"
                  f"/mentat_nodes_{uuid.uuid4().hex[:8]}?compress=false")
    nodes = [_serve(tmp_path / f"node{i}", span_store, postgres_url) for i in range(2)]
    try:
        for i, (proc, url) in enumerate(nodes):
            wait_ready(proc, url, tmp_path / f"node{i}" / "server.log")
        yield nodes[0][1], nodes[1][1]
    finally:
        for proc, _ in nodes:
            stop(proc)


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
