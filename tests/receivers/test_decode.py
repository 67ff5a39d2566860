from __future__ import annotations

import base64
import math
from collections.abc import Callable

import orjson
import pytest
from google.protobuf import json_format
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from mentatlab.errors import DecodeError
from mentatlab.receivers.decode import (
    decode_export_request,
    decode_otlp_json,
    decode_otlp_protobuf,
)

SpanFactory = Callable[..., dict[str, object]]
JsonFactory = Callable[..., dict[str, object]]


def test_sdk_spans_decode_from_protobuf(sdk_request: ExportTraceServiceRequest) -> None:
    batch = decode_otlp_protobuf(sdk_request.SerializeToString())
    assert batch.rejected == []
    assert len(batch.spans) == 3
    by_name = {s.name: s for s in batch.spans}
    root = by_name["run"]
    assert root.kind == "server"
    assert root.parent_span_id == ""
    assert len(root.trace_id) == 32 and root.trace_id == root.trace_id.lower()
    assert root.attributes["gen_ai.usage.input_tokens"] == 12
    assert root.attributes["tags"] == ["a", "b"]
    assert root.events[0]["name"] == "thinking"
    assert root.events[0]["attributes"] == {"step": 1}
    assert root.resource["service.name"] == "billing-agent"
    assert root.resource["mentat.org_id"] == "acme"
    assert (root.scope_name, root.scope_version) == ("agent.lib", "1.2.3")
    child = by_name["child-0"]
    assert child.kind == "client"
    assert child.parent_span_id == root.span_id
    assert child.status_code == 2 and child.status_message == "boom"
    assert child.attributes["ratio"] == 0.5
    assert child.end_time_ns >= child.start_time_ns > 0


def test_profiles_string_index_reads_as_an_empty_value(
        sdk_request: ExportTraceServiceRequest) -> None:
    # AnyValue.string_value_strindex belongs to the profiles signal; it used to fail the
    # whole request with a KeyError (a 500) instead of reading as no value.
    span = sdk_request.resource_spans[0].scope_spans[0].spans[0]
    added = span.attributes.add()
    added.key = "indexed"
    added.value.string_value_strindex = 7
    batch = decode_otlp_protobuf(sdk_request.SerializeToString())
    assert batch.rejected == []
    assert batch.spans[0].attributes["indexed"] is None


def test_json_and_protobuf_agree(sdk_request: ExportTraceServiceRequest) -> None:
    # protobuf's own JSON printer: lowerCamelCase, base64 ids, enum names, int64 strings
    body = json_format.MessageToJson(sdk_request).encode()
    from_json = decode_otlp_json(body)
    from_pb = decode_export_request(sdk_request)
    assert from_json.rejected == []
    assert from_json.spans == from_pb.spans


def test_snake_case_names_are_read(sdk_request: ExportTraceServiceRequest) -> None:
    body = json_format.MessageToJson(sdk_request, preserving_proto_field_name=True).encode()
    assert b"resource_spans" in body
    assert decode_otlp_json(body).spans == decode_export_request(sdk_request).spans


def test_json_lenient_forms(otlp_json: JsonFactory, span_factory: SpanFactory) -> None:
    span = span_factory(
        kind="SPAN_KIND_CLIENT", status={"code": "STATUS_CODE_ERROR", "message": "x"},
        attributes=[
            {"key": "i", "value": {"intValue": "9007199254740993"}},
            {"key": "d", "value": {"doubleValue": "NaN"}},
            {"key": "d2", "value": {"double_value": 2}},
            {"key": "b", "value": {"bytesValue": base64.b64encode(b"\x01\xff").decode()}},
            {"key": "arr", "value": {"arrayValue": {"values": [{"boolValue": True}, {}]}}},
            {"key": "kv", "value": {"kvlistValue": {"values": [
                {"key": "n", "value": {"intValue": 3}}]}}},
            {"key": "empty"},
        ],
        events=[{"name": "e", "timeUnixNano": 1700000000100000000, "attributes": []}],
        links=[{"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "00f067aa0ba902b7"}])
    batch = decode_otlp_json(orjson.dumps(otlp_json(span)))
    assert batch.rejected == []
    (raw,) = batch.spans
    assert raw.trace_id == "5b8efff798038103d269b633813fc60c"
    assert raw.span_id == "eee19b7ec3c1b174"
    assert raw.kind == "client"
    assert (raw.status_code, raw.status_message) == (2, "x")
    a = raw.attributes
    assert a["i"] == 9007199254740993
    assert math.isnan(a["d"]) and a["d2"] == 2.0
    assert a["b"] == "01ff"
    assert a["arr"] == [True, None]
    assert a["kv"] == {"n": 3}
    assert a["empty"] is None
    assert raw.events == [{"name": "e", "time_ns": 1700000000100000000, "attributes": {}}]
    assert raw.links[0]["span_id"] == "00f067aa0ba902b7"
    assert raw.resource == {"service.name": "svc"}
    assert raw.start_time_ns == 1700000000000000000


@pytest.mark.parametrize(("override", "field", "reason_part"), [
    ({"traceId": "00000000000000000000000000000000"}, "traceId", "non-zero"),
    ({"traceId": "abcd"}, "traceId", "16 non-zero bytes"),
    ({"traceId": "xyz" * 10 + "ab"}, "traceId", "hex"),
    ({"traceId": ""}, "traceId", "16 non-zero bytes"),
    ({"spanId": "0000000000000000"}, "spanId", "non-zero"),
    ({"spanId": "zz" * 8}, "spanId", "hex"),
    ({"parentSpanId": "abcdef"}, "parentSpanId", "8 bytes"),
    ({"endTimeUnixNano": "1"}, "endTimeUnixNano", "not before start"),
    ({"startTimeUnixNano": "0"}, "startTimeUnixNano", "start time"),
    ({"kind": "SPAN_KIND_BOGUS"}, "kind", "enum"),
])
def test_bad_span_is_rejected_and_others_kept(
    otlp_json: JsonFactory, span_factory: SpanFactory, override: dict[str, object], field: str,
    reason_part: str,
) -> None:
    good = span_factory()
    bad = span_factory(**override)
    batch = decode_otlp_json(orjson.dumps(otlp_json(good, good, bad)))
    assert len(batch.spans) == 2
    (error,) = batch.rejected
    assert error.field == f"resourceSpans[0].scopeSpans[0].spans[2].{field}"
    assert reason_part in error.reason


def test_malformed_attribute_rejects_only_its_span(
    otlp_json: JsonFactory, span_factory: SpanFactory
) -> None:
    bad = span_factory(attributes=[{"key": "x", "value": {"intValue": "twelve"}}])
    batch = decode_otlp_json(orjson.dumps(otlp_json(bad, span_factory())))
    assert len(batch.spans) == 1
    assert batch.rejected[0].field == "resourceSpans[0].scopeSpans[0].spans[0].attributes"


def test_all_zero_parent_means_root(otlp_json: JsonFactory, span_factory: SpanFactory) -> None:
    batch = decode_otlp_json(orjson.dumps(otlp_json(span_factory(parentSpanId="0" * 16))))
    assert batch.spans[0].parent_span_id == ""


def test_protobuf_invalid_ids_rejected(sdk_request: ExportTraceServiceRequest) -> None:
    spans = sdk_request.resource_spans[0].scope_spans[0].spans
    spans[0].trace_id = b"\x00" * 16
    spans[1].span_id = b"\x01" * 7
    batch = decode_otlp_protobuf(sdk_request.SerializeToString())
    assert len(batch.spans) == 1
    assert [e.field for e in batch.rejected] == [
        "resourceSpans[0].scopeSpans[0].spans[0].traceId",
        "resourceSpans[0].scopeSpans[0].spans[1].spanId",
    ]


@pytest.mark.parametrize("body", [b"\x0a\xff\xff\xff", b"\xff" * 10, b"\x0a\x05abc"])
def test_malformed_protobuf_raises(body: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_otlp_protobuf(body)


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'{"resourceSpans": 3}',
                                  b'{"resourceSpans": [{"scopeSpans": {}}]}'])
def test_malformed_json_raises(body: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_otlp_json(body)


def test_empty_request_is_empty_batch() -> None:
    assert decode_otlp_json(b"{}").spans == []
    assert decode_otlp_protobuf(b"").spans == []


def test_one_megabyte_attribute_value_decodes(
    otlp_json: JsonFactory, span_factory: SpanFactory
) -> None:
    big = "x" * (1024 * 1024)
    span = span_factory(attributes=[{"key": "prompt", "value": {"stringValue": big}}])
    assert decode_otlp_json(orjson.dumps(otlp_json(span))).spans[0].attributes["prompt"] == big
    req = ExportTraceServiceRequest()
    pb_span = req.resource_spans.add().scope_spans.add().spans.add()
    pb_span.trace_id, pb_span.span_id = b"\x01" * 16, b"\x02" * 8
    pb_span.start_time_unix_nano = pb_span.end_time_unix_nano = 1
    pb_span.attributes.add(key="prompt").value.string_value = big
    assert decode_otlp_protobuf(req.SerializeToString()).spans[0].attributes["prompt"] == big


# --- property test: AnyValue round trip --------------------------------------------

_scalars = (st.text(max_size=20) | st.booleans()
            | st.integers(min_value=-(2**63), max_value=2**63 - 1)
            | st.floats(allow_nan=False) | st.binary(max_size=16))
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)


def _to_any(value: object) -> AnyValue:
    out = AnyValue()
    if isinstance(value, bool):
        out.bool_value = value
    elif isinstance(value, int):
        out.int_value = value
    elif isinstance(value, float):
        out.double_value = value
    elif isinstance(value, str):
        out.string_value = value
    elif isinstance(value, bytes):
        out.bytes_value = value
    elif isinstance(value, list):
        out.array_value.SetInParent()  # an empty list is still an array
        out.array_value.values.extend(_to_any(v) for v in value)
    else:
        assert isinstance(value, dict)
        out.kvlist_value.SetInParent()
        for k, v in value.items():
            kv = out.kvlist_value.values.add()
            kv.key = k
            kv.value.CopyFrom(_to_any(v))
    return out


def _expected(value: object) -> object:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list):
        return [_expected(v) for v in value]
    if isinstance(value, dict):
        return {k: _expected(v) for k, v in value.items()}
    return value


@settings(max_examples=150, deadline=None)
@given(_values)
def test_any_value_round_trip(value: object) -> None:
    req = ExportTraceServiceRequest()
    span = req.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id = b"\x01" * 16, b"\x02" * 8
    span.start_time_unix_nano = span.end_time_unix_nano = 1
    kv = span.attributes.add()
    kv.key = "v"
    kv.value.CopyFrom(_to_any(value))
    expected = _expected(value)
    assert decode_otlp_protobuf(req.SerializeToString()).spans[0].attributes["v"] == expected
    as_json = json_format.MessageToJson(req).encode()
    assert decode_otlp_json(as_json).spans[0].attributes["v"] == expected
