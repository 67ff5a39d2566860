"""Fixtures of the storage tests: span stores of both backends, chDB, control stores.

``store`` runs a test on chDB and on the ClickHouse backend (ids ``[chdb]``,
``[clickhouse]``); ``chdb_store`` is for tests about chDB itself; ``control_store_url``
runs a test on SQLite and PostgreSQL. They live in tests/backends.py.
"""

from __future__ import annotations

from backends import (
    chdb_store,
    clickhouse_server,
    control_store_url,
    open_span_store,
    postgres_cluster,
    span_backend,
    store,
)

__all__ = ["chdb_store", "clickhouse_server", "control_store_url", "open_span_store",
           "postgres_cluster", "span_backend", "store"]
