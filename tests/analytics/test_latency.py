"""Latency percentiles and histograms on constructed traces, on both backends.

Org acme, three traces (durations in ms):

* trace 1: agent ``triage`` root (own id) 1100; chat gpt-4o 10 and 20; tool ``search`` 3;
* trace 2: agent ``triage`` root 2000; chat gpt-4o 30; chat claude 100; tool ``search`` 7;
* trace 3: agent ``writer`` root 1500, a usage rollup with request model gpt-4o (not an
  LLM call); chat gpt-4o 40 and 1000; chat claude 300; tool ``search`` 12.

The chat and tool spans inherit their agent's id (``inherited`` bit 0 set). Org globex:
one chat gpt-4o of 9999 ms (outside the acme filter). Acme also has an open gpt-4o span
(0 ms, ``mentat.span.open``), counted nowhere.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

import numpy as np
import pytest

from mentatlab.analytics.latency import HISTOGRAM_BOUNDS_MS, QUANTILES, latency_by
from mentatlab.analytics.query import QueryParams, TimeRange
from mentatlab.errors import ValidationError
from mentatlab.model.span import CanonicalSpan, Operation, SpanStatus
from mentatlab.storage.base import SpanStore

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
RANGE = TimeRange(T0, T0 + timedelta(hours=1))
ACME = {"org_id": "acme"}
_ids = count(1)


def _span(trace: int, ms: float, operation: Operation, *, parent: str = "", org: str = "acme",
          **fields: Any) -> CanonicalSpan:
    start = T0 + timedelta(minutes=trace)
    return CanonicalSpan(
        trace_id=f"{trace:032x}", span_id=f"{next(_ids):016x}", parent_span_id=parent,
        name=str(operation), kind="internal", start_time=start,
        end_time=start + timedelta(milliseconds=ms), duration_ms=float(ms),
        status=SpanStatus.OK, operation=operation, org_id=org, project_id="p",
        service_name="svc", ingested_at_ns=1, **fields)


def _trace(t: int, agent: str, root_ms: float, chats: list[tuple[str, float]],
           tool_ms: float, **root: Any) -> list[CanonicalSpan]:
    top = _span(t, root_ms, Operation.AGENT, agent_id=agent, operation_name="invoke_agent",
                **root)
    child = {"parent": top.span_id, "agent_id": agent, "inherited": 1}
    out = [top]
    for model, ms in chats:
        out.append(_span(t, ms, Operation.CHAT, request_model=model, operation_name="chat",
                         provider="anthropic" if model.startswith("claude") else "openai",
                         **child))
    out.append(_span(t, tool_ms, Operation.TOOL, tool_name="search", **child))
    return out


def build() -> list[CanonicalSpan]:
    return [
        *_trace(1, "triage", 1100, [("gpt-4o", 10), ("gpt-4o", 20)], 3),
        *_trace(2, "triage", 2000, [("gpt-4o", 30), ("claude-sonnet-4", 100)], 7),
        *_trace(3, "writer", 1500, [("gpt-4o", 40), ("gpt-4o", 1000),
                                    ("claude-sonnet-4", 300)], 12,
                usage_is_rollup=True, request_model="gpt-4o"),
        _span(4, 9999, Operation.CHAT, org="globex", request_model="gpt-4o", provider="openai"),
        # an open span (a started event not completed): no duration yet, left out
        _span(5, 0, Operation.CHAT, request_model="gpt-4o", provider="openai",
              attributes='{"mentat.span.open": true}'),
    ]


@pytest.fixture(scope="module")
def spans() -> list[CanonicalSpan]:
    """Overrides the conftest dataset: ``loaded`` holds these spans (and resent copies)."""
    return build()


def _groups(store: SpanStore, group_by: str, **kw: Any) -> dict[str, Any]:
    report = latency_by(store, QueryParams(RANGE, filters=ACME), group_by, **kw)
    return {g.key: g for g in report.groups}


def test_model_percentiles_worked_out_by_hand(loaded: SpanStore) -> None:
    g = _groups(loaded, "model")
    assert set(g) == {"gpt-4o", "claude-sonnet-4"}  # the rollup root and globex left out
    gpt = g["gpt-4o"]  # 10, 20, 30, 40, 1000: h = 4q
    assert gpt.num_spans == 5
    # p50 h=2 → 30; p90 h=3.6 → 40 + 0.6·960; p95 h=3.8 → 40 + 0.8·960; p99 h=3.96
    assert (gpt.p50_ms, gpt.p90_ms, gpt.p95_ms, gpt.p99_ms) == pytest.approx(
        (30, 616, 808, 961.6))
    assert (gpt.mean_ms, gpt.max_ms) == pytest.approx((220, 1000))
    claude = g["claude-sonnet-4"]  # 100, 300: h = q
    assert (claude.p50_ms, claude.p90_ms, claude.p95_ms, claude.p99_ms) == pytest.approx(
        (200, 280, 290, 298))


def test_histogram_buckets_by_hand(loaded: SpanStore) -> None:
    gpt = _groups(loaded, "model")["gpt-4o"]
    assert len(gpt.histogram_counts) == len(HISTOGRAM_BOUNDS_MS) + 1
    want = [0] * (len(HISTOGRAM_BOUNDS_MS) + 1)
    want[4] = 2  # [10, 25): 10 and 20
    want[5] = 2  # [25, 50): 30 and 40
    want[10] = 1  # [1000, 2500): 1000 (a bound belongs to the bucket it starts)
    assert list(gpt.histogram_counts) == want
    assert sum(gpt.histogram_counts) == gpt.num_spans


def test_agent_counts_own_spans_only(loaded: SpanStore) -> None:
    g = _groups(loaded, "agent")
    assert {k: v.num_spans for k, v in g.items()} == {"triage": 2, "writer": 1}
    assert g["triage"].p50_ms == pytest.approx(1550)  # 1100, 2000
    assert g["triage"].p90_ms == pytest.approx(1100 + 0.9 * 900)
    assert g["writer"].p99_ms == pytest.approx(1500)  # one span: every quantile is it


def test_operation_tool_and_provider(loaded: SpanStore) -> None:
    ops = _groups(loaded, "operation")
    assert {k: v.num_spans for k, v in ops.items()} == {"chat": 7, "agent": 3, "tool": 3}
    assert ops["chat"].p50_ms == pytest.approx(40)  # 10 20 30 40 100 300 1000
    tool = _groups(loaded, "tool")["search"]  # 3, 7, 12
    assert (tool.p50_ms, tool.p90_ms) == pytest.approx((7, 11))
    providers = _groups(loaded, "provider")
    assert {k: v.num_spans for k, v in providers.items()} == {"openai": 5, "anthropic": 2}


@pytest.mark.parametrize("group_by", ["operation", "agent", "tool", "provider", "model"])
def test_percentiles_equal_numpy_linear(loaded: SpanStore, spans: list[CanonicalSpan],
                                        group_by: str) -> None:
    """Each group's percentiles are numpy.quantile(method="linear") of its durations."""
    key_of = {
        "operation": lambda s: str(s.operation),
        "agent": lambda s: s.agent_id if not s.inherited & 1 else "",
        "tool": lambda s: s.tool_name,
        "provider": lambda s: s.provider if s.request_model and not s.usage_is_rollup else "",
        "model": lambda s: s.request_model if not s.usage_is_rollup else "",
    }[group_by]
    samples: dict[str, list[float]] = {}
    for s in spans:
        if s.org_id == "acme" and key_of(s) and "mentat.span.open" not in s.attributes:
            samples.setdefault(key_of(s), []).append(s.duration_ms)
    got = _groups(loaded, group_by)
    assert set(got) == set(samples)
    for key, durations in samples.items():
        want = np.quantile(durations, QUANTILES, method="linear")
        g = got[key]
        assert [g.p50_ms, g.p90_ms, g.p95_ms, g.p99_ms] == pytest.approx(list(want), rel=1e-12)
        edges = [0.0, *HISTOGRAM_BOUNDS_MS, np.inf]
        assert list(g.histogram_counts) == list(np.histogram(durations, bins=edges)[0])


def test_limit_keeps_the_busiest_and_counts_all(loaded: SpanStore) -> None:
    report = latency_by(loaded, QueryParams(RANGE, filters=ACME), "operation", limit=1)
    assert [g.key for g in report.groups] == ["chat"] and report.num_groups == 3


def test_empty_range_and_bad_input(loaded: SpanStore) -> None:
    later = TimeRange(T0 + timedelta(days=1), T0 + timedelta(days=2))
    empty = latency_by(loaded, QueryParams(later), "model")
    assert empty.groups == () and empty.num_groups == 0
    with pytest.raises(ValidationError) as err:
        latency_by(loaded, QueryParams(RANGE), "span_name")
    assert err.value.field == "group_by"
    with pytest.raises(ValidationError) as err:
        latency_by(loaded, QueryParams(RANGE), "model", limit=0)
    assert err.value.field == "limit"
