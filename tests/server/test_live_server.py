from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from server_payloads import encode, export_request, llm_span, new_trace_id
from serverkit import LiveServer, make_settings, open_in_process, run_live_server
from websockets.sync.client import connect


def post_trace(server: LiveServer, project: str, model: str, error: bool = False) -> str:
    trace = new_trace_id()
    body, headers = encode(export_request([llm_span(trace, model=model, error=error)],
                                          project_id=project))
    response = httpx.post(f"{server.url}/v1/traces", content=body, headers=headers)
    assert response.status_code == 200
    return trace.hex()


def ws_url(server: LiveServer, query: str) -> str:
    return server.url.replace("http://", "ws://") + "/api/v1/live" + query


def test_live_stream_pushes_only_matching_spans(live_server: LiveServer) -> None:
    with connect(ws_url(live_server, "?filter=project_id=acme,status=error"),
                 open_timeout=10) as ws:
        hello = json.loads(ws.recv(timeout=10))
        assert hello["ok"] and hello["subscribed"] == {"project_id": "acme", "status": "error"}
        post_trace(live_server, "globex", "gpt-4o", error=True)   # wrong project
        post_trace(live_server, "acme", "gpt-4o")                 # not an error
        wanted = post_trace(live_server, "acme", "gpt-4o-mini", error=True)
        span = json.loads(ws.recv(timeout=10))
        assert span["trace_id"] == wanted and span["project_id"] == "acme"
        assert span["status"] == "error" and isinstance(span["total_cost"], str)
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.5)


def test_live_stream_min_cost_and_model(live_server: LiveServer) -> None:
    with connect(ws_url(live_server, "?filter=model=gpt-4o,min_cost=0.0000001"),
                 open_timeout=10) as ws:
        json.loads(ws.recv(timeout=10))
        post_trace(live_server, "acme", "unknown-model-abc")  # unpriced: cost 0
        wanted = post_trace(live_server, "acme", "gpt-4o")
        assert json.loads(ws.recv(timeout=10))["trace_id"] == wanted


def test_live_stream_bad_filter_is_refused(live_server: LiveServer) -> None:
    with connect(ws_url(live_server, "?filter=colour=red"), open_timeout=10) as ws:
        answer = json.loads(ws.recv(timeout=10))
        assert answer["ok"] is False and answer["status"] == 400
        assert answer["errors"][0]["field"] == "filter.colour"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def grpc_server(_isolated_data_dir: Path) -> Iterator[tuple[LiveServer, int]]:
    port = _free_port()
    settings = make_settings(_isolated_data_dir, grpc_port=port)
    for server in run_live_server(settings):
        yield server, server.state.grpc_port


def test_grpc_receiver_with_real_otel_exporter(grpc_server: tuple[LiveServer, int]) -> None:
    server, port = grpc_server
    provider = TracerProvider(resource=Resource.create({"service.name": "grpc-agent",
                                                        "mentat.project_id": "viagrpc"}))
    exporter = OTLPSpanExporter(endpoint=f"127.0.0.1:{port}", insecure=True, timeout=10)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("chat gpt-4o") as span:
        span.set_attribute("gen_ai.provider.name", "openai")
        span.set_attribute("gen_ai.request.model", "gpt-4o")
        span.set_attribute("gen_ai.usage.input_tokens", 100)
        span.set_attribute("gen_ai.usage.output_tokens", 10)
        trace_id = format(span.get_span_context().trace_id, "032x")
    provider.shutdown()
    detail = httpx.get(f"{server.url}/api/v1/traces/{trace_id}").json()
    node = detail["roots"][0]
    assert node["project_id"] == "viagrpc" and node["request_model"] == "gpt-4o"
    assert float(node["total_cost"]) > 0
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'mentatlab_spans_accepted_total{receiver="otlp_grpc"} 1.0' in metrics


async def test_grpc_stays_on_when_auth_is_required(_isolated_data_dir: Path) -> None:
    """It checks keys itself (tests/receivers/test_otlp_grpc.py, tests/server/test_tls.py)."""
    port = _free_port()
    settings = make_settings(_isolated_data_dir, grpc_port=port, auth_required=True)
    async with open_in_process(settings) as env:
        assert env.state.grpc_port == port
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) == 0


def test_live_stream_requires_key_and_scopes_to_it(_isolated_data_dir: Path) -> None:
    settings = make_settings(_isolated_data_dir, auth_required=True)
    for server in run_live_server(settings):
        control = server.state.control
        control.create_org("Acme", "acme")
        control.create_project("acme", "web", "web")
        key = control.create_api_key("acme", "web", "tail", role="admin").key
        with connect(ws_url(server, ""), open_timeout=10) as ws:
            answer = json.loads(ws.recv(timeout=10))
            assert answer["status"] == 401 and answer["ok"] is False
        with connect(ws_url(server, f"?api_key={key}"), open_timeout=10) as ws:
            hello = json.loads(ws.recv(timeout=10))
            assert hello["subscribed"] == {"org_id": "acme", "project_id": "web"}
            body, headers = encode(export_request([llm_span()], project_id="other"))
            response = httpx.post(f"{server.url}/v1/traces", content=body,
                                  headers={**headers, "x-api-key": key})
            assert response.status_code == 200
            span = json.loads(ws.recv(timeout=10))
            assert span["project_id"] == "web" and span["org_id"] == "acme"
