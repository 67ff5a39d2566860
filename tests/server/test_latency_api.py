"""``GET /api/v1/analytics/latency`` and ``/peers`` over real OTLP ingest and HTTP.

Acme sends agent ``triage`` 3 times (root 300, 500, 700 ms, each with one gpt-4o call of
100, 200, 400 ms: 100 input + 50 output tokens) and agent ``writer`` twice (root 1000 and
1200 ms, each with one claude-sonnet-4 call of 600 and 900 ms: 1000 + 500 tokens). Globex
sends a triage run of 9000 ms with a gpt-4o call of 8000 ms. An acme read key sees only
acme's spans.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import numpy as np
from server_payloads import encode, export_request, llm_span, new_trace_id
from serverkit import InProcess, make_settings, open_in_process
from test_api import assert_error_shape

LATENCY = "/api/v1/analytics/latency"
PEERS = "/api/v1/analytics/peers"


async def _run(env: InProcess, key: str, agent: str, root_ms: int, model: str, call_ms: int,
               tokens: tuple[int, int]) -> None:
    trace = new_trace_id()
    root = llm_span(trace, name=f"invoke_agent {agent}", input_tokens=None,
                    output_tokens=None, duration_ms=root_ms, model="",
                    attrs={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": agent})
    call = llm_span(trace, parent=root.span_id, model=model, duration_ms=call_ms,
                    provider="anthropic" if model.startswith("claude") else "openai",
                    input_tokens=tokens[0], output_tokens=tokens[1])
    call.start_time_unix_nano = root.start_time_unix_nano + 1_000_000
    call.end_time_unix_nano = call.start_time_unix_nano + call_ms * 1_000_000
    body, headers = encode(export_request([root, call], project_id="web"))
    response = await env.client.post("/v1/traces", content=body,
                                     headers={**headers, "x-api-key": key})
    assert response.status_code == 200, response.text


async def test_latency_and_peers_scoped_to_the_key(_isolated_data_dir: Path) -> None:
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
        for root_ms, call_ms in ((300, 100), (500, 200), (700, 400)):
            await _run(env, acme, "triage", root_ms, "gpt-4o", call_ms, (100, 50))
        for root_ms, call_ms in ((1000, 600), (1200, 900)):
            await _run(env, acme, "writer", root_ms, "claude-sonnet-4", call_ms, (1000, 500))
        await _run(env, keys["globex"]["ingest"], "triage", 9000, "gpt-4o", 8000, (1, 1))
        read = {"x-api-key": keys["acme"]["read"]}

        response = await env.client.get(LATENCY, params={"group_by": "model"}, headers=read)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["unit"] == "ms" and "linear" in body["quantile_method"]
        groups = {g["key"]: g for g in body["groups"]}
        assert set(groups) == {"gpt-4o", "claude-sonnet-4"} and body["num_groups"] == 2
        gpt = groups["gpt-4o"]  # 100, 200, 400 (globex's 8000 is not acme's)
        assert gpt["num_spans"] == 3 and gpt["max_ms"] == 400
        # h = 2q: p50 → 200; p90 h=1.8 → 200 + 0.8·200
        assert (gpt["p50_ms"], gpt["p90_ms"]) == (200, 360)
        want = np.quantile([100, 200, 400], [0.5, 0.9, 0.95, 0.99], method="linear")
        got = [gpt[k] for k in ("p50_ms", "p90_ms", "p95_ms", "p99_ms")]
        assert np.allclose(got, want, rtol=1e-12)
        bounds = body["histogram_bounds_ms"]
        assert len(gpt["histogram"]) == len(bounds) + 1 and sum(gpt["histogram"]) == 3
        assert gpt["histogram"][bounds.index(100) + 1] == 2  # 100 and 200 in [100, 250)

        agents = {g["key"]: g for g in (await env.client.get(
            LATENCY, params={"group_by": "agent"}, headers=read)).json()["groups"]}
        assert {k: (g["num_spans"], g["p50_ms"]) for k, g in agents.items()} == {
            "triage": (3, 500), "writer": (2, 1100)}, "own (root) spans only"

        response = await env.client.get(PEERS, headers=read)
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["percentile_kind"], body["lower_is_better"]) == ("mean", True)
        peers = {a["agent_id"]: a for a in body["agents"]}
        assert set(peers) == {"triage", "writer"}
        triage, writer = peers["triage"], peers["writer"]
        assert triage["operation_type"] == writer["operation_type"] == "invoke_agent"
        assert (triage["num_runs"], writer["num_runs"]) == (3, 2)
        cps = Decimal(triage["cost_per_success"]["value"])
        assert cps > 0 and cps == Decimal(triage["total_cost"]) / 3
        assert triage["latency_p50_ms"]["value"] == 500
        assert writer["tokens_per_success"]["value"] == 1500
        for metric in ("cost_per_success", "latency_p50_ms", "tokens_per_success"):
            # two agents, triage lower on each: (0 + 1)/4 and (1 + 2)/4 of 100
            assert (triage[metric]["percentile_rank"], writer[metric]["percentile_rank"]) == (
                25, 75), metric
            assert triage[metric]["num_peers"] == 2

        for url, params, status, field in [
            (LATENCY, {"group_by": "span"}, 422, "group_by"),
            (LATENCY, {"limit": 0}, 422, "limit"),
            (LATENCY, {"limit": 1001}, 422, "limit"),
            (LATENCY, {"filter": "nope=1"}, 400, "filter.nope"),
            (PEERS, {"start": "2026-13-01"}, 422, "start"),
            (PEERS, {"filter": "org=globex"}, 403, "filter.org_id"),
        ]:
            err = assert_error_shape(await env.client.get(url, params=params, headers=read),
                                     status)
            assert [e["field"] for e in err["errors"]] == [field], (params, err)
        assert_error_shape(await env.client.get(PEERS), 401)
        ingest = {"x-api-key": acme}
        assert_error_shape(await env.client.get(LATENCY, headers=ingest), 403)
        unhandled = env.state.metrics.unhandled_errors.collect()[0].samples
        assert not [s for s in unhandled if s.value], unhandled
