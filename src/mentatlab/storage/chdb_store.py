"""Embedded span store: ClickHouse's engine in-process (chDB) on a local folder.

One process owns a store folder (chDB locks it), and a process can have one folder open
at a time: the server owns the store and everything else reads through its API. The
session is thread-safe: the writer thread inserts while request threads query.

Only connection and insert handling live here; every table definition is in
:mod:`mentatlab.storage.span_schema` and every query in :mod:`mentatlab.analytics`.

Insert path: the batch is written as an Arrow IPC stream file under ``<path>/_ingest`` and
inserted with ``INSERT ... SELECT ... FROM file(..., 'ArrowStream')``, an ordinary
statement. Two other paths were tried and rejected (see
``docs/decisions/0003-chdb-insert-path.md``): ``INSERT ... SELECT ... FROM Python(tbl)``
deadlocks for good when another thread queries the same session at the same time (the
insert's reader threads call back into Python), and ``send_insert`` refuses every query
on the session while the insert streams. The file path costs the same as ``Python()``
(~165 vs ~180 ms per 5,000 rows here) and keeps every Decimal digit, nanosecond and NULL.

Durability: an INSERT that returned is in the part files (survives ``kill -9`` of the
process); it is not fsync'ed, so a power cut may lose the last seconds of writes.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pyarrow as pa
from chdb import session as chdb_session

from mentatlab.errors import ConfigError, StoreError, StoreUnavailable
from mentatlab.governance.encryption import EncryptionKeys
from mentatlab.model.schema import SPAN_COLUMNS, SPAN_SCHEMA
from mentatlab.storage.base import SpanStore
from mentatlab.storage.encrypted_disk import (
    EncryptedDisk,
    open_encrypted_disk,
    refuse_unkeyed_open,
)
from mentatlab.storage.query_param import CLICKHOUSE_CODE, format_params
from mentatlab.storage.span_schema import (
    FINAL_READ_SETTING,
    SPANS_TABLE,
    SchemaOptions,
    migrate_span_store,
)
from mentatlab.storage.store_errors import store_error

__all__ = ["ChdbSpanStore", "open_span_store"]

_log = logging.getLogger(__name__)

_COLUMN_LIST = ", ".join(f"`{c.name}`" for c in SPAN_COLUMNS)


_Session: Any = chdb_session.Session
"""chDB ships no type hints: the session is used through ``Any``."""


def _error_code(exc: BaseException) -> int | None:
    match = CLICKHOUSE_CODE.search(str(exc))
    return int(match.group(1)) if match else None


class ChdbSpanStore:
    """SpanStore on one chDB session over the folder ``path``.

    Args:
        path: store folder (created if missing).
        query_timeout_s: longest a read query may run (``max_execution_time``), in s;
            0 means no limit.
        retention_days: TTL applied by :meth:`migrate`; 0 keeps spans forever; None leaves
            the TTL to the retention job.
        encryption_keys: when set, the store's parts live on a ClickHouse ``encrypted``
            disk with these keys (newest first; :mod:`mentatlab.storage.encrypted_disk`)
            and insert batches are staged in memory, not in ``<path>/_ingest``.
        read_only: opened only to be read (a copy's source): the newest key is not
            recorded in the store's encryption marker. Writes are not refused.

    Raises:
        ConfigError: a key is set for a store created without one, none of the keys has
            encrypted this store, or no key is set for an encrypted store.
        StoreUnavailable: the folder is locked by another process or cannot be opened
            (or ClickHouse could not decrypt it).
    """

    def __init__(self, path: Path, *, query_timeout_s: float = 30.0,
                 retention_days: int | None = 0,
                 encryption_keys: EncryptionKeys | None = None,
                 read_only: bool = False) -> None:
        self.path = Path(path)
        self.retention_days = retention_days
        self._cond = threading.Condition()
        self._num_inserts = itertools.count()
        self._params_lock = threading.Lock()
        self._closed = False
        self._num_inflight = 0
        self._exclusive = False
        """True while :meth:`purge_outdated_parts` holds every other call back."""
        self.path.mkdir(parents=True, exist_ok=True)
        self._ingest_dir = self.path / "_ingest"
        self._ingest_dir.mkdir(exist_ok=True)
        for stale in self._ingest_dir.glob("*.arrows"):  # left by a killed process
            stale.unlink(missing_ok=True)
        self._disk: EncryptedDisk | None = None
        connection = str(self.path)
        if encryption_keys is None:
            refuse_unkeyed_open(self.path)
        else:
            self._disk = open_encrypted_disk(self.path, encryption_keys,
                                             record_key=not read_only)
            connection += self._disk.connection_args
        try:
            self._session: Any = _Session(connection)
        except Exception as exc:  # chDB raises RuntimeError subclasses with a text message
            if self._disk is not None:
                self._disk.close()
            raise StoreUnavailable(
                f"Cannot open the chDB span store at {self.path} (is another process using it?"
                f"{' or can the key not decrypt it?' if self._disk else ''}): {exc}") from exc
        if query_timeout_s > 0:
            self.execute(f"SET max_execution_time = {float(query_timeout_s)}")
        self.execute(f"SET {FINAL_READ_SETTING} = 1")  # see storage/compaction.py

    # --- SpanStore -------------------------------------------------------------------

    def migrate(self) -> None:
        """Create or upgrade the schema (idempotent) and apply the retention TTL.

        Raises:
            StoreError: a migration failed.
        """
        migrate_span_store(self, SchemaOptions(), retention_days=self.retention_days)

    def append_batch(self, table: pa.Table) -> None:
        """Insert an Arrow table with schema ``SPAN_SCHEMA`` (N rows); durable on return.

        Raises:
            StoreUnavailable: the store is out of memory/space or has too many parts now.
            StoreError: the store is closed or the insert failed.
        """
        if table.num_rows == 0:
            self._check_open()
            return
        if not table.schema.equals(SPAN_SCHEMA):
            # file(..., 'ArrowStream') would fill a missing column with its default
            raise StoreError(f"Expected an Arrow table with schema SPAN_SCHEMA, got columns "
                             f"{table.schema.names}")
        with self._in_use():
            try:
                self._insert_file(table)
            except Exception as exc:
                raise self._map_error(exc, f"insert of {table.num_rows} spans",
                                      write=True) from exc

    def insert_table(self, name: str, table: pa.Table) -> None:
        """Insert an Arrow table into the derived table ``name`` (columns by name).

        Raises:
            StoreError: ``name`` is ``spans`` (use :meth:`append_batch`), the store is
                closed or the insert failed.
        """
        if name == SPANS_TABLE:
            raise StoreError("Expected a derived table, got spans: use append_batch")
        if table.num_rows == 0:
            self._check_open()
            return
        columns = ", ".join(f"`{c}`" for c in table.schema.names)
        with self._in_use():
            try:
                self._insert_file(table, name, columns)
            except Exception as exc:
                raise self._map_error(exc, f"insert of {table.num_rows} rows into {name}",
                                      write=True) from exc

    def _insert_file(self, table: pa.Table, name: str = SPANS_TABLE,
                     columns: str = _COLUMN_LIST) -> None:
        if self._disk is not None:
            self._insert_memfd(table, name, columns)
            return
        batch_file = self._ingest_dir / f"{os.getpid()}-{next(self._num_inserts)}.arrows"
        try:
            with pa.OSFile(str(batch_file), "wb") as sink, \
                    pa.ipc.new_stream(sink, table.schema) as writer:
                writer.write_table(table)
            path_literal = str(batch_file).replace("\\", "\\\\").replace("'", "\\'")
            self._session.query(  # no parameters: see _params_guard
                f"INSERT INTO {name} ({columns}) SELECT {columns}"
                f" FROM file('{path_literal}', 'ArrowStream')")
        finally:
            batch_file.unlink(missing_ok=True)

    def _insert_memfd(self, table: pa.Table, name: str, columns: str) -> None:
        # An encrypted store must not stage plaintext batches in files: an anonymous
        # in-memory file read by path (/proc/self/fd/<n>) is the same insert statement.
        fd = os.memfd_create(f"mentatlab-batch-{next(self._num_inserts)}", os.MFD_CLOEXEC)
        try:
            with open(fd, "wb", closefd=False) as sink, \
                    pa.ipc.new_stream(sink, table.schema) as writer:
                writer.write_table(table)
            self._session.query(  # no parameters: see _params_guard
                f"INSERT INTO {name} ({columns}) SELECT {columns}"
                f" FROM file('/proc/self/fd/{fd}', 'ArrowStream')")
        finally:
            os.close(fd)

    @property
    def encrypted(self) -> bool:
        """True when the store's parts are on an encrypted disk."""
        return self._disk is not None

    def query_arrow(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        """Run a read query with ``{name:Type}`` parameters; return an Arrow table.

        Args:
            sql: ClickHouse SQL without a FORMAT clause.
            params: values for the placeholders (datetimes must be timezone-aware).

        Raises:
            QueryTimeout: the query ran past ``query_timeout_s``.
            StoreError: the query failed or the store is closed.
        """
        with self._in_use(), self._params_guard(params):
            try:
                result = self._session.query(sql, "ArrowTable", params=format_params(params))
            except Exception as exc:
                raise self._map_error(exc, "query") from exc
        if not isinstance(result, pa.Table):
            raise StoreError(f"Expected chDB to return a pyarrow Table, got {type(result)}")
        return result

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        """Run a statement that returns nothing (DDL, mutations, SET).

        Raises:
            StoreError: the statement failed or the store is closed.
        """
        with self._in_use(), self._params_guard(params):
            try:
                self._session.query(sql, "CSV", params=format_params(params))
            except Exception as exc:
                raise self._map_error(exc, "statement") from exc

    def _params_guard(self, params: Mapping[str, Any] | None) -> AbstractContextManager[Any]:
        # chDB binds query parameters on the session, not the query: two parameterized
        # queries on different threads see each other's values ("Substitution `x` is not
        # set", or silently the other request's value). They take turns; statements
        # without parameters (the writer's inserts) run beside them.
        return self._params_lock if params else nullcontext()

    def close(self, wait_s: float = 30.0) -> None:
        """Close the session once running calls finish (waits up to ``wait_s`` s); idempotent.

        New calls are refused at once; the chDB folder lock is released on return.
        """
        with self._cond:
            if self._closed:
                return
            self._closed = True
            # Closing the session under a running query would pull the engine from under it.
            if not self._cond.wait_for(lambda: self._num_inflight == 0, wait_s):
                _log.warning("closing the span store at %s with %s calls still running",
                             self.path, self._num_inflight)
        self._session.close()
        if self._disk is not None:
            self._disk.close()

    # --- helpers ---------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has been called."""
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"The span store at {self.path} is closed")

    def purge_outdated_parts(self, tables: Iterable[str], wait_s: float = 30.0) -> int:
        """Remove the outdated parts of ``tables`` from disk now; how many were removed.

        A mutation (``ALTER … DELETE``) or a merge leaves the parts it replaced on disk
        until ClickHouse's cleanup removes them, which chDB does late or never
        (https://github.com/chdb-io/chdb/issues/107). An erasure must not leave the erased
        values there: with every other call of this store held back (they wait, they do
        not fail), each table holding outdated parts is detached, those part folders are
        deleted (each is covered by an active part, so nothing current is lost) and the
        table is attached again.

        Args:
            tables: table names in the store's database.
            wait_s: longest wait for running calls to finish first.

        Raises:
            StoreError: running calls did not finish in ``wait_s``, or a statement failed
                (a table left detached is attached again before raising).
        """
        names = list(tables)
        with self._cond:
            self._check_open()
            while self._exclusive:
                self._cond.wait()
            self._exclusive = True
            try:
                if not self._cond.wait_for(lambda: self._num_inflight == 0, wait_s):
                    raise StoreError(f"Calls still running on {self.path} after {wait_s} s")
                return self._purge(names)
            finally:
                self._exclusive = False
                self._cond.notify_all()

    def _purge(self, names: list[str]) -> int:
        removed = 0
        for name in names:
            result = self._session.query(
                "SELECT path FROM system.parts WHERE database = currentDatabase()"
                f" AND table = '{name}' AND NOT active", "ArrowTable")
            paths = [Path(p) for p in result.column("path").to_pylist()]
            if not paths:
                continue
            self._session.query(f"DETACH TABLE {name}", "CSV")
            try:
                for path in paths:
                    if path.is_dir() and self.path.resolve() in path.resolve().parents:
                        shutil.rmtree(path)
                        removed += 1
            finally:
                self._session.query(f"ATTACH TABLE {name}", "CSV")
        return removed

    @contextmanager
    def _in_use(self) -> Iterator[None]:
        with self._cond:
            self._check_open()
            while self._exclusive:
                self._cond.wait()
            self._num_inflight += 1
        try:
            yield
        finally:
            with self._cond:
                self._num_inflight -= 1
                self._cond.notify_all()

    def _map_error(self, exc: Exception, what: str, *, write: bool = False) -> StoreError:
        if isinstance(exc, StoreError):
            return exc
        return store_error(_error_code(exc), f"chDB {what} failed at {self.path}: {exc}",
                           write=write)

    def __enter__(self) -> ChdbSpanStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_span_store(url: str, *, query_timeout_s: float = 30.0,
                    retention_days: int | None = 0,
                    encryption_keys: EncryptionKeys | None = None) -> SpanStore:
    """Open the span store named by ``url`` (not migrated: call ``migrate()``).

    Supported: ``chdb:///absolute/path`` and ``chdb://relative/path`` (embedded chDB).
    ``clickhouse://``, ``clickhouses://``, ``http(s)://`` go to the ClickHouse-server backend
    (:func:`mentatlab.storage.clickhouse_store.open_clickhouse_store`).

    ``encryption_keys`` put an embedded store on an encrypted disk; a ClickHouse server
    encrypts with its own disks (docs/scale-out.md), so they are not used there.

    Raises:
        ConfigError: an unknown scheme or a URL without a path; a key mismatch (see
            :class:`ChdbSpanStore`).
        StoreUnavailable: the store cannot be opened.
    """
    parsed = urlparse(url)
    scheme = parsed.scheme.lower()
    if scheme == "chdb":
        raw = unquote((parsed.netloc or "") + (parsed.path or ""))
        if not raw:
            raise ConfigError(f"Expected a span store URL like chdb:///path/to/spans, got {url!r}")
        return ChdbSpanStore(Path(raw).expanduser(), query_timeout_s=query_timeout_s,
                             retention_days=retention_days, encryption_keys=encryption_keys)
    if scheme in ("clickhouse", "clickhouses", "http", "https"):
        from mentatlab.storage.clickhouse_store import open_clickhouse_store

        if encryption_keys is not None:
            _log.info("encryption_key encrypts the control store's secrets only: a ClickHouse "
                      "span store is encrypted by the server's own disks (docs/scale-out.md)")

        return open_clickhouse_store(url, query_timeout_s=query_timeout_s,
                                     retention_days=retention_days)
    raise ConfigError(
        f"Expected a span store URL with scheme chdb:// or clickhouse://, got {url!r}")
