from __future__ import annotations

from collections.abc import Callable

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode


def make_sdk_spans(n: int = 3) -> list[ReadableSpan]:
    """Real spans from the OpenTelemetry SDK: a root with n-1 children."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create(
        {"service.name": "billing-agent", "mentat.org_id": "acme"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("agent.lib", "1.2.3")
    with tracer.start_as_current_span("run", kind=SpanKind.SERVER) as root:
        root.set_attribute("gen_ai.usage.input_tokens", 12)
        root.set_attribute("tags", ["a", "b"])
        root.add_event("thinking", {"step": 1})
        for i in range(n - 1):
            with tracer.start_as_current_span(f"child-{i}", kind=SpanKind.CLIENT) as child:
                child.set_attribute("ratio", 0.5)
                child.set_status(Status(StatusCode.ERROR, "boom"))
    provider.shutdown()
    return list(exporter.get_finished_spans())


@pytest.fixture
def sdk_request() -> ExportTraceServiceRequest:
    return encode_spans(make_sdk_spans())


@pytest.fixture
def span_factory() -> Callable[..., dict[str, object]]:
    def make(**overrides: object) -> dict[str, object]:
        span: dict[str, object] = {
            "traceId": "5B8EFFF798038103D269B633813FC60C",
            "spanId": "EEE19B7EC3C1B174",
            "parentSpanId": "",
            "name": "chat gpt-4o",
            "kind": 3,
            "startTimeUnixNano": "1700000000000000000",
            "endTimeUnixNano": "1700000001500000000",
            "attributes": [{"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}}],
            "status": {"code": 1},
        }
        span.update(overrides)
        return span
    return make


def build_otlp_json(*spans: dict[str, object]) -> dict[str, object]:
    return {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]},
        "scopeSpans": [{"scope": {"name": "lib", "version": "0.1"}, "spans": list(spans)}],
    }]}


@pytest.fixture
def otlp_json() -> Callable[..., dict[str, object]]:
    return build_otlp_json


@pytest.fixture
def otlp_http_body() -> Callable[[], tuple[bytes, dict[str, str]]]:
    """What the real OTLP/HTTP exporter (gzip) puts on the wire, captured by a tiny server."""
    import http.server
    import threading

    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    captured: list[tuple[bytes, dict[str, str]]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            captured.append((self.rfile.read(length),
                             {k.lower(): v for k, v in self.headers.items()}))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    def capture() -> tuple[bytes, dict[str, str]]:
        server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            exporter = OTLPSpanExporter(
                endpoint=f"http://127.0.0.1:{server.server_port}/v1/traces",
                compression=Compression.Gzip)
            exporter.export(make_sdk_spans(3))
            exporter.shutdown()
        finally:
            server.shutdown()
            server.server_close()
        return captured[0]

    return capture


@pytest.fixture
def sdk_spans() -> Callable[[int], list[ReadableSpan]]:
    return make_sdk_spans
