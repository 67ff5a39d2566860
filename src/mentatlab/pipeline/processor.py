"""Processor protocols and the Pipeline that runs them in order over a batch.

One place lists the stages of a pipeline (:func:`mentatlab.pipeline.workers.build_pipeline`):
a normalizer, then span stages over ``CanonicalSpan`` objects, then, once the batch is an
Arrow table (``spans_to_arrow``), table stages over its columns::

    normalize → (redact → attribute → evaluate_policies → classify → ...) → Arrow → (price)

A processor is a pure function over a batch: it never talks to the network or the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import pyarrow as pa

from mentatlab.errors import FieldError
from mentatlab.model.raw import RawSpan
from mentatlab.model.schema import spans_to_arrow
from mentatlab.model.span import CanonicalSpan

__all__ = ["BatchResult", "Normalizer", "Pipeline", "Processor", "TableProcessor",
           "TableResult"]


@dataclass(slots=True)
class BatchResult:
    """Outcome of the span stages of a batch of N raw spans."""

    spans: list[CanonicalSpan]
    """Accepted spans after the span stages (not priced: pricing is a table stage)."""
    rejected: list[FieldError] = field(default_factory=list)
    """One entry per rejected span: the field and the reason."""


@dataclass(slots=True)
class TableResult:
    """Outcome of running a batch of N raw spans through every stage of the pipeline."""

    table: pa.Table
    """Accepted spans, one row each, schema ``SPAN_SCHEMA``: normalized, classified and
    priced (0 rows when none was accepted)."""
    rejected: list[FieldError] = field(default_factory=list)
    """One entry per rejected span: the field and the reason."""


class Normalizer(Protocol):
    """Turns raw spans into canonical spans, rejecting spans that break a rule."""

    def __call__(self, raw: Sequence[RawSpan]) -> BatchResult:
        """Normalize a batch of N raw spans; len(result.spans) + len(result.rejected) == N."""
        ...


class Processor(Protocol):
    """A pure batch → batch step over spans after normalization (classify, redact...)."""

    name: str
    """Short identifier used in metrics and logs, e.g. ``"classify"``."""

    def __call__(self, spans: list[CanonicalSpan]) -> list[CanonicalSpan]:
        """Process a batch of N spans and return N spans (new objects where changed)."""
        ...


class TableProcessor(Protocol):
    """A pure table → table step over the Arrow batch (price)."""

    name: str
    """Short identifier used in metrics and logs, e.g. ``"price"``."""

    def __call__(self, table: pa.Table) -> pa.Table:
        """Process N rows (schema ``SPAN_SCHEMA``); return the same N rows, same order."""
        ...


@dataclass(slots=True)
class Pipeline:
    """A normalizer, then span stages, then table stages, each list in order."""

    normalizer: Normalizer
    processors: Sequence[Processor] = ()
    """Stages over ``CanonicalSpan`` objects."""
    table_processors: Sequence[TableProcessor] = ()
    """Stages over the Arrow table of the accepted spans, after the span stages."""

    @property
    def stages(self) -> tuple[Processor | TableProcessor, ...]:
        """Every stage after the normalizer, in the order they run."""
        return (*self.processors, *self.table_processors)

    def run(self, raw: Sequence[RawSpan]) -> TableResult:
        """Run a batch of N raw spans through every stage; the accepted spans as a table."""
        result = self.run_spans(raw)
        table = spans_to_arrow(result.spans)
        if table.num_rows:
            for processor in self.table_processors:
                table = processor(table)
        return TableResult(table, result.rejected)

    def run_spans(self, raw: Sequence[RawSpan]) -> BatchResult:
        """Run a batch of N raw spans through the normalizer and the span stages only.

        The spans are not priced when pricing is a table stage (as in ``build_pipeline``).
        """
        result = self.normalizer(raw)
        spans = result.spans
        for processor in self.processors:
            spans = processor(spans)
        return BatchResult(spans, result.rejected)
