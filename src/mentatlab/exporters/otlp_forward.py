"""Forward accepted OTLP trace requests, unchanged, to another OTLP backend.

The server hands every OTLP request it committed (an OTLP/HTTP body, or an OTLP/gRPC
request's bytes) to :meth:`OtlpForwarder.submit_http`, which returns at once. A bounded
queue (bytes) holds them; when it is full the newest request is dropped and counted, so forwarding
never slows or blocks ingest. One sender thread (like OpenTelemetry's
``BatchSpanProcessor``: one worker woken by size or timer) turns each request into
``ExportTraceServiceRequest`` bytes (:mod:`mentatlab.exporters.otlp_payload`), joins
requests into one by concatenating their bytes up to ``batch_bytes`` or ``linger_s``,
and sends the batch over OTLP/HTTP protobuf (httpx) or OTLP/gRPC, retrying 429, 502,
503, 504, gRPC UNAVAILABLE and connection errors with exponential backoff, honouring
``Retry-After`` (HTTP) and ``RetryInfo`` (gRPC).

Delivery is best effort: the queue is in memory (lost on ``kill -9``), a batch is given
up after ``retry_max_s`` of retries, and :meth:`OtlpForwarder.close` flushes for at
most its timeout.
"""

from __future__ import annotations

import gzip
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from mentatlab.errors import FieldError, MentatLabError
from mentatlab.exporters.otlp_payload import (
    ForwardTarget,
    drop_rejected,
    json_to_protobuf,
)
from mentatlab.receivers.otlp_http import decompress, is_json
from mentatlab.retry_after import parse_retry_after_s

__all__ = ["ForwardConfig", "ForwardStats", "OtlpForwarder", "SendResult"]

_log = logging.getLogger(__name__)

_RETRYABLE_HTTP = frozenset({429, 502, 503, 504})
_BACKOFF_FIRST_S = 0.5
_BACKOFF_MAX_S = 30.0
_GRPC_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


@dataclass(frozen=True, slots=True)
class ForwardConfig:
    """How and where to forward (built from ``Settings.forward_*``)."""

    target: ForwardTarget
    """Where to send."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Extra request headers (gRPC: metadata), e.g. ``authorization``."""
    compression: str = "none"
    """``gzip`` or ``none``."""
    queue_bytes: int = 64 * 1024 * 1024
    """Most bytes of received requests waiting to be sent; newer requests are dropped."""
    batch_bytes: int = 4 * 1024 * 1024
    """A batch is sent once it holds this many bytes (protobuf, uncompressed)."""
    linger_s: float = 1.0
    """A batch is sent at most this many seconds after its first request arrived."""
    timeout_s: float = 10.0
    """Timeout of one send, in seconds."""
    retry_max_s: float = 300.0
    """A batch is given up (counted failed) after retrying this many seconds."""
    max_decompressed_bytes: int = 64 * 1024 * 1024
    """Decompression limit of queued gzip bodies, in bytes (ingest already checked it)."""


@dataclass(slots=True)
class ForwardStats:
    """Counters of one forwarder (read by ``/metrics``); requests are received requests."""

    spans_sent: int = 0
    requests_sent: int = 0
    spans_dropped: int = 0
    """Spans dropped because the queue was full."""
    requests_dropped: int = 0
    spans_failed: int = 0
    """Spans given up: retries exhausted, a non-retryable answer, or not convertible."""
    requests_failed: int = 0
    batches_sent: int = 0
    """Requests sent to the target (one per batch)."""
    send_errors: int = 0
    """Send attempts that failed (each retry counts)."""
    queue_bytes: int = 0
    """Bytes waiting in the queue now."""


@dataclass(frozen=True, slots=True)
class SendResult:
    """The outcome of one send attempt."""

    ok: bool
    retryable: bool = False
    retry_after_s: float | None = None
    """Delay the target asked for (``Retry-After``/``RetryInfo``), in seconds."""
    reason: str = ""


class _Sender(Protocol):
    def send(self, body: bytes) -> SendResult: ...

    def close(self) -> None: ...


class _QuietRequests(logging.Filter):
    """Drops httpx's INFO line per request to the forwarding URL (one per batch is noise)."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self._url = url

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        return not (record.levelno <= logging.INFO and isinstance(args, tuple)
                    and len(args) > 1 and str(args[1]) == self._url)


class _HttpSender:
    """OTLP/HTTP protobuf: ``POST`` the batch to the ``/v1/traces`` URL."""

    def __init__(self, config: ForwardConfig) -> None:
        headers = {**config.headers, "Content-Type": "application/x-protobuf"}
        if config.compression == "gzip":
            headers["Content-Encoding"] = "gzip"
        self._gzip = config.compression == "gzip"
        self._url = config.target.url
        self._client = httpx.Client(timeout=config.timeout_s, headers=headers)
        self._quiet = _QuietRequests(self._url)
        logging.getLogger("httpx").addFilter(self._quiet)

    def send(self, body: bytes) -> SendResult:
        content = gzip.compress(body, compresslevel=6) if self._gzip else body
        try:
            response = self._client.post(self._url, content=content)
        except httpx.TransportError as exc:
            return SendResult(False, True, None, f"{type(exc).__name__}: {exc}")
        if 200 <= response.status_code < 300:
            return SendResult(True)
        return SendResult(False, response.status_code in _RETRYABLE_HTTP,
                          parse_retry_after_s(response.headers.get("retry-after")),
                          f"HTTP {response.status_code}")

    def close(self) -> None:
        self._client.close()
        logging.getLogger("httpx").removeFilter(self._quiet)


class _GrpcSender:
    """OTLP/gRPC: ``TraceService/Export`` with the batch bytes as the request message."""

    def __init__(self, config: ForwardConfig) -> None:
        import grpc

        self._grpc = grpc
        target = config.target.url
        self._channel = (grpc.secure_channel(target, grpc.ssl_channel_credentials())
                         if config.target.secure else grpc.insecure_channel(target))
        # no request serializer: the batch already is a serialized ExportTraceServiceRequest
        self._export = self._channel.unary_unary(_GRPC_METHOD)
        self._metadata = tuple((k.lower(), v) for k, v in config.headers.items())
        self._compression = grpc.Compression.Gzip if config.compression == "gzip" else None
        self._timeout_s = config.timeout_s
        g = grpc.StatusCode
        self._retryable = {g.CANCELLED, g.DEADLINE_EXCEEDED, g.RESOURCE_EXHAUSTED, g.ABORTED,
                           g.OUT_OF_RANGE, g.UNAVAILABLE, g.DATA_LOSS}

    def send(self, body: bytes) -> SendResult:
        try:
            self._export(body, timeout=self._timeout_s, metadata=self._metadata,
                         compression=self._compression)
        except self._grpc.RpcError as exc:
            code: Any = exc.code()  # a grpc.Call
            return SendResult(False, code in self._retryable, _retry_info_s(exc),
                              f"gRPC {getattr(code, 'name', code)}")
        return SendResult(True)

    def close(self) -> None:
        self._channel.close()


def _retry_info_s(exc: Any) -> float | None:
    """The ``google.rpc.RetryInfo`` delay in a gRPC error's trailing metadata, in s."""
    from google.rpc import error_details_pb2, status_pb2

    try:
        for key, value in exc.trailing_metadata() or ():
            if key != "grpc-status-details-bin":
                continue
            for detail in status_pb2.Status.FromString(value).details:
                if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                    info = error_details_pb2.RetryInfo()
                    detail.Unpack(info)
                    return float(info.retry_delay.seconds + info.retry_delay.nanos / 1e9)
    except Exception:  # noqa: BLE001 — a malformed detail only loses the hint
        return None
    return None


@dataclass(frozen=True, slots=True)
class _Item:
    kind: str
    """``protobuf`` (an OTLP/HTTP body or an OTLP/gRPC request's bytes) or ``json``."""
    data: bytes
    encoding: str | None
    rejected: tuple[FieldError, ...]
    num_spans: int
    pii_plan: Any = None
    """A :data:`~mentatlab.governance.pii_forward.ForwardPlan` to apply before sending."""


class OtlpForwarder:
    """Bounded queue + one sender thread forwarding OTLP requests to ``config.target``.

    Args:
        config: target, limits and timing.
        sender: replaces the HTTP/gRPC sender (an object with ``send(bytes)`` and
            ``close()``); default from ``config.target.protocol``.
    """

    def __init__(self, config: ForwardConfig, sender: _Sender | None = None,
                 pii_hash_key: bytes = b"") -> None:
        self.config = config
        self._pii_hash_key = pii_hash_key
        self._sender: _Sender = sender or (_GrpcSender(config)
                                           if config.target.protocol == "grpc"
                                           else _HttpSender(config))
        self._queue: deque[_Item] = deque()
        self._cond = threading.Condition()
        self._stats = ForwardStats()
        self._closing = False
        self._close_deadline_s = float("inf")
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mentatlab-otlp-forward",
                                        daemon=True)

    @property
    def stats(self) -> ForwardStats:
        """The live counters (read without a lock: each is one int)."""
        return self._stats

    def start(self) -> None:
        """Start the sender thread."""
        self._thread.start()

    def submit_http(self, body: bytes, content_type: str | None, content_encoding: str | None,
                    rejected: Sequence[FieldError], num_spans: int,
                    pii_plan: Any = None) -> bool:
        """Queue one committed OTLP/HTTP body (as sent: compressed, JSON or protobuf).

        Args:
            body: the request body as received.
            content_type: its ``Content-Type`` (JSON bodies are converted to protobuf).
            content_encoding: its ``Content-Encoding`` (undone in the sender thread).
            rejected: the spans MentatLab refused (they are not forwarded).
            num_spans: spans MentatLab accepted from this body.
            pii_plan: the PII redactions of its spans (``forward_pii = redacted``), applied
                in the sender thread; None or empty: forwarded as received.

        Returns:
            False when the queue was full and the body was dropped (and counted).
        """
        kind = "json" if is_json(content_type) else "protobuf"
        return self._put(_Item(kind, body, content_encoding, tuple(rejected), num_spans,
                               pii_plan or None))

    def _put(self, item: _Item) -> bool:
        size = len(item.data)
        with self._cond:
            stats = self._stats
            if self._closing or stats.queue_bytes + size > self.config.queue_bytes:
                stats.spans_dropped += item.num_spans
                stats.requests_dropped += 1
                return False
            self._queue.append(item)
            stats.queue_bytes += size
            self._cond.notify()
        return True

    def close(self, timeout_s: float | None = None) -> None:
        """Send what is queued, then stop the thread and close the connection.

        Args:
            timeout_s: flush budget in seconds (default ``config.timeout_s``); requests
                not sent by then are counted failed.
        """
        budget_s = self.config.timeout_s if timeout_s is None else timeout_s
        with self._cond:
            self._closing = True
            self._close_deadline_s = time.monotonic() + budget_s
            self._cond.notify()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(budget_s + 1.0)
        if self._thread.is_alive():
            _log.warning("OTLP forwarding did not finish its flush in %s s", budget_s)
            return
        self._sender.close()

    # --- sender thread -------------------------------------------------------------

    def _take(self, timeout_s: float | None) -> _Item | None:
        """The next item; None on timeout, or when closing and the queue is empty."""
        with self._cond:
            while not self._queue:
                if self._closing:
                    return None
                if not self._cond.wait(timeout_s) and not self._queue:
                    return None
            item = self._queue.popleft()
            self._stats.queue_bytes -= len(item.data)
            return item

    def _run(self) -> None:
        batch: list[tuple[_Item, bytes]] = []
        size_bytes = 0
        first_s = 0.0
        while True:
            if self._closing and time.monotonic() > self._close_deadline_s:
                self._abandon(batch)
                return
            timeout_s = None
            if batch:
                timeout_s = 0.0 if self._closing else max(
                    0.0, first_s + self.config.linger_s - time.monotonic())
            item = self._take(timeout_s)
            if item is None:
                if batch:
                    self._deliver(batch)
                    batch, size_bytes = [], 0
                elif self._closing:
                    return
                continue
            payload = self._payload(item)
            if payload is None:
                continue
            if batch and size_bytes + len(payload) > self.config.batch_bytes:
                self._deliver(batch)
                batch, size_bytes = [], 0
            if not batch:
                first_s = time.monotonic()
            batch.append((item, payload))
            size_bytes += len(payload)
            if size_bytes >= self.config.batch_bytes:
                self._deliver(batch)
                batch, size_bytes = [], 0

    def _abandon(self, batch: list[tuple[_Item, bytes]]) -> None:
        with self._cond:
            left = list(self._queue)
            self._queue.clear()
            self._stats.queue_bytes = 0
        items = [item for item, _ in batch] + left
        if items:
            _log.warning("OTLP forwarding: %s requests not sent before shutdown", len(items))
            self._count_failed(items)

    def _payload(self, item: _Item) -> bytes | None:
        """The item as ``ExportTraceServiceRequest`` bytes: refused spans out, PII plan in."""
        try:
            raw = decompress(item.data, item.encoding, self.config.max_decompressed_bytes)
            if item.kind == "json":
                converted = json_to_protobuf(raw, item.rejected)
                payload = drop_rejected(converted, item.rejected, positions_apply=False)
            else:
                payload = drop_rejected(raw, item.rejected)
            if item.pii_plan:
                payload = self._redact(payload, item.pii_plan)
            return payload
        except MentatLabError as exc:
            _log.warning("OTLP forwarding: cannot convert a %s request: %s", item.kind, exc)
        except Exception:  # noqa: BLE001 — must not end the thread; logged and counted
            _log.exception("OTLP forwarding: converting a %s request failed", item.kind)
        self._count_failed([item])
        return None

    def _redact(self, payload: bytes, plan: Any) -> bytes:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        from mentatlab.governance.pii_forward import apply_forward_plan

        message = ExportTraceServiceRequest.FromString(payload)
        if not apply_forward_plan(message, plan, self._pii_hash_key):
            return payload
        return bytes(message.SerializeToString())

    def _count_failed(self, items: Sequence[_Item]) -> None:
        with self._cond:
            self._stats.requests_failed += len(items)
            self._stats.spans_failed += sum(item.num_spans for item in items)

    def _deliver(self, batch: list[tuple[_Item, bytes]]) -> None:
        """Send one batch, retrying; count it sent or failed."""
        body = b"".join(payload for _, payload in batch)
        items = [item for item, _ in batch]
        started_s = time.monotonic()
        backoff_s = _BACKOFF_FIRST_S
        while True:
            try:
                result = self._sender.send(body)
            except Exception as exc:  # noqa: BLE001 — must not end the thread; logged, counted
                _log.exception("OTLP forwarding: the sender failed")
                result = SendResult(False, False, None, repr(exc))
            if result.ok:
                with self._cond:
                    stats = self._stats
                    stats.batches_sent += 1
                    stats.requests_sent += len(items)
                    stats.spans_sent += sum(item.num_spans for item in items)
                return
            with self._cond:
                self._stats.send_errors += 1
            delay_s = result.retry_after_s
            if delay_s is None:
                delay_s = backoff_s * random.uniform(0.5, 1.0)  # noqa: S311 — jitter only
                backoff_s = min(backoff_s * 2, _BACKOFF_MAX_S)
            deadline_s = min(started_s + self.config.retry_max_s, self._close_deadline_s)
            if not result.retryable or time.monotonic() + delay_s > deadline_s:
                _log.warning("OTLP forwarding to %s failed (%s); %s requests given up",
                             self.config.target.url, result.reason, len(items))
                self._count_failed(items)
                return
            _log.info("OTLP forwarding to %s failed (%s); retrying in %.1f s",
                      self.config.target.url, result.reason, delay_s)
            wake_s = time.monotonic() + delay_s
            if self._wake.wait(delay_s):  # closing: the close deadline now bounds retries
                time.sleep(max(0.0, wake_s - time.monotonic()))
