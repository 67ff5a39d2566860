"""``GET /api/v1/analytics/regressions`` over real OTLP ingest and HTTP, scoped by the key.

Acme's agent ``triage`` runs 6 traces of prompt v1 70..65 minutes ago (100, 110, ..., 150
ms), then prompt v2 from 30 minutes ago: 6 traces of 400, ..., 450 ms, every one slower
(U_a = 0, exact two-sided p = 2 / C(12, 6) = 2 / 924). The window is the last hour, so
v2 is new in it and v1 (in its look-back) is its baseline. Globex's v2 traces last 1 ms
each: they would hide the regression if they leaked into acme's answer.
The computed tests: latency, cost and tokens (every trace ok: the success-rate test has
no variance); cost and tokens are all equal (p = 1), so BH gives latency 2/924 · 3 = 6/924.
"""

from __future__ import annotations

import time
from pathlib import Path

from server_payloads import encode, export_request, llm_span, new_trace_id
from serverkit import InProcess, make_settings, open_in_process
from test_api import assert_error_shape

URL = "/api/v1/analytics/regressions"
ADOPTION = "/api/v1/analytics/adoption"
MINUTE_NS = 60 * 10**9


async def _send(env: InProcess, key: str, version: str, ago_min: float, ms: int) -> None:
    span = llm_span(new_trace_id(), duration_ms=ms, attrs={
        "traceloop.prompt.version": version, "gen_ai.agent.name": "triage"})
    start = time.time_ns() - int(ago_min * MINUTE_NS)
    span.start_time_unix_nano, span.end_time_unix_nano = start, start + ms * 1_000_000
    body, headers = encode(export_request([span], project_id="web"))
    response = await env.client.post("/v1/traces", content=body,
                                     headers={**headers, "x-api-key": key})
    assert response.status_code == 200, response.text


async def test_regressions_scoped_worked_out_and_bad_input(_isolated_data_dir: Path) -> None:
    settings = make_settings(_isolated_data_dir, auth_required=True)
    async with open_in_process(settings) as env:
        control = env.state.control
        keys: dict[str, dict[str, str]] = {}
        for org in ("acme", "globex"):
            control.create_org(org.title(), org)
            keys[org] = {role: control.create_api_key(org, None, f"{org}-{role}",
                                                      role=role).key
                         for role in ("ingest", "read")}
        for i in range(6):
            await _send(env, keys["acme"]["ingest"], "v1", 70 - i, 100 + 10 * i)
            await _send(env, keys["acme"]["ingest"], "v2", 30 - i, 400 + 10 * i)
            await _send(env, keys["globex"]["ingest"], "v2", 30 - i, 1)
        read = {"x-api-key": keys["acme"]["read"]}
        now_s = time.time()
        window = {"start": _iso(now_s - 3600), "end": _iso(now_s + 60)}

        ok = await env.client.get(URL, params={**window, "field": "prompt_version"},
                                  headers=read)
        assert ok.status_code == 200, ok.text
        body = ok.json()
        assert (body["correction"], body["alpha"], body["num_tests"]) == (
            "benjamini-hochberg", 0.05, 3)
        [version] = body["versions"]
        assert (version["agent_id"], version["operation"], version["version"],
                version["baseline"]) == ("triage", "chat", "v2", "v1")
        assert (version["num_baseline_traces"], version["num_version_traces"]) == (6, 6)
        [reg] = body["regressions"]
        assert (reg["metric"], reg["direction"], reg["effect_size"]) == (
            "latency_ms", "worse", -1.0)
        assert abs(reg["p_value"] - 2 / 924) < 1e-12 and abs(reg["p_adjusted"] - 6 / 924) < 1e-12
        assert (reg["n_baseline"], reg["n_version"]) == (6, 6)
        cost = {c["metric"]: c for c in version["checks"]}["cost_per_success"]
        assert isinstance(cost["baseline_value"], str)  # money as a string

        widest = await env.client.get(URL, params={"start": "1900-01-01T00:00:00Z",
                                                   "end": "2262-01-01T00:00:00Z"}, headers=read)
        assert widest.status_code == 200, widest.text  # the look-back stops at the store's start
        assert [r["metric"] for r in widest.json()["regressions"]] == ["latency_ms"]
        everything = (await env.client.get(URL, params=window, headers=read)).json()
        assert [v["field"] for v in everything["versions"]] == ["prompt_version"], \
            "gpt-4o was first seen with v1, before the window"

        assert_error_shape(await env.client.get(URL, params={**window, "filter": "org=globex"},
                                                headers=read), 403)
        for params, status, field in [
            ({"field": "prompt"}, 422, "field"),
            ({"filter": "nope=1"}, 400, "filter.nope"),
            ({"start": "yesterday"}, 422, "start"),
            ({"start": _iso(now_s), "end": _iso(now_s - 60)}, 400, "start"),
        ]:
            err = assert_error_shape(await env.client.get(URL, params=params, headers=read),
                                     status)
            assert [e["field"] for e in err["errors"]] == [field], (params, err)
        unhandled = env.state.metrics.unhandled_errors.collect()[0].samples
        assert not [s for s in unhandled if s.value], unhandled
        assert_error_shape(await env.client.get(URL), 401)

        # adoption in the window (the last hour): acme's 6 v2 runs (no workflow, no user);
        # never globex's 6
        adoption = await env.client.get(ADOPTION, params={**window, "bucket": "hour"},
                                        headers=read)
        assert adoption.status_code == 200, adoption.text
        [row] = adoption.json()["workflows"]
        assert (row["workflow_id"], row["num_traces"], row["num_users"],
                row["num_successes"]) == ("", 6, 0, 6)
        # 100 input + 50 output tokens of gpt-4o ($2.50 / $10 per Mtok) = $0.00075 a run
        assert (row["total_cost"], row["cost_per_success"]) == ("0.0045", "0.00075")
        assert sum(b["num_traces"] for b in adoption.json()["buckets"]) == 6
        for params, field in [({"bucket": "week"}, "bucket"), ({"limit": "0"}, "limit"),
                              ({"tz": "Mars/Base"}, "tz")]:
            err = assert_error_shape(await env.client.get(ADOPTION, params=params,
                                                          headers=read), 422 if field != "tz"
                                     else 400)
            assert [e["field"] for e in err["errors"]] == [field], (params, err)
        assert_error_shape(await env.client.get(ADOPTION, params={"filter": "org=globex"},
                                                headers=read), 403)


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


