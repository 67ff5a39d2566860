"""Fixtures of the scale-out tests: the ClickHouse test endpoint and a real PostgreSQL."""

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
