from __future__ import annotations

import gzip
import json

import httpx
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from server_payloads import JSON, PROTOBUF, encode, export_request, llm_span, new_trace_id
from serverkit import InProcess, make_settings, open_in_process


async def count_spans(env: InProcess, trace_id: bytes) -> int:
    table = (await env.stored()).query_arrow(
        "SELECT count() AS n FROM spans FINAL WHERE trace_id = {t:String}", {"t": trace_id.hex()})
    return int(table.column("n")[0].as_py())


async def stored(env: InProcess, trace_id: bytes) -> list[dict[str, object]]:
    table = (await env.stored()).query_arrow(
        "SELECT * FROM spans FINAL WHERE trace_id = {t:String} ORDER BY start_time",
        {"t": trace_id.hex()})
    rows: list[dict[str, object]] = table.to_pylist()
    return rows


async def post(env: InProcess, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return await env.client.post("/v1/traces", content=body, headers=headers)


async def test_protobuf_json_and_gzip_are_stored_and_priced(app_client: InProcess) -> None:
    for content_type, gz in ((PROTOBUF, False), (JSON, False), (PROTOBUF, True), (JSON, True)):
        trace = new_trace_id()
        root = llm_span(trace, name="agent run", input_tokens=None, output_tokens=None)
        child = llm_span(trace, parent=root.span_id, input_tokens=1000, output_tokens=500)
        body, headers = encode(export_request([root, child]), content_type, gz)
        response = await post(app_client, body, headers)
        assert response.status_code == 200, response.content
        assert response.headers["content-type"].startswith(content_type)
        if content_type == PROTOBUF:
            parsed = ExportTraceServiceResponse.FromString(response.content)
            assert parsed.partial_success.rejected_spans == 0
        else:
            assert response.json().get("partialSuccess", {}).get("rejectedSpans", "0") == "0"
        rows = await stored(app_client, trace)
        assert len(rows) == 2
        priced = [r for r in rows if r["span_id"] == child.span_id.hex()][0]
        assert priced["project_id"] == "acme"
        assert priced["input_tokens"] == 1000
        assert priced["total_cost"] > 0
        assert priced["price_source"].startswith("genai-prices")


async def test_invalid_ids_give_partial_success(app_client: InProcess) -> None:
    trace = new_trace_id()
    good = llm_span(trace)
    bad = llm_span(trace)
    bad.span_id = b"\x00" * 8  # all-zero span id is invalid per OTLP
    body, headers = encode(export_request([good, bad]))
    response = await post(app_client, body, headers)
    assert response.status_code == 200
    parsed = ExportTraceServiceResponse.FromString(response.content)
    assert parsed.partial_success.rejected_spans == 1
    assert "span" in parsed.partial_success.error_message.lower()
    assert await count_spans(app_client, trace) == 1


async def test_negative_tokens_rejected_with_reason(app_client: InProcess) -> None:
    trace = new_trace_id()
    bad = llm_span(trace, input_tokens=-5)
    good = llm_span(trace)
    body, headers = encode(export_request([bad, good]), JSON)
    response = await post(app_client, body, headers)
    assert response.status_code == 200
    partial = response.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "1"
    assert "input_tokens" in partial["errorMessage"]
    assert await count_spans(app_client, trace) == 1


async def test_huge_attribute_is_truncated_not_refused(app_client: InProcess) -> None:
    trace = new_trace_id()
    span = llm_span(trace, attrs={"gen_ai.prompt": "x" * 1_000_000})
    body, headers = encode(export_request([span]))
    response = await post(app_client, body, headers)
    assert response.status_code == 200
    assert ExportTraceServiceResponse.FromString(response.content).partial_success \
        .rejected_spans == 0
    row = (await stored(app_client, trace))[0]
    attributes = json.loads(str(row["attributes"]))
    limit = app_client.state.settings.max_attribute_value_bytes
    assert len(attributes["gen_ai.prompt"].encode()) <= limit
    assert "gen_ai.prompt" in str(attributes["mentat.truncated_attributes"])


async def test_unknown_model_is_stored_unpriced(app_client: InProcess) -> None:
    trace = new_trace_id()
    span = llm_span(trace, model="totally-made-up-model-9000", provider="nowhere")
    body, headers = encode(export_request([span]))
    assert (await post(app_client, body, headers)).status_code == 200
    row = (await stored(app_client, trace))[0]
    assert row["price_source"] == "unpriced"
    assert row["token_cost"] == 0


async def test_bad_inputs_get_their_answer_and_server_keeps_serving(
        app_client: InProcess) -> None:
    before = new_trace_id()
    body, headers = encode(export_request([llm_span(before)]))
    assert (await post(app_client, body, headers)).status_code == 200

    # malformed protobuf → 400 with a google.rpc.Status body
    response = await post(app_client, b"\xff\xff\xff garbage", {"content-type": PROTOBUF})
    assert response.status_code == 400
    assert status_pb2.Status.FromString(response.content).message
    # malformed JSON → 400 with a JSON Status body
    response = await post(app_client, b"{not json", {"content-type": JSON})
    assert response.status_code == 400
    assert response.json()["message"]
    # wrong content type → 415
    response = await post(app_client, b"hello", {"content-type": "text/plain"})
    assert response.status_code == 415
    # unknown encoding → 415
    response = await post(app_client, body, {"content-type": PROTOBUF,
                                             "content-encoding": "br"})
    assert response.status_code == 415
    # gzip bomb: small on the wire, huge once inflated → 413
    bomb = gzip.compress(b"\x00" * (70 * 1024 * 1024))
    assert len(bomb) < app_client.state.settings.max_body_bytes
    response = await post(app_client, bomb, {"content-type": PROTOBUF,
                                             "content-encoding": "gzip"})
    assert response.status_code == 413
    # corrupt gzip → 400
    response = await post(app_client, b"\x1f\x8b\x08\x00broken",
                          {"content-type": PROTOBUF, "content-encoding": "gzip"})
    assert response.status_code == 400

    after = new_trace_id()
    body, headers = encode(export_request([llm_span(after)]), JSON)
    assert (await post(app_client, body, headers)).status_code == 200
    assert await count_spans(app_client, before) == 1
    assert await count_spans(app_client, after) == 1


async def test_oversized_body_is_refused_before_reading(_isolated_data_dir: object) -> None:
    from pathlib import Path

    settings = make_settings(Path(str(_isolated_data_dir)), max_body_bytes=10_000)
    async with open_in_process(settings) as env:
        big = export_request([llm_span(attrs={"pad": "y" * 20_000})])
        body, headers = encode(big)
        response = await post(env, body, headers)
        assert response.status_code == 413
        assert status_pb2.Status.FromString(response.content).code == 3

        # a streamed body without Content-Length is cut off at the cap too
        async def chunks() -> object:
            for _ in range(10):
                yield b"z" * 4096

        response = await env.client.post("/v1/traces", content=chunks(),
                                         headers={"content-type": PROTOBUF})
        assert response.status_code == 413
        small = new_trace_id()
        body, headers = encode(export_request([llm_span(small)]))
        assert (await post(env, body, headers)).status_code == 200


async def test_resent_spans_are_not_double_counted(app_client: InProcess) -> None:
    trace = new_trace_id()
    body, headers = encode(export_request([llm_span(trace), llm_span(trace)]))
    for _ in range(3):
        assert (await post(app_client, body, headers)).status_code == 200
    assert await count_spans(app_client, trace) == 2
