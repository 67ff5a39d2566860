from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from mentatlab.errors import (
    Backpressure,
    FieldError,
    Forbidden,
    MentatLabError,
    RateLimited,
    Unauthenticated,
    ValidationError,
)
from mentatlab.receivers.base import DecodedBatch, IngestBody, IngestOutcome
from mentatlab.receivers.otlp_grpc import TRACE_SERVICE, OtlpGrpcReceiver, start_grpc_server
from mentatlab.receivers.otlp_http import decode_protobuf

SpansFactory = Callable[[int], list[ReadableSpan]]


class RecordingIngest:
    """The ingest seam: decodes each request's bytes as the server does, records the
    batches with spans and the keys sent; can be told to fail the next calls, or to
    refuse the next keys."""

    def __init__(self) -> None:
        self.batches: list[DecodedBatch] = []
        self.bodies: list[bytes] = []
        self.failures: list[MentatLabError] = []
        self.reject: list[FieldError] = []
        self.keys: list[str | None] = []
        self.refusals: list[MentatLabError] = []

    async def authorize(self, key: str | None) -> IngestBody:
        self.keys.append(key)
        if self.refusals:
            raise self.refusals.pop(0)
        return self

    async def __call__(self, body: bytes) -> tuple[list[FieldError], IngestOutcome]:
        self.bodies.append(body)
        batch = decode_protobuf(body)  # raises DecodeError as the server's ingest does
        if not batch.spans:
            return list(batch.rejected), IngestOutcome(0)
        self.batches.append(batch)
        if self.failures:
            raise self.failures.pop(0)
        return list(batch.rejected), IngestOutcome(
            accepted=len(batch.spans) - len(self.reject), rejected=self.reject)


@pytest.fixture
async def served() -> AsyncIterator[tuple[RecordingIngest, int]]:
    ingest = RecordingIngest()
    receiver = OtlpGrpcReceiver(ingest.authorize)
    server = await start_grpc_server(receiver, "127.0.0.1", 0, max_message_bytes=64 * 1024)
    assert receiver.bound_port
    yield ingest, receiver.bound_port
    await server.stop(0)


def _export(spans: list[ReadableSpan], port: int,
            compression: grpc.Compression | None = None) -> SpanExportResult:
    exporter = OTLPSpanExporter(endpoint=f"127.0.0.1:{port}", insecure=True,
                                compression=compression, timeout=10)
    try:
        return exporter.export(spans)
    finally:
        exporter.shutdown()


async def test_real_exporter_delivers_spans(
    served: tuple[RecordingIngest, int], sdk_spans: SpansFactory
) -> None:
    ingest, port = served
    result = await asyncio.to_thread(_export, sdk_spans(3), port, grpc.Compression.Gzip)
    assert result is SpanExportResult.SUCCESS
    (batch,) = ingest.batches
    assert sorted(s.name for s in batch.spans) == ["child-0", "child-1", "run"]
    assert batch.spans[0].resource["service.name"] == "billing-agent"


async def test_backpressure_makes_real_exporter_retry(
    served: tuple[RecordingIngest, int], sdk_spans: SpansFactory
) -> None:
    ingest, port = served
    ingest.failures.append(Backpressure(1))
    result = await asyncio.to_thread(_export, sdk_spans(3), port)
    assert result is SpanExportResult.SUCCESS
    assert len(ingest.batches) == 2


async def test_validation_error_is_not_retried(
    served: tuple[RecordingIngest, int], sdk_spans: SpansFactory
) -> None:
    ingest, port = served
    ingest.failures.append(ValidationError("spans[0].name", "too long"))
    result = await asyncio.to_thread(_export, sdk_spans(3), port)
    assert result is SpanExportResult.FAILURE
    assert len(ingest.batches) == 1


async def _call(port: int, request: ExportTraceServiceRequest,
                metadata: tuple[tuple[str, str], ...] = ()) -> object:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        return await stub.Export(request, timeout=10, metadata=metadata)


async def test_partial_success_counts_decode_and_ingest_rejections(
    served: tuple[RecordingIngest, int], sdk_request: ExportTraceServiceRequest
) -> None:
    ingest, port = served
    sdk_request.resource_spans[0].scope_spans[0].spans[0].span_id = b""
    ingest.reject = [FieldError("x", "refused by pipeline")]
    response = await _call(port, sdk_request)
    partial = response.partial_success  # type: ignore[attr-defined]
    assert partial.rejected_spans == 2
    assert "spanId" in partial.error_message and "refused by pipeline" in partial.error_message
    assert len(ingest.batches[0].spans) == 2


async def test_backpressure_status_carries_retry_info(
    served: tuple[RecordingIngest, int], sdk_request: ExportTraceServiceRequest
) -> None:
    ingest, port = served
    ingest.failures.append(Backpressure(7))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _call(port, sdk_request)
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE
    details = dict(info.value.trailing_metadata() or ())["grpc-status-details-bin"]
    status = status_pb2.Status.FromString(details)
    retry = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(retry)
    assert retry.retry_delay.seconds == 7


async def test_the_receiver_hands_on_the_bytes_as_sent(
    served: tuple[RecordingIngest, int], sdk_request: ExportTraceServiceRequest
) -> None:
    ingest, port = served
    await _call(port, sdk_request)
    assert ingest.bodies == [sdk_request.SerializeToString()]


async def test_bytes_that_are_not_a_request_are_invalid_argument(
        served: tuple[RecordingIngest, int]) -> None:
    ingest, port = served
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        export = channel.unary_unary(f"/{TRACE_SERVICE}/Export")
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await export(b"\xff\xff\xff", timeout=10)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "ExportTraceServiceRequest" in (info.value.details() or "")
    assert ingest.batches == []


async def test_oversized_message_is_refused(served: tuple[RecordingIngest, int]) -> None:
    ingest, port = served
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.name = "x" * (128 * 1024)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _call(port, request)
    assert info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert ingest.batches == []


async def test_all_rejected_skips_ingest(
    served: tuple[RecordingIngest, int], sdk_request: ExportTraceServiceRequest
) -> None:
    ingest, port = served
    for span in sdk_request.resource_spans[0].scope_spans[0].spans:
        span.trace_id = bytes(16)
    response = await _call(port, sdk_request)
    assert response.partial_success.rejected_spans == 3  # type: ignore[attr-defined]
    assert ingest.batches == []


@pytest.mark.parametrize(("metadata", "key"), [
    ((), None),
    ((("authorization", "Bearer mtl_abc"),), "mtl_abc"),
    ((("authorization", "bearer  mtl_abc "),), "mtl_abc"),
    ((("x-api-key", "mtl_xyz"),), "mtl_xyz"),
    ((("authorization", "Bearer mtl_abc"), ("x-api-key", "mtl_xyz")), "mtl_abc"),
    ((("authorization", "Basic dXNlcg=="), ("x-api-key", "mtl_xyz")), "mtl_xyz"),
    ((("authorization", "Basic dXNlcg=="),), None),
])
async def test_key_is_read_from_metadata(
    served: tuple[RecordingIngest, int], sdk_request: ExportTraceServiceRequest,
    metadata: tuple[tuple[str, str], ...], key: str | None,
) -> None:
    ingest, port = served
    await _call(port, sdk_request, metadata)
    assert ingest.keys == [key]


@pytest.mark.parametrize(("refusal", "code"), [
    (Unauthenticated("Unknown, revoked or expired API key"), grpc.StatusCode.UNAUTHENTICATED),
    (Forbidden("authorization", "Role 'key:read' does not grant ingest"),
     grpc.StatusCode.PERMISSION_DENIED),
])
async def test_refused_key_is_answered_before_ingest(
    served: tuple[RecordingIngest, int], sdk_request: ExportTraceServiceRequest,
    refusal: MentatLabError, code: grpc.StatusCode,
) -> None:
    ingest, port = served
    ingest.refusals.append(refusal)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _call(port, sdk_request, (("x-api-key", "mtl_bad"),))
    assert info.value.code() is code
    assert str(refusal) in (info.value.details() or "")
    details = dict(info.value.trailing_metadata() or ())["grpc-status-details-bin"]
    assert status_pb2.Status.FromString(details).code == code.value[0]
    assert ingest.batches == []


async def test_rate_limit_is_resource_exhausted_with_retry_info(
    served: tuple[RecordingIngest, int], sdk_request: ExportTraceServiceRequest
) -> None:
    ingest, port = served
    ingest.refusals.append(RateLimited("spans per minute", 3))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _call(port, sdk_request)
    assert info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    details = dict(info.value.trailing_metadata() or ())["grpc-status-details-bin"]
    retry = error_details_pb2.RetryInfo()
    assert status_pb2.Status.FromString(details).details[0].Unpack(retry)
    assert retry.retry_delay.seconds == 3


async def test_real_exporter_retries_a_rate_limit_after_the_delay_given(
    served: tuple[RecordingIngest, int], sdk_spans: SpansFactory
) -> None:
    ingest, port = served
    ingest.refusals.append(RateLimited("requests per second", 2))
    started_s = time.monotonic()
    result = await asyncio.to_thread(_export, sdk_spans(3), port)
    assert result is SpanExportResult.SUCCESS
    assert time.monotonic() - started_s >= 1.9  # its own first backoff is 0.8–1.2 s
    assert len(ingest.keys) == 2 and len(ingest.batches) == 1
