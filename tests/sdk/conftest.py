from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import mentatlab
from mentatlab.sdk import configure


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


@dataclass
class ReceivedSpan:
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    attributes: dict[str, Any]
    resource: dict[str, Any]


@dataclass
class OtlpReceiver:
    """A tiny OTLP/HTTP receiver: parses ExportTraceServiceRequest bodies into spans."""

    endpoint: str = ""
    spans: list[ReceivedSpan] = field(default_factory=list)
    num_requests: int = 0
    authorizations: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, body: bytes) -> None:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        with self.lock:
            self.num_requests += 1
            for resource_spans in request.resource_spans:
                resource = {kv.key: _value(kv.value) for kv in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    for s in scope_spans.spans:
                        self.spans.append(ReceivedSpan(
                            s.trace_id.hex(), s.span_id.hex(), s.parent_span_id.hex(), s.name,
                            {kv.key: _value(kv.value) for kv in s.attributes}, resource))

    def wait_for(self, num_spans: int, timeout_s: float = 10.0) -> list[ReceivedSpan]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.spans) >= num_spans:
                    return list(self.spans)
            time.sleep(0.02)
        raise AssertionError(f"expected {num_spans} spans, got {len(self.spans)}: {self.spans}")

    def by_name(self) -> dict[str, ReceivedSpan]:
        with self.lock:
            return {s.name: s for s in self.spans}


@pytest.fixture
def otlp_receiver() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server API
            body = self.rfile.read(int(self.headers["Content-Length"]))
            receiver.authorizations.append(self.headers.get("Authorization", ""))
            receiver.add(body)
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    yield receiver
    server.shutdown()
    server.server_close()


@pytest.fixture
def span_exporter() -> Iterator[InMemorySpanExporter]:
    """The SDK exporting synchronously to an in-memory exporter."""
    exporter = InMemorySpanExporter()
    mentatlab.init(exporter=exporter, batch=False, service_name="sdk-tests")
    yield exporter
    mentatlab.shutdown()


@pytest.fixture(autouse=True)
def _clean_sdk_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("TRACEPARENT", "TRACESTATE", "BAGGAGE", "MENTATLAB_ENDPOINT", "MENTATLAB_ORG",
                 "MENTATLAB_PROJECT", "OTEL_EXPORTER_OTLP_ENDPOINT",
                 "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    yield
    state = configure.get_state()
    if state is not None:
        mentatlab.shutdown(timeout_s=1.0)
