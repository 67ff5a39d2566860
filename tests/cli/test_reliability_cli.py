"""``mentatctl analytics reliability`` against a real server (uvicorn thread).

Three traces are sent: two agent runs that succeed (one calling ``search`` three times
with the same arguments: a loop), one whose root fails with a 429. By hand: 2 of 3
traces succeeded (66.7%), 5 of 6 spans (83.3%), one rate_limit failure (1 of 6 spans,
16.7%), one loop trace (33.3%).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from test_cost_report import _serve, invoke, wide_console  # noqa: F401 — fixtures

from mentatlab.cli.reliability import format_percent

SEARCH = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search",
          "gen_ai.tool.call.arguments": '{"q": "x"}'}


@pytest.fixture
def server_url(_isolated_data_dir: Path) -> Iterator[str]:
    yield from _serve(_isolated_data_dir)


def _span(trace: bytes, parent: bytes, name: str, attrs: dict[str, Any],
          error: bool = False) -> Span:
    now = time.time_ns()
    span = Span(trace_id=trace, span_id=os.urandom(8), parent_span_id=parent, name=name,
                start_time_unix_nano=now - 10**8, end_time_unix_nano=now,
                attributes=[KeyValue(key=k, value=AnyValue(
                    int_value=v) if isinstance(v, int) else AnyValue(string_value=v))
                    for k, v in attrs.items()])
    if error:
        span.status.code = 2
    return span


def _send(url: str, spans: list[Span]) -> None:
    request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(
        resource={"attributes": [KeyValue(key="mentat.project_id",
                                          value=AnyValue(string_value="acme"))]},
        scope_spans=[ScopeSpans(spans=spans)])])
    response = httpx.post(f"{url}/v1/traces", content=request.SerializeToString(),
                          headers={"content-type": "application/x-protobuf"}, timeout=60)
    assert response.status_code == 200, response.text


def _seed(url: str) -> str:
    agent = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner"}
    loop_trace = os.urandom(16)
    root = _span(loop_trace, b"", "run", agent)
    _send(url, [root, *(_span(loop_trace, root.span_id, "execute_tool search", SEARCH)
                        for _ in range(3))])
    _send(url, [_span(os.urandom(16), b"", "run", agent)])
    _send(url, [_span(os.urandom(16), b"", "run", {**agent, "http.response.status_code": 429},
                      error=True)])
    return loop_trace.hex()


def test_percent_format() -> None:
    assert (format_percent(2 / 3), format_percent(1.0), format_percent(None)) == (
        "66.7%", "100.0%", "–")


def test_reliability_tables_and_json(server_url: str) -> None:
    loop_trace = _seed(server_url)
    result = invoke("analytics", "reliability", "--range", "24h", "--url", server_url)
    assert result.exit_code == 0, result.output
    out = result.output
    summary = [line for line in out.splitlines() if "Traces succeeded" in line][0]
    assert "66.7%" in summary and "2 of 3" in summary
    spans = [line for line in out.splitlines() if "Spans succeeded" in line][0]
    assert "83.3%" in spans and "5 of 6" in spans
    errors = [line for line in out.splitlines() if "rate_limit" in line][0]
    assert "provider" in errors and "16.7%" in errors and "100.0%" in errors
    loops = [line for line in out.splitlines() if loop_trace in line][0]
    assert "search" in loops and loops.rstrip(" │").endswith("3")
    loop_rate = [line for line in out.splitlines() if "Loops (same tool" in line][0]
    assert "33.3%" in loop_rate and "1 traces" in loop_rate
    as_json = invoke("analytics", "reliability", "--range", "24h", "--url", server_url,
                     "--format", "json")
    body = json.loads(as_json.output)
    assert body["traces"]["num_ok"] == 2 and body["loop_detected"]["num_traces"] == 1
    bad = invoke("analytics", "reliability", "--url", server_url, "--filter", "nope=1")
    assert bad.exit_code != 0 and "filter.nope" in bad.output
