"""OTLP/gRPC receiver: a ``grpc.aio`` TraceService servicer.

Each request's API key (``authorization: Bearer <key>`` or ``x-api-key`` metadata) is
checked by the ``authorize`` callable the server passes in, before anything is decoded.

Status mapping (https://opentelemetry.io/docs/specs/otlp/#otlpgrpc):

* success → OK with ``partial_success`` when spans were refused;
* ``Unauthenticated`` → UNAUTHENTICATED; ``Forbidden`` → PERMISSION_DENIED (not retryable);
* ``RateLimited`` → RESOURCE_EXHAUSTED with a ``google.rpc.RetryInfo`` detail (the spec's
  retryable throttling answer);
* ``Backpressure`` → UNAVAILABLE with a ``google.rpc.RetryInfo`` detail (retryable);
* ``StoreUnavailable`` → UNAVAILABLE without a delay (client backs off);
* ``DecodeError``/``ValidationError`` → INVALID_ARGUMENT (not retryable);
* ``PayloadTooLarge`` → INVALID_ARGUMENT too: the spec calls RESOURCE_EXHAUSTED without
  RetryInfo non-retryable, but the OpenTelemetry Python exporter retries every
  RESOURCE_EXHAUSTED, so that code would make clients resend a body that can never fit.
  Bodies over ``max_message_bytes`` are refused by gRPC itself (RESOURCE_EXHAUSTED).

The request's bytes are not parsed here: the handler is registered without a request
deserializer, and the bytes go to the ``IngestBody`` callable that ``authorize`` answers,
the path OTLP/HTTP protobuf bodies take (the columnar decoder, in an ingest worker
process when the server runs them). One protobuf decoder serves both transports, and a
body that does not decode is INVALID_ARGUMENT with the decoder's reason.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeAlias

import grpc
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)

from mentatlab.errors import (
    Backpressure,
    DecodeError,
    FieldError,
    Forbidden,
    MentatLabError,
    RateLimited,
    StoreUnavailable,
    Unauthenticated,
    ValidationError,
)
from mentatlab.receivers.base import IngestBody, summarize_rejections

__all__ = ["TRACE_SERVICE", "Authorize", "OtlpGrpcReceiver", "api_key_of",
           "start_grpc_server"]

logger = logging.getLogger(__name__)

TRACE_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
"""The OTLP trace service's full gRPC name (its one method is ``Export``)."""

_STATUS_DETAILS_KEY = "grpc-status-details-bin"
_RETRY_INFO_KEY = "google.rpc.retryinfo-bin"
"""RetryInfo alone, as gRPC Java names a proto trailer; the OpenTelemetry Python exporter
reads its delay from here, not from the status details."""

_STATUS_CODES: tuple[tuple[type[MentatLabError], grpc.StatusCode], ...] = (
    (Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (Forbidden, grpc.StatusCode.PERMISSION_DENIED),
    (RateLimited, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (Backpressure, grpc.StatusCode.UNAVAILABLE),
    (StoreUnavailable, grpc.StatusCode.UNAVAILABLE),
    (DecodeError, grpc.StatusCode.INVALID_ARGUMENT),
    (ValidationError, grpc.StatusCode.INVALID_ARGUMENT),
)
"""Error → gRPC status, first match wins (the module docstring says why each); the
``google.rpc.Status`` detail carries the same code. Anything else is INTERNAL."""

Authorize: TypeAlias = Callable[[str | None], Awaitable[IngestBody]]
"""Awaited with a request's API key (None: it sent none); answers the ingest callable of
that caller (its credential's tenancy fixed on the spans), which takes the request's
bytes. Raises ``Unauthenticated``, ``Forbidden`` or ``RateLimited`` to refuse it."""


def api_key_of(metadata: Sequence[tuple[str, str | bytes]] | None) -> str | None:
    """The API key in gRPC request metadata, read as OTLP/HTTP reads its headers.

    ``authorization: Bearer <key>`` first, else ``x-api-key``; None when neither is there.
    """
    found: dict[str, str] = {}
    for name, value in metadata or ():
        if name in ("authorization", "x-api-key") and isinstance(value, str):
            found.setdefault(name, value)
    auth = found.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return found.get("x-api-key", "").strip() or None


def _status_metadata(code: int, message: str, retry_after_s: int | None,
                     field_errors: list[FieldError]) -> tuple[tuple[str, bytes], ...]:
    status = status_pb2.Status(code=code, message=message)
    trailers: list[tuple[str, bytes]] = []
    if retry_after_s is not None:
        info = error_details_pb2.RetryInfo()
        info.retry_delay.seconds = retry_after_s
        status.details.add().Pack(info)
        trailers.append((_RETRY_INFO_KEY, bytes(info.SerializeToString())))
    if field_errors:
        status.details.add().Pack(error_details_pb2.BadRequest(field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=e.field, description=e.reason)
            for e in field_errors]))
    return ((_STATUS_DETAILS_KEY, bytes(status.SerializeToString())), *trailers)


class OtlpGrpcReceiver:
    """Receives ``ExportTraceServiceRequest`` bytes over gRPC and hands them to ``ingest``.

    Args:
        authorize: checks each request's API key and answers the ingest callable of its
            caller (see :data:`Authorize`). That callable is awaited with the request's
            bytes; it answers once the accepted spans are durable (and queued for OTLP
            forwarding when it is on), or raises ``Backpressure``.
    """

    def __init__(self, authorize: Authorize) -> None:
        self._authorize = authorize
        self.bound_port: int | None = None
        """The port the server listens on, once :func:`start_grpc_server` returns."""

    async def Export(  # noqa: N802 - the gRPC method name
        self, body: bytes, context: Any
    ) -> ExportTraceServiceResponse:
        """Ingest and answer one export request, given as its bytes (module docstring)."""
        try:
            ingest = await self._authorize(api_key_of(context.invocation_metadata()))
            decode_rejected, outcome = await ingest(body)
        except MentatLabError as exc:
            await self._abort(context, exc)
            raise  # abort raises; this line is never reached
        rejected = [*decode_rejected, *outcome.rejected]
        response = ExportTraceServiceResponse()
        if rejected:
            response.partial_success.rejected_spans = len(rejected)
            response.partial_success.error_message = summarize_rejections(rejected)
        return response

    @staticmethod
    async def _abort(context: Any, exc: MentatLabError) -> None:
        grpc_code = next((code for kind, code in _STATUS_CODES if isinstance(exc, kind)),
                         grpc.StatusCode.INTERNAL)
        if grpc_code is grpc.StatusCode.INTERNAL:
            logger.warning("OTLP/gRPC export failed: %s", exc)
        retry_after_s = exc.retry_after_s if isinstance(exc, (RateLimited, Backpressure)) \
            else None
        field_errors = exc.errors if isinstance(exc, ValidationError) else []
        await context.abort(grpc_code, str(exc), trailing_metadata=_status_metadata(
            grpc_code.value[0], str(exc), retry_after_s, field_errors))


async def start_grpc_server(receiver: OtlpGrpcReceiver, host: str, port: int,
                            max_message_bytes: int, *, reuse_port: bool = False,
                            credentials: grpc.ServerCredentials | None = None) -> Any:
    """Start a ``grpc.aio.Server`` serving ``receiver`` on ``host:port``.

    Args:
        receiver: the servicer.
        host: address to bind, e.g. ``127.0.0.1``.
        port: TCP port; 0 picks a free one, stored in ``receiver.bound_port``.
        max_message_bytes: largest request accepted, in bytes (gRPC answers
            RESOURCE_EXHAUSTED above it). gzip-compressed requests are accepted.
        reuse_port: share the port with sibling processes (``SO_REUSEPORT``: the kernel
            spreads connections over them); off, a port in use is an error.
        credentials: serve TLS with these (``grpc.ssl_server_credentials``); None serves
            plaintext.

    Returns:
        The started ``grpc.aio.Server``; stop it with ``await server.stop(grace_s)``.

    Raises:
        OSError: the address cannot be bound.
    """
    server = grpc.aio.server(options=[
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.so_reuseport", 1 if reuse_port else 0),
    ])
    # No request deserializer: Export gets the bytes (the module docstring says why).
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(TRACE_SERVICE, {
        "Export": grpc.unary_unary_rpc_method_handler(
            receiver.Export,
            response_serializer=ExportTraceServiceResponse.SerializeToString)}),))
    address = f"{host}:{port}"
    try:
        bound = (server.add_insecure_port(address) if credentials is None
                 else server.add_secure_port(address, credentials))
    except RuntimeError as exc:
        raise OSError(f"Cannot bind OTLP/gRPC to {host}:{port}: {exc}") from None
    if bound == 0:
        raise OSError(f"Cannot bind OTLP/gRPC to {host}:{port}")
    receiver.bound_port = bound
    await server.start()
    logger.info("OTLP/gRPC receiver listening on %s:%s (%s)", host, bound,
                "plaintext" if credentials is None else "TLS")
    return server
