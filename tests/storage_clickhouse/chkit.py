"""Fixtures for the ClickHouse-server span store.

``clickhouse_store`` gives each test a migrated ClickHouseSpanStore in a database of its
own. The server is the chDB-backed ClickHouse HTTP endpoint (tests/clickhouse_endpoint.py)
in a child process, started once per test session; set ``CLICKHOUSE_URL``
(``clickhouse://user:pass@host:8123``) to run the same tests against a real server.
To run another suite on this backend, depend on ``clickhouse_store`` where it takes a
``SpanStore``.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from clickhouse_endpoint import EndpointProcess
from mentatlab.model.span import CanonicalSpan, Operation, SpanStatus
from mentatlab.storage.clickhouse_store import ClickHouseSpanStore, parse_clickhouse_url

T0 = datetime(2026, 11, 20, 12, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture(scope="session")
def clickhouse_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Connection arguments of the ClickHouse server the tests use (no database)."""
    url = os.environ.get("CLICKHOUSE_URL")
    if url:
        args = parse_clickhouse_url(url)
        args.pop("database", None)
        args.pop("cluster", None)
        yield args
        return
    with EndpointProcess(tmp_path_factory.mktemp("clickhouse-endpoint")) as endpoint:
        yield {"host": endpoint.host, "port": endpoint.port, "compress": False,
               "endpoint": endpoint}


@pytest.fixture
def clickhouse_database() -> str:
    """A fresh database name for one test."""
    return f"mentat_test_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def clickhouse_store(clickhouse_server: dict[str, Any],
                     clickhouse_database: str) -> Iterator[ClickHouseSpanStore]:
    """A migrated ClickHouseSpanStore on a database of its own, dropped afterwards."""
    args = {k: v for k, v in clickhouse_server.items() if k != "endpoint"}
    store = ClickHouseSpanStore(database=clickhouse_database, **args)
    store.migrate()
    yield store
    if not store.closed:
        store.execute(f"DROP DATABASE IF EXISTS `{clickhouse_database}`")
        store.close()


def make_span(i: int, *, trace: int = 0, start: datetime = T0, **overrides: Any) -> CanonicalSpan:
    """A span with every kind of column filled: Decimal, ns time, NULL tokens, enums."""
    fields: dict[str, Any] = {
        "trace_id": f"{trace:032x}",
        "span_id": f"{i + 1:016x}",
        "parent_span_id": "" if i == 0 else f"{1:016x}",
        "name": f"chat gpt-4o #{i}",
        "kind": "client",
        "start_time": start + timedelta(microseconds=i),
        "end_time": start + timedelta(seconds=1, microseconds=i),
        "duration_ms": 1000.0,
        "status": SpanStatus.ERROR if i % 5 == 4 else SpanStatus.OK,
        "org_id": "org-a" if i % 2 else "org-b",
        "project_id": "p1",
        "operation": Operation.CHAT,
        "provider": "openai",
        "request_model": "gpt-4o",
        "is_streaming": None if i % 3 == 0 else bool(i % 2),
        "input_tokens": None if i % 4 == 3 else 100 + i,
        "output_tokens": 10 * i,
        "token_cost": Decimal("0.000000000001") * (i + 1),
        "total_cost": Decimal("12345678901234567890.123456789012") if i == 1
        else Decimal("0.000250000001") * (i + 1),
        "attributes": '{"k": "v\\\\n\\u00e9"}',
        "ingested_at_ns": 1_000 + i,
    }
    fields.update(overrides)
    return CanonicalSpan(**fields)


SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[tuple[str, Path | None]]:
    """(SQLAlchemy URL, folder) of a private PostgreSQL started by scripts/postgres.sh and
    dropped afterwards; set ``MENTATLAB_TEST_POSTGRES_URL`` to use an existing server
    (folder None) instead."""
    url = os.environ.get("MENTATLAB_TEST_POSTGRES_URL")
    if url:
        yield url, None
        return
    # Under /tmp, not pytest's tmp_path: the postgres user must traverse the folder.
    folder = Path(tempfile.mkdtemp(prefix="mentatlab-pg-", dir="/tmp"))
    try:
        started = subprocess.run([str(SCRIPTS / "postgres.sh"), str(folder)], check=True,
                                 capture_output=True, text=True, timeout=300)
        yield started.stdout.strip().splitlines()[-1], folder
    finally:
        subprocess.run([str(SCRIPTS / "postgres-stop.sh"), str(folder), "--drop"], check=False,
                       capture_output=True, timeout=120)


@pytest.fixture
def postgres_url(postgres_cluster: tuple[str, Path | None]) -> str:
    """SQLAlchemy URL (``postgresql+psycopg://``) of the test PostgreSQL."""
    return postgres_cluster[0]
