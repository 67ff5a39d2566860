"""Security signals on both span backends: each kind found, and not found where it must not be.

The policy decision columns come from the policies part's span migration 9; here the same
ALTER is applied (signal_spans.add_policy_columns) and decisions written as new versions.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from signal_spans import (
    T0,
    add_policy_columns,
    append,
    drop_policy_columns,
    make_span,
    set_decisions,
)

from mentatlab.analytics.query import QueryParams, TimeRange
from mentatlab.analytics.security_signals import (
    KeyUse,
    find_signals,
    new_key_findings,
    severity_rank,
)
from mentatlab.errors import ValidationError
from mentatlab.model.span import CanonicalSpan
from mentatlab.storage.base import SpanStore

M = timedelta(minutes=1)
INJECTION = ("builtin.prompt_injection", "alert")
WINDOW = TimeRange(T0, T0 + 60 * M)


def _params(**filters: str) -> QueryParams:
    return QueryParams(WINDOW, filters={"org_id": "acme", **filters})


def _ids(spans: list[CanonicalSpan]) -> list[str]:
    return [f"{s.trace_id}:{s.span_id}" for s in spans]


def _load_policy_spans(store: SpanStore) -> dict[str, list[CanonicalSpan]]:
    add_policy_columns(store)
    groups = {
        "a_burst": [make_span(T0 + i * M, agent="a") for i in (1, 2, 3)],
        "a_alone": [make_span(T0 + 30 * M, agent="a")],
        "b_spread": [make_span(T0 + i * M, agent="b") for i in (1, 2, 12)],  # 2 in 5 min
        "c_storm": [make_span(T0 + 40 * M + i * timedelta(seconds=10), agent="c")
                    for i in range(10)],
        "a_pii": [make_span(T0 + 4 * M, agent="a")],
        "a_blocked": [make_span(T0 + i * M, agent="a") for i in (5, 6)],
        "a_alerted": [make_span(T0 + 7 * M, agent="a")],
        "d_blocked": [make_span(T0 + i * M, agent="d") for i in range(10, 15)],
        "a_both": [make_span(T0 + 8 * M, agent="a")],
        "other_org": [make_span(T0 + i * M, org="other", agent="a") for i in (1, 2, 3)],
        "before": [make_span(T0 - i * M, agent="b") for i in (1, 2)],
    }
    append(store, [s for spans in groups.values() for s in spans])
    decisions: dict[str, list[tuple[str, str]]] = {}
    for name in ("a_burst", "a_alone", "b_spread", "c_storm", "other_org", "before"):
        decisions.update({s.span_id: [INJECTION] for s in groups[name]})
    decisions.update({s.span_id: [("builtin.pii_in_output", "alert")] for s in groups["a_pii"]})
    decisions.update({s.span_id: [("builtin.tool_allowlist", "block")]
                      for s in groups["a_blocked"]})
    decisions.update({s.span_id: [("builtin.tool_allowlist", "alert")]
                      for s in groups["a_alerted"]})
    decisions.update({s.span_id: [("builtin.secrets_in_tool_args", "block"),
                                  ("builtin.resource_consumption", "log")]
                      for s in groups["d_blocked"]})
    decisions.update({s.span_id: [("builtin.tool_allowlist", "block"),
                                  ("builtin.secrets_in_tool_args", "block")]
                      for s in groups["a_both"]})
    set_decisions(store, decisions)
    return groups


def test_prompt_injection_bursts(store: SpanStore) -> None:
    groups = _load_policy_spans(store)
    report = find_signals(store, _params(), kinds=["prompt_injection_burst"])
    assert report.unavailable == {}
    found = {f.subject["agent_id"]: f for f in report.findings}
    assert set(found) == {"a", "c"}  # b: never 3 within 5 min; other org out of scope
    a, c = found["a"], found["c"]
    assert (a.severity, a.count, a.evidence) == ("medium", 3, _ids(groups["a_burst"]))
    assert (a.first_seen, a.last_seen) == (T0 + M, T0 + 3 * M)
    assert (c.severity, c.count) == ("high", 10) and len(c.evidence) == 5
    assert report.findings[0] is c  # high first
    assert a.subject == {"org_id": "acme", "project_id": "p1", "agent_id": "a"}


def test_blocked_actions(store: SpanStore) -> None:
    groups = _load_policy_spans(store)
    report = find_signals(store, _params(), kinds=["blocked_action"])
    got = {(f.subject["agent_id"], f.subject["policy_id"]): (f.severity, f.count)
           for f in report.findings}
    assert got == {("a", "builtin.tool_allowlist"): ("low", 3),
                   ("a", "builtin.secrets_in_tool_args"): ("low", 1),
                   ("d", "builtin.secrets_in_tool_args"): ("medium", 5)}
    allow = next(f for f in report.findings if f.subject["policy_id"] == "builtin.tool_allowlist")
    assert allow.evidence == sorted(_ids(groups["a_blocked"] + groups["a_both"]))
    only_high = find_signals(store, _params(), kinds=["blocked_action"], min_severity="medium")
    assert [f.subject["agent_id"] for f in only_high.findings] == ["d"]


def test_a_store_without_policy_columns_reports_them_unavailable(store: SpanStore) -> None:
    append(store, [make_span(T0 + M, agent="a", tool="search")])
    drop_policy_columns(store)  # a no-op until span migration 9 adds them to every store
    report = find_signals(store, _params())
    assert set(report.unavailable) == {"prompt_injection_burst", "blocked_action"}
    assert [f.kind for f in report.findings] == ["new_tool"]


def test_new_tools_against_the_baseline(store: SpanStore) -> None:
    append(store, [
        make_span(T0 - 2 * 24 * 60 * M, agent="a", tool="search"),
        make_span(T0 - 40 * 24 * 60 * M, agent="a", tool="old"),  # past the 30-day baseline
        make_span(T0 - 5 * M, agent="a", tool="search", org="other"),
        make_span(T0 + M, agent="a", tool="search"),
        make_span(T0 + 2 * M, agent="a", tool="shell"),
        make_span(T0 + 3 * M, agent="a", tool="shell"),
        make_span(T0 + 4 * M, agent="a", tool="old"),
        make_span(T0 + 5 * M, agent="n", tool="search"),
        make_span(T0 + 6 * M, agent="", tool="rm"),  # no agent: nobody's new tool
        make_span(T0 + 90 * M, agent="a", tool="later"),  # after the window
    ])
    report = find_signals(store, _params(), kinds=["new_tool"])
    got = {(f.subject["agent_id"], f.subject["tool_name"]): (f.severity, f.count)
           for f in report.findings}
    assert got == {("a", "shell"): ("medium", 2), ("a", "old"): ("medium", 1),
                   ("n", "search"): ("low", 1)}
    wide = find_signals(store, _params(), kinds=["new_tool"], baseline_days=60)
    assert ("a", "old") not in {(f.subject["agent_id"], f.subject["tool_name"])
                                for f in wide.findings}
    assert find_signals(store, _params(), kinds=["new_tool"], min_severity="high").findings == []


def test_new_keys_and_their_severity() -> None:
    def key(key_id: str, *, used: int | None, role: str = "ingest", audited: bool = True,
            org: str | None = "acme") -> KeyUse:
        return KeyUse(key_id, org, None, f"name-{key_id}", f"mtl_{key_id}", role,
                      T0 - 60 * M, None if used is None else T0 + used * M, audited)

    keys = [key("k1", used=5), key("k2", used=6, role="admin"), key("k3", used=7, audited=False),
            key("k4", used=None), key("k5", used=-1), key("k6", used=60),
            key("k7", used=8, role="read", org=None)]
    found = {f.subject["key_id"]: f.severity for f in new_key_findings(keys, T0, T0 + 60 * M)}
    assert found == {"k1": "low", "k2": "medium", "k3": "high", "k7": "medium"}
    assert [severity_rank(s) for s in ("low", "medium", "high")] == [1, 2, 3]


def test_bad_arguments(store: SpanStore) -> None:
    with pytest.raises(ValidationError, match="kind"):
        find_signals(store, _params(), kinds=["everything"])
    with pytest.raises(ValidationError, match="severity"):
        find_signals(store, _params(), min_severity="critical")
    with pytest.raises(ValidationError, match="baseline_days"):
        find_signals(store, _params(), baseline_days=0)
