"""Policy decisions by action, policy and hour on constructed spans, both backends.

Window: two hours from T0 (hour buckets), org acme unless said. Spans (decisions):

* hour 1: s1 [p-shell v1 block], s2 [p-shell v1 block, p-pii v2 log], s3 (none);
* hour 2: s4 [p-pii v3 log], s5 [p-pii v3 log, p-alert v1 alert];
* s2 is stored twice (a later version of the same span: counted once);
* globex: s6 [p-shell v1 block] (left out by the acme filter).

So: 4 spans with a decision, 2 blocked; by action block 2, log 3, alert 1; per policy
p-pii log 3 decisions (latest v3), p-shell block 2, p-alert alert 1; hour 1: block 2,
log 1; hour 2: alert 1, log 2.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mentatlab.analytics.policy_decisions import get_policy_decisions
from mentatlab.analytics.query import QueryParams, TimeRange
from mentatlab.errors import ValidationError
from mentatlab.model.schema import spans_to_arrow
from mentatlab.model.span import CanonicalSpan, SpanStatus
from mentatlab.storage.base import SpanStore

T0 = datetime(2026, 11, 4, 10, tzinfo=UTC)
WINDOW = TimeRange(T0, T0 + timedelta(hours=2))
ACME = {"org_id": "acme"}


def _span(n: int, minute: int, decisions: list[tuple[str, int, str]], org: str = "acme",
          name: str = "chat") -> CanonicalSpan:
    start = T0 + timedelta(minutes=minute)
    return CanonicalSpan(
        trace_id=f"{n:032x}", span_id=f"{n:016x}", parent_span_id="", name=name,
        kind="client", start_time=start, end_time=start + timedelta(milliseconds=5),
        duration_ms=5.0, status=SpanStatus.OK, org_id=org, project_id="p",
        policy_ids=tuple(d[0] for d in decisions),
        policy_versions=tuple(d[1] for d in decisions),
        policy_actions=tuple(d[2] for d in decisions))


@pytest.fixture
def loaded(store: SpanStore) -> SpanStore:
    shell, pii2, pii3 = ("p-shell", 1, "block"), ("p-pii", 2, "log"), ("p-pii", 3, "log")
    store.append_batch(spans_to_arrow([
        _span(1, 5, [shell]), _span(2, 10, [shell, pii2], name="first version"),
        _span(3, 20, []), _span(4, 70, [pii3]), _span(5, 80, [pii3, ("p-alert", 1, "alert")]),
        _span(6, 30, [shell], org="globex")]))
    store.append_batch(spans_to_arrow([_span(2, 10, [shell, pii2], name="second version")]))
    return store


def test_decisions_by_action_policy_and_hour(loaded: SpanStore) -> None:
    answer = get_policy_decisions(loaded, QueryParams(WINDOW, filters=ACME, bucket="hour"))

    assert (answer.num_spans, answer.num_blocked) == (4, 2)
    assert answer.by_action == {"alert": 1, "block": 2, "log": 3}
    assert [(p.policy_id, p.action, p.num_decisions, p.num_spans, p.latest_version)
            for p in answer.policies] == [("p-pii", "log", 3, 3, 3),
                                          ("p-shell", "block", 2, 2, 1),
                                          ("p-alert", "alert", 1, 1, 1)]
    assert answer.policies[0].last_seen == T0 + timedelta(minutes=80)
    hour2 = T0 + timedelta(hours=1)
    assert answer.buckets == ((T0, "block", 2), (T0, "log", 1), (hour2, "alert", 1),
                              (hour2, "log", 2))


def test_limit_and_no_bucket(loaded: SpanStore) -> None:
    answer = get_policy_decisions(loaded, QueryParams(WINDOW), limit=1)

    assert answer.num_spans == 5 and answer.by_action["block"] == 3  # globex too
    assert [p.policy_id for p in answer.policies] == ["p-pii"] and answer.buckets == ()
    with pytest.raises(ValidationError, match="limit"):
        get_policy_decisions(loaded, QueryParams(WINDOW), limit=0)
