"""The ``policies`` ingest stage: evaluate the guardrail policies in force on a batch.

Runs after ``redact`` (so ``pii_findings`` is filled and payloads are already masked) and
before ``price``. Pure: the stage holds no store handle. The policy set in force reaches it
as a :class:`~mentatlab.governance.policies.PolicySnapshot` (picklable, with a content
digest): the server refreshes the snapshot from the control store and hands it to the
stage before each batch — :meth:`EvaluatePolicies.use` in the server process, an argument
of :func:`mentatlab.pipeline.workers.run_otlp_http` in a worker process — and each process
compiles a digest once (:func:`~mentatlab.governance.policies.compiled_set`). A stage that
was never handed a snapshot evaluates nothing.

Every match is recorded on the span (``policy_ids``/``policy_versions``/
``policy_actions``); ``block`` drops the span's payload attributes, ``redact`` masks them
(:func:`~mentatlab.governance.policies.apply_decisions`). ``alert`` is raised by the server
after the batch is committed (the stage cannot reach the alerting outbox).
"""

from __future__ import annotations

from mentatlab.governance.policies import (
    PolicySnapshot,
    apply_decisions,
    compiled_set,
    evaluate_spans,
)
from mentatlab.model.span import CanonicalSpan

__all__ = ["EvaluatePolicies"]


class EvaluatePolicies:
    """Batch stage: evaluate the snapshot in force and record/apply the decisions."""

    name = "policies"

    def __init__(self, snapshot: PolicySnapshot | None = None) -> None:
        self.snapshot = snapshot or PolicySnapshot()
        self.num_errors = 0
        """Condition evaluations that failed since this stage was built (no match)."""

    def use(self, snapshot: PolicySnapshot | None) -> None:
        """Evaluate ``snapshot`` from the next batch on (None keeps the current one)."""
        if snapshot is not None:
            self.snapshot = snapshot

    def __call__(self, spans: list[CanonicalSpan]) -> list[CanonicalSpan]:
        """Evaluate a batch of N spans in place; returns the same N spans."""
        snapshot = self.snapshot
        if not snapshot.rules or not spans:
            return spans
        evaluation = evaluate_spans(compiled_set(snapshot), spans)
        self.num_errors += evaluation.num_errors
        for index, decisions in evaluation.decisions.items():
            apply_decisions(spans[index], decisions)
        return spans
