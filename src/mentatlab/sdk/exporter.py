"""Wrapper exporter that counts what reached the server and what was dropped.

With the server down the OTLP exporter fails; the host program must not notice. The
wrapper turns any exception into a failed export, counts the spans of every failed batch
as dropped (:func:`mentatlab.sdk.export_stats`), and logs the first failure of a streak at
WARNING (later ones at DEBUG), so a missing server does not flood the program's log.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

__all__ = ["CountingExporter", "ExportStats"]

logger = logging.getLogger("mentatlab.sdk")


@dataclass(frozen=True, slots=True)
class ExportStats:
    """Spans handed to the exporter since :func:`mentatlab.init`."""

    num_exported_spans: int
    """Spans the server acknowledged."""
    num_dropped_spans: int
    """Spans lost: failed exports (server down, refused, timed out), spans ended after
    shutdown, and (counted at shutdown or re-init) spans the full export queue dropped."""


class CountingExporter(SpanExporter):
    """Delegate to ``inner``; count exported and dropped spans; never raise."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self._lock = threading.Lock()
        self._num_exported = 0
        self._num_dropped = 0
        self._failing = False

    def count_dropped(self, num_spans: int) -> None:
        """Count spans dropped before reaching the exporter."""
        with self._lock:
            self._num_dropped += num_spans

    def stats(self) -> ExportStats:
        """Counts so far."""
        with self._lock:
            return ExportStats(self._num_exported, self._num_dropped)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Export a batch of spans through the inner exporter; count the outcome."""
        try:
            result = self.inner.export(spans)
        except Exception:  # an exporter bug must not reach the export thread's caller
            logger.debug("Span exporter raised", exc_info=True)
            result = SpanExportResult.FAILURE
        with self._lock:
            if result is SpanExportResult.SUCCESS:
                self._num_exported += len(spans)
                self._failing = False
                return result
            self._num_dropped += len(spans)
            first_failure = not self._failing
            self._failing = True
        log = logger.warning if first_failure else logger.debug
        log("MentatLab could not export %s spans; they were dropped and counted", len(spans))
        return result

    def shutdown(self) -> None:
        """Shut down the inner exporter."""
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush the inner exporter."""
        return self.inner.force_flush(timeout_millis)
