"""``POST /v1/traces``: the OTLP/HTTP trace receiver (protobuf and JSON, gzip).

Answers follow the OTLP/HTTP specification
(https://opentelemetry.io/docs/specs/otlp/#otlphttp-response): 200 with an
``ExportTraceServiceResponse`` in the request's encoding (``partial_success`` when some
spans were refused), and on failure a ``google.rpc.Status`` body, again in the request's
encoding, with 400, 401, 403, 413, 415, or 429 and 503 (both with ``Retry-After``).
"""

from __future__ import annotations

import functools
import logging

from fastapi import APIRouter, Request
from fastapi.responses import Response
from google.rpc import code_pb2

from mentatlab.errors import DecodeError, MentatLabError, PayloadTooLarge, StoreError
from mentatlab.receivers.base import summarize_rejections
from mentatlab.receivers.otlp_http import (
    CONTENT_TYPE_JSON,
    CONTENT_TYPE_PROTOBUF,
    HttpLimits,
    encode_partial_success,
    encode_status_error,
    http_error,
    is_json,
)
from mentatlab.server.auth import authorize
from mentatlab.server.errors import count_unhandled
from mentatlab.server.state import server_state

__all__ = ["read_capped_body", "router"]

_log = logging.getLogger(__name__)

router = APIRouter(tags=["otlp"])


def _status_doc(description: str) -> dict[str, object]:
    return {"description": description + " Body: a `google.rpc.Status` in the request's "
            "encoding (protobuf or JSON).",
            "content": {CONTENT_TYPE_PROTOBUF: {},
                        CONTENT_TYPE_JSON: {"example": {"code": 3, "message": "…"}}}}


async def read_capped_body(request: Request, max_body_bytes: int) -> bytes:
    """Read a request body, refusing it as soon as it passes ``max_body_bytes``.

    ``Content-Length`` is checked first, so a large declared body is refused unread.

    Raises:
        PayloadTooLarge: the body (declared or actual) is over the limit.
        DecodeError: ``Content-Length`` is not a number.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            declared_bytes = int(declared)
        except ValueError:
            raise DecodeError(
                f"Expected Content-Length to be an integer, got {declared!r}") from None
        if declared_bytes > max_body_bytes:
            raise PayloadTooLarge(max_body_bytes)
    chunks: list[bytes] = []
    total_bytes = 0
    async for chunk in request.stream():
        total_bytes += len(chunk)
        if total_bytes > max_body_bytes:
            raise PayloadTooLarge(max_body_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def _media(as_json: bool) -> str:
    return CONTENT_TYPE_JSON if as_json else CONTENT_TYPE_PROTOBUF


@router.post(
    "/v1/traces",
    summary="OTLP/HTTP trace export",
    response_class=Response,
    responses={
        200: {"description": "`ExportTraceServiceResponse`; `partial_success` counts the "
              "refused spans and says why.",
              "content": {CONTENT_TYPE_PROTOBUF: {}, CONTENT_TYPE_JSON: {}}},
        400: _status_doc("Body cannot be decoded."),
        401: _status_doc("API key required and missing or unknown."),
        413: _status_doc("Body, or decompressed body, over the limit."),
        415: _status_doc("Unknown Content-Type or Content-Encoding."),
        429: _status_doc("Over the key's or org's ingest requests per second or spans per "
                         "minute (the batch is refused whole); retry after `Retry-After` s."),
        503: _status_doc("Ingest buffer full or store unavailable; retry after `Retry-After` s."),
    },
)
async def export_traces(request: Request) -> Response:
    """Receive an OTLP ``ExportTraceServiceRequest`` (protobuf or JSON, optionally gzip).

    Answers 200 only once every accepted span is committed to the store.
    """
    state = server_state(request)
    settings = state.settings
    content_type = request.headers.get("content-type")
    as_json = is_json(content_type)
    try:
        caller = await authorize(request)
        body = await read_capped_body(request, settings.max_body_bytes)
        limits = HttpLimits(settings.max_body_bytes, settings.max_decompressed_bytes)
        decode_rejected, outcome = await state.ingestor.ingest_otlp_body(
            body, content_type, request.headers.get("content-encoding"), limits,
            caller.tenancy, functools.partial(state.quotas.admit_spans, caller))
    except StoreError as exc:
        _log.warning("Store refused an OTLP batch: %s", exc)
        return Response(encode_status_error(code_pb2.UNAVAILABLE, str(exc), as_json,
                                            retry_after_s=settings.retry_after_s),
                        status_code=503, media_type=_media(as_json),
                        headers={"Retry-After": str(settings.retry_after_s)})
    except MentatLabError as exc:
        error = http_error(exc, as_json)
        if error.status >= 500:  # a bug: store errors and backpressure answer 503
            count_unhandled(request, exc)
            _log.error("OTLP ingest failed: %s", exc, exc_info=exc)
        return Response(error.body, status_code=error.status, headers=error.headers)
    rejected = [*decode_rejected, *outcome.rejected]
    body_out = encode_partial_success(len(rejected), summarize_rejections(rejected), as_json)
    return Response(body_out, media_type=_media(as_json))
