"""The stores the storage, analytics and scale-out suites run on (fixtures, one module).

Span stores: every test that takes ``store`` (or ``open_span_store``) runs twice, with
ids ``[chdb]`` and ``[clickhouse]``: on an embedded chDB store in the test's own folder,
and on :class:`ClickHouseSpanStore` talking HTTP through clickhouse-connect to a
ClickHouse server, in a database of the test's own that is dropped afterwards. The
server is the chDB-backed ClickHouse HTTP endpoint (tests/clickhouse_endpoint.py) in a
child process, started once per test process; set ``CLICKHOUSE_URL``
(``clickhouse://user:pass@host:8123``) to use a real server instead. Tests about chDB
itself (its folder lock, insert files, parameter lock, a killed process) take
``chdb_store`` and run once.

Control stores: every test that takes ``control_store_url`` runs on a SQLite file
(``[sqlite]``) and on a fresh database of a real PostgreSQL (``[postgresql]``), started by
scripts/postgres.sh once per test process (or ``MENTATLAB_TEST_POSTGRES_URL``).

tests/conftest.py loads this module as a plugin, so every suite sees these fixtures and
the endpoint and the PostgreSQL cluster start at most once per test process.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from clickhouse_endpoint import EndpointProcess
from mentatlab.storage.base import SpanStore
from mentatlab.storage.chdb_store import ChdbSpanStore
from mentatlab.storage.clickhouse_store import ClickHouseSpanStore, parse_clickhouse_url

__all__ = [
    "CONTROL_BACKENDS",
    "SPAN_BACKENDS",
    "SpanStores",
    "chdb_store",
    "clickhouse_database",
    "clickhouse_server",
    "clickhouse_store",
    "control_store_url",
    "open_span_store",
    "postgres_cluster",
    "postgres_url",
    "span_backend",
    "span_stores",
    "store",
]

SPAN_BACKENDS = ("chdb", "clickhouse")
CONTROL_BACKENDS = ("sqlite", "postgresql")
SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"

# --- ClickHouse server --------------------------------------------------------------------


def _start_clickhouse(folder: Path, stack: ExitStack) -> dict[str, Any]:
    url = os.environ.get("CLICKHOUSE_URL")
    if url:
        args = parse_clickhouse_url(url)
        args.pop("database", None)
        args.pop("cluster", None)
        return args
    endpoint = stack.enter_context(EndpointProcess(folder))
    return {"host": endpoint.host, "port": endpoint.port, "compress": False,
            "endpoint": endpoint}


@pytest.fixture(scope="session")
def clickhouse_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Connection arguments of the ClickHouse server the tests use (no database); the key
    ``endpoint`` holds the :class:`EndpointProcess` when it is the test endpoint."""
    with ExitStack() as stack:
        yield _start_clickhouse(tmp_path_factory.mktemp("clickhouse-endpoint"), stack)


def server_args(server: dict[str, Any]) -> dict[str, Any]:
    """The :class:`ClickHouseSpanStore` keyword arguments of a ``clickhouse_server``."""
    return {k: v for k, v in server.items() if k != "endpoint"}


@pytest.fixture
def clickhouse_database() -> str:
    """A fresh database name for one test."""
    return f"mentat_test_{uuid.uuid4().hex[:12]}"


def _drop_database(server: dict[str, Any], database: str) -> None:
    with ClickHouseSpanStore(database="default", **server_args(server)) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS `{database}`")


@pytest.fixture
def clickhouse_store(clickhouse_server: dict[str, Any],
                     clickhouse_database: str) -> Iterator[ClickHouseSpanStore]:
    """A migrated ClickHouseSpanStore on a database of its own, dropped afterwards."""
    store = ClickHouseSpanStore(database=clickhouse_database, **server_args(clickhouse_server))
    try:
        store.migrate()
        yield store
    finally:
        store.close()
        _drop_database(clickhouse_server, clickhouse_database)


# --- span stores of either backend --------------------------------------------------------


class SpanStores:
    """Opens span stores of one backend and closes them (dropping their databases) at the end.

    chDB allows one open folder per process: open the next chDB store only after closing
    the previous one.
    """

    def __init__(self, backend: str, folder: Path, server: dict[str, Any] | None) -> None:
        self.backend = backend
        self.folder = folder
        self.server = server
        self._opened: list[tuple[SpanStore, str]] = []
        self._numbers = itertools.count()

    def open(self, **kwargs: Any) -> SpanStore:
        """A new, empty, not yet migrated store; ``kwargs`` go to the backend's constructor
        (``query_timeout_s``, ``retention_days``)."""
        number = next(self._numbers)
        store: SpanStore
        if self.backend == "chdb":
            store = ChdbSpanStore(self.folder / f"spans-{number}", **kwargs)
            self._opened.append((store, ""))
            return store
        assert self.server is not None
        database = f"mentat_test_{uuid.uuid4().hex[:12]}"
        store = ClickHouseSpanStore(database=database, **server_args(self.server), **kwargs)
        self._opened.append((store, database))
        return store

    def close_all(self) -> None:
        """Close every store opened; drop the databases of the ClickHouse ones."""
        opened, self._opened = self._opened, []
        for store, database in opened:
            store.close()
            if database and self.server is not None:
                _drop_database(self.server, database)


@contextmanager
def span_stores(backend: str, folder: Path, request: pytest.FixtureRequest
                ) -> Iterator[SpanStores]:
    """A :class:`SpanStores` of ``backend`` (the endpoint starts only when it is needed)."""
    server = request.getfixturevalue("clickhouse_server") if backend == "clickhouse" else None
    stores = SpanStores(backend, folder, server)
    try:
        yield stores
    finally:
        stores.close_all()


@pytest.fixture(params=SPAN_BACKENDS)
def span_backend(request: pytest.FixtureRequest) -> str:
    """``chdb`` or ``clickhouse``: the backend this run of the test uses."""
    return str(request.param)


@pytest.fixture
def open_span_store(span_backend: str, tmp_path: Path, request: pytest.FixtureRequest
                    ) -> Iterator[Callable[..., SpanStore]]:
    """``open_span_store(**kwargs)``: a new, not yet migrated store of this run's backend."""
    with span_stores(span_backend, tmp_path, request) as stores:
        yield stores.open


@pytest.fixture
def store(open_span_store: Callable[..., SpanStore]) -> SpanStore:
    """A migrated, empty span store of this run's backend."""
    opened = open_span_store()
    opened.migrate()
    return opened


@pytest.fixture
def chdb_store(tmp_path: Path) -> Iterator[ChdbSpanStore]:
    """A migrated chDB store, for tests about chDB itself."""
    with ChdbSpanStore(tmp_path / "spans") as opened:
        opened.migrate()
        yield opened


# --- PostgreSQL and the control store -----------------------------------------------------


def _start_postgres(stack: ExitStack) -> tuple[str, Path | None]:
    url = os.environ.get("MENTATLAB_TEST_POSTGRES_URL")
    if url:
        return url, None
    # Under /tmp, not pytest's tmp_path: the postgres user must traverse the folder.
    folder = Path(tempfile.mkdtemp(prefix="mentatlab-pg-", dir="/tmp"))
    stack.callback(subprocess.run, [str(SCRIPTS / "postgres-stop.sh"), str(folder), "--drop"],
                   check=False, capture_output=True, timeout=120)
    started = subprocess.run([str(SCRIPTS / "postgres.sh"), str(folder)], check=True,
                             capture_output=True, text=True, timeout=300)
    return started.stdout.strip().splitlines()[-1], folder


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[tuple[str, Path | None]]:
    """(SQLAlchemy URL, folder) of a private PostgreSQL started by scripts/postgres.sh and
    dropped afterwards; set ``MENTATLAB_TEST_POSTGRES_URL`` to use an existing server
    (folder None) instead."""
    with ExitStack() as stack:
        yield _start_postgres(stack)


@pytest.fixture
def postgres_url(postgres_cluster: tuple[str, Path | None]) -> str:
    """SQLAlchemy URL (``postgresql+psycopg://``) of the test PostgreSQL's own database."""
    return postgres_cluster[0]


def libpq_url(url: str) -> str:
    """The libpq form (``postgresql://``) of a ``postgresql+psycopg://`` URL."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@contextmanager
def fresh_postgres_database(url: str) -> Iterator[str]:
    """The SQLAlchemy URL of a new, empty database on the server of ``url``; dropped after."""
    name = f"mentat_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(libpq_url(url), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=CONTROL_BACKENDS)
def control_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """SQLAlchemy URL of an empty control store: a SQLite file, or a fresh PostgreSQL
    database (not migrated)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'control' / 'control.db'}"
        return
    cluster: tuple[str, Path | None] = request.getfixturevalue("postgres_cluster")
    with fresh_postgres_database(cluster[0]) as url:
        yield url
