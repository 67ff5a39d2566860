"""The ingest path shared by every receiver: pipeline off the loop, Arrow, commit, count.

A batch is acknowledged only after :meth:`SpanWriter.submit` returns, i.e. after the
store has committed it (DESIGN.md durability rule: a 2xx survives ``kill -9``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio.to_thread

from mentatlab.errors import Backpressure, FieldError
from mentatlab.model.raw import RawSpan
from mentatlab.model.schema import spans_to_arrow
from mentatlab.pipeline.processor import BatchResult, Pipeline
from mentatlab.receivers.base import DecodedBatch, Ingest, IngestOutcome
from mentatlab.server.metrics import ServerMetrics

__all__ = ["Ingestor"]


@dataclass
class Ingestor:
    """Runs decoded raw spans through the pipeline and the writer."""

    pipeline: Pipeline
    writer: Any
    """The :class:`~mentatlab.storage.writer.SpanWriter` (``async submit(table)``)."""
    metrics: ServerMetrics

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
        result: BatchResult = await anyio.to_thread.run_sync(self.pipeline.run, raw)
        rejected = list(result.rejected)
        self._count_rejected(receiver, rejected)
        if not result.spans:
            return IngestOutcome(0, rejected)
        table = await anyio.to_thread.run_sync(spans_to_arrow, result.spans)
        started_s = time.perf_counter()
        try:
            await self.writer.submit(table, dedup=dedup)
        except Backpressure:
            self.metrics.spans_rejected.labels(receiver, "backpressure").inc(len(result.spans))
            raise
        self.metrics.write_latency_s.observe(time.perf_counter() - started_s)
        self.metrics.spans_accepted.labels(receiver).inc(len(result.spans))
        return IngestOutcome(len(result.spans), rejected)

    def _count_rejected(self, receiver: str, rejected: Sequence[FieldError]) -> None:
        if rejected:
            self.metrics.spans_rejected.labels(receiver, "invalid").inc(len(rejected))
