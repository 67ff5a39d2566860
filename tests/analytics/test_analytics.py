from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from decimal import Decimal

import pytest
from dataset import NUM_TRACES, T0, model_of

from mentatlab.analytics import (
    QueryParams,
    TimeRange,
    cost_by,
    get_overview,
    get_trace,
    iter_spans,
    list_traces,
    list_unpriced,
)
from mentatlab.errors import ValidationError
from mentatlab.model.span import CanonicalSpan
from mentatlab.storage.base import SpanStore

ALL = TimeRange(T0 - timedelta(days=1), T0 + timedelta(days=10))


def is_call(s: CanonicalSpan) -> bool:
    return bool(model_of(s)) and not s.usage_is_rollup


def test_overview_totals_are_exact(loaded: SpanStore, spans: list[CanonicalSpan]) -> None:
    o = get_overview(loaded, QueryParams(ALL))
    assert o.spend == sum((s.total_cost for s in spans), Decimal(0))
    assert o.num_spans == len(spans) and o.num_traces == NUM_TRACES
    assert o.requests == sum(is_call(s) for s in spans) == 2 * NUM_TRACES
    # rollup spans repeat their children's tokens: never summed twice
    assert o.input_tokens == sum(s.input_tokens or 0 for s in spans if not s.usage_is_rollup)
    assert o.output_tokens == sum(s.output_tokens or 0 for s in spans if not s.usage_is_rollup)
    assert o.cached_tokens == 3 * NUM_TRACES
    errors = sum(s.status.value != "ok" for s in spans)
    assert o.error_spans == errors
    assert o.success_rate == pytest.approx(1 - errors / len(spans))
    durations = sorted(s.duration_ms for s in spans)
    assert o.latency_p50_ms == pytest.approx(durations[len(durations) // 2], rel=0.1)
    assert o.latency_p50_ms <= o.latency_p95_ms <= o.latency_p99_ms <= max(durations)


def test_overview_filters_and_empty_range(loaded: SpanStore, spans: list[CanonicalSpan]
                                          ) -> None:
    o = get_overview(loaded, QueryParams(ALL, filters={"org_id": "acme", "model": "gpt-4o"}))
    want = [s for s in spans if s.org_id == "acme" and model_of(s) == "gpt-4o"]
    assert o.num_spans == len(want) > 0
    assert o.spend == sum((s.total_cost for s in want), Decimal(0))
    empty = get_overview(loaded, QueryParams(TimeRange(T0 - timedelta(days=9),
                                                       T0 - timedelta(days=8))))
    assert (empty.num_spans, empty.spend, empty.success_rate, empty.latency_p99_ms) == (
        0, Decimal(0), 1.0, 0.0)


def test_cost_by_model_by_day(loaded: SpanStore, spans: list[CanonicalSpan]) -> None:
    rows = cost_by(loaded, QueryParams(ALL, group_by=["model"], bucket="day"))
    want: dict[tuple[str, object], list[CanonicalSpan]] = defaultdict(list)
    for s in spans:
        day = s.start_time.replace(hour=0, minute=0, second=0, microsecond=0)
        want[(model_of(s), day)].append(s)
    got = {(r.keys["model"], r.bucket_start): r for r in rows}
    assert set(got) == set(want)
    for key, group in want.items():
        row = got[key]
        assert row.total_cost == sum((s.total_cost for s in group), Decimal(0))
        assert row.token_cost == sum((s.token_cost for s in group), Decimal(0))
        assert row.infra_cost == sum((s.cpu_cost + s.network_cost for s in group), Decimal(0))
        assert row.requests == sum(is_call(s) for s in group)
        assert row.tokens == sum((s.input_tokens or 0) + (s.output_tokens or 0)
                                 for s in group if not s.usage_is_rollup)
    buckets = [r.bucket_start for r in rows]
    assert buckets == sorted(buckets)  # type: ignore[type-var]


def test_cost_by_org_project_without_bucket(loaded: SpanStore, spans: list[CanonicalSpan]
                                            ) -> None:
    rows = cost_by(loaded, QueryParams(ALL, group_by=["org_id", "project_id"]))
    assert all(r.bucket_start is None for r in rows)
    assert [r.total_cost for r in rows] == sorted((r.total_cost for r in rows), reverse=True)
    assert sum((r.total_cost for r in rows), Decimal(0)) == sum(
        (s.total_cost for s in spans), Decimal(0))
    assert len(rows) == 6
    total = cost_by(loaded, QueryParams(ALL))
    assert len(total) == 1 and total[0].num_spans == len(spans) and total[0].keys == {}
    none = cost_by(loaded, QueryParams(ALL, filters={"org_id": "nobody"}))
    assert none == []


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"filters": {"attributes": "x"}}, "filters.attributes"),
    ({"filters": {"org_id; DROP TABLE spans": "x"}}, "filters.org_id; DROP TABLE spans"),
    ({"group_by": ["total_cost"]}, "group_by"),
    ({"group_by": ["model", "model"]}, "group_by"),
    ({"bucket": "week"}, "bucket"),
])
def test_names_outside_the_allowlist_are_refused(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        QueryParams(ALL, **kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


def test_time_range_must_be_aware_and_ordered() -> None:
    with pytest.raises(ValidationError):
        TimeRange(T0.replace(tzinfo=None), T0 + timedelta(days=1))
    with pytest.raises(ValidationError):
        TimeRange(T0, T0)


def test_filter_values_are_bound(loaded: SpanStore) -> None:
    o = get_overview(loaded, QueryParams(ALL, filters={"org_id": "acme' OR '1'='1"}))
    assert o.num_spans == 0


def test_list_traces_filters_and_pages(loaded: SpanStore, spans: list[CanonicalSpan]) -> None:
    by_trace: dict[str, list[CanonicalSpan]] = defaultdict(list)
    for s in spans:
        by_trace[s.trace_id].append(s)
    page1 = list_traces(loaded, QueryParams(ALL), limit=50)
    page2 = list_traces(loaded, QueryParams(ALL), limit=50, offset=50)
    page3 = list_traces(loaded, QueryParams(ALL), limit=50, offset=100)
    ids = [t.trace_id for t in page1 + page2 + page3]
    assert len(ids) == len(set(ids)) == NUM_TRACES
    starts = [t.start_time for t in page1 + page2 + page3]
    assert starts == sorted(starts, reverse=True)
    first = page1[0]
    members = by_trace[first.trace_id]
    assert first.total_cost == sum((s.total_cost for s in members), Decimal(0))
    assert first.num_spans == 4 and first.root_name == "s0" and first.service_name == "svc"
    assert first.requests == 2
    errors = list_traces(loaded, QueryParams(ALL), status="error", limit=1000)
    failed = {f"{t + 1:032x}" for t in range(NUM_TRACES) if t % 7 == 0}
    assert {t.trace_id for t in errors} == failed
    # a model filter selects traces, but their summaries cover all their spans
    claude = list_traces(loaded, QueryParams(ALL, filters={"model": "claude-sonnet-4"}), limit=1000)
    assert len(claude) == NUM_TRACES // 3 and all(t.num_spans == 4 for t in claude)
    assert all(t.models == ("claude-sonnet-4",) for t in claude)
    threshold = Decimal("0.02")
    rich = list_traces(loaded, QueryParams(ALL), min_cost=threshold, limit=1000)
    costs = {tid: sum((s.total_cost for s in ms), Decimal(0)) for tid, ms in by_trace.items()}
    assert {t.trace_id for t in rich} == {tid for tid, c in costs.items() if c >= threshold}
    assert 0 < len(rich) < NUM_TRACES
    slow = list_traces(loaded, QueryParams(ALL), min_duration_ms=1100, limit=1000)
    assert {t.trace_id for t in slow} == {f"{t + 1:032x}" for t in range(100, NUM_TRACES)}
    top = list_traces(loaded, QueryParams(ALL), sort="cost", limit=5)
    ranked = sorted(costs.items(), key=lambda item: (-item[1], item[0]))[:5]
    assert [(t.trace_id, t.total_cost) for t in top] == ranked
    with pytest.raises(ValidationError):
        list_traces(loaded, QueryParams(ALL), sort="name")
    with pytest.raises(ValidationError):
        list_traces(loaded, QueryParams(ALL), status="bogus")
    with pytest.raises(ValidationError):
        list_traces(loaded, QueryParams(ALL), limit=0)


def test_get_trace_builds_the_tree_with_costs(loaded: SpanStore, spans: list[CanonicalSpan]
                                              ) -> None:
    trace_id = f"{5 + 1:032x}"
    members = [s for s in spans if s.trace_id == trace_id]
    detail = get_trace(loaded, trace_id)
    assert detail is not None and detail.num_spans == 4
    (root,) = detail.roots
    assert root.span.name == "s0" and [c.span.name for c in root.children] == ["s1", "s2", "s3"]
    want = sum((s.total_cost for s in members), Decimal(0))
    assert root.subtree_cost == detail.total_cost == want
    assert all(c.subtree_cost == c.span.total_cost for c in root.children)
    assert detail.duration_ms == pytest.approx(max(s.duration_ms for s in members))
    ranged = get_trace(loaded, trace_id, TimeRange(T0, T0 + timedelta(days=5)))
    assert ranged is not None and ranged.num_spans == 4
    assert get_trace(loaded, "f" * 32) is None


def test_unpriced_models(loaded: SpanStore, spans: list[CanonicalSpan]) -> None:
    rows = list_unpriced(loaded, QueryParams(ALL))
    assert [(r.provider, r.model) for r in rows] == [("anthropic", "llama-self-hosted")]
    want = [s for s in spans if s.price_source == "unpriced"]
    assert rows[0].num_spans == len(want)
    assert rows[0].input_tokens == sum(s.input_tokens or 0 for s in want)
    assert rows[0].first_seen <= rows[0].last_seen


def test_iter_spans_pages_every_span_once(loaded: SpanStore, spans: list[CanonicalSpan]
                                          ) -> None:
    tables = list(iter_spans(loaded, ALL.start, ALL.end, batch_rows=37))
    assert all(t.num_rows <= 37 for t in tables)
    keys = [k for t in tables for k in zip(t.column("trace_id").to_pylist(),
                                           t.column("span_id").to_pylist(), strict=True)]
    assert len(keys) == len(set(keys)) == len(spans)
    versions = {v for t in tables for v in t.column("ingested_at_ns").to_pylist()}
    assert versions == {1, 2}  # the newest version of re-sent spans
    acme = list(iter_spans(loaded, ALL.start, ALL.end, filters={"org_id": "acme"}))
    assert sum(t.num_rows for t in acme) == sum(s.org_id == "acme" for s in spans)
