"""OTLP request builders for the server tests (real protobuf messages, no mocks)."""

from __future__ import annotations

import base64
import gzip
import json
import os
import time
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

PROTOBUF = "application/x-protobuf"
JSON = "application/json"


def new_trace_id() -> bytes:
    return os.urandom(16)


def new_span_id() -> bytes:
    return os.urandom(8)


def _value(v: Any) -> AnyValue:
    if isinstance(v, bool):
        return AnyValue(bool_value=v)
    if isinstance(v, int):
        return AnyValue(int_value=v)
    if isinstance(v, float):
        return AnyValue(double_value=v)
    return AnyValue(string_value=str(v))


def kvs(attrs: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=k, value=_value(v)) for k, v in attrs.items()]


def llm_span(trace_id: bytes | None = None, *, span_id: bytes | None = None,
             parent: bytes = b"", name: str = "chat gpt-4o", model: str = "gpt-4o",
             provider: str = "openai", input_tokens: int | None = 100,
             output_tokens: int | None = 50, duration_ms: int = 120,
             attrs: dict[str, Any] | None = None, error: bool = False) -> Span:
    start_ns = time.time_ns() - duration_ms * 1_000_000
    attributes: dict[str, Any] = {"gen_ai.operation.name": "chat",
                                  "gen_ai.provider.name": provider,
                                  "gen_ai.request.model": model}
    if input_tokens is not None:
        attributes["gen_ai.usage.input_tokens"] = input_tokens
    if output_tokens is not None:
        attributes["gen_ai.usage.output_tokens"] = output_tokens
    attributes.update(attrs or {})
    span = Span(trace_id=trace_id or new_trace_id(), span_id=span_id or new_span_id(),
                parent_span_id=parent, name=name, kind=Span.SPAN_KIND_CLIENT,
                start_time_unix_nano=start_ns,
                end_time_unix_nano=start_ns + duration_ms * 1_000_000,
                attributes=kvs(attributes))
    if error:
        span.status.code = 2
        span.status.message = "boom"
    return span


def export_request(spans: list[Span], project_id: str = "acme",
                   service: str = "agent-svc") -> ExportTraceServiceRequest:
    resource_attrs = {"service.name": service, "mentat.project_id": project_id}
    return ExportTraceServiceRequest(resource_spans=[ResourceSpans(
        resource={"attributes": kvs(resource_attrs)},
        scope_spans=[ScopeSpans(scope={"name": "tests"}, spans=spans)])])


def otlp_json(request: ExportTraceServiceRequest) -> dict[str, Any]:
    """OTLP/JSON per spec: ids as hex, not proto3-JSON base64."""
    data: dict[str, Any] = json_format.MessageToDict(request)
    for rs in data.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for sp in ss.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if sp.get(key):
                        sp[key] = base64.b64decode(sp[key]).hex()
    return data


def encode(request: ExportTraceServiceRequest, content_type: str = PROTOBUF,
           gzipped: bool = False) -> tuple[bytes, dict[str, str]]:
    if content_type == JSON:
        body = json.dumps(otlp_json(request)).encode()
    else:
        body = request.SerializeToString()
    headers = {"content-type": content_type}
    if gzipped:
        body = gzip.compress(body)
        headers["content-encoding"] = "gzip"
    return body, headers
