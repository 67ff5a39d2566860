"""The SpanStore protocol: what every span-store backend (chDB, ClickHouse) provides.

Every table definition and every query is ClickHouse SQL that a ClickHouse server would
run unchanged; query parameters use ClickHouse server-side binding (``{name:Type}``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import pyarrow as pa

__all__ = ["SpanStore"]


class SpanStore(Protocol):
    """A columnar store of CanonicalSpan rows."""

    def migrate(self) -> None:
        """Create or upgrade the schema to the latest version (idempotent).

        Raises:
            StoreError: a migration failed.
        """
        ...

    def append_batch(self, table: pa.Table) -> None:
        """Insert an Arrow table with schema ``SPAN_SCHEMA``; durable when this returns.

        Raises:
            StoreUnavailable: the store cannot take the write now.
        """
        ...

    def insert_table(self, name: str, table: pa.Table) -> None:
        """Insert an Arrow table into the derived table ``name`` (not ``spans``).

        The Arrow column names are the target's columns; the target converts the types.
        For tables the server itself derives (``span_timing``); durable on return.

        Raises:
            StoreError: the insert failed.
        """
        ...

    def query_arrow(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        """Run a read query with server-side parameters and return an Arrow table.

        Raises:
            QueryTimeout: the query ran past the time limit.
            StoreError: the query failed.
        """
        ...

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        """Run a statement that returns nothing (DDL, mutations).

        Raises:
            StoreError: the statement failed.
        """
        ...

    def close(self) -> None:
        """Release the store; further calls raise StoreError."""
        ...
