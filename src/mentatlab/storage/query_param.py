"""Turn Python values into ClickHouse ``{name:Type}`` parameter text (server-side binding).

Shared by the backends so a query's parameters mean the same on chDB and a server.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from mentatlab.errors import ConfigError

__all__ = ["CLICKHOUSE_CODE", "escape_text", "format_params", "to_param_text"]

CLICKHOUSE_CODE = re.compile(r"Code:\s*(\d+)")
"""Finds the ClickHouse error code in an exception message."""


def to_param_text(value: Any) -> str:
    """The text ClickHouse parses for one parameter value.

    Datetimes must be timezone-aware; they are written in UTC with nanosecond digits
    (``2026-11-01 00:00:00.000000000``), which parses as ``DateTime64(9, 'UTC')``
    and, truncated by the server, as ``DateTime``. Decimals keep every digit; booleans
    become ``true``/``false``; lists and tuples become ClickHouse array literals.

    Raises:
        ConfigError: a naive datetime or an unsupported type.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ConfigError(f"Expected a timezone-aware datetime parameter, got {value!r}")
        utc = value.astimezone(UTC)
        return utc.strftime("%Y-%m-%d %H:%M:%S") + f".{utc.microsecond * 1000:09d}"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, (int, float, str)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_quote(v) for v in value) + "]"
    raise ConfigError(f"Expected a str, int, float, Decimal, datetime or list parameter, "
                      f"got {type(value).__name__}")


def _quote(value: Any) -> str:
    text = to_param_text(value)
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r",
                          "\0": "\\0", "\b": "\\b", "\f": "\\f"})


def escape_text(text: str) -> str:
    r"""``text`` in ClickHouse's escaped text format (``TabSeparated`` escaping).

    The engine reads a scalar parameter in this format: a raw tab or newline fails with
    BAD_QUERY_PARAMETER and a ``\n`` or ``\\`` sequence would be unescaped.
    """
    return text.translate(_ESCAPES)


def format_params(params: Mapping[str, Any] | None) -> dict[str, str]:
    """Every parameter as the text chDB's ``params=`` expects (see :func:`to_param_text`).

    Scalar strings are escaped (:func:`escape_text`), because chDB reads parameter values
    in the escaped text format, exactly like the HTTP interface's ``param_<name>``. Array
    literals are not: their elements are quoted, and quoted text is read as is.

    Raises:
        ConfigError: a value cannot be written as a parameter.
    """
    return {name: escape_text(value) if isinstance(value, str) else to_param_text(value)
            for name, value in (params or {}).items()}
