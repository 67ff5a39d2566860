"""Parameter types shared by the routes, bounded by what the store and the control store hold.

Every query parameter and body field that reaches a store is declared with one of these
types, so a value the store cannot hold is refused with 422 naming the field (FastAPI's
validation, turned into the one error shape by :mod:`mentatlab.server.errors`), never
passed on to fail as a 500 or a misleading 503:

* times: ClickHouse ``DateTime64`` holds 1900 to 2262 (:data:`StoreTime`);
* integers: signed 64 bits (``Int64``/``BIGINT``) at most (:data:`Int64`, :data:`Count`);
* decimals and money: ``Decimal(38, 12)`` (:data:`Number`, :data:`Money`);
* lists, maps and free text in bodies: :data:`MAX_LIST_ITEMS` items of at most
  :data:`MAX_TEXT_CHARS` characters (:data:`Text`);
* durations: bounded so ``now - duration`` stays a time (:data:`WindowSeconds`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator, Field

from mentatlab.analytics.query import check_store_time
from mentatlab.errors import ValidationError

__all__ = ["INT64_MAX", "MAX_LIST_ITEMS", "MAX_TEXT_CHARS", "MAX_WINDOW_S", "Count", "Int64",
           "Milliseconds", "Money", "Number", "StoreTime", "Text", "WindowSeconds"]

INT64_MAX = 2**63 - 1
"""Largest signed 64-bit integer: the widest integer column of either store."""
MAX_WINDOW_S = 366 * 86_400
"""Longest look-back window a parameter may ask for, in s (one leap year)."""


def _store_time(value: datetime) -> datetime:
    """``value`` in UTC (naive means UTC) if the span store can hold it.

    Raises:
        ValueError: outside :data:`~mentatlab.analytics.query.EARLIEST_TIME` ..
            :data:`~mentatlab.analytics.query.LATEST_TIME` (pydantic makes it a 422).
    """
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value
    try:
        return check_store_time(aware)
    except ValidationError as exc:
        raise ValueError(exc.reason) from None


StoreTime = Annotated[datetime, AfterValidator(_store_time)]
"""An ISO-8601 time the span store can hold, in UTC (UTC if it has no offset)."""
Int64 = Annotated[int, Field(ge=-INT64_MAX - 1, le=INT64_MAX)]
"""A signed 64-bit integer."""
Count = Annotated[int, Field(ge=0, le=INT64_MAX)]
"""A non-negative signed 64-bit integer (offsets, cursors, sizes)."""
WindowSeconds = Annotated[float, Field(gt=0, le=MAX_WINDOW_S, allow_inf_nan=False)]
"""A look-back window in s: positive and at most :data:`MAX_WINDOW_S`."""
Number = Annotated[Decimal, Field(max_digits=38, decimal_places=12, allow_inf_nan=False)]
"""An exact decimal a ``Decimal(38, 12)`` column holds (thresholds, fractions)."""
Money = Annotated[Decimal, Field(ge=0, max_digits=38, decimal_places=12, allow_inf_nan=False)]
"""A non-negative amount a money column (``Decimal(38, 12)``) holds."""
MAX_LIST_ITEMS = 32
"""Most items a list or map in a request body may hold (filters, channels, thresholds)."""
MAX_TEXT_CHARS = 2_000
"""Longest free-text item of a request body (a channel, a filter value)."""
Text = Annotated[str, Field(max_length=MAX_TEXT_CHARS)]
"""A string of at most :data:`MAX_TEXT_CHARS` characters."""
Milliseconds = Annotated[float, Field(ge=0, le=INT64_MAX / 1e6, allow_inf_nan=False)]
"""A non-negative duration in ms, at most what ``Int64`` nanoseconds hold."""
