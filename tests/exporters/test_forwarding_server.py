"""A real MentatLab server (uvicorn on 127.0.0.1) forwarding to real OTLP targets."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from forward_target import OtlpGrpcTarget, OtlpHttpTarget, wait_until
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link
from server_payloads import JSON, encode, export_request, llm_span
from serverkit import LiveServer, make_settings, open_in_process, run_live_server

from mentatlab.errors import ConfigError
from serve_process import free_port


@contextlib.contextmanager
def _server(data_dir: Path, endpoint: str, **overrides: Any) -> Iterator[LiveServer]:
    settings = make_settings(data_dir, forward_otlp_endpoint=endpoint,
                             ingest_workers=overrides.pop("ingest_workers", 0),
                             forward_linger_s=overrides.pop("forward_linger_s", 0.05),
                             **overrides)
    yield from run_live_server(settings)


def _emit(exporter: SpanExporter) -> list[ReadableSpan]:
    """Three spans (a parent, a child with a link, an error) through ``exporter``."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "fwd-agent",
                                                        "mentat.project_id": "fwd"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("fwd-test", "1.2")
    with tracer.start_as_current_span("agent run") as root:
        root.set_attribute("gen_ai.operation.name", "invoke_agent")
        with tracer.start_as_current_span(
                "chat gpt-4o", links=[Link(root.get_span_context(), {"why": "test"})]) as chat:
            chat.set_attribute("gen_ai.provider.name", "openai")
            chat.set_attribute("gen_ai.request.model", "gpt-4o")
            chat.set_attribute("gen_ai.usage.input_tokens", 120)
            chat.set_attribute("tags", ["a", "b"])
            chat.add_event("retry", {"attempt": 2})
        with tracer.start_as_current_span("tool search") as tool:
            tool.set_status(2, "boom")
    provider.shutdown()
    return list(memory.get_finished_spans())


def _by_id(spans: list[Span]) -> dict[bytes, bytes]:
    return {sp.span_id: sp.SerializeToString() for sp in spans}


def _assert_same_spans(sent: list[ReadableSpan], target_requests: list[Any]) -> None:
    expected = encode_spans(sent)  # the request the OTel SDK put on the wire
    want = [sp for rs in expected.resource_spans for ss in rs.scope_spans for sp in ss.spans]
    got = [sp for req in target_requests for rs in req.resource_spans
           for ss in rs.scope_spans for sp in ss.spans]
    assert _by_id(got) == _by_id(want)  # ids, names, attributes, events, links byte-equal
    resources = {rs.resource.SerializeToString() for req in target_requests
                 for rs in req.resource_spans}
    assert resources == {expected.resource_spans[0].resource.SerializeToString()}


def test_sdk_otlp_http_spans_are_forwarded_unchanged(
        _isolated_data_dir: Path, http_target: OtlpHttpTarget) -> None:
    with _server(_isolated_data_dir, http_target.url, forward_otlp_compression="gzip",
                          forward_otlp_headers="authorization=Bearer%20s3cret") as server:
        exporter = HttpSpanExporter(endpoint=f"{server.url}/v1/traces",
                                    compression=Compression.Gzip, timeout=10)
        sent = _emit(exporter)
        assert len(http_target.received.wait_spans(3)) == 3
        _assert_same_spans(sent, http_target.received.requests)
        assert http_target.received.headers[0]["authorization"] == "Bearer s3cret"
        assert wait_until(lambda: server.state.ingestor.forwarder.stats.spans_sent == 3, 5)
        metrics = httpx.get(f"{server.url}/metrics").text
        assert 'mentatlab_forward_spans_total{outcome="sent"} 3.0' in metrics
        assert "mentatlab_forward_queue_bytes 0.0" in metrics


def test_sdk_otlp_grpc_spans_are_forwarded_over_grpc(
        _isolated_data_dir: Path, grpc_target: OtlpGrpcTarget) -> None:
    with _server(_isolated_data_dir, f"grpc://127.0.0.1:{grpc_target.port}",
                          grpc_port=free_port(), forward_otlp_headers="x-scope-orgid=t1") as server:
        port = server.state.grpc_port
        sent = _emit(GrpcSpanExporter(endpoint=f"127.0.0.1:{port}", insecure=True, timeout=10))
        assert len(grpc_target.received.wait_spans(3)) == 3
        _assert_same_spans(sent, grpc_target.received.requests)
        assert grpc_target.received.headers[0]["x-scope-orgid"] == "t1"


def test_json_body_is_forwarded_as_the_same_protobuf(
        _isolated_data_dir: Path, http_target: OtlpHttpTarget) -> None:
    request = export_request([llm_span(attrs={"n": 7, "ok": True, "f": 1.5}),
                              llm_span(error=True)])
    with _server(_isolated_data_dir, http_target.url) as server:
        body, headers = encode(request, JSON, gzipped=True)
        answer = httpx.post(f"{server.url}/v1/traces", content=body, headers=headers)
        assert answer.status_code == 200 and answer.json() == {}
        assert len(http_target.received.wait_spans(2)) == 2
        assert http_target.received.requests == [request]


def test_grpc_partial_success_forwards_the_accepted_spans(
        _isolated_data_dir: Path, http_target: OtlpHttpTarget) -> None:
    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

    good = llm_span()
    bad = llm_span()
    bad.span_id = b"\x02" * 4  # a 4-byte span id: refused by MentatLab's decoder
    with _server(_isolated_data_dir, http_target.url, grpc_port=free_port()) as server:
        port = server.state.grpc_port
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = trace_service_pb2_grpc.TraceServiceStub(channel)
            answer = stub.Export(export_request([bad, good]), timeout=10)
            assert answer.partial_success.rejected_spans == 1
            raw_export = channel.unary_unary(  # undecodable bytes on the wire: refused
                "/opentelemetry.proto.collector.trace.v1.TraceService/Export")
            with pytest.raises(grpc.RpcError) as refused:
                raw_export(b"\x0a\xff", timeout=10)
            assert refused.value.code() != grpc.StatusCode.OK  # type: ignore[attr-defined]
        assert http_target.received.wait_spans(1) == [good]
        time.sleep(0.3)
        assert http_target.received.spans() == [good]


def test_only_accepted_spans_are_forwarded(
        _isolated_data_dir: Path, http_target: OtlpHttpTarget) -> None:
    good, marker = llm_span(), llm_span(name="marker")
    bad = llm_span()
    bad.trace_id = b"\x01" * 8  # an 8-byte trace id: refused by MentatLab's decoder
    partial = export_request([bad, good])
    json_partial = json.loads(encode(export_request([llm_span(name="json ok"), llm_span()]),
                                     JSON)[0])
    json_partial["resourceSpans"][0]["scopeSpans"][0]["spans"][1]["traceId"] = "zz"
    with _server(_isolated_data_dir, http_target.url) as server:
        url = f"{server.url}/v1/traces"
        proto = {"content-type": "application/x-protobuf"}
        assert httpx.post(url, content=b"\x0a\xff\xff", headers=proto).status_code == 400
        assert httpx.post(url, content=partial.SerializeToString(),
                          headers={"content-type": "text/plain"}).status_code == 415
        answer = httpx.post(url, content=partial.SerializeToString(), headers=proto)
        assert answer.status_code == 200  # partial success: 1 span refused
        answer = httpx.post(url, json=json_partial)
        assert answer.status_code == 200 and answer.json()["partialSuccess"]["rejectedSpans"]
        only_bad = export_request([bad]).SerializeToString()
        assert httpx.post(url, content=only_bad, headers=proto).status_code == 200
        httpx.post(url, content=export_request([marker]).SerializeToString(), headers=proto)
        spans = http_target.received.wait_spans(3)
        time.sleep(0.3)  # FIFO: nothing sent before the marker can still arrive after it
        names = [sp.name for sp in http_target.received.spans()]
        assert names == ["chat gpt-4o", "json ok", "marker"], names
        assert spans[0] == good
        stats = server.state.ingestor.forwarder.stats
        assert wait_until(lambda: stats.spans_sent == 3, 5) and stats.spans_failed == 0


def test_target_down_ingest_unaffected_then_resumes(
        _isolated_data_dir: Path) -> None:
    port = free_port()  # the target is down: connections refused
    request = export_request([llm_span() for _ in range(5)])
    size = len(request.SerializeToString())
    queue_bytes = size * 4
    with _server(_isolated_data_dir, f"http://127.0.0.1:{port}",
                          forward_queue_bytes=queue_bytes, forward_timeout_s=2.0) as server:
        url = f"{server.url}/v1/traces"
        statuses = []
        for _ in range(30):
            trace = export_request([llm_span() for _ in range(5)])
            statuses.append(httpx.post(url, content=trace.SerializeToString(),
                                       headers={"content-type": "application/x-protobuf"}
                                       ).status_code)
        assert statuses == [200] * 30
        stats = server.state.ingestor.forwarder.stats
        assert stats.queue_bytes <= queue_bytes  # memory bounded by forward_queue_bytes
        # kept: the queue's 4 requests and the batch in flight (a few, within the linger)
        assert stats.requests_dropped >= 20
        assert stats.spans_dropped == 5 * stats.requests_dropped
        metrics = httpx.get(f"{server.url}/metrics").text
        assert f'mentatlab_forward_spans_total{{outcome="dropped"}} {stats.spans_dropped}.0' \
            in metrics
        assert 'mentatlab_spans_accepted_total{receiver="otlp_http"} 150.0' in metrics
        kept = 30 - stats.requests_dropped
        target = OtlpHttpTarget(port).start()
        try:
            assert len(target.received.wait_spans(5 * kept, 40)) == 5 * kept
            httpx.post(url, content=export_request([llm_span(name="after")]).SerializeToString(),
                       headers={"content-type": "application/x-protobuf"})
            assert wait_until(lambda: any(s.name == "after" for s in target.received.spans()))
            assert wait_until(lambda: stats.spans_sent == 5 * kept + 1, 5)  # counted on the 200
            assert stats.spans_failed == 0
            assert stats.send_errors > 0
        finally:
            target.stop()


def test_forwarding_is_off_by_default(_isolated_data_dir: Path) -> None:
    for server in run_live_server(make_settings(_isolated_data_dir, ingest_workers=0)):
        assert server.state.ingestor.forwarder is None
        assert "mentatlab_forward" not in httpx.get(f"{server.url}/metrics").text


@pytest.mark.parametrize(("name", "value"), [("forward_otlp_compression", "zstd"),
                                           ("forward_otlp_headers", "novalue"),
                                           ("forward_queue_bytes", 0)])
async def test_bad_forward_setting_fails_startup(_isolated_data_dir: Path, name: str,
                                                 value: object) -> None:
    settings = make_settings(_isolated_data_dir, forward_otlp_endpoint="http://127.0.0.1:1",
                             ingest_workers=0, **{name: value})
    with pytest.raises(ConfigError, match=name):
        async with open_in_process(settings) as _:
            pass
