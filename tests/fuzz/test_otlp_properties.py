"""Hypothesis properties of the OTLP decoders (``receivers/decode.py``, ``otlp_http.py``).

* any bytes, any content type and encoding: :func:`decode_http_body` returns a batch or
  raises one of its documented errors, nothing else;
* any JSON document, OTLP-shaped or not: :func:`decode_otlp_json` returns a batch or raises
  :class:`DecodeError`;
* a structured but odd ``ExportTraceServiceRequest`` (ids of any length, zero ids, any
  times, kinds and status codes, nested attributes): nothing is lost — every span is either
  decoded or refused with a field — and its protobuf and OTLP/JSON forms decode alike;
  every decoded span is one the store can hold.
"""

from __future__ import annotations

import gzip
import json
import re
from typing import Any

import pytest
from google.protobuf import json_format
from hypothesis import given, seed, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from mentatlab.errors import DecodeError, PayloadTooLarge, UnsupportedMediaType
from mentatlab.receivers.base import MAX_TIME_NS, DecodedBatch
from mentatlab.receivers.decode import decode_otlp_json, decode_otlp_protobuf
from mentatlab.receivers.otlp_http import HttpLimits, decode_http_body

pytestmark = pytest.mark.fuzz

LIMITS = HttpLimits(max_body_bytes=4096, max_decompressed_bytes=16_384)
DOCUMENTED = (DecodeError, PayloadTooLarge, UnsupportedMediaType)

json_scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                        st.text(max_size=12), st.sampled_from([
                            "", "0" * 32, "0102030405060708090a0b0c0d0e0f10", "0102030405060708",
                            "AQIDBAUGBwgJCgsMDQ4PEA==", "SPAN_KIND_SERVER", "STATUS_CODE_ERROR",
                            "18446744073709551615", "-1", "NaN", "1e999"]))
json_value = st.recursive(json_scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=10), inner, max_size=3)),
    max_leaves=10)
span_keys = st.sampled_from(["traceId", "spanId", "parentSpanId", "name", "kind",
                             "startTimeUnixNano", "endTimeUnixNano", "attributes", "events",
                             "links", "status", "trace_id", "start_time_unix_nano"])
odd_span = st.dictionaries(span_keys, json_value, max_size=6)
odd_request = st.fixed_dictionaries({"resourceSpans": st.lists(st.fixed_dictionaries({}, optional={
    "resource": st.one_of(json_value, st.fixed_dictionaries({"attributes": json_value})),
    "scopeSpans": st.one_of(json_value, st.lists(st.fixed_dictionaries({}, optional={
        "scope": json_value, "spans": st.one_of(json_value, st.lists(odd_span, max_size=3))}),
        max_size=2))}), max_size=2)})
"""An OTLP/JSON request whose every level may hold an odd value."""


@seed(14)
@settings(max_examples=400, deadline=None, database=None)
@given(body=st.binary(max_size=600),
       content_type=st.sampled_from(["application/x-protobuf", "application/json",
                                     "application/json; charset=utf-8", "text/plain", None]),
       encoding=st.sampled_from([None, "gzip", "deflate", "br", "identity"]),
       compress=st.booleans())
def test_any_body_decodes_or_is_refused_with_a_documented_error(
        body: bytes, content_type: str | None, encoding: str | None, compress: bool) -> None:
    if compress and encoding == "gzip":
        body = gzip.compress(body)
    try:
        batch = decode_http_body(body, content_type, encoding, LIMITS)
    except DOCUMENTED:
        return
    _check_storable(batch)


@seed(14)
@settings(max_examples=400, deadline=None, database=None)
@given(doc=st.one_of(odd_request, json_value))
def test_any_json_decodes_or_is_a_decode_error(doc: Any) -> None:
    try:
        batch = decode_otlp_json(json.dumps(doc).encode())
    except DecodeError:
        return
    _check_storable(batch)


def _any_value(depth: int = 2) -> st.SearchStrategy[AnyValue]:
    leaves = [st.builds(lambda v: AnyValue(string_value=v), st.text(max_size=10)),
              st.builds(lambda v: AnyValue(int_value=v), st.integers(-2**63, 2**63 - 1)),
              st.builds(lambda v: AnyValue(double_value=v), st.floats()),
              st.builds(lambda v: AnyValue(bool_value=v), st.booleans()),
              st.builds(lambda v: AnyValue(bytes_value=v), st.binary(max_size=8)),
              st.just(AnyValue())]
    if depth == 0:
        return st.one_of(leaves)
    inner = _any_value(depth - 1)

    def array(values: list[AnyValue]) -> AnyValue:
        out = AnyValue()
        out.array_value.values.extend(values)
        return out

    def kvlist(items: dict[str, AnyValue]) -> AnyValue:
        out = AnyValue()
        for key, value in items.items():
            kv = out.kvlist_value.values.add()
            kv.key = key
            kv.value.CopyFrom(value)
        return out

    return st.one_of(*leaves, st.builds(array, st.lists(inner, max_size=3)),
                     st.builds(kvlist, st.dictionaries(st.text(max_size=5), inner, max_size=3)))


ids = st.one_of(st.binary(min_size=0, max_size=17), st.sampled_from([bytes(16), bytes(8)]),
                st.binary(min_size=16, max_size=16), st.binary(min_size=8, max_size=8))
times = st.one_of(st.integers(0, 2**64 - 1), st.sampled_from(
    [0, 1, 10**17, 1_800_000_000_000_000_000, MAX_TIME_NS, MAX_TIME_NS + 1, 2**63 - 1,
     2**64 - 1]))
span_fields = st.fixed_dictionaries({
    "trace_id": ids, "span_id": ids, "parent_span_id": ids, "name": st.text(max_size=10),
    "kind": st.integers(0, 2**31 - 1), "start_time_unix_nano": times,
    "end_time_unix_nano": times, "code": st.integers(0, 2**31 - 1),
    "attributes": st.dictionaries(st.text(max_size=6), _any_value(), max_size=4)})


def _request(resources: list[list[dict[str, Any]]]) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    for spans in resources:
        scope_spans = request.resource_spans.add().scope_spans.add()
        for fields in spans:
            span = scope_spans.spans.add()
            for name in ("trace_id", "span_id", "parent_span_id", "name", "kind",
                         "start_time_unix_nano", "end_time_unix_nano"):
                setattr(span, name, fields[name])
            span.status.code = fields["code"]
            for key, value in fields["attributes"].items():
                kv = span.attributes.add()
                kv.key = key
                kv.value.CopyFrom(value)
    return request


@seed(14)
@settings(max_examples=300, deadline=None, database=None)
@given(resources=st.lists(st.lists(span_fields, max_size=4), max_size=3))
def test_odd_requests_lose_nothing_and_decode_alike_in_both_encodings(
        resources: list[list[dict[str, Any]]]) -> None:
    request = _request(resources)
    num_spans = sum(len(spans) for spans in resources)
    from_protobuf = decode_otlp_protobuf(request.SerializeToString())
    assert len(from_protobuf.spans) + len(from_protobuf.rejected) == num_spans
    _check_storable(from_protobuf)
    from_json = decode_otlp_json(json_format.MessageToJson(request).encode())
    assert [(s.trace_id, s.span_id) for s in from_json.spans] == [
        (s.trace_id, s.span_id) for s in from_protobuf.spans]
    # the same spans refused (a span with several bad fields may name another one first)
    assert [_span_path(e.field) for e in from_json.rejected] == [
        _span_path(e.field) for e in from_protobuf.rejected]


def _span_path(field: str) -> str:
    """``resourceSpans[0].scopeSpans[1].spans[2]`` of a refused span's field."""
    return re.sub(r"(\.spans\[\d+\]).*", r"\1", field)


def _check_storable(batch: DecodedBatch) -> None:
    """Every decoded span has ids and times the span store holds."""
    for span in batch.spans:
        assert len(span.trace_id) == 32 and len(span.span_id) == 16
        assert span.parent_span_id == "" or len(span.parent_span_id) == 16
        assert 0 < span.start_time_ns <= span.end_time_ns <= MAX_TIME_NS, (
            span.start_time_ns, span.end_time_ns)
