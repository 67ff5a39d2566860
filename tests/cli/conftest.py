"""Fixtures of the CLI tests: the ClickHouse test endpoint and a real PostgreSQL, shared
with the other suites (tests/backends.py)."""

from __future__ import annotations

from backends import clickhouse_server, postgres_cluster

__all__ = ["clickhouse_server", "postgres_cluster"]
