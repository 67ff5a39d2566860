"""``mentatctl trace replay``: non-interactive stepping over a served trace.

Trace (ms after S): ``run`` 0..1000 checkpoints at 100 (replace ``{"step": "plan"}``);
``child`` 200..600 checkpoints at 300 (``{"step": "act", "n": 1}``). Instants: 0, 100,
200, 300, 600, 1000.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from test_cli import _kv, invoke, server_url  # noqa: F401 — server_url is a fixture

MS = 1_000_000


def _send(url: str) -> tuple[str, int]:
    trace, root_id = os.urandom(16), os.urandom(8)
    base = (time.time_ns() // MS) * MS - 10**10

    def span(span_id: bytes, parent: bytes, name: str, end_ms: int, begin_ms: int,
             at_ms: int, patch: dict[str, Any], replace: bool) -> Span:
        out = Span(trace_id=trace, span_id=span_id, parent_span_id=parent, name=name,
                   start_time_unix_nano=base + begin_ms * MS,
                   end_time_unix_nano=base + end_ms * MS)
        out.events.add(time_unix_nano=base + at_ms * MS, name="mentat.checkpoint",
                       attributes=[_kv("mentat.checkpoint.patch", json.dumps(patch)),
                                   _kv("mentat.checkpoint.seq", 1)])
        if replace:
            out.events[0].attributes.add(key="mentat.checkpoint.replace").value.bool_value = True
        return out

    spans = [span(root_id, b"", "run", 1000, 0, 100, {"step": "plan"}, True),
             span(os.urandom(8), root_id, "child", 600, 200, 300, {"step": "act", "n": 1},
                  False)]
    request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(
        resource={"attributes": [_kv("mentat.project_id", "acme")]},
        scope_spans=[ScopeSpans(spans=spans)])])
    response = httpx.post(f"{url}/v1/traces", content=request.SerializeToString(),
                          headers={"content-type": "application/x-protobuf"})
    assert response.status_code == 200, response.text
    return trace.hex(), base


def test_replay_steps_through_every_instant(server_url: str) -> None:  # noqa: F811
    trace, base = _send(server_url)
    result = invoke("trace", "replay", trace, "--url", server_url, "--no-interactive")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    steps = [(lines[i].split("ms")[0].strip(), lines[i + 1].strip())
             for i in range(0, len(lines), 2)]
    assert steps == [("+0.000", "state {}"), ("+100.000", 'state {"step":"plan"}'),
                     ("+200.000", 'state {"step":"plan"}'),
                     ("+300.000", 'state {"n":1,"step":"act"}'),
                     ("+600.000", 'state {"n":1,"step":"act"}'),
                     ("+1000.000", 'state {"n":1,"step":"act"}')]
    assert "start run" in lines[0] and "checkpoint" in lines[2]
    assert "end child (ok)" in lines[8] and "[1 running, 1 finished, 0 not started]" in lines[8]

    result = invoke("trace", "replay", trace, "--url", server_url, "--steps", "2")
    assert result.exit_code == 0, result.output
    assert result.output.count("state ") == 2
    assert f"--at {base + 200 * MS}" in result.output.replace("\n", "")

    result = invoke("trace", "replay", trace, "--url", server_url, "--json", "--steps", "1",
                    "--at", str(base + 300 * MS))
    assert result.exit_code == 0, result.output
    body = json.loads(result.output.splitlines()[0])
    assert (body["state"], body["num_running"]) == ({"step": "act", "n": 1}, 2)

    result = invoke("trace", "replay", trace, "--url", server_url, "--at", "soon")
    assert result.exit_code == 1 and "at" in result.output
