"""The ingest path shared by every receiver: pipeline off the loop, Arrow, commit, count.

A batch is acknowledged only after :meth:`SpanWriter.submit` returns, i.e. after the
store has committed it, or, with the write-ahead log on (``wal``, decision 0022), after
it was appended to the log (DESIGN.md durability rule: a 2xx survives ``kill -9``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import multiprocessing
import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread
import pyarrow as pa

from mentatlab.errors import Backpressure, FieldError
from mentatlab.governance.policies import PolicySnapshot
from mentatlab.model.raw import RawSpan
from mentatlab.pipeline import workers
from mentatlab.pipeline.processor import Pipeline, TableResult
from mentatlab.receivers.base import DecodedBatch, Ingest, IngestOutcome
from mentatlab.receivers.otlp_http import HttpLimits, decode_http_body
from mentatlab.server.metrics import ServerMetrics
from mentatlab.settings import Settings

__all__ = ["WORKER_START_WAIT_S", "Ingestor"]

_log = logging.getLogger(__name__)
WORKER_START_WAIT_S = 30.0
"""Longest wait of a body for the starting ingest workers, in seconds; past it the body is
processed in the server process (the workers keep starting)."""


@dataclass
class Ingestor:
    """Runs decoded raw spans through the pipeline and the writer."""

    pipeline: Pipeline
    writer: Any
    """The :class:`~mentatlab.storage.writer.SpanWriter` (``async submit(table)``)."""
    metrics: ServerMetrics
    settings: Settings | None = None
    """When set with ``ingest_workers`` > 0, OTLP/HTTP bodies are processed in worker
    processes (:mod:`mentatlab.pipeline.workers`); see :meth:`start`."""
    forwarder: Any = None
    """An :class:`~mentatlab.exporters.OtlpForwarder`: committed OTLP/HTTP bodies are
    queued to it (never blocking); None when forwarding is off."""
    policies: Any = None
    """The :class:`~mentatlab.server.policies.PolicyService`: its snapshot goes with each
    batch to the ``policies`` stage, and its ``raise_alerts`` runs on each committed batch;
    None evaluates no policy."""
    _pool: ProcessPoolExecutor | None = field(default=None, init=False, repr=False)
    _ready: bool = field(default=False, init=False, repr=False)
    _warmup: asyncio.Future[None] | None = field(default=None, init=False, repr=False)
    _pii_config: Any = field(default=None, init=False, repr=False)
    _idle_stop: asyncio.Future[None] | None = field(default=None, init=False, repr=False)
    _last_body_s: float = field(default=0.0, init=False, repr=False)

    def __post_init__(self) -> None:
        forwarder = self.forwarder
        if forwarder is not None:
            self.metrics.bind_forwarder(lambda: forwarder.stats)

    async def start(self) -> None:
        """Start ``settings.ingest_workers`` worker processes in the background.

        Returns at once; the server calls it on the first OTLP/HTTP body (workers start on
        first load, not at start-up: an idle server holds no worker). Bodies wait for the
        workers to build their pipelines (~1 s, :data:`WORKER_START_WAIT_S` at most), then
        go to them. A no-op without settings, with 0 workers or once started.
        """
        settings = self.settings
        count = settings.ingest_workers if settings is not None else 0
        if settings is None or count <= 0 or self._pool is not None:
            return
        pool = ProcessPoolExecutor(count, multiprocessing.get_context("forkserver"),
                                   initializer=functools.partial(workers.init_pool_worker,
                                                                 settings, os.getpid()))
        self._pool = pool
        self._last_body_s = time.monotonic()
        loop = asyncio.get_running_loop()
        pings = [loop.run_in_executor(pool, workers.ping) for _ in range(count)]
        self._warmup = asyncio.ensure_future(self._await_ready(pool, pings))
        if settings.ingest_workers_idle_s > 0:
            self._idle_stop = asyncio.ensure_future(
                self._stop_when_idle(pool, settings.ingest_workers_idle_s))

    async def _stop_when_idle(self, pool: ProcessPoolExecutor, idle_s: float) -> None:
        """Shut ``pool`` down once no OTLP/HTTP body came for ``idle_s`` seconds.

        The next body starts a new pool. Bodies already handed to ``pool`` finish first
        (``shutdown`` waits for them); none is handed to it once it is no longer
        ``self._pool`` (both happen on the event loop, without an await in between).
        """
        while self._pool is pool:
            wait_s = self._last_body_s + idle_s - time.monotonic()
            if wait_s > 0:
                await asyncio.sleep(wait_s)
                continue
            self._pool, self._ready, self._warmup = None, False, None
            _log.info("Stopping the ingest workers: no OTLP/HTTP body for %.0f s", idle_s)
            await anyio.to_thread.run_sync(pool.shutdown)

    async def _await_ready(self, pool: ProcessPoolExecutor,
                           pings: list[asyncio.Future[bool]]) -> None:
        try:
            await asyncio.gather(*pings)
        except Exception:  # noqa: BLE001 — keep serving in-process; logged
            _log.exception("Ingest workers failed to start; the pipeline stays in-process")
            return
        if self._pool is pool:
            self._ready = True
            _log.info("Started %s ingest worker processes", len(pings))

    @property
    def workers_running(self) -> int:
        """Worker processes serving OTLP/HTTP bodies now.

        ``ingest_workers`` once started and ready; 0 before the first body, while they
        start and once they stopped when idle.
        """
        if self._pool is None or not self._ready or self.settings is None:
            return 0
        return self.settings.ingest_workers

    def _wants_workers(self) -> bool:
        return self.settings is not None and self.settings.ingest_workers > 0

    async def close(self) -> None:
        """Stop the worker processes (waits for running batches)."""
        pool, self._pool, self._ready = self._pool, None, False
        if self._idle_stop is not None:
            self._idle_stop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._idle_stop
            self._idle_stop = None
        if self._warmup is not None:
            self._warmup.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._warmup
            self._warmup = None
        if pool is not None:
            await anyio.to_thread.run_sync(pool.shutdown)

    async def ingest_otlp_body(self, body: bytes, content_type: str | None,
                               content_encoding: str | None, limits: HttpLimits,
                               tenancy: Mapping[str, str] | None = None,
                               admit: Callable[[int], None] | None = None, *,
                               receiver: str = "otlp_http",
                               ) -> tuple[list[FieldError], IngestOutcome]:
        """Decode and ingest one OTLP body; return when durable.

        The body is an OTLP/HTTP body, or an OTLP/gRPC request's bytes with the protobuf
        content type. In a worker process when workers run, else in a thread of this process.
        ``admit``, when given, is called with the number of spans decoded before anything
        is counted or committed; what it raises refuses the body whole (a quota).
        ``receiver`` labels the metrics (``otlp_http``, ``otlp_grpc``). With forwarding on,
        the committed body is queued for it.

        Returns:
            The spans the decoder refused, and the outcome of the rest.

        Raises:
            UnsupportedMediaType, PayloadTooLarge, DecodeError: the body is refused.
            RateLimited: ``admit`` refused the batch; nothing of it was stored.
            Backpressure: the writer buffer is full; nothing of this batch was stored.
            StoreError: the store failed the commit.
        """
        self._last_body_s = time.monotonic()
        if self._pool is None and self._wants_workers():
            await self.start()  # the first body: start the workers now (issue 18)
        if not self._ready and self._warmup is not None:
            # wait for the starting workers rather than run the pipeline here, so this
            # process never loads what only the workers need (Presidio...)
            await asyncio.wait([self._warmup], timeout=WORKER_START_WAIT_S)
        pool = self._pool
        result: workers.WorkerResult | None = None
        if pool is not None and self._ready:
            loop = asyncio.get_running_loop()
            try:
                result = await loop.run_in_executor(
                    pool, workers.run_otlp_http, body, content_type, content_encoding,
                    limits, dict(tenancy) if tenancy else None, self._snapshot())
            except BrokenProcessPool:
                _log.error("An ingest worker died; restarting the pool, this batch in-process")
                self._pool, self._ready = None, False
                pool.shutdown(wait=False)
                await self.start()
        if result is None:  # no workers, a dead pool, or a body that does not decode
            decoded = await anyio.to_thread.run_sync(
                decode_http_body, body, content_type, content_encoding, limits)
            if admit is not None:
                admit(len(decoded.spans))
            outcome = await self.ingest(decoded.spans, receiver, tenancy, decoded.rejected)
            self._forward(body, content_type, content_encoding,
                          [*decoded.rejected, *outcome.rejected], outcome.accepted,
                          outcome.forward_pii_plan)
            return decoded.rejected, outcome
        if admit is not None:
            admit(result.received)
        self.metrics.spans_received.labels(receiver).inc(
            result.received + len(result.decode_rejected))
        self._count_rejected(receiver, result.decode_rejected)
        self._count_rejected(receiver, result.rejected)
        if result.table_ipc is None:
            return result.decode_rejected, IngestOutcome(0, result.rejected)
        table = workers.arrow_from_ipc(result.table_ipc)
        await self._commit(table, receiver, dedup=True)
        self._forward(body, content_type, content_encoding,
                      [*result.decode_rejected, *result.rejected], table.num_rows,
                      self._forward_pii_plan(table))
        return result.decode_rejected, IngestOutcome(table.num_rows, result.rejected)

    def _forward(self, body: bytes, content_type: str | None, content_encoding: str | None,
                 rejected: list[FieldError], accepted: int, pii_plan: Any = None) -> None:
        """Queue a committed body for OTLP forwarding (only after the commit succeeded)."""
        if self.forwarder is not None and accepted:
            self.forwarder.submit_http(body, content_type, content_encoding, rejected, accepted,
                                       pii_plan)

    def _forward_pii_plan(self, table: pa.Table) -> Any:
        """The PII redactions a forwarded copy of ``table``'s spans needs, or None.

        None without forwarding, with ``forward_pii = raw``, or when nothing changes.
        """
        settings = self.settings
        if self.forwarder is None or settings is None or settings.forward_pii != "redacted":
            return None
        from mentatlab.governance.pii_config import PiiConfig
        from mentatlab.governance.pii_forward import forward_plan

        config = self._pii_config
        if config is None:
            config = self._pii_config = PiiConfig.from_settings(settings)
        return forward_plan(table, config, settings.max_attribute_value_bytes) or None

    def for_receiver(self, receiver: str, tenancy: Mapping[str, str] | None = None, *,
                     dedup: bool = True) -> Ingest:
        """An :data:`~mentatlab.receivers.base.Ingest` callable for one receiver."""

        async def ingest_batch(batch: DecodedBatch) -> IngestOutcome:
            return await self.ingest(batch.spans, receiver, tenancy, batch.rejected,
                                     dedup=dedup)

        return ingest_batch

    async def ingest(self, raw: Sequence[RawSpan], receiver: str,
                     tenancy: Mapping[str, str] | None = None,
                     decode_rejected: Sequence[FieldError] = (), *,
                     dedup: bool = True) -> IngestOutcome:
        """Normalize, price and commit a batch of N raw spans; return when durable.

        Args:
            raw: decoded spans.
            receiver: metric label (``otlp_http``, ``otlp_grpc``, ``events``).
            tenancy: tenancy fixed by the API key; it wins over the span's own.
            decode_rejected: spans the decoder already refused (counted here; the
                receiver reports them, so they are not in the outcome).
            dedup: drop spans whose ids were recently committed; False for sources that
                re-emit a span on purpose to replace it (native events: a completion
                replaces its open span, the store keeps the newest version).

        Returns:
            Spans committed and the spans the pipeline refused.

        Raises:
            Backpressure: the writer buffer is full; nothing of this batch was stored.
            StoreError: the store failed the commit.
        """
        self.metrics.spans_received.labels(receiver).inc(len(raw) + len(decode_rejected))
        if tenancy:
            for span in raw:
                span.tenancy.update(tenancy)
        self._count_rejected(receiver, decode_rejected)
        if not raw:
            return IngestOutcome(0, [])
        workers.use_policies(self.pipeline, self._snapshot())
        result: TableResult = await anyio.to_thread.run_sync(self.pipeline.run, raw)
        rejected = list(result.rejected)
        self._count_rejected(receiver, rejected)
        table = result.table
        if not table.num_rows:
            return IngestOutcome(0, rejected)
        await self._commit(table, receiver, dedup=dedup)
        return IngestOutcome(table.num_rows, rejected, self._forward_pii_plan(table))

    async def _commit(self, table: pa.Table, receiver: str, *, dedup: bool) -> None:
        started_s = time.perf_counter()
        try:
            await self.writer.submit(table, dedup=dedup)
        except Backpressure:
            self.metrics.spans_rejected.labels(receiver, "backpressure").inc(table.num_rows)
            raise
        self.metrics.write_latency_s.observe(time.perf_counter() - started_s)
        self.metrics.spans_accepted.labels(receiver).inc(table.num_rows)
        await anyio.to_thread.run_sync(self._after_commit, table)  # one thread hop for both

    def _after_commit(self, table: pa.Table) -> None:
        """Count a committed batch's RED metrics and raise its policy alerts (blocking).

        The batch is durable: a failure here is logged and never turns the
        acknowledgement into an error.
        """
        try:
            self.metrics.red.observe_batch(table)
        except Exception:  # noqa: BLE001 — logged; the batch is durable either way
            _log.exception("Counting the RED metrics of a committed batch failed")
        if self.policies is not None:
            try:
                self.policies.raise_alerts(table)
            except Exception:  # noqa: BLE001 — logged; the batch is durable either way
                _log.exception("Raising the policy alerts of a committed batch failed")

    def _snapshot(self) -> PolicySnapshot | None:
        return self.policies.current() if self.policies is not None else None

    def _count_rejected(self, receiver: str, rejected: Sequence[FieldError]) -> None:
        if rejected:
            self.metrics.spans_rejected.labels(receiver, "invalid").inc(len(rejected))
