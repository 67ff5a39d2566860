"""One table from a ClickHouse error to MentatLab's store exceptions, for both backends.

The same ClickHouse error code means the same answer whether chDB (in process) or a
ClickHouse server raised it:

* a time limit hit while **reading** → :class:`~mentatlab.errors.QueryTimeout` (HTTP 504);
* a time limit hit while **writing**, or any code in :data:`UNAVAILABLE_CODES`, or no
  answer from the server → :class:`~mentatlab.errors.StoreUnavailable` (HTTP 503 with
  ``Retry-After``: the client retries; a re-sent span never double counts);
* anything else → :class:`~mentatlab.errors.StoreError` (HTTP 503).

Codes: https://github.com/ClickHouse/ClickHouse/blob/master/src/Common/ErrorCodes.cpp
"""

from __future__ import annotations

from collections.abc import Mapping

from mentatlab.errors import QueryTimeout, StoreError, StoreUnavailable

__all__ = ["TIMEOUT_CODES", "UNAVAILABLE_CODES", "store_error"]

TIMEOUT_CODES: Mapping[int, str] = {
    159: "TIMEOUT_EXCEEDED", 160: "TOO_SLOW", 209: "SOCKET_TIMEOUT",
}
"""ClickHouse codes of a time limit."""
UNAVAILABLE_CODES: Mapping[int, str] = {
    3: "UNEXPECTED_END_OF_FILE", 202: "TOO_MANY_SIMULTANEOUS_QUERIES",
    203: "NO_FREE_CONNECTION", 210: "NETWORK_ERROR", 241: "MEMORY_LIMIT_EXCEEDED",
    242: "TABLE_IS_READ_ONLY", 243: "NOT_ENOUGH_SPACE", 252: "TOO_MANY_PARTS",
    279: "ALL_CONNECTION_TRIES_FAILED", 319: "UNKNOWN_STATUS_OF_INSERT",
    425: "SYSTEM_ERROR", 999: "KEEPER_EXCEPTION",
}
"""ClickHouse codes of a store that cannot answer now but may shortly."""


def store_error(code: int | None, message: str, *, write: bool,
                no_answer: bool = False, timed_out: bool = False) -> StoreError:
    """The exception for a failed store call.

    Args:
        code: the ClickHouse error code, or None when there is none.
        message: what failed, where, and the driver's message.
        write: the call was an insert (a timeout is then retryable, not a slow query).
        no_answer: the server never answered (connection refused, reset, timed out).
        timed_out: with ``no_answer``, the client gave up waiting.
    """
    if no_answer:
        return QueryTimeout(message) if timed_out and not write else StoreUnavailable(message)
    if code in TIMEOUT_CODES:
        return StoreUnavailable(message) if write else QueryTimeout(message)
    if code in UNAVAILABLE_CODES:
        return StoreUnavailable(message)
    return StoreError(message)
