"""Processor protocol and the Pipeline that runs processors in order over a batch.

``normalize → (redact → evaluate_policies →) price → classify``. A processor is a pure
function over a batch: it never talks to the network or the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from mentatlab.errors import FieldError
from mentatlab.model.raw import RawSpan
from mentatlab.model.span import CanonicalSpan

__all__ = ["BatchResult", "Normalizer", "Pipeline", "Processor"]


@dataclass(slots=True)
class BatchResult:
    """Outcome of running a batch of N raw spans through the pipeline."""

    spans: list[CanonicalSpan]
    """Accepted spans, normalized and priced."""
    rejected: list[FieldError] = field(default_factory=list)
    """One entry per rejected span: the field and the reason."""


class Normalizer(Protocol):
    """Turns raw spans into canonical spans, rejecting spans that break a rule."""

    def __call__(self, raw: Sequence[RawSpan]) -> BatchResult:
        """Normalize a batch of N raw spans; len(result.spans) + len(result.rejected) == N."""
        ...


class Processor(Protocol):
    """A pure batch → batch step after normalization (price, classify, redact...)."""

    name: str
    """Short identifier used in metrics and logs, e.g. ``"price"``."""

    def __call__(self, spans: list[CanonicalSpan]) -> list[CanonicalSpan]:
        """Process a batch of N spans and return N spans (new objects where changed)."""
        ...


@dataclass(slots=True)
class Pipeline:
    """An ordered list of processors after a normalizer."""

    normalizer: Normalizer
    processors: Sequence[Processor] = ()

    def run(self, raw: Sequence[RawSpan]) -> BatchResult:
        """Run a batch of N raw spans through every stage, in order."""
        result = self.normalizer(raw)
        spans = result.spans
        for processor in self.processors:
            spans = processor(spans)
        return BatchResult(spans, result.rejected)
