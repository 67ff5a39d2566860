"""The one filter expression of every read: ``key=value,key=value`` on canonical fields.

::

    project=acme,model=gpt-4o,status=error,min_cost=0.01

* names are the canonical columns of :data:`~mentatlab.analytics.query.FILTER_COLUMNS`,
  or their short names (``project`` → ``project_id``, ``agent`` → ``agent_id``...);
* ``model`` is the response model, or the request model when there is none (the same
  expression every query groups by);
* ``min_cost`` (USD, exact decimal) keeps spans costing at least that much; only where a
  route says so (the live stream), since aggregates cannot answer it.

Every problem is a :class:`~mentatlab.errors.FilterError` (HTTP 400) with one
``filter.<name>`` error per bad condition. Applying the caller's org/project scope is
:meth:`mentatlab.access.principal.Principal.scope_filters`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from mentatlab.analytics.query import FILTER_COLUMNS, NAME_ALIASES
from mentatlab.errors import FieldError, FilterError

__all__ = ["MAX_CONDITIONS", "MAX_VALUE_CHARS", "SpanFilter", "parse_filter"]

MAX_CONDITIONS = 32
"""Most conditions one expression may hold."""
MAX_VALUE_CHARS = 1_000
"""Longest value one condition may compare with."""


@dataclass(frozen=True, slots=True)
class SpanFilter:
    """Conditions a span must meet: equalities on canonical fields and a minimum cost."""

    equals: Mapping[str, str] = field(default_factory=dict)
    """Canonical field name → value (``model`` as defined above)."""
    min_cost: Decimal | None = None
    """Least ``total_cost`` (USD), or None."""

    def with_equals(self, equals: Mapping[str, str]) -> SpanFilter:
        """The same filter with ``equals`` replaced (after scoping)."""
        return SpanFilter(dict(equals), self.min_cost)

    def matches(self, row: Mapping[str, Any]) -> bool:
        """Whether a span row (canonical names, Python values) meets every condition."""
        for name, wanted in self.equals.items():
            if name == "model":
                value = row.get("response_model") or row.get("request_model")
            else:
                value = row.get(name)
            if _plain(value) != wanted:
                return False
        if self.min_cost is not None:
            cost = row.get("total_cost")
            if cost is None or Decimal(str(cost)) < self.min_cost:
                return False
        return True


def _plain(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return ""
    return str(getattr(value, "value", value))


def parse_filter(expr: str | None, *, allow_min_cost: bool = False) -> SpanFilter:
    """Parse a filter expression.

    Args:
        expr: ``key=value,key=value`` (None or empty: no conditions).
        allow_min_cost: accept ``min_cost`` (routes that filter spans one by one).

    Raises:
        FilterError: a condition without ``=``, an unknown field, a bad or unsupported
            ``min_cost``, a repeated field with two values, too many conditions, or a value
            over :data:`MAX_VALUE_CHARS`.
    """
    equals: dict[str, str] = {}
    min_cost: Decimal | None = None
    errors: list[FieldError] = []
    parts = [p.strip() for p in (expr or "").split(",") if p.strip()]
    if len(parts) > MAX_CONDITIONS:
        raise FilterError([FieldError("filter", f"Expected at most {MAX_CONDITIONS} "
                                      f"conditions, got {len(parts)}")])
    for part in parts:
        raw_name, sep, value = part.partition("=")
        raw_name, value = raw_name.strip(), value.strip()
        name = NAME_ALIASES.get(raw_name, raw_name)
        where = f"filter.{raw_name or '?'}"
        if not sep or not raw_name:
            errors.append(FieldError("filter", f"Expected key=value, got {part!r}"))
        elif len(value) > MAX_VALUE_CHARS:
            errors.append(FieldError(where, f"Expected at most {MAX_VALUE_CHARS} characters"))
        elif name == "min_cost":
            if not allow_min_cost:
                errors.append(FieldError(where, "min_cost filters spans one by one; here use "
                                         "the route's own parameters (/traces?min_cost=)"))
                continue
            try:
                min_cost = Decimal(value)
            except InvalidOperation:
                errors.append(FieldError(where, f"Expected a decimal, got {value!r}"))
                continue
            if not min_cost.is_finite():
                errors.append(FieldError(where, f"Expected a finite decimal, got {value!r}"))
        elif name not in FILTER_COLUMNS:
            errors.append(FieldError(where, f"Expected one of {sorted(FILTER_COLUMNS)} (or "
                                     f"{sorted(NAME_ALIASES)}), got {raw_name!r}"))
        elif equals.get(name, value) != value:
            errors.append(FieldError(where, f"Expected one value, got {equals[name]!r} and "
                                     f"{value!r}"))
        else:
            equals[name] = value
    if errors:
        raise FilterError(errors)
    return SpanFilter(equals, min_cost)
