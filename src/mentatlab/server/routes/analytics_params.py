"""Parameters and helpers every analytics route shares.

The time window, filter and time zone query parameters, the error responses, the
resolved-reads dependency, and running a blocking store query off the event loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import anyio.to_thread
from fastapi import Depends, Query

from mentatlab.analytics.query import Bucket, QueryParams, TimeRange
from mentatlab.analytics.zone import UTC_NAME, zone_of
from mentatlab.errors import FieldError
from mentatlab.server.deps import resolved_reads
from mentatlab.server.errors import ApiError, error_responses
from mentatlab.server.params import StoreTime

__all__ = ["ANALYTICS_ERRORS", "DEFAULT_WINDOW", "RESOLVED_READS", "EndQ", "FilterQ", "StartQ",
           "TzQ", "build_query", "hex_id", "run_blocking", "window", "zone_name"]

DEFAULT_WINDOW = timedelta(days=7)
ANALYTICS_ERRORS = error_responses(400, 401, 403, 422, 429, 503, 504)
RESOLVED_READS = [Depends(resolved_reads)]
"""Reads that wait until this node's acknowledged spans are resolved (attribution)."""
StartQ = Annotated[StoreTime | None, Query(description="Start (ISO-8601, UTC if no offset); "
                                          "default 7 days before `end`.")]
EndQ = Annotated[StoreTime | None, Query(description="End, exclusive (ISO-8601); default now.")]
FilterQ = Annotated[str | None, Query(
    max_length=10_000, description="Conditions on canonical fields (short names allowed): "
    "`project=acme,model=gpt-4o,status=error`. Naming an org or project outside the "
    "caller's scope is refused (403).")]
TzQ = Annotated[str, Query(
    max_length=64, description="IANA time zone (`Europe/Berlin`, `Asia/Kolkata`, "
    "`America/St_Johns`) whose hours and days the buckets and `period` follow; bucket "
    "keys stay UTC instants (of the local bucket start). Unknown zone: 400.")]


def zone_name(tz: str) -> str:
    """``tz`` if it is an IANA zone name.

    Raises:
        ApiError: (400, field ``tz``) it is not.
    """
    if zone_of(tz) is None:
        raise ApiError(400, "Unknown time zone", [FieldError(
            "tz", f"Expected an IANA time zone name such as UTC, Europe/Berlin or "
                  f"Asia/Kolkata, got {tz[:64]!r}")])
    return tz


def window(start: datetime | None, end: datetime | None,
           default: timedelta = DEFAULT_WINDOW) -> tuple[datetime, datetime]:
    """``(start, end)`` in UTC: ``end`` defaults to now, ``start`` to ``default`` before it.

    Raises:
        ApiError: (400, field ``start``) the range is empty.
    """
    end_utc = end or datetime.now(UTC)
    start_utc = start or end_utc - default
    if start_utc >= end_utc:
        raise ApiError(400, "Empty time range", [FieldError(
            "start", f"Expected start before end, got {start_utc.isoformat()} ≥ "
            f"{end_utc.isoformat()}")])
    return start_utc, end_utc


def build_query(start: datetime | None, end: datetime | None, filters: Mapping[str, str],
                group_by: list[str] | None = None, bucket: Bucket | None = None,
                tz: str = UTC_NAME) -> QueryParams:
    """Build the analytics QueryParams (buckets in time zone ``tz``).

    Raises:
        ApiError: (400) an empty time range or an unknown time zone.
        ValidationError: (422) an unknown filter or group-by field.
    """
    start_utc, end_utc = window(start, end)
    return QueryParams(time_range=TimeRange(start_utc, end_utc), filters=filters,
                       group_by=tuple(group_by or ()), bucket=bucket,
                       time_zone=zone_name(tz))


def hex_id(value: str, field: str, digits: int) -> str:
    """``value`` lowercased if it is ``digits`` hex digits.

    Raises:
        ApiError: (400) it is not.
    """
    value = value.lower()
    if len(value) != digits or any(c not in "0123456789abcdef" for c in value):
        raise ApiError(400, f"Invalid {field.replace('_', ' ')}", [FieldError(
            field, f"Expected {digits} hex characters, got {value[:100]!r}")])
    return value



async def run_blocking(func: Callable[..., Any], *args: Any) -> Any:
    """``func(*args)`` in a worker thread (store queries block)."""
    return await anyio.to_thread.run_sync(func, *args)
