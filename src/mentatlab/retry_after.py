"""The HTTP ``Retry-After`` header, read the same way by every client MentatLab runs."""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime

__all__ = ["parse_retry_after_s"]


def parse_retry_after_s(value: str | None) -> float | None:
    """``Retry-After`` in seconds (never negative), or None when absent or unreadable.

    Both forms of RFC 9110 §10.2.3: delta-seconds (``"120"``) and an HTTP date
    (``"Wed, 21 Oct 2026 07:28:00 GMT"``, counted from now).
    """
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
