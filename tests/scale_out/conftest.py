"""Fixtures of the scale-out tests: the ClickHouse test endpoint and a real PostgreSQL."""

from __future__ import annotations

try:
    from backends import (
        clickhouse_database,
        clickhouse_server,
        clickhouse_store,
        postgres_cluster,
        postgres_url,
    )
except ImportError:  # pragma: no cover - until the fixtures move to tests/backends.py
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "storage_clickhouse"))
    from chkit import (  # type: ignore[no-redef]
        clickhouse_database,
        clickhouse_server,
        clickhouse_store,
        postgres_cluster,
        postgres_url,
    )

__all__ = ["clickhouse_database", "clickhouse_server", "clickhouse_store", "postgres_cluster",
           "postgres_url"]
