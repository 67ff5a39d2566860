"""Fixtures of the ClickHouse-backend tests (they live in tests/backends.py)."""

from __future__ import annotations

from backends import (
    clickhouse_database,
    clickhouse_server,
    clickhouse_store,
    postgres_cluster,
    postgres_url,
)

__all__ = ["clickhouse_database", "clickhouse_server", "clickhouse_store", "postgres_cluster",
           "postgres_url"]
