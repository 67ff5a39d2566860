"""Adoption by workflow on constructed traces, on both backends, worked out by hand.

Window: two days from T0, day buckets. Every trace is a root and one child (the child
carries the cost; ``failed`` makes the child an error), org acme unless said.

* ``support`` day 1: users u1, u2, u1; costs 0.01, 0.02 (failed), 0.03 → 3 runs, 2 users,
  2 successes, 0.06 USD, 0.03 per success. Day 2: users u3 and none; 0.005 each → 2 runs,
  1 user, 2 successes, 0.01, 0.005 per success. Total: 5 runs, 3 users (u1, u2, u3), 4
  successes, 0.07 → 0.0175 per success.
* ``billing`` day 2: u1, 0.1 → 1 run, 1 user, 0.1 per success.
* no workflow, day 1: one failed run of 0.002 → no success, no cost per success.
* globex: a ``support`` run of 5 USD (left out by the acme filter).

Ranked by runs, then cost: support (5), billing (1, 0.1), none (1, 0.002).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import count

import pytest

from mentatlab.analytics.adoption import get_adoption
from mentatlab.analytics.query import QueryParams, TimeRange
from mentatlab.errors import ValidationError
from mentatlab.model.span import CanonicalSpan, Operation, SpanStatus
from mentatlab.storage.base import SpanStore

T0 = datetime(2026, 11, 4, tzinfo=UTC)
DAY2 = T0 + timedelta(days=1)
WINDOW = TimeRange(T0, T0 + timedelta(days=2))
ACME = {"org_id": "acme"}
_numbers = count(1)


def _run(workflow: str, start: datetime, cost: str, user: str = "", failed: bool = False,
         org: str = "acme") -> list[CanonicalSpan]:
    t = next(_numbers)
    common = dict(trace_id=f"{t:032x}", kind="internal", org_id=org, project_id="p",
                  service_name="svc", ingested_at_ns=1, workflow_id=workflow, user_id=user)
    root = CanonicalSpan(span_id=f"{t:08x}{0:08x}", parent_span_id="", name="run",
                         start_time=start, end_time=start + timedelta(seconds=2),
                         duration_ms=2000.0, status=SpanStatus.OK, operation=Operation.AGENT,
                         **common)  # type: ignore[arg-type]
    child = CanonicalSpan(span_id=f"{t:08x}{1:08x}", parent_span_id=root.span_id, name="chat",
                          start_time=start + timedelta(seconds=1),
                          end_time=start + timedelta(seconds=2), duration_ms=1000.0,
                          status=SpanStatus.ERROR if failed else SpanStatus.OK,
                          operation=Operation.CHAT, token_cost=Decimal(cost),
                          total_cost=Decimal(cost), **common)  # type: ignore[arg-type]
    return [root, child]


def build() -> list[CanonicalSpan]:
    h = timedelta(hours=1)
    return [
        *_run("support", T0 + 1 * h, "0.01", "u1"),
        *_run("support", T0 + 2 * h, "0.02", "u2", failed=True),
        *_run("support", T0 + 3 * h, "0.03", "u1"),
        *_run("support", DAY2 + 1 * h, "0.005", "u3"),
        *_run("support", DAY2 + 2 * h, "0.005"),
        *_run("billing", DAY2 + 3 * h, "0.1", "u1"),
        *_run("", T0 + 4 * h, "0.002", failed=True),
        *_run("support", T0 + 5 * h, "5", "u9", org="globex"),
    ]


@pytest.fixture(scope="module")
def spans() -> list[CanonicalSpan]:
    """Overrides the conftest dataset: ``loaded`` holds these spans (and resent copies)."""
    return build()


def _cells(rows: object) -> list[tuple[object, ...]]:
    return [(r.workflow_id, r.bucket_start, r.num_traces, r.num_users, r.num_successes,  # type: ignore[attr-defined]
             r.total_cost, r.cost_per_success) for r in rows]  # type: ignore[attr-defined]


def test_totals_and_days_worked_out_by_hand(loaded: SpanStore) -> None:
    a = get_adoption(loaded, QueryParams(WINDOW, filters=ACME, bucket="day"))
    assert _cells(a.workflows) == [
        ("support", None, 5, 3, 4, Decimal("0.07"), Decimal("0.0175")),
        ("billing", None, 1, 1, 1, Decimal("0.1"), Decimal("0.1")),
        ("", None, 1, 0, 0, Decimal("0.002"), None),
    ]
    assert a.workflows[0].success_rate == pytest.approx(0.8)
    assert _cells(a.buckets) == [
        ("support", T0, 3, 2, 2, Decimal("0.06"), Decimal("0.03")),
        ("", T0, 1, 0, 0, Decimal("0.002"), None),
        ("support", DAY2, 2, 1, 2, Decimal("0.01"), Decimal("0.005")),
        ("billing", DAY2, 1, 1, 1, Decimal("0.1"), Decimal("0.1")),
    ]
    assert a.num_other_workflows == 0


def test_limit_scope_and_no_bucket(loaded: SpanStore) -> None:
    top = get_adoption(loaded, QueryParams(WINDOW, filters=ACME, bucket="day"), limit=1)
    assert [w.workflow_id for w in top.workflows] == ["support"]
    assert top.num_other_workflows == 2
    assert {b.workflow_id for b in top.buckets} == {"support"}
    globex = get_adoption(loaded, QueryParams(WINDOW, filters={"org_id": "globex"}))
    assert _cells(globex.workflows) == [("support", None, 1, 1, 1, Decimal("5"), Decimal("5"))]
    assert globex.buckets == ()
    both = get_adoption(loaded, QueryParams(WINDOW))
    assert both.workflows[0].num_traces == 6 and both.workflows[0].num_users == 4


@pytest.mark.parametrize("limit", [0, 51])
def test_bad_limit_names_the_field(loaded: SpanStore, limit: int) -> None:
    with pytest.raises(ValidationError) as err:
        get_adoption(loaded, QueryParams(WINDOW), limit=limit)
    assert err.value.field == "limit"
