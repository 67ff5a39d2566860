"""list_interval_stats: the live stats stream's per-interval counts, spend and latency."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from dataset import build_spans

from mentatlab.analytics.live_stats import CLOCK_SLACK_S, check_interval_s, list_interval_stats
from mentatlab.errors import ValidationError
from mentatlab.model.schema import spans_to_arrow
from mentatlab.model.span import CanonicalSpan, SpanStatus
from mentatlab.storage.base import SpanStore

_NS = 1_000_000_000
T0_NS = 1_800_000_000 * _NS  # a multiple of 5 s


def _ended(span: CanonicalSpan, end_ns: int, duration_ms: float, **changes: Any
           ) -> CanonicalSpan:
    """``span`` ending at ``end_ns`` after ``duration_ms``, committed 1 s later."""
    end = datetime.fromtimestamp(end_ns / _NS, UTC)
    return replace(span, start_time=end - timedelta(milliseconds=duration_ms), end_time=end,
                   duration_ms=duration_ms, ingested_at_ns=end_ns + _NS, **changes)


def test_intervals_count_each_span_once_by_end_time(store: SpanStore) -> None:
    base = build_spans()[:9]
    # 4 spans ended in the first interval, 5 in the third, none in the second
    first = [_ended(s, T0_NS + i * _NS, 10.0 * (i + 1)) for i, s in enumerate(base[:4])]
    third = [_ended(s, T0_NS + 10 * _NS + i, 100.0,
                    status=SpanStatus.ERROR if i < 2 else s.status)
             for i, s in enumerate(base[4:])]
    # a later version of a span (repriced), a span that ended after the range, and one
    # committed long before its end (a client clock far ahead): never counted
    repriced = replace(first[0], total_cost=first[0].total_cost + Decimal("1.5"),
                       ingested_at_ns=T0_NS + 20 * _NS, revision=1)
    late = _ended(base[0], T0_NS + 15 * _NS, 5.0, span_id="f" * 16)
    ahead = replace(_ended(base[1], T0_NS + 2 * _NS, 5.0, span_id="e" * 16),
                    ingested_at_ns=T0_NS - (CLOCK_SLACK_S + 5) * _NS)
    store.append_batch(spans_to_arrow([*first, *third, late, ahead]))
    store.append_batch(spans_to_arrow([repriced]))
    stats = list_interval_stats(store, {}, 5, T0_NS, 3)
    assert [s.start for s in stats] == [datetime.fromtimestamp(T0_NS // _NS + k, UTC)
                                        for k in (0, 5, 10)]
    assert [s.num_spans for s in stats] == [4, 0, 5]
    assert stats[0].spend == sum((s.total_cost for s in first), Decimal("1.5")), \
        "the newest version's cost"
    assert stats[0].requests == sum(1 for s in first if s.model and not s.usage_is_rollup)
    assert stats[0].latency_p50_ms == pytest.approx(20.0, rel=0.01)
    assert stats[0].latency_p99_ms == pytest.approx(40.0, rel=0.01)
    assert stats[1] == replace(stats[1], num_spans=0, requests=0, error_spans=0,
                               spend=Decimal(0), latency_p95_ms=0.0)
    assert stats[2].error_spans == 2 + sum(s.status != SpanStatus.OK for s in base[6:])
    assert stats[2].error_rate == stats[2].error_spans / 5
    org = first[0].org_id
    filtered = list_interval_stats(store, {"org_id": org, "model": first[0].model}, 5,
                                   T0_NS, 3)
    assert sum(s.num_spans for s in filtered) == sum(
        s.org_id == org and s.model == first[0].model for s in [*first, *third])


@pytest.mark.parametrize(("value", "wanted"), [(None, 5), ("", 5), ("1", 1), (60, 60)])
def test_interval_bounds(value: int | str | None, wanted: int) -> None:
    assert check_interval_s(value) == wanted


@pytest.mark.parametrize("value", ["0", "61", "5.0", "five", -1])
def test_a_bad_interval_names_the_field(value: int | str) -> None:
    with pytest.raises(ValidationError) as refused:
        check_interval_s(value)
    assert refused.value.field == "interval_s" and "1 to 60" in refused.value.reason


def test_a_misaligned_start_or_count_is_refused(store: SpanStore) -> None:
    with pytest.raises(ValidationError, match="multiple of 5 s"):
        list_interval_stats(store, {}, 5, T0_NS + 1, 1)
    with pytest.raises(ValidationError, match="1 to 720"):
        list_interval_stats(store, {}, 5, T0_NS, 0)
