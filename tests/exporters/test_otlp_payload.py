from __future__ import annotations

import json

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from server_payloads import export_request, llm_span, otlp_json

from mentatlab.errors import ConfigError, DecodeError, FieldError
from mentatlab.exporters.otlp_payload import (
    drop_rejected,
    json_to_protobuf,
    parse_forward_endpoint,
    parse_headers,
)


@pytest.mark.parametrize(("endpoint", "protocol", "url"), [
    ("http://collector:4318", "http", "http://collector:4318/v1/traces"),
    ("http://collector:4318/", "http", "http://collector:4318/v1/traces"),
    ("https://tempo.example/otlp", "http", "https://tempo.example/otlp/v1/traces"),
    ("http://c:4318/custom/v1/traces", "http", "http://c:4318/custom/v1/traces"),
    ("grpc://jaeger:4317", "grpc", "jaeger:4317"),
    ("grpcs://jaeger", "grpc", "jaeger:4317"),
])
def test_endpoint_forms(endpoint: str, protocol: str, url: str) -> None:
    target = parse_forward_endpoint(endpoint)
    assert (target.protocol, target.url) == (protocol, url)
    assert target.secure == endpoint.startswith(("https", "grpcs"))


@pytest.mark.parametrize("endpoint", ["ftp://x:1", "collector:4318", "http://"])
def test_bad_endpoint_is_a_config_error(endpoint: str) -> None:
    with pytest.raises(ConfigError, match="forward_otlp_endpoint"):
        parse_forward_endpoint(endpoint)


def test_headers_are_url_decoded() -> None:
    assert parse_headers("authorization=Bearer%20abc, x-scope-orgid=t1,") == {
        "authorization": "Bearer abc", "x-scope-orgid": "t1"}
    with pytest.raises(ConfigError, match="key=value"):
        parse_headers("novalue")


def _request_with_link() -> ExportTraceServiceRequest:
    parent = llm_span()
    child = llm_span(parent.trace_id, parent=parent.span_id, attrs={"n": 3, "f": 0.5,
                                                                   "ok": True})
    link = child.links.add()
    link.trace_id, link.span_id = parent.trace_id, parent.span_id
    child.status.code = 2
    return export_request([parent, child])


def test_otlp_json_converts_to_the_same_protobuf() -> None:
    request = _request_with_link()
    doc = otlp_json(request)
    for span in doc["resourceSpans"][0]["scopeSpans"][0]["spans"]:
        for link in span.get("links", []):  # otlp_json leaves link ids base64: make them hex
            link["traceId"] = request.resource_spans[0].scope_spans[0].spans[0].trace_id.hex()
            link["spanId"] = request.resource_spans[0].scope_spans[0].spans[0].span_id.hex()
    converted = ExportTraceServiceRequest.FromString(json_to_protobuf(json.dumps(doc).encode()))
    assert converted == request


def test_json_snake_case_and_unknown_fields() -> None:
    span = llm_span()
    doc = {"resource_spans": [{"scope_spans": [{"spans": [
        {"trace_id": span.trace_id.hex(), "span_id": span.span_id.hex(), "name": "n",
         "kind": 3, "startTimeUnixNano": "5", "futureField": 1}]}]}]}
    out = ExportTraceServiceRequest.FromString(json_to_protobuf(json.dumps(doc).encode()))
    got = out.resource_spans[0].scope_spans[0].spans[0]
    assert (got.trace_id, got.span_id, got.kind, got.start_time_unix_nano) == (
        span.trace_id, span.span_id, Span.SPAN_KIND_CLIENT, 5)


def test_json_drops_decoder_refused_spans_before_converting() -> None:
    good = llm_span()
    doc = otlp_json(export_request([good, llm_span()]))
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"][1]["traceId"] = {"not": "an id"}
    with pytest.raises(DecodeError):
        json_to_protobuf(json.dumps(doc).encode())
    rejected = [FieldError("resourceSpans[0].scopeSpans[0].spans[1].traceId", "bad")]
    out = ExportTraceServiceRequest.FromString(
        json_to_protobuf(json.dumps(doc).encode(), rejected))
    assert list(out.resource_spans[0].scope_spans[0].spans) == [good]


def test_drop_rejected_by_position_span_id_and_resource() -> None:
    a, b, c = llm_span(), llm_span(), llm_span()
    request = export_request([a, b, c])
    request.resource_spans.append(export_request([llm_span()], service="other")
                                  .resource_spans[0])
    body = request.SerializeToString()
    assert drop_rejected(body, []) is body
    rejected = [FieldError("resourceSpans[0].scopeSpans[0].spans[0].traceId", "bad"),
                FieldError(f"{c.span_id.hex()}:gen_ai.usage.input_tokens", "negative"),
                FieldError("resourceSpans[1].resource", "malformed")]
    out = ExportTraceServiceRequest.FromString(drop_rejected(body, rejected))
    assert len(out.resource_spans) == 1
    assert list(out.resource_spans[0].scope_spans[0].spans) == [b]
    assert out.resource_spans[0].resource == request.resource_spans[0].resource
