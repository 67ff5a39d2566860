"""Bottleneck ranking on the settled traces of bottleneck_traces.py, on both backends.

Every number below is worked out by hand in bottleneck_traces.py's docstring: in the
range (acme), by span name, critical-path ms are llm 500 + 1500 = 2000, search 300 + 500
= 800, run 200 + 0 = 200, fetch 0; the total 3000 (= the two traces' durations, 1000 +
2000). The previous period (trace 3) holds llm 400, search 200, run 0.
"""

from __future__ import annotations

import pytest
from bottleneck_traces import END, START, build

from mentatlab.analytics.bottlenecks import get_bottlenecks, severity
from mentatlab.analytics.query import TimeRange
from mentatlab.errors import FilterError, ValidationError
from mentatlab.model.schema import spans_to_arrow
from mentatlab.resolver.settle import Settler
from mentatlab.storage.base import SpanStore

RANGE = TimeRange(START, END)
ACME = {"org_id": "acme"}


@pytest.fixture
def settled(store: SpanStore) -> SpanStore:
    store.append_batch(spans_to_arrow(build(stamp=1_000)))
    report = Settler(store, quiet_s=1.0).run_pass(10**18, now_ns=10**18)
    assert report.num_traces == 4 and report.num_spans == 12
    return store


def test_ranking_by_span_name_worked_by_hand(settled: SpanStore) -> None:
    b = get_bottlenecks(settled, RANGE, ACME, "name")
    assert (b.total_critical_path_ms, b.num_traces, b.num_groups) == (3000.0, 2, 4)
    got = [(r.key, r.critical_path_ms, r.occurrences, r.on_path, r.previous_critical_path_ms)
           for r in b.rows]
    assert got == [("llm", 2000.0, 2, 2, 400.0), ("search", 800.0, 2, 2, 200.0),
                   ("run", 200.0, 2, 2, 0.0), ("fetch", 0.0, 1, 0, 0.0)]
    llm, search, run, fetch = b.rows
    assert llm.share_pct == pytest.approx(200 / 3) and search.share_pct == pytest.approx(80 / 3)
    assert run.share_pct == pytest.approx(20 / 3) and fetch.share_pct == 0
    # 2 occurrences over 2 hours; trends (2000-400)/400 and (800-200)/200
    assert (llm.occurrences_per_hour, fetch.occurrences_per_hour) == (1.0, 0.5)
    assert (llm.trend_pct, search.trend_pct) == (400.0, 300.0)
    assert run.trend_pct is None and fetch.trend_pct is None  # nothing before
    # 66.7 % → critical; 26.7 % → high, +300 % → one up: critical; 6.7 % → low
    assert [r.severity for r in b.rows] == ["critical", "critical", "low", "low"]


def test_group_by_tool_model_agent_operation(settled: SpanStore) -> None:
    tools = get_bottlenecks(settled, RANGE, ACME, "tool")
    assert [(r.key, r.critical_path_ms) for r in tools.rows] == [
        ("web_search", 800.0), ("http_get", 0.0)]
    assert tools.total_critical_path_ms == 3000.0  # spans without a tool count in the total
    assert tools.rows[0].share_pct == pytest.approx(80 / 3)
    models = get_bottlenecks(settled, RANGE, ACME, "model")
    assert [(r.key, r.critical_path_ms, r.severity) for r in models.rows] == [
        ("gpt-4o", 2000.0, "critical")]
    agents = get_bottlenecks(settled, RANGE, ACME, "agent")
    assert [(r.key, r.critical_path_ms, r.trend_pct) for r in agents.rows] == [
        ("planner", 200.0, None)]
    ops = get_bottlenecks(settled, RANGE, ACME, "operation")
    assert [(r.key, r.critical_path_ms) for r in ops.rows] == [
        ("chat", 2000.0), ("tool", 800.0), ("agent", 200.0)]


def test_filter_tenancy_and_limit(settled: SpanStore) -> None:
    everyone = get_bottlenecks(settled, RANGE, {}, "name")
    assert everyone.rows[0].key == "llm" and everyone.rows[0].critical_path_ms == 7000.0
    assert everyone.total_critical_path_ms == 8000.0 and everyone.num_traces == 3
    globex = get_bottlenecks(settled, RANGE, {"org_id": "globex"}, "name")
    assert [(r.key, r.critical_path_ms, r.share_pct) for r in globex.rows] == [
        ("llm", 5000.0, 100.0), ("run", 0.0, 0.0)]
    only_search = get_bottlenecks(settled, RANGE, {**ACME, "tool_name": "web_search"})
    assert [(r.key, r.share_pct) for r in only_search.rows] == [("search", 100.0)]
    top = get_bottlenecks(settled, RANGE, ACME, "name", limit=1)
    assert [r.key for r in top.rows] == ["llm"] and top.num_groups == 4


def test_unsettled_traces_are_not_counted(store: SpanStore) -> None:
    store.append_batch(spans_to_arrow(build(stamp=1_000)))
    assert get_bottlenecks(store, RANGE, ACME).rows == []
    Settler(store, quiet_s=1.0).run_pass(10**18, now_ns=10**18)
    assert len(get_bottlenecks(store, RANGE, ACME).rows) == 4


def test_bad_parameters_name_the_field(store: SpanStore) -> None:
    with pytest.raises(ValidationError) as err:
        get_bottlenecks(store, RANGE, ACME, "colour")
    assert err.value.field == "group_by"
    with pytest.raises(FilterError) as bad_filter:
        get_bottlenecks(store, RANGE, {"session_id": "s"})
    assert [e.field for e in bad_filter.value.errors] == ["filter.session_id"]
    with pytest.raises(ValidationError) as err:
        get_bottlenecks(store, RANGE, ACME, limit=0)
    assert err.value.field == "limit"


def test_severity_thresholds() -> None:
    assert [severity(s, None) for s in (9.99, 10, 24.9, 25, 49.9, 50, 100)] == [
        "low", "medium", "medium", "high", "high", "critical", "critical"]
    assert severity(10, 49.9) == "medium" and severity(10, 50) == "high"
    assert severity(60, 500) == "critical" and severity(0, None) == "low"
