"""``mentatctl analytics bottlenecks`` against a real server (uvicorn thread).

One trace: a root ``agent run`` of 1000 ms with a ``tool search`` child [100, 400] ms
and a ``chat`` child [400, 900] ms. Critical path by hand: chat 500, search 300, the
root the rest (100 + 100 = 200); total 1000 ms, shares 50 %, 30 %, 20 % (critical, high,
medium). The server settles it after ``trace_quiet_s`` = 0.1 s.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from typer.testing import CliRunner

from mentatlab.cli._client import console
from mentatlab.cli.main import app
from mentatlab.server.app import create_app
from mentatlab.settings import load_settings

runner = CliRunner()


@pytest.fixture
def server_url(_isolated_data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setattr(console, "width", 160)
    application = create_app(load_settings(data_dir=_isolated_data_dir, grpc_port=0,
                                           trace_quiet_s=0.1))
    server = uvicorn.Server(uvicorn.Config(application, host="127.0.0.1", port=0,
                                           log_level="warning", ws="websockets-sansio"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def _span(trace: bytes, span_id: bytes, parent: bytes, name: str, start: int, lo_ms: int,
          hi_ms: int, **attrs: str) -> Span:
    return Span(trace_id=trace, span_id=span_id, parent_span_id=parent, name=name,
                start_time_unix_nano=start + lo_ms * 10**6,
                end_time_unix_nano=start + hi_ms * 10**6,
                attributes=[KeyValue(key=k, value=AnyValue(string_value=v))
                            for k, v in attrs.items()])


def send_trace(url: str) -> None:
    trace, root = os.urandom(16), os.urandom(8)
    start = time.time_ns() - 60 * 10**9
    spans = [_span(trace, root, b"", "agent run", start, 0, 1000),
             _span(trace, os.urandom(8), root, "tool search", start, 100, 400,
                   **{"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"}),
             _span(trace, os.urandom(8), root, "chat", start, 400, 900,
                   **{"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
                      "gen_ai.provider.name": "openai"})]
    request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(
        resource={"attributes": [KeyValue(key="mentat.project_id",
                                          value=AnyValue(string_value="acme"))]},
        scope_spans=[ScopeSpans(spans=spans)])])
    response = httpx.post(f"{url}/v1/traces", content=request.SerializeToString(),
                          headers={"content-type": "application/x-protobuf"}, timeout=60)
    assert response.status_code == 200, response.text


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args))


def test_table_and_json(server_url: str) -> None:
    send_trace(server_url)
    for _ in range(200):
        result = invoke("analytics", "bottlenecks", "--range", "1h", "--json",
                        "--url", server_url)
        assert result.exit_code == 0, result.output
        body = orjson.loads(result.output)
        if body["num_traces"] == 1:
            break
        time.sleep(0.05)
    assert [(r["key"], r["critical_path_ms"], r["share_pct"], r["severity"])
            for r in body["rows"]] == [("chat", 500.0, 50.0, "critical"),
                                       ("tool search", 300.0, 30.0, "high"),
                                       ("agent run", 200.0, 20.0, "medium")]
    table = invoke("analytics", "bottlenecks", "--range", "1h", "--url", server_url)
    assert table.exit_code == 0, table.output
    cells = [[c.strip() for c in line.split("│")[1:-1]]
             for line in table.output.splitlines() if line.count("│") > 3]
    lines = {row[0]: row[1:] for row in cells}
    assert lines["chat"][:5] == ["500", "50.0%", "1.0", "1/1", "new"]
    assert lines["tool search"][-1] == "high"
    tools = invoke("analytics", "bottlenecks", "--range", "1h", "--group-by", "tool",
                   "--url", server_url)
    assert "search" in tools.output and "chat" not in tools.output
    bad = invoke("analytics", "bottlenecks", "--range", "soon", "--url", server_url)
    assert bad.exit_code != 0
