"""Simulation mode: what a (draft) policy would have matched in stored history.

The stored spans of a window are read in pages (:func:`~mentatlab.analytics.spans.
iter_spans`, newest version of each span, keyset paging) and evaluated with the same
compiled code path as the ingest stage (:func:`~mentatlab.governance.policies.
evaluate_spans` over a one-rule :class:`~mentatlab.governance.policies.PolicySnapshot`),
so the simulation and enforcement cannot disagree on the same span. Bounded: at most
``max_spans`` spans and ``max_seconds`` of work; ``truncated`` says when a bound cut it.

What differs from enforcement by design (docs/governance.md): stored spans carry the
attribution the resolver filled in later (an agent-scoped policy may match more spans than
it did at ingest), and the payload of spans a ``block``/``redact`` policy already matched
is gone or masked.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from mentatlab.analytics.spans import iter_spans
from mentatlab.errors import ValidationError
from mentatlab.governance.policies import PolicyRule, PolicySnapshot, compiled_set, evaluate_spans
from mentatlab.model.schema import arrow_to_spans
from mentatlab.storage.base import SpanStore

__all__ = ["MAX_SIMULATED_SPANS", "SimulationReport", "simulate_policy"]

MAX_SIMULATED_SPANS = 1_000_000
"""Most spans one simulation may read."""


@dataclass(slots=True)
class SimulationReport:
    """What a policy would have matched in ``[start, end)``."""

    num_scanned: int = 0
    """Spans read and evaluated (in scope or not)."""
    num_in_scope: int = 0
    """Spans the policy's owner and scope cover."""
    num_matched: int = 0
    num_errors: int = 0
    """Evaluations that failed (no match)."""
    by_action: Counter[str] = field(default_factory=Counter)
    """Action → spans matched (one action per policy: a single entry)."""
    by_scope: Counter[str] = field(default_factory=Counter)
    """``project:<id>``, ``agent:<id>``, ``tool:<name>`` → spans matched (agent and tool
    only for spans that have one)."""
    sample_span_ids: list[tuple[str, str]] = field(default_factory=list)
    """``(trace_id, span_id)`` of the first matches, at most ``num_samples``."""
    truncated: bool = False
    """True when ``max_spans`` or ``max_seconds`` stopped the scan with spans left unread."""
    elapsed_s: float = 0.0


def simulate_policy(store: SpanStore, rule: PolicyRule, start: datetime, end: datetime, *,
                    org_id: str | None = None, max_spans: int = 100_000,
                    max_seconds: float = 10.0, batch_rows: int = 5_000,
                    num_samples: int = 20) -> SimulationReport:
    """Evaluate ``rule`` over the stored spans with start in ``[start, end)``.

    Args:
        store: the span store.
        rule: the policy version to simulate (a draft or a stored version).
        start: the window's inclusive start (timezone-aware).
        end: the window's exclusive end (timezone-aware).
        org_id: read only this org's spans (a caller's tenancy); None: every org.
        max_spans: stop after this many spans (1..:data:`MAX_SIMULATED_SPANS`).
        max_seconds: stop after this many seconds of work (> 0).
        batch_rows: spans per page read from the store.
        num_samples: sample span ids to keep.

    Raises:
        ValidationError: a bad window or bound, or a condition that does not compile.
        StoreError: a query failed.
    """
    if not 1 <= max_spans <= MAX_SIMULATED_SPANS:
        raise ValidationError("max_spans", f"Expected 1 to {MAX_SIMULATED_SPANS}, got {max_spans}")
    if not 0 < max_seconds <= 300:
        raise ValidationError("max_seconds",
                              f"Expected more than 0 and at most 300, got {max_seconds}")
    policy_set = compiled_set(PolicySnapshot.of([rule]))
    if policy_set.invalid:
        raise ValidationError("condition", "Expected a condition that compiles")
    report = SimulationReport()
    started = time.monotonic()
    filters = {"org_id": org_id} if org_id is not None else None
    pages = iter_spans(store, start, end, batch_rows=min(batch_rows, max_spans),
                       filters=filters)
    for table in pages:
        every = arrow_to_spans(table)
        spans = every[: max_spans - report.num_scanned]
        evaluation = evaluate_spans(policy_set, spans)
        report.num_scanned += len(spans)
        report.num_in_scope += sum(1 for s in spans if policy_set.candidates(s))
        report.num_errors += evaluation.num_errors
        for index in sorted(evaluation.decisions):
            span = spans[index]
            report.num_matched += 1
            for decision in evaluation.decisions[index]:
                report.by_action[decision.action] += 1
            report.by_scope[f"project:{span.project_id}"] += 1
            if span.agent_id:
                report.by_scope[f"agent:{span.agent_id}"] += 1
            if span.tool_name:
                report.by_scope[f"tool:{span.tool_name}"] += 1
            if len(report.sample_span_ids) < num_samples:
                report.sample_span_ids.append((span.trace_id, span.span_id))
        if report.num_scanned >= max_spans:
            # stopped by the count: truncated only when spans were left unread
            report.truncated = len(every) > len(spans) or next(pages, None) is not None
            break
        if time.monotonic() - started > max_seconds:
            report.truncated = True
            break
    report.elapsed_s = time.monotonic() - started
    return report
