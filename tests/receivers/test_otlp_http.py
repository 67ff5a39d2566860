from __future__ import annotations

import gzip
import tracemalloc
import zlib
from collections.abc import Callable

import orjson
import pytest
from google.protobuf import json_format
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from mentatlab.errors import (
    Backpressure,
    DecodeError,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationError,
)
from mentatlab.receivers.otlp_http import (
    HttpLimits,
    decode_http_body,
    decompress,
    encode_partial_success,
    encode_status_error,
    http_error,
)

LIMITS = HttpLimits(max_body_bytes=1024 * 1024, max_decompressed_bytes=4 * 1024 * 1024)


def test_protobuf_gzip_body(sdk_request: ExportTraceServiceRequest) -> None:
    body = gzip.compress(sdk_request.SerializeToString())
    batch = decode_http_body(body, "application/x-protobuf", "gzip", LIMITS)
    assert len(batch.spans) == 3


def test_json_body_with_charset_and_deflate(sdk_request: ExportTraceServiceRequest) -> None:
    body = zlib.compress(json_format.MessageToJson(sdk_request).encode())
    batch = decode_http_body(body, "Application/JSON; charset=utf-8", "deflate", LIMITS)
    assert len(batch.spans) == 3


def test_identity_encoding(sdk_request: ExportTraceServiceRequest) -> None:
    body = sdk_request.SerializeToString()
    assert len(decode_http_body(body, "application/x-protobuf", None, LIMITS).spans) == 3
    assert len(decode_http_body(body, "application/x-protobuf", "identity", LIMITS).spans) == 3


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/protobuf+x"])
def test_wrong_content_type_is_415(content_type: str | None) -> None:
    with pytest.raises(UnsupportedMediaType) as info:
        decode_http_body(b"{}", content_type, None, LIMITS)
    assert info.value.value == content_type
    assert http_error(info.value, as_json=True).status == 415


def test_unknown_encoding_is_415() -> None:
    with pytest.raises(UnsupportedMediaType, match="br"):
        decode_http_body(b"{}", "application/json", "br", LIMITS)


def test_oversized_body_is_413() -> None:
    limits = HttpLimits(max_body_bytes=100, max_decompressed_bytes=1000)
    with pytest.raises(PayloadTooLarge) as info:
        decode_http_body(b"x" * 101, "application/json", None, limits)
    assert http_error(info.value, as_json=False).status == 413


def test_gzip_bomb_is_bounded() -> None:
    # 256 MiB of zeros in ~250 kB, sent within the body limit
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = bytes(1024 * 1024)
    parts = [compressor.compress(chunk) for _ in range(256)]
    parts.append(compressor.flush())
    bomb = b"".join(parts)
    assert len(bomb) < 512 * 1024
    limits = HttpLimits(max_body_bytes=1024 * 1024, max_decompressed_bytes=4 * 1024 * 1024)
    tracemalloc.start()
    try:
        with pytest.raises(PayloadTooLarge):
            decode_http_body(bomb, "application/x-protobuf", "gzip", limits)
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak_bytes < 16 * 1024 * 1024


def test_decompress_exactly_at_limit_is_fine() -> None:
    data = b"a" * 5000
    assert decompress(gzip.compress(data), "gzip", 5000) == data
    with pytest.raises(PayloadTooLarge):
        decompress(gzip.compress(data), "gzip", 4999)


def test_multi_member_gzip() -> None:
    assert decompress(gzip.compress(b"ab") + gzip.compress(b"cd"), "gzip", 100) == b"abcd"


@pytest.mark.parametrize("body", [b"not gzip at all", gzip.compress(b"x" * 1000)[:-30]])
def test_corrupt_gzip_is_decode_error(body: bytes) -> None:
    with pytest.raises(DecodeError) as info:
        decode_http_body(body, "application/json", "gzip", LIMITS)
    assert not isinstance(info.value, PayloadTooLarge)
    assert http_error(info.value, as_json=True).status == 400


def test_partial_success_protobuf_and_json() -> None:
    response = ExportTraceServiceResponse.FromString(
        encode_partial_success(2, "2 spans rejected", as_json=False))
    assert response.partial_success.rejected_spans == 2
    assert response.partial_success.error_message == "2 spans rejected"
    as_json = orjson.loads(encode_partial_success(2, "why", as_json=True))
    assert as_json == {"partialSuccess": {"rejectedSpans": "2", "errorMessage": "why"}}
    # what a real client's JSON parser sees
    parsed = json_format.Parse(encode_partial_success(2, "why", as_json=True),
                               ExportTraceServiceResponse())
    assert parsed.partial_success.rejected_spans == 2


def test_full_success_leaves_partial_success_unset() -> None:
    assert encode_partial_success(0, "", as_json=False) == b""
    assert encode_partial_success(0, "", as_json=True) == b"{}"


def test_backpressure_maps_to_503_with_retry_info() -> None:
    error = http_error(Backpressure(3), as_json=False)
    assert error.status == 503
    assert error.headers["Retry-After"] == "3"
    status = status_pb2.Status.FromString(error.body)
    assert status.code == 14
    info = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(info)
    assert info.retry_delay.seconds == 3


def test_validation_error_lists_fields_in_json_status() -> None:
    error = http_error(ValidationError("spans[0].traceId", "bad"), as_json=True)
    assert error.status == 400
    assert error.headers["Content-Type"] == "application/json"
    doc = orjson.loads(error.body)
    assert doc["code"] == 3
    assert doc["details"][0]["fieldViolations"] == [
        {"field": "spans[0].traceId", "description": "bad"}]


def test_status_error_round_trips_protobuf() -> None:
    status = status_pb2.Status.FromString(encode_status_error(3, "nope", as_json=False))
    assert (status.code, status.message, len(status.details)) == (3, "nope", 0)


def test_real_http_exporter_body_decodes(
    otlp_http_body: Callable[[], tuple[bytes, dict[str, str]]]
) -> None:
    body, headers = otlp_http_body()
    assert headers["content-encoding"] == "gzip"
    batch = decode_http_body(body, headers["content-type"], headers["content-encoding"], LIMITS)
    assert [s.name for s in batch.spans] == ["child-0", "child-1", "run"]
