"""Approval-queue metrics on both span backends: exact counts, waits and the queue."""

from __future__ import annotations

from datetime import timedelta

import pytest
from signal_spans import T0, append, make_span

from mentatlab.analytics.approvals import approval_metrics, nearest_rank
from mentatlab.analytics.query import QueryParams, TimeRange
from mentatlab.errors import ValidationError
from mentatlab.storage.base import SpanStore

M = timedelta(minutes=1)
S = "mentat.approval.state"
ID = "mentat.approval.id"


def _load(store: SpanStore) -> None:
    spans = [
        # A1: one span covers the wait: requested at its start, approved at its end
        make_span(T0 + M, duration=2 * M, agent="triage", attributes={S: "approved"}),
        # A2: a request span and a later decision span, tied by the id
        make_span(T0 + 5 * M, agent="triage", attributes={S: "requested", ID: "r2"}),
        make_span(T0 + 15 * M, duration=timedelta(seconds=1), agent="triage",
                  attributes={S: "Rejected", ID: "r2", "mentat.approval.reviewer": "user:7"}),
        # A3: requested before the window, decided in it
        make_span(T0 - 30 * M, duration=timedelta(0), agent="billing",
                  attributes={S: "requested", ID: "r3"}),
        make_span(T0 + 10 * M, duration=timedelta(0), agent="billing",
                  attributes={S: "approved", ID: "r3"}),
        # A4: requested in the window, still waiting
        make_span(T0 + 20 * M, agent="billing", attributes={S: "requested", ID: "r4"}),
        # A5: decided only after the window's end: pending at its end
        make_span(T0 + 50 * M, agent="triage", attributes={S: "requested", ID: "r5"}),
        make_span(T0 + 70 * M, agent="triage", attributes={S: "approved", ID: "r5"}),
        # A6: requested and decided before the window: not its business
        make_span(T0 - 120 * M, attributes={S: "requested", ID: "r6"}),
        make_span(T0 - 90 * M, attributes={S: "approved", ID: "r6"}),
        # A7: requested 3 h before the window, never decided
        make_span(T0 - 180 * M, agent="billing", attributes={S: "requested", ID: "r7"}),
        # A8: expired after 5 min, a workflow's
        make_span(T0 + 30 * M, duration=5 * M, workflow_id="wf1", attributes={S: "expired"}),
        # not approvals: no state, another org, a look-alike value elsewhere
        make_span(T0 + 2 * M, agent="triage", attributes={"note": "mentat.approval.state"}),
        make_span(T0 + 3 * M, org="other", attributes={S: "requested", ID: "x"}),
        make_span(T0 + 4 * M, agent="triage"),
    ]
    append(store, spans[:7])
    append(store, spans[7:])
    append(store, spans[:3])  # re-sent: FINAL counts them once


def _params(**filters: str) -> QueryParams:
    return QueryParams(TimeRange(T0, T0 + 60 * M), filters={"org_id": "acme", **filters})


def test_the_queue_waits_and_rate_are_exact(store: SpanStore) -> None:
    _load(store)
    report = approval_metrics(store, _params())
    t = report.total
    assert (t.num_requested, t.num_decided, t.num_approved, t.num_rejected, t.num_expired) == (
        5, 4, 2, 1, 1)
    assert t.approval_rate == 0.5
    # waits 120 000, 300 000, 601 000, 2 400 000 ms: nearest rank 2 and 4 of 4
    assert (t.wait_ms_p50, t.wait_ms_p95, t.wait_ms_max) == (300_000.0, 2_400_000.0,
                                                              2_400_000.0)
    assert t.queue_length == 3 and t.oldest_pending_ms == 4 * 3600 * 1000.0
    assert [(p.approval_id, p.age_ms) for p in report.oldest_pending] == [
        ("r7", 14_400_000.0), ("r4", 2_400_000.0), ("r5", 600_000.0)]
    assert report.oldest_pending[0].agent_id == "billing"


def test_groups_by_agent_and_reviewer(store: SpanStore) -> None:
    _load(store)
    by_agent = {g.key["agent_id"]: g for g in approval_metrics(
        store, _params(), group_by="agent_id").groups}
    assert set(by_agent) == {"triage", "billing", ""}
    triage, billing = by_agent["triage"], by_agent["billing"]
    assert (triage.num_requested, triage.num_decided, triage.queue_length) == (3, 2, 1)
    assert (triage.wait_ms_p50, triage.approval_rate) == (120_000.0, 0.5)
    assert (billing.num_requested, billing.num_decided, billing.queue_length) == (1, 1, 2)
    assert billing.wait_ms_max == 2_400_000.0 and billing.approval_rate == 1.0
    assert by_agent[""].num_expired == 1
    reviewers = {g.key["reviewer"]: g.num_decided for g in approval_metrics(
        store, _params(), group_by="reviewer").groups}
    assert reviewers == {"user:7": 1, "": 3}


def test_the_horizon_and_filters(store: SpanStore) -> None:
    _load(store)
    short = approval_metrics(store, _params(), max_wait_s=3600).total
    assert short.queue_length == 2  # r7 (3 h before) is past the horizon
    assert short.wait_ms_max == 2_400_000.0  # r3 was requested 30 min before: inside it
    only_wf = approval_metrics(store, _params(workflow_id="wf1")).total
    assert (only_wf.num_requested, only_wf.num_expired, only_wf.queue_length) == (1, 1, 0)
    nothing = approval_metrics(store, QueryParams(TimeRange(T0 + 2 * 60 * M, T0 + 3 * 60 * M),
                                                  filters={"org_id": "nobody"})).total
    assert (nothing.num_requested, nothing.approval_rate, nothing.wait_ms_p50) == (0, None, None)


def test_bad_arguments_are_refused(store: SpanStore) -> None:
    with pytest.raises(ValidationError, match="group_by"):
        approval_metrics(store, _params(), group_by="model")
    with pytest.raises(ValidationError, match="max_wait_s"):
        approval_metrics(store, _params(), max_wait_s=-1)


def test_nearest_rank() -> None:
    assert nearest_rank([], 0.5) is None
    assert nearest_rank([7], 0.95) == 7
    values = list(range(1, 101))
    assert (nearest_rank(values, 0.5), nearest_rank(values, 0.95)) == (50, 95)
    assert nearest_rank([1, 2, 3], 0.5) == 2


def test_the_docs_hold_the_oversight_attribute_table() -> None:
    from pathlib import Path

    from mentatlab.conventions.oversight import render_markdown

    doc = Path(__file__).resolve().parents[2] / "docs" / "conventions.md"
    assert render_markdown() in doc.read_text(encoding="utf-8")
