"""Fixtures of the ClickHouse-backend tests; the helpers live in chkit.py (a unique name)."""

from __future__ import annotations

from chkit import (
    clickhouse_database,
    clickhouse_server,
    clickhouse_store,
    postgres_cluster,
    postgres_url,
)

__all__ = ["clickhouse_database", "clickhouse_server", "clickhouse_store", "postgres_cluster",
           "postgres_url"]
