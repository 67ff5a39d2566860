from __future__ import annotations

import gzip
import json
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_payloads import JSON, encode, export_request, llm_span, new_trace_id
from serverkit import InProcess, make_settings, open_in_process

ERROR_KEYS = {"ok", "status", "error", "errors"}


def assert_error_shape(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == ERROR_KEYS, body
    assert body["ok"] is False and body["status"] == status and body["error"]
    assert all(set(e) == {"field", "reason"} for e in body["errors"])
    return body


async def send_trace(env: InProcess, project: str = "acme", model: str = "gpt-4o",
                     error: bool = False) -> bytes:
    trace = new_trace_id()
    root = llm_span(trace, name="agent run", input_tokens=None, output_tokens=None)
    child = llm_span(trace, parent=root.span_id, model=model, input_tokens=2000,
                     output_tokens=1000, error=error)
    body, headers = encode(export_request([root, child], project_id=project), JSON)
    response = await env.client.post("/v1/traces", content=body, headers=headers)
    assert response.status_code == 200
    return trace


async def test_query_routes_answer_with_canonical_names(app_client: InProcess) -> None:
    trace = await send_trace(app_client, "acme")
    await send_trace(app_client, "globex", model="gpt-4o-mini", error=True)
    await send_trace(app_client, "acme", model="no-such-model-xyz")

    overview = (await app_client.client.get("/api/v1/overview")).json()
    assert overview["ok"] and overview["num_traces"] == 3 and overview["num_spans"] == 6
    assert Decimal(overview["spend"]) > 0

    cost = (await app_client.client.get(
        "/api/v1/cost", params={"group_by": "project_id,model", "bucket": "day"})).json()
    keys = {(r["project_id"], r["model"]) for r in cost["rows"]}
    assert ("acme", "gpt-4o") in keys and ("globex", "gpt-4o-mini") in keys
    assert all(isinstance(r["total_cost"], str) for r in cost["rows"])
    assert Decimal(cost["total_cost"]) == sum(Decimal(r["total_cost"]) for r in cost["rows"])
    assert all("bucket" in r for r in cost["rows"])

    csv_text = (await app_client.client.get(
        "/api/v1/cost", params={"group_by": "project_id", "format": "csv"})).text
    assert csv_text.splitlines()[0].startswith("project_id,")
    assert len(csv_text.splitlines()) == 3

    filtered = (await app_client.client.get(
        "/api/v1/cost", params={"group_by": "project_id", "filter": "project_id=globex"})).json()
    assert [r["project_id"] for r in filtered["rows"]] == ["globex"]

    traces = (await app_client.client.get("/api/v1/traces", params={"status": "error"})).json()
    assert len(traces["traces"]) == 1 and traces["traces"][0]["status"] == "error"

    detail = (await app_client.client.get(f"/api/v1/traces/{trace.hex()}")).json()
    assert detail["num_spans"] == 2 and len(detail["roots"]) == 1
    root = detail["roots"][0]
    child = root["children"][0]
    assert child["request_model"] == "gpt-4o" and child["input_tokens"] == 2000
    assert Decimal(root["subtree_cost"]) == Decimal(child["total_cost"]) + \
        Decimal(root["total_cost"])
    assert detail["total_cost"] == root["subtree_cost"]
    assert isinstance(child["attributes"], dict)

    unpriced = (await app_client.client.get("/api/v1/unpriced")).json()
    assert [r["model"] for r in unpriced["rows"]] == ["no-such-model-xyz"]

    spans = (await app_client.client.get("/api/v1/spans", params={"limit": 100})).json()
    assert len(spans["spans"]) == 6 and spans["next_after_ns"] > 0
    again = (await app_client.client.get(
        "/api/v1/spans", params={"after_ns": spans["next_after_ns"]})).json()
    assert again["spans"] == []


async def test_every_error_route_uses_one_shape(app_client: InProcess) -> None:
    c = app_client.client
    assert_error_shape(await c.get("/api/v1/nope"), 404)
    assert_error_shape(await c.get("/api/v1/cost", params={"group_by": "colour"}), 422)
    assert_error_shape(await c.get("/api/v1/cost", params={"bucket": "fortnight"}), 422)
    assert_error_shape(await c.get("/api/v1/cost", params={"format": "xml"}), 422)
    assert_error_shape(await c.get("/api/v1/cost", params={"start": "yesterday"}), 422)
    assert_error_shape(await c.get("/api/v1/overview", params={"filter": "nonsense"}), 400)
    assert_error_shape(await c.get("/api/v1/overview", params={"filter": "colour=red"}), 400)
    assert_error_shape(await c.get("/api/v1/overview", params={
        "start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}), 400)
    assert_error_shape(await c.get("/api/v1/traces/xyz"), 400)
    assert_error_shape(await c.get(f"/api/v1/traces/{'0' * 31}1"), 404)
    assert_error_shape(await c.get("/api/v1/traces", params={"limit": 0}), 422)
    assert_error_shape(await c.post("/api/v1/reprice"), 422)
    assert_error_shape(await c.post("/api/v1/reprice", params={
        "since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}), 400)
    assert_error_shape(await c.post("/api/v1/orgs", json={"name": ""}), 422)
    assert_error_shape(await c.post("/api/v1/keys", json={"org_id": "missing"}), 422)
    body = assert_error_shape(await c.post(
        "/api/v1/events", content=b"[{\"type\": \"agent.nope\"}]",
        headers={"content-type": "application/json"}), 422)
    assert body["errors"][0]["field"].startswith("[0]")
    # undecodable JSON: the event receiver refuses the batch as a whole (422, docs/events.md)
    assert_error_shape(await c.post("/api/v1/events", content=b"[{",
                                    headers={"content-type": "application/json"}), 422)
    assert_error_shape(await c.post("/api/v1/events", content=b"\x1f\x8b broken",
                                    headers={"content-type": "application/json",
                                             "content-encoding": "gzip"}), 400)
    assert_error_shape(await c.post("/api/v1/events", content=b"x",
                                    headers={"content-type": "text/csv"}), 415)
    assert_error_shape(await c.delete("/api/v1/cost"), 405)


async def test_events_pair_into_spans(app_client: InProcess) -> None:
    now_ns = time.time_ns()
    run = f"run-{now_ns}"
    started = {"type": "agent.request.started", "run_id": run, "request_id": "r1",
               "project_id": "acme", "agent_id": "planner", "timestamp": now_ns - 2_000_000_000}
    completed = {**started, "type": "agent.request.completed", "timestamp": now_ns,
                 "provider": "openai", "model": "gpt-4o", "input_tokens": 10,
                 "output_tokens": 5}
    first = await app_client.client.post("/api/v1/events", json=[started])
    assert first.status_code == 200, first.text
    assert first.json()["num_open"] == 1
    ndjson = (json.dumps(completed) + "\n").encode()
    second = await app_client.client.post(
        "/api/v1/events", content=gzip.compress(ndjson),
        headers={"content-type": "application/x-ndjson", "content-encoding": "gzip"})
    assert second.status_code == 200, second.text
    assert second.json()["num_open"] == 0 and second.json()["num_spans"] == 1
    rows = (await app_client.stored()).query_arrow(
        "SELECT duration_ms, project_id, total_cost FROM spans FINAL WHERE run_id = {r:String}",
        {"r": run}).to_pylist()
    assert len(rows) == 1
    assert rows[0]["project_id"] == "acme" and rows[0]["total_cost"] > 0
    assert 1999 <= rows[0]["duration_ms"] <= 2001


async def test_health_ready_metrics_and_openapi(app_client: InProcess) -> None:
    c = app_client.client
    assert (await c.get("/healthz")).json() == {"ok": True}
    ready = await c.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {
        "store": "ok", "writer": "ok", "inserter": "ok"}
    await send_trace(app_client)
    metrics = (await c.get("/metrics")).text
    assert 'mentatlab_spans_accepted_total{receiver="otlp_http"} 2.0' in metrics
    assert "mentatlab_write_latency_seconds_bucket" in metrics
    assert "mentatlab_write_buffer_spans" in metrics
    assert 'route="/v1/traces"' in metrics
    spec = (await c.get("/openapi.json")).json()
    otlp = spec["paths"]["/v1/traces"]["post"]["responses"]
    assert {"200", "400", "413", "415", "503"} <= set(otlp)
    assert {"400", "422", "503"} <= set(spec["paths"]["/api/v1/cost"]["get"]["responses"])
    assert (await c.get("/docs")).status_code == 200


async def test_reprice_applies_new_pricing_file(app_client: InProcess) -> None:
    trace = await send_trace(app_client, model="house-model-1")
    detail = (await app_client.client.get(f"/api/v1/traces/{trace.hex()}")).json()
    assert detail["total_cost"] == "0"
    pricing = app_client.state.settings.data_dir / "pricing.toml"
    pricing.write_text('[[models]]\nprovider = "openai"\nmodel = "house-model-1"\n'
                       'input_per_mtok = "1.50"\noutput_per_mtok = "3"\n')
    answer = await app_client.client.post("/api/v1/reprice",
                                          params={"since": "2000-01-01T00:00:00Z"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["num_spans_read"] == 2 and body["num_spans_changed"] == 1
    detail = (await app_client.client.get(f"/api/v1/traces/{trace.hex()}")).json()
    # 2000 in at 1.50/Mtok + 1000 out at 3/Mtok = 0.003 + 0.003
    assert Decimal(detail["total_cost"]) == Decimal("0.006")
    again = (await app_client.client.post(
        "/api/v1/reprice", params={"since": "2000-01-01T00:00:00Z"})).json()
    assert again["num_spans_changed"] == 0


async def test_backpressure_answers_503_with_retry_after(_isolated_data_dir: Path) -> None:
    import asyncio
    import threading

    settings = make_settings(_isolated_data_dir, write_buffer_spans=2, retry_after_s=7)
    async with open_in_process(settings) as env:
        # Hold the writer inside its first log append: the next body waits in the buffer
        # (2 spans, its whole budget), so every later one is refused, whatever the timing.
        log = env.state.writer.wal
        assert log is not None  # the write-ahead log is on by default
        entered, gate = threading.Event(), threading.Event()
        append = log.append

        def held_append(stamp_ns: int, table: Any) -> int:
            entered.set()
            gate.wait(30)
            return int(append(stamp_ns, table))

        log.append = held_append
        bodies = [encode(export_request([llm_span(), llm_span()])) for _ in range(12)]

        def post(i: int) -> Any:
            return asyncio.create_task(env.client.post("/v1/traces", content=bodies[i][0],
                                                       headers=bodies[i][1]))

        first = post(0)
        assert await asyncio.to_thread(entered.wait, 30)
        rest = [post(i) for i in range(1, 12)]
        deadline = asyncio.get_running_loop().time() + 30
        while sum(t.done() for t in rest) < 10:  # all but the one the buffer holds
            assert asyncio.get_running_loop().time() < deadline, "no backpressure answer"
            await asyncio.sleep(0.02)
        gate.set()
        responses = [await first, *await asyncio.gather(*rest)]
        statuses = [r.status_code for r in responses]
        assert sorted(statuses) == [200] * 2 + [503] * 10, statuses
        busy = [r for r in responses if r.status_code == 503][0]
        assert busy.headers["retry-after"] == "7"
        metrics = (await env.client.get("/metrics")).text
        assert 'reason="backpressure"' in metrics
        stored = (await env.stored()).query_arrow("SELECT count() AS n FROM spans FINAL")
        assert stored.column("n")[0].as_py() == 2 * statuses.count(200)


async def test_auth_required_and_key_fixes_tenancy(_isolated_data_dir: Path) -> None:
    settings = make_settings(_isolated_data_dir, auth_required=True)
    async with open_in_process(settings) as env:
        control = env.state.control
        control.create_org("Acme", "acme")
        admin_key = control.create_api_key("acme", None, "admin", role="admin").key
        c = env.client
        body = assert_error_shape(await c.get("/api/v1/overview"), 401)
        assert body["errors"][0]["field"] == "authorization"
        assert_error_shape(await c.get("/api/v1/overview",
                                       headers={"x-api-key": "mlk_bogus"}), 401)
        otlp_body, headers = encode(export_request([llm_span()], project_id="spoofed"))
        assert (await c.post("/v1/traces", content=otlp_body, headers=headers)).status_code == 401
        auth = {"authorization": f"Bearer {admin_key}"}
        created = await c.post("/api/v1/keys", json={"org_id": "acme", "project_id": "web"},
                               headers=auth)
        assert created.status_code == 200, created.text
        project_key = created.json()["key"]["secret"]
        assert_error_shape(await c.post("/api/v1/keys", json={"org_id": "other"}, headers=auth),
                           403)
        response = await c.post("/v1/traces", content=otlp_body,
                                headers={**headers, "x-api-key": project_key})
        assert response.status_code == 200
        rows = (await env.stored()).query_arrow("SELECT org_id, project_id FROM spans").to_pylist()
        assert rows == [{"org_id": "acme", "project_id": "web"}]
        assert (await c.get("/healthz")).status_code == 200


@pytest.mark.parametrize("path", ["/api/v1/overview", "/api/v1/unpriced"])
async def test_store_failure_is_503_not_500(app_client: InProcess, path: str) -> None:
    app_client.state.store.close()
    try:
        assert_error_shape(await app_client.client.get(path), 503)
        assert (await app_client.client.get("/readyz")).status_code == 503
    finally:
        # reopen so the lifespan can close cleanly
        from mentatlab.server.components import open_store
        app_client.state.store = open_store(app_client.state.settings)
        app_client.state.writer.store = app_client.state.store


async def test_open_event_survives_restart_and_pairs(_isolated_data_dir: Path) -> None:
    settings = make_settings(_isolated_data_dir)
    now_ns = time.time_ns()
    started = {"type": "agent.step.started", "run_id": "run-restart", "step_id": "s1",
               "project_id": "acme", "timestamp": now_ns - 3_000_000_000}
    async with open_in_process(settings) as env:
        assert (await env.client.post("/api/v1/events", json=[started])).status_code == 200
    async with open_in_process(settings) as env:
        assert env.state.pairer.open_count == 1
        completed = {**started, "type": "agent.step.completed", "timestamp": now_ns}
        answer = await env.client.post("/api/v1/events", json=[completed])
        assert answer.status_code == 200 and answer.json()["num_open"] == 0
        rows = (await env.stored()).query_arrow(
            "SELECT duration_ms, attributes FROM spans FINAL WHERE run_id = 'run-restart'"
        ).to_pylist()
        assert len(rows) == 1
        assert 2999 <= rows[0]["duration_ms"] <= 3001
        assert "mentat.span.unpaired" not in rows[0]["attributes"]


async def test_unpaired_start_becomes_timeout_span(_isolated_data_dir: Path) -> None:
    import asyncio

    settings = make_settings(_isolated_data_dir, event_pair_timeout_s=0.2)
    started = {"type": "agent.step.started", "run_id": "run-t", "step_id": "s9",
               "project_id": "acme"}
    async with open_in_process(settings) as env:
        assert (await env.client.post("/api/v1/events", json=[started])).status_code == 200
        rows: list[dict[str, Any]] = []
        for _ in range(50):
            await asyncio.sleep(0.1)
            rows = env.state.store.query_arrow(
                "SELECT status FROM spans FINAL WHERE run_id = 'run-t'").to_pylist()
            if rows and rows[0]["status"] != "ok":
                break
        assert rows == [{"status": "timeout"}]
        assert env.state.pairer.open_count == 0
