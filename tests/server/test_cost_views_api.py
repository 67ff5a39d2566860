"""The cost view routes over real OTLP ingest and HTTP: numbers, tenancy and bad input.

Acme sends two traces of one gpt-4o call each (genai-prices 0.2.5: $2.5 input, $1.25
cache read, $10 output per million tokens): X = 10,000 input of which 4,000 cache reads,
1,000 output of which 200 reasoning (.015 + .005 + .008 + .002 = .03, saving 4,000 x
$1.25/M = .005); Y = 1,000 input, 100 output, failed (.0025 + .001 = .0035). Globex sends
one call of 1,000,000 input tokens ($2.5). An acme read key sees only acme's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from server_payloads import encode, export_request, llm_span, new_trace_id
from serverkit import InProcess, make_settings, open_in_process
from test_api import assert_error_shape

BASE = "/api/v1/analytics"


async def _send(env: InProcess, key: str, **call: Any) -> None:
    span = llm_span(new_trace_id(), **call)
    body, headers = encode(export_request([span], project_id="web"))
    response = await env.client.post("/v1/traces", content=body,
                                     headers={**headers, "x-api-key": key})
    assert response.status_code == 200, response.text


async def test_cost_views_answer_by_hand_for_the_callers_org_only(
        _isolated_data_dir: Path) -> None:
    settings = make_settings(_isolated_data_dir, auth_required=True)
    async with open_in_process(settings) as env:
        control = env.state.control
        keys: dict[str, dict[str, str]] = {}
        for org in ("acme", "globex"):
            control.create_org(org.title(), org)
            keys[org] = {role: control.create_api_key(org, None, f"{org}-{role}",
                                                      role=role).key
                         for role in ("ingest", "read")}
        await _send(env, keys["acme"]["ingest"], input_tokens=10_000, output_tokens=1_000,
                    duration_ms=100, attrs={"gen_ai.usage.cache_read.input_tokens": 4_000,
                                            "gen_ai.usage.reasoning.output_tokens": 200})
        await _send(env, keys["acme"]["ingest"], input_tokens=1_000, output_tokens=100,
                    duration_ms=300, error=True)
        await _send(env, keys["globex"]["ingest"], input_tokens=1_000_000, output_tokens=0)
        read = {"x-api-key": keys["acme"]["read"]}

        tokens = (await env.client.get(f"{BASE}/tokens", headers=read)).json()
        assert {k["kind"]: (k["tokens"], k["cost"]) for k in tokens["kinds"]} == {
            "input": (7_000, "0.0175"), "cache_read": (4_000, "0.005"),
            "cache_write": (0, "0"), "output": (900, "0.009"), "reasoning": (200, "0.002"),
            "request": (2, "0"), "unattributed": (0, "0")}
        assert (tokens["token_cost"], tokens["cache_savings"], tokens["currency"]) == (
            "0.0335", "0.005", "USD")

        tree = (await env.client.get(f"{BASE}/attribution", headers=read,
                                     params={"levels": "org,project,model"})).json()
        assert tree["levels"] == ["org_id", "project_id", "model"]
        root = tree["tree"]
        assert root["total_cost"] == "0.0335" and [c["key"] for c in root["children"]] == [
            "acme"]
        leaf = root["children"][0]["children"][0]["children"][0]
        assert (leaf["level"], leaf["key"], leaf["total_cost"], leaf["requests"]) == (
            "model", "gpt-4o", "0.0335", 2)

        units = (await env.client.get(f"{BASE}/unit-economics", headers=read)).json()
        assert (units["num_traces"], units["num_successful_traces"]) == (2, 1)
        assert (units["cost_per_successful_trace"], units["cost_per_trace"]) == (
            "0.0335", "0.01675")

        matrix = (await env.client.get(f"{BASE}/provider-models", headers=read)).json()
        (row,) = matrix["rows"]
        assert (row["provider"], row["model"], row["total_cost"], row["requests"],
                row["error_rate"]) == ("openai", "gpt-4o", "0.0335", 2, 0.5)
        assert row["latency_p95_ms"] == 100 + 0.95 * 200  # 100 and 300 ms, linear

        # another org's numbers are refused, not mixed in
        for path in ("tokens", "attribution", "unit-economics", "provider-models"):
            assert_error_shape(await env.client.get(
                f"{BASE}/{path}", headers=read, params={"filter": "org=globex"}), 403)


async def test_bad_parameters_are_4xx_naming_the_field(_isolated_data_dir: Path) -> None:
    async with open_in_process(make_settings(_isolated_data_dir)) as env:
        for levels, reason in [("org,agent_name", "agent_name"), ("model,model", "twice"),
                               ("org,project,agent,model,user,tool", "at most 5"),
                               (" , ", "none"), ("org,org_id", "twice")]:
            body = assert_error_shape(await env.client.get(
                f"{BASE}/attribution", params={"levels": levels}), 422)
            assert body["errors"][0]["field"] == "levels" and reason in body["errors"][0][
                "reason"], body
        body = assert_error_shape(await env.client.get(
            f"{BASE}/provider-models", params={"limit": 0}), 422)
        assert "limit" in body["errors"][0]["field"]
        body = assert_error_shape(await env.client.get(f"{BASE}/tokens", params={
            "start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}), 400)
        assert body["errors"][0]["field"] == "start"
        body = assert_error_shape(await env.client.get(
            f"{BASE}/unit-economics", params={"filter": "nope=1"}), 400)
        assert body["errors"][0]["field"] == "filter.nope"
        empty = (await env.client.get(f"{BASE}/unit-economics")).json()
        assert (empty["num_traces"], empty["cost_per_successful_trace"]) == (0, None)
