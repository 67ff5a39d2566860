"""The receiver seam: what every receiver produces and what the ingest stage answers.

A receiver turns bytes into a :class:`DecodedBatch` and hands it to an ingest callable
(pipeline, writer) that answers an :class:`IngestOutcome` once the accepted spans are
durable. Receivers do nothing else.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from mentatlab.errors import FieldError
from mentatlab.model.raw import RawSpan

__all__ = ["MAX_TIME_NS", "DecodedBatch", "Ingest", "IngestBody", "IngestOutcome",
           "summarize_rejections"]

MAX_TIME_NS = 9_223_372_036_000_000_000
"""Latest span time a receiver accepts, unix ns (2262-04-11T23:47:16Z): the store's
``DateTime64(9)`` ends 854,775,807 ns later, and whole seconds keep the microsecond
rounding of Python datetimes inside it."""


@dataclass(slots=True)
class DecodedBatch:
    """Spans decoded from one request, and one :class:`FieldError` per refused span.

    Spans decoded from one OTLP ``ResourceSpans`` share one ``resource`` dict: treat it
    as read-only.
    """

    spans: list[RawSpan] = field(default_factory=list)
    rejected: list[FieldError] = field(default_factory=list)


@dataclass(slots=True)
class IngestOutcome:
    """What the ingest stage did with a batch.

    ``rejected`` lists only the spans the ingest stage itself refused (normalization,
    validation); the receiver adds ``DecodedBatch.rejected`` when it answers the client,
    so a span is never counted twice.
    """

    accepted: int
    """Spans made durable."""
    rejected: list[FieldError] = field(default_factory=list)
    forward_pii_plan: Any = None
    """PII redactions the forwarded copy of these spans needs
    (:data:`~mentatlab.governance.pii_forward.ForwardPlan`); None: none, or no forwarding."""


Ingest: TypeAlias = Callable[[DecodedBatch], Awaitable[IngestOutcome]]
"""The ingest callable receivers are given; it raises ``Backpressure`` when full."""

IngestBody: TypeAlias = Callable[[bytes], Awaitable[tuple[list[FieldError], IngestOutcome]]]
"""Ingest one serialized OTLP ``ExportTraceServiceRequest`` (protobuf bytes): decode it
(in an ingest worker process when the server runs them), then ingest what decoded.
Answers the spans the decoder refused and the outcome of the rest; raises
``DecodeError`` when the bytes are not a request and ``Backpressure`` when full."""

_MAX_LISTED_ERRORS = 10


def summarize_rejections(rejected: list[FieldError]) -> str:
    """One message listing the first rejections, for an OTLP partial-success answer.

    Args:
        rejected: every refused span's field and reason.

    Returns:
        ``""`` when nothing was refused, else ``"N spans rejected: field: reason; ..."``
        naming at most 10 of them.
    """
    if not rejected:
        return ""
    listed = "; ".join(f"{e.field}: {e.reason}" for e in rejected[:_MAX_LISTED_ERRORS])
    more = len(rejected) - _MAX_LISTED_ERRORS
    suffix = f"; and {more} more" if more > 0 else ""
    return f"{len(rejected)} spans rejected: {listed}{suffix}"
