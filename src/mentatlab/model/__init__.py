"""Canonical records and their Arrow schema."""

from __future__ import annotations

from mentatlab.model.raw import AttrValue, RawSpan, StatusCode
from mentatlab.model.schema import SPAN_COLUMNS, SPAN_SCHEMA, arrow_to_spans, spans_to_arrow
from mentatlab.model.span import CanonicalSpan, Operation, SpanStatus

__all__ = [
    "SPAN_COLUMNS",
    "SPAN_SCHEMA",
    "AttrValue",
    "CanonicalSpan",
    "Operation",
    "RawSpan",
    "SpanStatus",
    "StatusCode",
    "arrow_to_spans",
    "spans_to_arrow",
]
