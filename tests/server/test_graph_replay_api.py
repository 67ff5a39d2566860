"""``GET /api/v1/analytics/graph`` and ``/traces/{id}/replay`` over real OTLP ingest and HTTP.

Acme sends one trace (ms after its start S)::

    root   agent planner (mentat.agent_id, operation agent)   0 .. 400   checkpoint at 50
      step   a plain span (inherits planner)                 10 .. 300
        sub    agent writer                                  20 .. 200   checkpoint at 100
          t      tool search, failed                         30 .. 80
      t2     tool search                                    300 .. 350

Globex sends the same shape with agent "other". The resolver gives the step and tools
their agent; a read key of acme sees only acme's graph and replays only acme's traces.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opentelemetry.proto.trace.v1.trace_pb2 import Span
from server_payloads import encode, export_request, kvs, new_span_id, new_trace_id
from serverkit import InProcess, make_settings, open_in_process
from test_api import assert_error_shape

GRAPH = "/api/v1/analytics/graph"
MS = 1_000_000


def _span(trace: bytes, parent: bytes, name: str, start_ns: int, begin_ms: int, end_ms: int,
          attrs: dict[str, Any], *, error: bool = False,
          checkpoint: tuple[int, dict[str, Any], bool] | None = None) -> Span:
    span = Span(trace_id=trace, span_id=new_span_id(), parent_span_id=parent, name=name,
                kind=Span.SPAN_KIND_INTERNAL, start_time_unix_nano=start_ns + begin_ms * MS,
                end_time_unix_nano=start_ns + end_ms * MS, attributes=kvs(attrs))
    if error:
        span.status.code = 2
    if checkpoint is not None:
        at_ms, patch, replace = checkpoint
        span.events.add(time_unix_nano=start_ns + at_ms * MS, name="mentat.checkpoint",
                        attributes=kvs({"mentat.checkpoint.patch": json.dumps(patch),
                                        "mentat.checkpoint.replace": replace,
                                        "mentat.checkpoint.seq": 1}))
    return span


async def _send(env: InProcess, key: str, agent: str, start_ns: int) -> str:
    trace = new_trace_id()
    root = _span(trace, b"", "run", start_ns, 0, 400,
                 {"mentat.agent_id": agent, "mentat.operation": "agent"},
                 checkpoint=(50, {"step": "plan"}, True))
    step = _span(trace, root.span_id, "step", start_ns, 10, 300, {})
    sub = _span(trace, step.span_id, "write", start_ns, 20, 200,
                {"mentat.agent_id": "writer", "mentat.operation": "agent"},
                checkpoint=(100, {"draft": "v1"}, False))
    tool = _span(trace, sub.span_id, "search", start_ns, 30, 80,
                 {"mentat.tool_name": "search", "mentat.operation": "tool"}, error=True)
    tool2 = _span(trace, root.span_id, "search", start_ns, 300, 350,
                  {"mentat.tool_name": "search", "mentat.operation": "tool"})
    body, headers = encode(export_request([root, step, sub, tool, tool2], project_id="web"))
    response = await env.client.post("/v1/traces", content=body,
                                     headers={**headers, "x-api-key": key})
    assert response.status_code == 200, response.text
    return trace.hex()


async def test_graph_and_replay_scoped_to_the_caller(_isolated_data_dir: Path) -> None:
    settings = make_settings(_isolated_data_dir, auth_required=True)
    async with open_in_process(settings) as env:
        control = env.state.control
        keys: dict[str, dict[str, str]] = {}
        for org in ("acme", "globex"):
            control.create_org(org.title(), org)
            keys[org] = {role: control.create_api_key(org, None, f"{org}-{role}",
                                                      role=role).key
                         for role in ("ingest", "read")}
        start_ns = (time.time_ns() // MS - 60_000) * MS  # a minute ago, whole ms
        trace = await _send(env, keys["acme"]["ingest"], "planner", start_ns)
        other = await _send(env, keys["globex"]["ingest"], "other", start_ns)
        read = {"x-api-key": keys["acme"]["read"]}

        response = await env.client.get(GRAPH, headers=read)
        assert response.status_code == 200, response.text
        body = response.json()
        assert [(n["id"], n["calls"], n["errors"]) for n in body["nodes"]] == [
            ("tool:search", 2, 1), ("agent:planner", 1, 0), ("agent:writer", 1, 0)]
        assert [(lk["source"], lk["target"], lk["count"], lk["error_rate"], lk["p50_ms"])
                for lk in body["links"]] == [
            ("agent:planner", "agent:writer", 1, 0.0, 180.0),  # through the plain step
            ("agent:planner", "tool:search", 1, 0.0, 50.0),
            ("agent:writer", "tool:search", 1, 1.0, 50.0)]
        assert (body["num_nodes"], body["num_links"]) == (3, 3)

        at = start_ns + 60 * MS
        replay = await env.client.get(f"/api/v1/traces/{trace}/replay",
                                      params={"at": str(at)}, headers=read)
        assert replay.status_code == 200, replay.text
        r = replay.json()
        assert r["state"] == {"step": "plan"}
        assert dict(zip(r["spans"]["name"], r["spans"]["state"], strict=True)) == {
            "run": "running", "step": "running", "write": "running", "search": "running"}
        assert (r["previous_ns"], r["next_ns"]) == (start_ns + 50 * MS, start_ns + 80 * MS)
        iso = datetime.fromtimestamp((start_ns + 100 * MS) / 1e9, UTC).isoformat()
        later = (await env.client.get(f"/api/v1/traces/{trace}/replay",
                                      params={"at": iso}, headers=read)).json()
        assert later["state"] == {"step": "plan", "draft": "v1"}
        assert later["at_ns"] == start_ns + 100 * MS and later["num_not_started"] == 1
        whole = (await env.client.get(f"/api/v1/traces/{trace}/replay", headers=read)).json()
        assert (whole["at_ns"], whole["num_finished"], whole["next_ns"]) == (
            start_ns + 400 * MS, 5, None)

        assert_error_shape(await env.client.get(f"/api/v1/traces/{other}/replay",
                                                headers=read), 404)
        for url, params, status, field in [
            (GRAPH, {"filter": "org=globex"}, 403, None),
            (GRAPH, {"limit": "0"}, 422, "limit"),
            (GRAPH, {"filter": "nope=1"}, 400, "filter.nope"),
            (GRAPH, {"start": "2026-01-02", "end": "2026-01-01"}, 400, "start"),
            (f"/api/v1/traces/{trace}/replay", {"at": "yesterday"}, 400, "at"),
            (f"/api/v1/traces/{trace}/replay", {"at": "9" * 20}, 400, "at"),
            (f"/api/v1/traces/{trace}/replay", {"at": "3000-01-01T00:00:00"}, 400, "at"),
            ("/api/v1/traces/xyz/replay", {}, 400, "trace_id"),
        ]:
            err = assert_error_shape(await env.client.get(url, params=params, headers=read),
                                     status)
            if field is not None:
                assert [e["field"] for e in err["errors"]] == [field], (url, params, err)
        unhandled = env.state.metrics.unhandled_errors.collect()[0].samples
        assert not [s for s in unhandled if s.value], unhandled
        assert_error_shape(await env.client.get(GRAPH), 401)
        ingest = {"x-api-key": keys["acme"]["ingest"]}
        assert_error_shape(await env.client.get(GRAPH, headers=ingest), 403)
        assert_error_shape(await env.client.get(f"/api/v1/traces/{trace}/replay",
                                                headers=ingest), 403)
