"""``GET /api/v1/analytics/compare``: two prompt versions over real OTLP ingest and HTTP.

Acme sends 5 traces of prompt v1 (120..520 ms, all ok) and 5 of v2 (200..600 ms, one
failed); globex sends 5 traces of v2 as well. A read key of acme compares only acme's.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from scipy.stats import mannwhitneyu
from server_payloads import encode, export_request, llm_span, new_trace_id
from serverkit import InProcess, make_settings, open_in_process
from test_api import assert_error_shape

URL = "/api/v1/analytics/compare"


async def _send(env: InProcess, key: str, version: str, duration_ms: int,
                error: bool = False) -> None:
    trace = new_trace_id()
    root = llm_span(trace, name="agent run", input_tokens=None, output_tokens=None,
                    duration_ms=duration_ms)
    child = llm_span(trace, parent=root.span_id, input_tokens=1000, output_tokens=100,
                     duration_ms=10, error=error,
                     attrs={"traceloop.prompt.version": version})
    # the child inside the root: the trace lasts the root's duration
    child.start_time_unix_nano = root.start_time_unix_nano + 1_000_000
    child.end_time_unix_nano = child.start_time_unix_nano + 10_000_000
    body, headers = encode(export_request([root, child], project_id="web"))
    response = await env.client.post("/v1/traces", content=body,
                                     headers={**headers, "x-api-key": key})
    assert response.status_code == 200, response.text


async def _get(env: InProcess, headers: dict[str, str], **params: Any) -> Any:
    return await env.client.get(URL, params=params, headers=headers)


async def test_compare_a_scoped_key_sees_its_org_and_bad_input_names_the_field(
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
        for i in range(5):
            await _send(env, keys["acme"]["ingest"], "v1", 120 + 100 * i)
            await _send(env, keys["acme"]["ingest"], "v2", 200 + 100 * i, error=i == 4)
            await _send(env, keys["globex"]["ingest"], "v2", 5000)
        read = {"x-api-key": keys["acme"]["read"]}

        ok = await _get(env, read, field="prompt_version", a="v1", b="v2")
        assert ok.status_code == 200, ok.text
        body = ok.json()
        assert (body["unit"], body["alpha"], body["num_mixed"]) == ("trace", 0.05, 0)
        a, b = body["a"], body["b"]
        assert (a["num_units"], a["num_successes"], b["num_units"], b["num_successes"]) == (
            5, 5, 5, 4), "globex's v2 traces are not acme's"
        assert (a["latency_p50_ms"], b["latency_p50_ms"]) == (320.0, 400.0)
        assert b["latency_p99_ms"] < 5000
        assert isinstance(a["cost_per_success"], str) and Decimal(a["cost_per_success"]) > 0
        assert a["tokens_per_success"] == 1100.0
        lat = body["tests"]["latency_ms"]
        want = mannwhitneyu([120, 220, 320, 420, 520], [200, 300, 400, 500, 600],
                            alternative="two-sided")
        assert lat["test"] == "mann-whitney-u" and lat["statistic"] == want.statistic
        assert abs(lat["p_value"] - want.pvalue) < 1e-12
        rate = body["tests"]["success_rate"]
        assert rate["test"] == "two-proportion-z" and rate["computed"] is True
        assert rate["effect_size_name"] == "cohen-h" and rate["significant"] is False

        assert_error_shape(await env.client.get(URL, params={
            "field": "prompt_version", "a": "v1", "b": "v2", "filter": "org=globex"},
            headers=read), 403)
        for params, status, field in [
            ({"field": "prompt", "a": "v1", "b": "v2"}, 422, "field"),
            ({"field": "prompt_version", "a": "v1", "b": "v1"}, 422, "b"),
            ({"field": "prompt_version", "b": "v2"}, 422, "a"),
            ({"field": "prompt_version", "a": "v1"}, 422, "b"),
            ({"a": "v1", "b": "v2"}, 422, "field"),
            ({"field": "prompt_version", "a": "v9", "b": "v2"}, 422, "a"),
            ({"field": "model", "a": "\x00'\\", "b": "ü" * 1000}, 422, "a"),
            ({"field": "prompt_version", "a": "v1", "b": "x" * 1001}, 422, "b"),
            ({"field": "prompt_version", "a": "v1", "b": "v2", "filter": "nope=1"}, 400,
             "filter.nope"),
        ]:
            err = assert_error_shape(await _get(env, read, **params), status)
            assert [e["field"] for e in err["errors"]] == [field], (params, err)
        unhandled = env.state.metrics.unhandled_errors.collect()[0].samples
        assert not [s for s in unhandled if s.value], unhandled
        assert_error_shape(await env.client.get(URL, params={
            "field": "prompt_version", "a": "v1", "b": "v2"}), 401)
        ingest = {"x-api-key": keys["acme"]["ingest"]}
        assert_error_shape(await env.client.get(URL, params={
            "field": "prompt_version", "a": "v1", "b": "v2"}, headers=ingest), 403)
