"""``GET /api/v1/analytics/reliability`` over real OTLP ingest (classify and the tool
arguments hash run in the pipeline) and HTTP, with a scoped key.

Acme sends three traces: T1 an agent run calling ``search`` three times with the same
arguments (a loop); T2 a run whose chat call fails with a 429 ``RateLimitError``; T3 a
run that fails itself with only an HTTP 503 to say why. Globex sends one failing trace.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from server_payloads import encode, export_request, llm_span, new_trace_id
from serverkit import InProcess, make_settings, open_in_process
from test_api import assert_error_shape

URL = "/api/v1/analytics/reliability"
AGENT = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner"}
SEARCH = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search",
          "gen_ai.tool.call.arguments": '{"q": "refund policy"}'}


async def _send(env: InProcess, key: str, spans: list[Any]) -> None:
    body, headers = encode(export_request(spans, project_id="web"))
    response = await env.client.post("/v1/traces", content=body,
                                     headers={**headers, "x-api-key": key})
    assert response.status_code == 200, response.text


def _run(children: list[dict[str, Any]], root_error: bool = False,
         root_attrs: dict[str, Any] | None = None) -> list[Any]:
    trace = new_trace_id()
    root = llm_span(trace, name="agent run", attrs={**AGENT, **(root_attrs or {})},
                    input_tokens=None, output_tokens=None, error=root_error)
    return [root, *(llm_span(trace, parent=root.span_id, name=c.pop("name", "chat"),
                             error=c.pop("error", False), attrs=c) for c in children)]


async def test_reliability_of_ingested_traces_for_a_scoped_key(_isolated_data_dir: Path) -> None:
    settings = make_settings(_isolated_data_dir, auth_required=True)
    async with open_in_process(settings) as env:
        control = env.state.control
        keys: dict[str, dict[str, str]] = {}
        for org in ("acme", "globex"):
            control.create_org(org.title(), org)
            keys[org] = {role: control.create_api_key(org, None, f"{org}-{role}",
                                                      role=role).key
                         for role in ("ingest", "read")}
        acme = keys["acme"]["ingest"]
        await _send(env, acme, _run([{**SEARCH, "name": "execute_tool search"}
                                     for _ in range(3)]))
        await _send(env, acme, _run([{"error.type": "RateLimitError",
                                      "http.response.status_code": 429, "error": True}]))
        await _send(env, acme, _run([], root_error=True,
                                    root_attrs={"http.response.status_code": 503}))
        await _send(env, keys["globex"]["ingest"], _run([{"error": True}], root_error=True))
        read = {"x-api-key": keys["acme"]["read"]}

        answer = await env.client.get(URL, headers=read)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        # spans: 4 + 2 + 1; failed: T2's chat call and T3's root (globex's are not acme's)
        assert body["spans"] == {"num_spans": 7, "num_failed": 2, "success_rate": 5 / 7}
        traces = body["traces"]
        assert (traces["num_traces"], traces["num_ok"], traces["num_error"]) == (3, 2, 1)
        assert traces["success_rate"] == 2 / 3
        assert [(e["error_class"], e["error_category"], e["num_failed"])
                for e in body["errors"]["by_category"]] == [
            ("provider", "rate_limit", 1), ("provider", "upstream_error", 1)]
        assert body["errors"]["by_class"] == [{"error_class": "provider", "num_failed": 2,
                                               "error_rate": 2 / 7, "share": 1.0}]
        loops = body["loop_detected"]
        assert (loops["min_calls"], loops["num_traces"], loops["rate"]) == (3, 1, 1 / 3)
        [loop] = loops["loops"]
        assert (loop["tool_name"], loop["num_calls"], len(loop["tool_args_hash"])) == (
            "search", 3, 16)
        assert body["retries"]["retry_rate"] == 0.0
        assert body["retries"]["retry_success_rate"] is None  # no retry to judge
        assert body["cycles"]["traces"] == [] and body["deadlock_suspects"]["num_traces"] == 0
        assert body["heatmap"]["bucket"] == "hour"  # the default 7-day range
        assert body["limits"]["loop_min_calls"] == 3

        spans = await env.client.get("/api/v1/traces", headers=read, params={
            "filter": "error_category=upstream_error"})
        assert spans.status_code == 200 and len(spans.json()["traces"]) == 1  # drill-down

        for params, status, field in [
            ({"bucket": "week"}, 422, "bucket"),
            ({"filter": "nope=1"}, 400, "filter.nope"),
            ({"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}, 400, "start"),
            ({"start": "yesterday"}, 422, "start"),
        ]:
            err = assert_error_shape(await env.client.get(URL, params=params, headers=read),
                                     status)
            assert [e["field"] for e in err["errors"]] == [field], (params, err)
        assert_error_shape(await env.client.get(URL, params={"filter": "org=globex"},
                                                headers=read), 403)
        assert_error_shape(await env.client.get(URL), 401)
        assert_error_shape(await env.client.get(URL, headers={"x-api-key": acme}), 403)
        unhandled = env.state.metrics.unhandled_errors.collect()[0].samples
        assert not [s for s in unhandled if s.value], unhandled
