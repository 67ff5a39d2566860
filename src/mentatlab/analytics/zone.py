"""Display time zones: reading an IANA name (``?tz=``) and local calendar boundaries.

Buckets and "today" follow a display time zone (issue 15): a day bucket in
``Asia/Kolkata`` is ``[local midnight, next local midnight)``, 18:30 to 18:30 UTC. Bucket
keys stay UTC instants on the wire (the UTC instant of the local bucket start), so a
client never parses offsets; it shows them on the zone's wall clock.
"""

from __future__ import annotations

import functools
import re
import zoneinfo
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Final

from mentatlab.errors import ValidationError

__all__ = ["UTC_NAME", "bucket_cuts", "is_utc", "local_day_start", "parse_zone", "zone_of"]

UTC_NAME: Final = "UTC"
"""The default display zone."""
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_+/-]{0,63}$")


@functools.cache
def _known() -> frozenset[str]:
    # tzdata (a dependency) or the system's zoneinfo; "localtime" names the server's own
    # zone, not one a browser shares, so it is not accepted
    return frozenset(zoneinfo.available_timezones() - {"localtime", "Factory"})


def zone_of(name: str) -> zoneinfo.ZoneInfo | None:
    """The IANA time zone ``name`` (``Asia/Kolkata``, ``UTC``), or None when it is not one."""
    if not _NAME.match(name) or name not in _known() and name != UTC_NAME:
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return None


def parse_zone(name: str | None, field: str = "tz") -> zoneinfo.ZoneInfo:
    """The zone named ``name``; UTC for None or an empty name.

    Raises:
        ValidationError: (400 from the API, ``field``) ``name`` is not an IANA zone name.
    """
    if not name:
        return zoneinfo.ZoneInfo(UTC_NAME)
    zone = zone_of(name)
    if zone is None:
        raise ValidationError(field, f"Expected an IANA time zone name such as UTC, "
                                     f"Europe/Berlin or Asia/Kolkata, got {name[:80]!r}")
    return zone


def is_utc(zone: tzinfo) -> bool:
    """Whether ``zone`` is UTC at every instant (the aggregates' own buckets then serve)."""
    return zone is UTC or str(zone) in (UTC_NAME, "Etc/UTC", "Etc/UCT", "UCT", "Zulu",
                                        "Etc/Zulu", "Universal", "Etc/Universal")


def local_day_start(instant: datetime, zone: tzinfo, days: int = 0) -> datetime:
    """UTC instant of the local midnight starting ``instant``'s day in ``zone``, ``days`` later.

    Where a DST change skips midnight, the day starts at the change (PEP 495: a skipped
    wall time takes the offset before the change).
    """
    local = instant.astimezone(zone).date() + timedelta(days=days)
    return datetime(local.year, local.month, local.day, tzinfo=zone).astimezone(UTC)


_QUARTER_HOUR = timedelta(minutes=15)


def bucket_cuts(start: datetime, end: datetime, bucket: str | None, zone: tzinfo
                ) -> list[datetime]:
    """Local bucket starts inside ``(start, end)`` that are not whole UTC hours, ascending.

    These are where a UTC-hour aggregate row would straddle two buckets of ``zone``: a
    day in ``Asia/Kolkata`` starts at 18:30 UTC, an hour at :30. A read keeps the hour
    tier off them (:func:`~mentatlab.analytics.aggregate_read.plan_read`). Empty for UTC,
    for minute buckets and for hour buckets of whole-hour zones.

    Args:
        start: range start (timezone-aware).
        end: range end, exclusive.
        bucket: ``minute``, ``hour``, ``day`` or None (no cut).
        zone: the display zone.
    """
    if bucket not in ("hour", "day") or is_utc(zone):
        return []
    cuts: list[datetime] = []
    if bucket == "day":
        day = local_day_start(start, zone, 1)
        while day < end:
            cuts.append(day)
            day = local_day_start(day, zone, 1)
    else:
        # every zone's offset has been a whole number of quarter hours since 1972
        utc = start.astimezone(UTC)
        t = utc.replace(minute=utc.minute - utc.minute % 15, second=0, microsecond=0)
        while t < end:
            if t > start and t.astimezone(zone).minute == 0:
                cuts.append(t)
            t += _QUARTER_HOUR
    return [t for t in cuts if t.minute != 0 or t.second != 0 or t.microsecond != 0]
