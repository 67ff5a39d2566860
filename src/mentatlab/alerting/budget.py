"""Budget periods and which of a budget's thresholds a spend has crossed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from mentatlab.analytics.query import TimeRange, to_utc

__all__ = ["crossed_thresholds", "period_range"]


def period_range(period: str, now: datetime) -> TimeRange:
    """The calendar ``day`` or ``month`` (UTC) that contains ``now``, as ``[start, end)``.

    Raises:
        ValueError: an unknown period.
        ValidationError: ``now`` is naive.
    """
    now = to_utc(now, "now")
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return TimeRange(day, day + timedelta(days=1))
    if period == "month":
        start = day.replace(day=1)
        end = start.replace(year=start.year + 1, month=1) if start.month == 12 else (
            start.replace(month=start.month + 1))
        return TimeRange(start, end)
    raise ValueError(f"Expected period day or month, got {period!r}")


def crossed_thresholds(spend: Decimal, limit: Decimal, fractions: Sequence[Decimal]
                       ) -> list[Decimal]:
    """The fractions of ``limit`` that ``spend`` has reached (``spend >= limit * f``).

    Lowest first; amounts in one currency, compared exactly (Decimal).
    """
    return [f for f in sorted(fractions) if spend >= limit * f]
