"""``GET /api/v1/analytics/bottlenecks`` over real OTLP ingest, the settle job and HTTP.

Acme sends 2 traces: a root ``agent run`` of 1000 ms and inside it one ``chat gpt-4o``
call of 600 ms starting 100 ms in. Walking back from the root's end: the call ends at
700 ms, the root owns [700, 1000] and [0, 100] = 400 ms, the call 600 ms. So over both
traces: chat 1200 ms (60 %: critical), agent run 800 ms (40 %: high), total 2000 ms.
Globex sends one 5000 ms trace, which acme's read key never sees. The server settles
traces after ``trace_quiet_s`` = 0.1 s.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from server_payloads import encode, export_request, llm_span, new_trace_id
from serverkit import InProcess, make_settings, open_in_process
from test_api import assert_error_shape

URL = "/api/v1/analytics/bottlenecks"


async def _send(env: InProcess, key: str, start_ns: int, root_ms: int,
                child_ms: int | None) -> None:
    trace = new_trace_id()
    root = llm_span(trace, name="agent run", input_tokens=None, output_tokens=None)
    root.start_time_unix_nano = start_ns
    root.end_time_unix_nano = start_ns + root_ms * 1_000_000
    spans = [root]
    if child_ms is not None:
        child = llm_span(trace, parent=root.span_id)
        child.start_time_unix_nano = start_ns + 100_000_000
        child.end_time_unix_nano = child.start_time_unix_nano + child_ms * 1_000_000
        spans.append(child)
    body, headers = encode(export_request(spans, project_id="web"))
    response = await env.client.post("/v1/traces", content=body,
                                     headers={**headers, "x-api-key": key})
    assert response.status_code == 200, response.text


async def _settled(env: InProcess, headers: dict[str, str], **params: Any) -> Any:
    """The answer once both acme traces are settled (the job runs every 0.05 s)."""
    for _ in range(200):
        response = await env.client.get(URL, params=params, headers=headers)
        assert response.status_code == 200, response.text
        if response.json()["num_traces"] == 2:
            return response.json()
        await asyncio.sleep(0.05)
    pytest.fail("traces never settled")


async def test_bottlenecks_ranked_scoped_and_bad_input_names_the_field(
        _isolated_data_dir: Path) -> None:
    settings = make_settings(_isolated_data_dir, auth_required=True, trace_quiet_s=0.1)
    async with open_in_process(settings) as env:
        control = env.state.control
        keys: dict[str, dict[str, str]] = {}
        for org in ("acme", "globex"):
            control.create_org(org.title(), org)
            keys[org] = {role: control.create_api_key(org, None, f"{org}-{role}",
                                                      role=role).key
                         for role in ("ingest", "read")}
        now = time.time_ns()
        for start in (now - 60 * 10**9, now - 30 * 10**9):
            await _send(env, keys["acme"]["ingest"], start, 1000, 600)
        await _send(env, keys["globex"]["ingest"], now - 20 * 10**9, 5000, None)
        read = {"x-api-key": keys["acme"]["read"]}

        body = await _settled(env, read, group_by="name")
        assert (body["group_by"], body["total_critical_path_ms"], body["num_groups"]) == (
            "name", 2000.0, 2)
        rows = [(r["key"], r["critical_path_ms"], r["occurrences"], r["on_path"],
                 r["share_pct"], r["trend_pct"], r["severity"]) for r in body["rows"]]
        assert rows == [("chat gpt-4o", 1200.0, 2, 2, 60.0, None, "critical"),
                        ("agent run", 800.0, 2, 2, 40.0, None, "high")]
        assert body["rows"][0]["occurrences_per_hour"] == pytest.approx(2 / 24)
        assert body["quiet_period_s"] == 0.1 and body["severity_share_pct"]["critical"] == 50

        models = (await env.client.get(URL, params={"group_by": "model", "limit": 1},
                                       headers=read)).json()
        assert [(r["key"], r["critical_path_ms"]) for r in models["rows"]] == [
            ("gpt-4o", 2000.0)]  # both spans carry the model

        # naming another org is refused; a bad group_by, filter field or limit is a 4xx
        other = await env.client.get(URL, params={"filter": "org=globex"}, headers=read)
        assert other.status_code == 403
        for params, status, field in (
                ({"group_by": "colour"}, 422, "group_by"),
                ({"filter": "session_id=s1"}, 400, "filter.session_id"),
                ({"filter": "nonsense"}, 400, "filter"),
                ({"limit": 0}, 422, "limit"),
                ({"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}, 400,
                 "start"),
                ({"start": "1901-01-01T00:00:00Z", "end": "2200-01-01T00:00:00Z"}, 400,
                 "start"),
                ({"end": "not a time"}, 422, "end")):
            response = await env.client.get(URL, params=params, headers=read)
            body = assert_error_shape(response, status)
            assert field in [e["field"] for e in body["errors"]], (params, response.text)
        ingest_only = await env.client.get(URL, headers={"x-api-key": keys["acme"]["ingest"]})
        assert ingest_only.status_code == 403
