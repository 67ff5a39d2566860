"""Query parameters shared by every analytics query, and the SQL fragments built from them.

Every analytics query is one ClickHouse SQL text that runs unchanged on chDB and on a
ClickHouse server. User input never reaches the SQL text: column names are checked
against allowlists and mapped to fixed expressions; values are bound as ``{name:Type}``
parameters.

Conventions every query follows:

* ``spans FINAL`` so a re-sent span counts once (with
  ``do_not_merge_across_partitions_select_final``: a span's versions share its day
  partition, so FINAL never needs to merge across partitions and stays fast);
* the model is ``if(response_model != '', response_model, request_model)``;
* token sums skip ``usage_is_rollup`` rows (their tokens repeat their children's);
* an LLM call ("request") is a span with a model that is not a rollup.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from mentatlab.analytics.zone import parse_zone
from mentatlab.errors import ValidationError
from mentatlab.storage.aggregates import LLM_CALL, MODEL_EXPR, NOT_ROLLUP

__all__ = [
    "BUCKETS",
    "EARLIEST_TIME",
    "FILTER_COLUMNS",
    "FINAL_SETTINGS",
    "GROUP_BY_COLUMNS",
    "LATEST_TIME",
    "LLM_CALL",
    "LLM_CALL_FAST",
    "MODEL_EXPR",
    "MODEL_HASH",
    "NAME_ALIASES",
    "NOT_ROLLUP",
    "Bucket",
    "QueryParams",
    "SqlParts",
    "TimeRange",
    "bucket_sql",
    "build_where",
    "check_store_time",
    "group_keys_of",
    "minute_cover",
    "to_utc",
]

FINAL_SETTINGS = "SETTINGS do_not_merge_across_partitions_select_final = 1"
"""Appended to every ``FROM spans FINAL`` query."""

LLM_CALL_FAST = ("((response_model != '' OR request_model != '') AND NOT usage_is_rollup)")
"""The rows of :data:`LLM_CALL`, written so ClickHouse tests each ``LowCardinality`` column on
its dictionary (no per-row ``if`` over strings): ~10% cheaper at 10M spans. A ``WHERE``
condition, never ``PREWHERE`` with ``FINAL`` (that filters versions before they merge)."""

MODEL_HASH = ("if(response_model != '', cityHash64(response_model), cityHash64(request_model))")
"""``cityHash64`` of :data:`MODEL_EXPR`, computed on each column's dictionary: a ``GROUP BY``
key ~2x cheaper than the string (callers take the name with ``any(MODEL_EXPR)``; two model
names colliding in 64 bits is a 2⁻⁶⁴ event, as for prompt prefixes in decision 0013)."""

NAME_ALIASES: Mapping[str, str] = {
    "org": "org_id", "workspace": "workspace_id", "project": "project_id", "user": "user_id",
    "customer": "customer_id", "agent": "agent_id", "workflow": "workflow_id",
    "tool": "tool_name", "service": "service_name",
}
"""Short names accepted for group-by and filter names (``project`` → ``project_id``)."""

GROUP_BY_COLUMNS: Mapping[str, str] = {
    "org_id": "org_id",
    "workspace_id": "workspace_id",
    "project_id": "project_id",
    "user_id": "user_id",
    "customer_id": "customer_id",
    "agent_id": "agent_id",
    "workflow_id": "workflow_id",
    "model": MODEL_EXPR,
    "provider": "provider",
    "tool_name": "tool_name",
    "operation": "operation",
    "status": "status",
    "service_name": "service_name",
    "error_type": "error_type",
    "error_category": "error_category",
    "error_class": "error_class",
}
"""Names a query may group by, and the SQL expression of each (``error_type``,
``error_category`` and ``error_class`` are in no aggregate: grouping by them reads raw
spans)."""

FILTER_COLUMNS: Mapping[str, str] = {
    **GROUP_BY_COLUMNS,
    "department": "department",
    "agent_version": "agent_version",
    "workflow_version": "workflow_version",
    "prompt_version": "prompt_version",
    "run_id": "run_id",
    "session_id": "session_id",
    "flow_id": "flow_id",
    "trace_id": "trace_id",
    "request_model": "request_model",
    "response_model": "response_model",
    "error_type": "error_type",
    "price_source": "price_source",
    "policy_id": "policy_ids",
    "policy_action": "policy_actions",
    "currency": "currency",
    "name": "name",
}
"""Canonical columns a query may filter on (equality), and the SQL expression of each.

``policy_id`` and ``policy_action`` are array columns (a span may match several policies,
docs/decisions/0018): they filter on membership, ``has(policy_ids, value)``
(:data:`ARRAY_FILTERS`, :func:`filter_sql`)."""
ARRAY_FILTERS: frozenset[str] = frozenset({"policy_id", "policy_action"})
"""Filter names over array columns: a span passes when the array holds the value."""


def filter_sql(name: str, placeholder: str) -> str:
    """The SQL condition of filter ``name`` against a bound ``placeholder``.

    The SQL condition of filter ``name`` against a bound ``placeholder``
    (``col = {p0:String}``, or ``has(col, {p0:String})`` for :data:`ARRAY_FILTERS`).

    Raises:
        KeyError: ``name`` is not in :data:`FILTER_COLUMNS` (callers check names first).
    """
    expr = FILTER_COLUMNS[name]
    if name in ARRAY_FILTERS:
        return f"has({expr}, {placeholder})"
    return f"{expr} = {placeholder}"

Bucket = Literal["minute", "hour", "day"]
BUCKETS: Mapping[str, str] = {
    "minute": "toDateTime64(toStartOfMinute(start_time), 0, 'UTC')",
    "hour": "toDateTime64(toStartOfHour(start_time), 0, 'UTC')",
    "day": "toDateTime64(toStartOfDay(start_time), 0, 'UTC')",
}
"""Time buckets and their SQL expressions (UTC). DateTime64 because a ``DateTime`` comes
back from chDB's Arrow output as bare epoch seconds."""
_START_OF: Mapping[str, str] = {"minute": "toStartOfMinute", "hour": "toStartOfHour",
                                "day": "toStartOfDay"}


def bucket_sql(column: str, bucket: str, time_zone: str = "UTC") -> str:
    """SQL of the start of ``column``'s ``bucket`` in ``time_zone``, as a UTC DateTime64.

    ``column`` is a fixed column name (``start_time``, ``minute``, ``hour``), never input;
    ``time_zone`` is checked by :func:`~mentatlab.analytics.zone.parse_zone` (IANA names
    only: letters, digits, ``_+-/``) before it is written into the text, as ClickHouse
    wants the zone of ``toStartOfDay`` as a constant.

    Raises:
        ValidationError: ``time_zone`` is not an IANA zone name.
    """
    if time_zone == "UTC":
        return f"toDateTime64({_START_OF[bucket]}({column}), 0, 'UTC')"
    parse_zone(time_zone)
    return f"toDateTime64({_START_OF[bucket]}({column}, '{time_zone}'), 0, 'UTC')"


EARLIEST_TIME = datetime(1900, 1, 1, tzinfo=UTC)
"""Earliest time a query may name: the start of ClickHouse's ``DateTime64`` range."""
LATEST_TIME = datetime(2262, 1, 1, tzinfo=UTC)
"""Latest time a query may name: ``DateTime64(9)`` ends on 2262-04-11; the margin keeps
rounding to whole minutes and bucket arithmetic inside it."""


def check_store_time(value: datetime, name: str = "time") -> datetime:
    """``value`` if the store can hold it (:data:`EARLIEST_TIME` ≤ value ≤ :data:`LATEST_TIME`).

    Raises:
        ValidationError: (422, field ``name``) ``value`` is naive or outside that range.
    """
    utc = to_utc(value, name)
    if not EARLIEST_TIME <= utc <= LATEST_TIME:
        raise ValidationError(name, f"Expected a time from {EARLIEST_TIME:%Y-%m-%d} to "
                                    f"{LATEST_TIME:%Y-%m-%d} (UTC), got {utc.isoformat()}")
    return utc


def to_utc(value: datetime, name: str = "time") -> datetime:
    """``value`` as a UTC datetime.

    Raises:
        ValidationError: ``value`` is naive (no timezone), or its UTC form is outside
            what a ``datetime`` holds (years 1 to 9999).
    """
    if value.tzinfo is None:
        raise ValidationError(name, f"Expected a timezone-aware datetime, got {value.isoformat()}")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValidationError(name, f"Expected a time in years 1 to 9999 in UTC, got "
                                    f"{value.isoformat()}") from None


@dataclass(frozen=True, slots=True)
class TimeRange:
    """A half-open UTC interval ``[start, end)`` over span ``start_time``.

    Raises:
        ValidationError: (422) a naive bound, a bound outside what the store holds
            (:func:`check_store_time`), or ``end`` not after ``start``.
    """

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", check_store_time(self.start, "start"))
        object.__setattr__(self, "end", check_store_time(self.end, "end"))
        if self.end <= self.start:
            raise ValidationError(
                "end", f"Expected end after start, got {self.start.isoformat()} .."
                       f" {self.end.isoformat()}")


def minute_cover(time_range: TimeRange) -> TimeRange:
    """The whole minutes ``time_range`` touches: start rounded down, end rounded up."""
    start = time_range.start.replace(second=0, microsecond=0)
    end = time_range.end.replace(second=0, microsecond=0)
    if end != time_range.end:
        end += timedelta(minutes=1)
    if start == time_range.start and end == time_range.end:
        return time_range
    return TimeRange(start, end)


@dataclass(frozen=True, slots=True)
class QueryParams:
    """Time range, equality filters, group-by columns and bucket of one analytics query.

    Analytics answers have whole-minute resolution: ``time_range`` becomes the whole
    minutes it touches (start rounded down, end rounded up), on every read path, so an
    answer is the same from the aggregates or from raw spans and no read needs to scan
    part of a minute (docs/decisions/0004-attribution-and-aggregates.md).

    Raises:
        ValidationError: an unknown filter, group-by or bucket name, or time zone (the
            field says which).
    """

    time_range: TimeRange
    """The range asked for; after construction, the whole minutes covering it."""
    filters: Mapping[str, str] = field(default_factory=dict)
    """Equality filters on canonical columns (names in ``FILTER_COLUMNS``)."""
    group_by: Sequence[str] = ()
    """Group-by names (in ``GROUP_BY_COLUMNS``), in output order."""
    bucket: Bucket | None = None
    """Time bucket of the result rows; None for one row per group."""
    time_zone: str = "UTC"
    """IANA zone whose hours and days the buckets follow (``Asia/Kolkata``); bucket keys
    stay UTC instants: the UTC instant of the local bucket start."""

    def __post_init__(self) -> None:
        parse_zone(self.time_zone)
        object.__setattr__(self, "time_range", minute_cover(self.time_range))
        object.__setattr__(self, "filters",
                           {NAME_ALIASES.get(k, k): v for k, v in self.filters.items()})
        object.__setattr__(self, "group_by", tuple(NAME_ALIASES.get(g, g) for g in self.group_by))
        for name, value in self.filters.items():
            if name not in FILTER_COLUMNS:
                raise ValidationError(f"filters.{name}",
                                      f"Expected one of {sorted(FILTER_COLUMNS)}, got {name!r}")
            if not isinstance(value, str):
                raise ValidationError(f"filters.{name}", f"Expected a string, got {value!r}")
        seen: set[str] = set()
        for name in self.group_by:
            if name not in GROUP_BY_COLUMNS:
                raise ValidationError(
                    "group_by", f"Expected one of {sorted(GROUP_BY_COLUMNS)}, got {name!r}")
            if name in seen:
                raise ValidationError("group_by", f"Expected distinct names, got {name!r} twice")
            seen.add(name)
        if self.bucket is not None and self.bucket not in BUCKETS:
            raise ValidationError("bucket", f"Expected one of {sorted(BUCKETS)} or none, "
                                            f"got {self.bucket!r}")


@dataclass(slots=True)
class SqlParts:
    """A WHERE clause and its bound parameters, grown by :func:`build_where`."""

    conditions: list[str] = field(default_factory=list)
    binds: dict[str, Any] = field(default_factory=dict)

    def bind(self, value: Any, type_: str) -> str:
        """Register ``value`` as a fresh parameter and return its ``{name:Type}`` placeholder."""
        name = f"p{len(self.binds)}"
        self.binds[name] = value
        return f"{{{name}:{type_}}}"

    @property
    def where(self) -> str:
        """``cond AND cond ...`` (``1`` when empty)."""
        return " AND ".join(self.conditions) or "1"


def build_where(time_range: TimeRange | None, filters: Mapping[str, str] | None = None,
                parts: SqlParts | None = None) -> SqlParts:
    """Conditions for a time range over ``start_time`` and equality filters.

    Raises:
        ValidationError: a filter name outside ``FILTER_COLUMNS``.
    """
    out = parts or SqlParts()
    if time_range is not None:
        ts = "DateTime64(9, 'UTC')"
        out.conditions.append(f"start_time >= {out.bind(time_range.start, ts)}")
        out.conditions.append(f"start_time < {out.bind(time_range.end, ts)}")
    for name, value in (filters or {}).items():
        expr = FILTER_COLUMNS.get(name)
        if expr is None:
            raise ValidationError(f"filters.{name}",
                                  f"Expected one of {sorted(FILTER_COLUMNS)}, got {name!r}")
        out.conditions.append(filter_sql(name, out.bind(str(value), 'String')))
    return out


def group_keys_of(row: Mapping[str, Any], group_by: Sequence[str]) -> dict[str, str]:
    """The group-by values of a result row, as strings, in group-by order."""
    return {name: str(row[f"g_{name}"]) for name in group_by}
