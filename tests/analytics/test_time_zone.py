"""Buckets in a display time zone (issue 15): a day bucket in ``Asia/Kolkata`` holds exactly
the spans between two local midnights (18:30 UTC), read from the aggregates where they can
serve and from the minute tier or raw spans around the half-hour cuts; UTC answers stay
as they were. Expected sums are computed in Python from the spans, Decimal-exact.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from dataset import build_spans

from mentatlab.analytics import QueryParams, TimeRange, cost_by, get_overview
from mentatlab.analytics.aggregate_read import plan_read
from mentatlab.analytics.zone import bucket_cuts, local_day_start, parse_zone, zone_of
from mentatlab.errors import ValidationError
from mentatlab.model.schema import spans_to_arrow
from mentatlab.model.span import CanonicalSpan
from mentatlab.pipeline.price import Price
from mentatlab.resolver.resolver import Resolver
from mentatlab.storage.base import SpanStore

T0 = (datetime.now(UTC) - timedelta(days=4)).replace(hour=0, minute=0, second=0, microsecond=0)
RANGE = TimeRange(T0 - timedelta(days=1), T0 + timedelta(days=3, hours=23))
ZONES = ("UTC", "Asia/Kolkata", "America/St_Johns", "Asia/Kathmandu", "Europe/Berlin")


def _edge_spans(spans: list[CanonicalSpan]) -> list[CanonicalSpan]:
    """Copies of one span just before, at and after Kolkata's midnight (18:30 UTC) and
    St John's (03:30 UTC in winter), each with its own cost, so a misplaced cut shows."""
    template = spans[1]
    out = []
    for day in range(3):
        for i, offset in enumerate((timedelta(hours=18, minutes=29, seconds=59),
                                    timedelta(hours=18, minutes=30),
                                    timedelta(hours=18, minutes=30, seconds=1),
                                    timedelta(hours=3, minutes=29, seconds=59),
                                    timedelta(hours=3, minutes=30))):
            start = T0 + timedelta(days=day) + offset
            cost = Decimal(f"0.{day + 1}{i + 1}0000000001")
            out.append(replace(template, span_id=f"{0xE0000 + day * 16 + i:016x}",
                               trace_id=f"{0xE0000 + day * 16 + i:032x}", parent_span_id="",
                               start_time=start, end_time=start + timedelta(seconds=1),
                               total_cost=cost, token_cost=cost))
    return out


@pytest.fixture
def resolved(store: SpanStore) -> tuple[SpanStore, list[CanonicalSpan]]:
    spans = build_spans(T0)
    spans += _edge_spans(spans)
    stamp = time.time_ns() - 10**12
    store.append_batch(spans_to_arrow([replace(s, ingested_at_ns=stamp) for s in spans]))
    Resolver(store, Price()).run_pass(time.time_ns())
    return store, spans


def _expected(spans: list[CanonicalSpan], zone: ZoneInfo, bucket: str
              ) -> dict[datetime, Decimal]:
    """Cost per local bucket start (as a UTC instant), summed in Python."""
    time_range = QueryParams(RANGE).time_range
    out: dict[datetime, Decimal] = defaultdict(Decimal)
    for span in spans:
        if not time_range.start <= span.start_time < time_range.end:
            continue
        local = span.start_time.astimezone(zone)
        start = (local.replace(minute=0, second=0, microsecond=0) if bucket == "hour"
                 else local.replace(hour=0, minute=0, second=0, microsecond=0))
        out[start.astimezone(UTC)] += span.total_cost
    return dict(out)


@pytest.mark.parametrize("tz", ZONES)
@pytest.mark.parametrize("bucket", ["day", "hour"])
def test_buckets_hold_exactly_the_spans_of_each_local_day_and_hour(
        resolved: tuple[SpanStore, list[CanonicalSpan]], tz: str, bucket: str) -> None:
    store, spans = resolved
    params = QueryParams(RANGE, group_by=(), bucket=bucket, time_zone=tz)  # type: ignore[arg-type]
    rows = cost_by(store, params)
    got = {r.bucket_start: r.total_cost for r in rows}
    assert got == _expected(spans, ZoneInfo(tz), bucket)
    assert rows == cost_by(store, params, use_aggregates=False), "aggregates equal raw"
    assert all(r.bucket_start is not None and r.bucket_start.tzinfo is not None for r in rows)


def test_a_kolkata_day_starts_at_1830_utc_and_still_reads_the_hour_tier(
        resolved: tuple[SpanStore, list[CanonicalSpan]]) -> None:
    store, spans = resolved
    kolkata = ZoneInfo("Asia/Kolkata")
    day = TimeRange(T0 + timedelta(hours=18, minutes=30), T0 + timedelta(days=1, hours=18,
                                                                         minutes=30))
    rows = cost_by(store, QueryParams(day, bucket="day", time_zone="Asia/Kolkata"))
    assert [r.bucket_start for r in rows] == [day.start]
    inside = [s for s in spans if day.start <= s.start_time < day.end]
    assert rows[0].total_cost == sum((s.total_cost for s in inside), Decimal(0))
    assert rows[0].num_spans == len(inside)
    # the 18:29:59 span is the day before's, the 18:30:00 one this day's
    assert local_day_start(T0 + timedelta(hours=18, minutes=29, seconds=59), kolkata) == \
        day.start - timedelta(days=1)
    cuts = bucket_cuts(RANGE.start, RANGE.end, "day", kolkata)
    assert cuts and all((c.hour, c.minute) == (18, 30) for c in cuts)
    plan = plan_read(store, RANGE.start, RANGE.end, set(), cuts=cuts)
    assert plan is not None
    hour_side = next(s for s in plan.sides if s.time_column == "hour")
    assert len(hour_side.intervals) == len(cuts) + 1, "whole UTC hours between the cuts"
    for lo, hi in hour_side.intervals:
        assert not any(lo < c < hi for c in cuts), "no hour row straddles a local midnight"


def test_utc_answers_are_unchanged(resolved: tuple[SpanStore, list[CanonicalSpan]]) -> None:
    store, _ = resolved
    for bucket in ("minute", "hour", "day"):
        plain = QueryParams(RANGE, group_by=["model"], bucket=bucket)  # type: ignore[arg-type]
        utc = QueryParams(RANGE, group_by=["model"], bucket=bucket,  # type: ignore[arg-type]
                          time_zone="UTC")
        assert cost_by(store, plain) == cost_by(store, utc) == cost_by(
            store, plain, use_aggregates=False)
    assert bucket_cuts(RANGE.start, RANGE.end, "day", ZoneInfo("UTC")) == []
    assert bucket_cuts(RANGE.start, RANGE.end, "hour", ZoneInfo("Europe/Berlin")) == []
    assert get_overview(store, QueryParams(RANGE, time_zone="Asia/Kolkata")) == get_overview(
        store, QueryParams(RANGE))


def test_zone_names_are_checked() -> None:
    assert str(parse_zone("Asia/Kolkata")) == "Asia/Kolkata" and str(parse_zone(None)) == "UTC"
    for bad in ("Mars/Olympus", "America", "../etc/passwd", "Asia/Kolkata'", "", "localtime"):
        assert zone_of(bad) is None
    with pytest.raises(ValidationError) as raised:
        QueryParams(RANGE, time_zone="Mars/Olympus")
    assert raised.value.field == "tz" and "Mars/Olympus" in raised.value.reason


def test_local_midnights_across_a_dst_change() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    # 2026-03-29: clocks go 02:00 → 03:00; the day is 23 h long
    start = local_day_start(datetime(2026, 3, 29, 12, tzinfo=UTC), berlin)
    end = local_day_start(start, berlin, 1)
    assert start == datetime(2026, 3, 28, 23, tzinfo=UTC)
    assert end - start == timedelta(hours=23)
    assert bucket_cuts(start - timedelta(days=1), end + timedelta(days=1), "day", berlin) == []
