"""OTLP/HTTP body handling, independent of the web framework.

Implements the server side of https://opentelemetry.io/docs/specs/otlp/#otlphttp:

* request ``Content-Type`` ``application/x-protobuf`` or ``application/json``
  (parameters such as ``; charset=utf-8`` ignored), else 415;
* ``Content-Encoding`` ``gzip`` (required by the spec), ``deflate`` (zlib) or
  ``identity``, else 415; decompression is streamed and bounded so a gzip bomb costs at
  most ``max_decompressed_bytes`` of memory (413 above it);
* success is 200 with an ``ExportTraceServiceResponse`` in the request's encoding, with
  ``partial_success`` set only when spans were refused;
* failures carry a ``google.rpc.Status`` body in the request's encoding: 400 for bad
  data (clients must not retry), 413 too large, 415 unsupported media type, 503 with
  ``Retry-After`` when the ingest buffer is full (clients retry 429/502/503/504).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
from google.protobuf import json_format
from google.rpc import code_pb2, error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)

from mentatlab.errors import (
    Backpressure,
    DecodeError,
    FieldError,
    Forbidden,
    MentatLabError,
    PayloadTooLarge,
    RateLimited,
    StoreError,
    Unauthenticated,
    UnsupportedMediaType,
    ValidationError,
)
from mentatlab.receivers.base import DecodedBatch
from mentatlab.receivers.columnar import USE_C_DECODER, columns_to_raw_spans, decode_columns_c
from mentatlab.receivers.decode import decode_otlp_json, decode_otlp_protobuf

__all__ = [
    "CONTENT_TYPE_JSON",
    "CONTENT_TYPE_PROTOBUF",
    "HttpError",
    "HttpLimits",
    "decode_http_body",
    "decompress",
    "encode_partial_success",
    "encode_status_error",
    "http_error",
    "is_json",
]

CONTENT_TYPE_PROTOBUF = "application/x-protobuf"
CONTENT_TYPE_JSON = "application/json"
_CHUNK_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """Size limits of one OTLP/HTTP request body."""

    max_body_bytes: int
    """Largest body accepted as sent (possibly compressed), in bytes."""
    max_decompressed_bytes: int
    """Largest body accepted after decompression, in bytes."""


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_json(content_type: str | None) -> bool:
    """Whether a ``Content-Type`` header names JSON (answers then use OTLP/JSON too).

    Args:
        content_type: the header value, parameters allowed; None when absent.
    """
    return _media_type(content_type) == CONTENT_TYPE_JSON


def decompress(body: bytes, content_encoding: str | None, max_bytes: int) -> bytes:
    """Undo ``Content-Encoding`` without ever holding more than ``max_bytes`` of output.

    Args:
        body: the body as sent.
        content_encoding: ``gzip``, ``deflate`` (zlib), ``identity`` or None.
        max_bytes: largest decompressed size accepted, in bytes.

    Returns:
        The decompressed body.

    Raises:
        UnsupportedMediaType: another encoding.
        PayloadTooLarge: the decompressed body exceeds ``max_bytes``.
        DecodeError: corrupt or truncated compressed data.
    """
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in ("identity", ""):
        if len(body) > max_bytes:
            raise PayloadTooLarge(max_bytes)
        return body
    if encoding in ("gzip", "x-gzip"):
        wbits = 16 + zlib.MAX_WBITS
    elif encoding == "deflate":
        wbits = zlib.MAX_WBITS
    else:
        raise UnsupportedMediaType("Content-Encoding", content_encoding,
                                   "gzip, deflate, identity")
    parts: list[bytes] = []
    size_bytes = 0
    data = body
    try:
        while data:  # one pass per gzip member
            inflater = zlib.decompressobj(wbits)
            while data and not inflater.eof:
                chunk = inflater.decompress(data, min(_CHUNK_BYTES, max_bytes - size_bytes + 1))
                size_bytes += len(chunk)
                if size_bytes > max_bytes:
                    raise PayloadTooLarge(max_bytes)
                parts.append(chunk)
                data = inflater.unconsumed_tail
            if not inflater.eof:
                raise DecodeError(f"Expected complete {encoding} data, got a truncated stream")
            data = inflater.unused_data
    except zlib.error as exc:
        raise DecodeError(f"Expected valid {encoding} data: {exc}") from None
    return b"".join(parts)


def decode_http_body(body: bytes, content_type: str | None, content_encoding: str | None,
                     limits: HttpLimits) -> DecodedBatch:
    """Decode the body of an OTLP/HTTP ``/v1/traces`` request.

    Args:
        body: the body as sent.
        content_type: the ``Content-Type`` header, None when absent.
        content_encoding: the ``Content-Encoding`` header, None when absent.
        limits: size limits, in bytes.

    Returns:
        The valid spans and one :class:`FieldError` per refused span.

    Raises:
        UnsupportedMediaType: a content type or encoding other than the supported ones.
        PayloadTooLarge: the body, or its decompressed form, is over the limit.
        DecodeError: the body cannot be decoded.
    """
    media_type = _media_type(content_type)
    if media_type not in (CONTENT_TYPE_PROTOBUF, CONTENT_TYPE_JSON):
        raise UnsupportedMediaType("Content-Type", content_type,
                                   f"{CONTENT_TYPE_PROTOBUF}, {CONTENT_TYPE_JSON}")
    if len(body) > limits.max_body_bytes:
        raise PayloadTooLarge(limits.max_body_bytes)
    raw = decompress(body, content_encoding, limits.max_decompressed_bytes)
    if media_type == CONTENT_TYPE_JSON:
        return decode_otlp_json(raw)
    return decode_protobuf(raw)


def decode_protobuf(body: bytes) -> DecodedBatch:
    """Decode a protobuf ``ExportTraceServiceRequest`` into spans.

    Through the columnar C decoder when it is built and not turned off
    (:data:`~mentatlab.receivers.columnar.USE_C_DECODER`; ~7 µs a span with the rebuild of the
    spans, against ~10 µs for upb and a Python walk, docs/decisions/0028), else
    :func:`decode_otlp_protobuf`. Both give equal spans and errors
    (tests/receivers/test_columnar.py).

    Raises:
        DecodeError: the bytes are not an ``ExportTraceServiceRequest``.
    """
    if USE_C_DECODER:
        columns = decode_columns_c(body)
        return DecodedBatch(columns_to_raw_spans(columns), columns.rejected)
    return decode_otlp_protobuf(body)


def encode_partial_success(rejected_spans: int, message: str, as_json: bool) -> bytes:
    """The body of a 200 answer: an ``ExportTraceServiceResponse``.

    ``partial_success`` is left unset when nothing was refused and there is no message,
    as the spec asks.

    Args:
        rejected_spans: spans refused, in spans.
        message: why, for the developer (``""`` when none).
        as_json: OTLP/JSON instead of binary protobuf.
    """
    if as_json:
        if not rejected_spans and not message:
            return b"{}"
        partial: dict[str, object] = {"rejectedSpans": str(rejected_spans)}
        if message:
            partial["errorMessage"] = message
        return orjson.dumps({"partialSuccess": partial})
    response = ExportTraceServiceResponse()
    if rejected_spans or message:
        response.partial_success.rejected_spans = rejected_spans
        response.partial_success.error_message = message
    return bytes(response.SerializeToString())


def encode_status_error(code: int, message: str, as_json: bool, *,
                        retry_after_s: int | None = None,
                        field_errors: Sequence[FieldError] = ()) -> bytes:
    """The body of a 4xx/5xx answer: a ``google.rpc.Status`` in the request's encoding.

    Args:
        code: a ``google.rpc.Code`` (e.g. 3 INVALID_ARGUMENT, 14 UNAVAILABLE).
        message: developer-facing description.
        as_json: proto3 JSON instead of binary protobuf.
        retry_after_s: adds a ``google.rpc.RetryInfo`` detail with this delay, in s.
        field_errors: adds a ``google.rpc.BadRequest`` detail listing them.
    """
    status = status_pb2.Status(code=code, message=message)
    if retry_after_s is not None:
        info = error_details_pb2.RetryInfo()
        info.retry_delay.seconds = retry_after_s
        status.details.add().Pack(info)
    if field_errors:
        bad = error_details_pb2.BadRequest(field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=e.field, description=e.reason)
            for e in field_errors])
        status.details.add().Pack(bad)
    if as_json:
        return str(json_format.MessageToJson(status, indent=None)).encode()
    return bytes(status.SerializeToString())


@dataclass(frozen=True, slots=True)
class HttpError:
    """A ready-to-send OTLP/HTTP error answer."""

    status: int
    """HTTP status code."""
    headers: dict[str, str]
    """``Content-Type`` and, for 503, ``Retry-After`` (s)."""
    body: bytes


def http_error(exc: MentatLabError, as_json: bool) -> HttpError:
    """Map an error raised while receiving to its OTLP/HTTP answer.

    ``UnsupportedMediaType`` → 415, ``PayloadTooLarge`` → 413, ``DecodeError`` and
    ``ValidationError`` → 400 (not retryable), ``Unauthenticated`` → 401,
    ``Forbidden`` → 403, ``RateLimited`` → 429 and ``Backpressure`` → 503 with
    ``Retry-After`` (both retryable, per the OTLP/HTTP spec), ``StoreError`` → 503;
    anything else → 500.

    Args:
        exc: the error.
        as_json: answer in OTLP/JSON (the request was JSON) instead of protobuf.
    """
    content_type = CONTENT_TYPE_JSON if as_json else CONTENT_TYPE_PROTOBUF
    headers = {"Content-Type": content_type}
    retry_after_s: int | None = None
    field_errors: list[FieldError] = []
    if isinstance(exc, UnsupportedMediaType):
        status, code = 415, code_pb2.INVALID_ARGUMENT
    elif isinstance(exc, PayloadTooLarge):
        status, code = 413, code_pb2.INVALID_ARGUMENT
    elif isinstance(exc, DecodeError):
        status, code = 400, code_pb2.INVALID_ARGUMENT
    elif isinstance(exc, ValidationError):
        status, code, field_errors = 400, code_pb2.INVALID_ARGUMENT, exc.errors
    elif isinstance(exc, Unauthenticated):
        status, code, field_errors = 401, code_pb2.UNAUTHENTICATED, exc.errors
        headers["WWW-Authenticate"] = "Bearer"
    elif isinstance(exc, Forbidden):
        status, code, field_errors = 403, code_pb2.PERMISSION_DENIED, exc.errors
    elif isinstance(exc, RateLimited):
        status, code, retry_after_s = 429, code_pb2.RESOURCE_EXHAUSTED, exc.retry_after_s
        headers["Retry-After"] = str(exc.retry_after_s)
    elif isinstance(exc, Backpressure):
        status, code, retry_after_s = 503, code_pb2.UNAVAILABLE, exc.retry_after_s
        headers["Retry-After"] = str(exc.retry_after_s)
    elif isinstance(exc, StoreError):
        status, code = 503, code_pb2.UNAVAILABLE
    else:
        status, code = 500, code_pb2.INTERNAL
    body = encode_status_error(code, str(exc), as_json, retry_after_s=retry_after_s,
                               field_errors=field_errors)
    return HttpError(status, headers, body)
