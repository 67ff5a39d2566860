"""Real OTLP receivers on 127.0.0.1 for the forwarding tests (the wire format a collector takes).

``OtlpHttpTarget``: a threaded HTTP server answering ``POST /v1/traces`` the way an
OpenTelemetry Collector does: it decodes each ``ExportTraceServiceRequest`` (gzip
undone), records it with its headers, and answers 200, or a scripted failure status
with ``Retry-After``. ``OtlpGrpcTarget``: a ``grpc.server`` TraceService doing the same.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span


@dataclass
class Received:
    requests: list[ExportTraceServiceRequest] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    times_s: list[float] = field(default_factory=list)
    """Monotonic arrival time of every request, answered or failed."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def spans(self) -> list[Span]:
        with self.lock:
            return [sp for req in self.requests for rs in req.resource_spans
                    for ss in rs.scope_spans for sp in ss.spans]

    def wait_spans(self, count: int, timeout_s: float = 20.0) -> list[Span]:
        deadline = time.monotonic() + timeout_s
        while True:
            spans = self.spans()
            if len(spans) >= count or time.monotonic() > deadline:
                return spans
            time.sleep(0.05)


class OtlpHttpTarget:
    """``POST /v1/traces`` receiver; ``fail_next`` scripts failures (status, Retry-After)."""

    def __init__(self, port: int = 0) -> None:
        self.received = Received()
        self.fail_next: list[tuple[int, str | None]] = []
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> OtlpHttpTarget:
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 — http.server's name
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                received = target.received
                with received.lock:
                    received.times_s.append(time.monotonic())
                    failure = target.fail_next.pop(0) if target.fail_next else None
                if failure is not None:
                    self.send_response(failure[0])
                    if failure[1] is not None:
                        self.send_header("Retry-After", failure[1])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if self.path != "/v1/traces" or (
                        self.headers.get("content-type") != "application/x-protobuf"):
                    self.send_response(404 if self.path != "/v1/traces" else 415)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                request = ExportTraceServiceRequest.FromString(body)
                with received.lock:
                    received.requests.append(request)
                    received.headers.append({k.lower(): v for k, v in self.headers.items()})
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        self._port = self.port  # a restart binds the same port
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class OtlpGrpcTarget(trace_service_pb2_grpc.TraceServiceServicer):
    """A gRPC TraceService recording every request and its metadata."""

    def __init__(self) -> None:
        self.received = Received()
        self._server: Any = None
        self.port = 0

    def Export(self, request: ExportTraceServiceRequest,  # noqa: N802 — gRPC method
               context: Any) -> ExportTraceServiceResponse:
        with self.received.lock:
            self.received.times_s.append(time.monotonic())
            self.received.requests.append(request)
            self.received.headers.append(dict(context.invocation_metadata()))
        return ExportTraceServiceResponse()

    def start(self) -> OtlpGrpcTarget:
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(None)
            self._server = None


def wait_until(check: Callable[[], bool], timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
