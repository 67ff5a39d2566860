"""Scale-out span store: a ClickHouse server or cluster through ``clickhouse-connect`` (HTTP).

Only the connection, the insert path and the error mapping live here. Every table
definition comes from :mod:`mentatlab.storage.span_schema` and every query from
:mod:`mentatlab.analytics`, unchanged: the same SQL runs on chDB and on a server. On a
cluster, :mod:`mentatlab.storage.cluster` rewrites the shared DDL (``ON CLUSTER``,
``Replicated*MergeTree``, a ``Distributed`` table sharded by trace).

Insert path: one ``INSERT … FORMAT Arrow`` per batch (``client.insert_arrow``), no pandas.

Durability: ``append_batch`` returns only after the server acknowledged the insert:
HTTP inserts are synchronous, ``wait_for_async_insert=1`` keeps it so when the server
profile turns ``async_insert`` on, and on a cluster ``distributed_foreground_insert=1``
makes the ``Distributed`` table write to the shards before answering. As with chDB, a
ClickHouse server does not fsync parts by default (MergeTree setting
``fsync_after_insert``): an acknowledged insert survives a server process kill, not
necessarily a power cut of a single-replica node.

URL: ``clickhouse://user:password@host:8123/database?compress=false&cluster=name``;
``clickhouses://`` (or ``secure=true``) uses TLS, default port 8443.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote, urlparse

import clickhouse_connect
import pyarrow as pa
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError, OperationalError

from mentatlab.errors import ConfigError, StoreError
from mentatlab.model.schema import SPAN_SCHEMA
from mentatlab.storage.base import SpanStore
from mentatlab.storage.cluster import ClusterLayout, ClusterSchemaTarget
from mentatlab.storage.query_param import to_param_text
from mentatlab.storage.span_schema import (
    FINAL_READ_SETTING,
    SPANS_TABLE,
    SchemaOptions,
    migrate_span_store,
)
from mentatlab.storage.store_errors import store_error

__all__ = ["ClickHouseSpanStore", "open_clickhouse_store", "parse_clickhouse_url"]

_log = logging.getLogger(__name__)

_UNKNOWN_DATABASE = 81
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


class _Literal:
    """A parameter text clickhouse-connect must send as is (it formats ``str(value)``)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


def _bind_params(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The parameters as clickhouse-connect should send them, meaning what chDB gets.

    A scalar is sent as the text of :func:`to_param_text` (a ``str`` as is), which
    clickhouse-connect escapes and the server unescapes: the HTTP interface reads
    parameters in the escaped text format, so tabs, newlines and backslashes survive. An
    array literal is sent verbatim: its elements are already quoted, and escaping it
    again would break it.
    """
    if not params:
        return None
    return {name: value if isinstance(value, str)
            else _Literal(to_param_text(value)) if isinstance(value, (list, tuple))
            else to_param_text(value) for name, value in params.items()}


def _flag(name: str, text: str) -> bool:
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise ConfigError(f"Expected {name}=true|false in the span store URL, got {text!r}")


def parse_clickhouse_url(url: str) -> dict[str, Any]:
    """Split a ``clickhouse://`` URL into :class:`ClickHouseSpanStore` keyword arguments.

    Args:
        url: ``clickhouse[s]://[user[:password]@]host[:port][/database][?options]``; options
            are ``compress`` (``false``, ``true``, ``lz4``, ``zstd``, ``gzip``, ``br``),
            ``cluster``, ``secure``, ``connect_timeout_s`` and ``verify``.

    Returns:
        Keyword arguments for :class:`ClickHouseSpanStore`.

    Raises:
        ConfigError: an unknown scheme or option, or a malformed value.
    """
    parsed = urlparse(url)
    scheme = parsed.scheme.lower()
    if scheme not in ("clickhouse", "clickhouses", "http", "https"):
        raise ConfigError(f"Expected a clickhouse:// span store URL, got {url!r}")
    options = dict(parse_qsl(parsed.query, keep_blank_values=True))
    secure = scheme in ("clickhouses", "https") or _flag("secure", options.pop("secure", "false"))
    kwargs: dict[str, Any] = {
        "host": parsed.hostname or "localhost",
        "port": parsed.port or (8443 if secure else 8123),
        "username": unquote(parsed.username) if parsed.username else "default",
        "password": unquote(parsed.password) if parsed.password else "",
        "database": unquote(parsed.path.strip("/")) or "default",
        "secure": secure,
    }
    compress = options.pop("compress", "false")
    kwargs["compress"] = compress if compress.lower() in ("lz4", "zstd", "gzip", "br") else (
        _flag("compress", compress))
    cluster = options.pop("cluster", "")
    kwargs["cluster"] = cluster or None
    if "verify" in options:
        kwargs["verify"] = _flag("verify", options.pop("verify"))
    if "connect_timeout_s" in options:
        raw = options.pop("connect_timeout_s")
        try:
            kwargs["connect_timeout_s"] = float(raw)
        except ValueError:
            raise ConfigError(f"Expected connect_timeout_s to be seconds, got {raw!r}") from None
    if options:
        raise ConfigError(f"Unknown span store URL options {sorted(options)} in {url!r}")
    return kwargs


class ClickHouseSpanStore:
    """SpanStore on a ClickHouse server (or cluster) over HTTP.

    The connection is made on first use, so a server that starts before ClickHouse is up
    still starts; calls fail with :class:`StoreUnavailable` until it answers.

    Args:
        host: server name or address.
        port: HTTP(S) port (8123, or 8443 with TLS).
        username: ClickHouse user.
        password: its password.
        database: database of the span tables (created by :meth:`migrate` if missing).
        secure: use HTTPS.
        verify: check the server's TLS certificate.
        compress: HTTP compression (``False``, ``True`` or a codec name).
        cluster: cluster name from the server's ``remote_servers``; None on a single node.
        query_timeout_s: longest a query may run (``max_execution_time``), in s; 0: none.
        connect_timeout_s: TCP connect timeout, in s.
        retention_days: TTL applied by :meth:`migrate`; 0 keeps spans forever; None leaves
            the TTL to the retention job.
    """

    def __init__(self, host: str = "localhost", port: int = 8123, *, username: str = "default",
                 password: str = "", database: str = "default", secure: bool = False,
                 verify: bool = True, compress: bool | str = False, cluster: str | None = None,
                 query_timeout_s: float = 30.0, connect_timeout_s: float = 10.0,
                 retention_days: int | None = 0) -> None:
        self.host = host
        self.port = port
        self.database = database
        self.retention_days = retention_days
        self.query_timeout_s = query_timeout_s
        self.layout = ClusterLayout(cluster, database) if cluster else None
        self._connect_args: dict[str, Any] = {
            "host": host, "port": port, "username": username, "password": password,
            "secure": secure, "verify": verify, "compress": compress,
            "connect_timeout": max(1, round(connect_timeout_s)),
            # The read timeout outlives the server-side limit so the server's answer wins.
            "send_receive_timeout": max(1, round(query_timeout_s + 10)) if query_timeout_s
            else 3600,
            "autogenerate_session_id": False,  # sessions serialize concurrent queries
            "query_retries": 0,
        }
        self._lock = threading.Lock()
        self._client: Client | None = None
        self._closed = False

    @property
    def where(self) -> str:
        """``host:port/database`` for messages (no credentials)."""
        return f"{self.host}:{self.port}/{self.database}"

    # --- SpanStore -------------------------------------------------------------------

    def migrate(self) -> None:
        """Create the database if missing, then create or upgrade the schema (idempotent).

        Raises:
            StoreUnavailable: the server does not answer.
            StoreError: a migration failed.
        """
        self._check_open()
        if self.layout is None:
            migrate_span_store(self, SchemaOptions(), retention_days=self.retention_days)
            return
        migrate_span_store(ClusterSchemaTarget(self, self.layout), self.layout.schema_options(),
                           retention_days=self.retention_days)

    def append_batch(self, table: pa.Table) -> None:
        """Insert an Arrow table with schema ``SPAN_SCHEMA`` (N rows); acknowledged on return.

        Raises:
            StoreUnavailable: the server is unreachable or cannot take the write now.
            StoreError: the insert was refused, or ``table`` is not of ``SPAN_SCHEMA``.
        """
        self._check_open()
        if table.num_rows == 0:
            return
        if not table.schema.equals(SPAN_SCHEMA):
            # The server fills a column missing from the INSERT with its default: lost data.
            raise StoreError(f"Expected an Arrow table with schema SPAN_SCHEMA, got columns "
                             f"{table.schema.names}")
        settings: dict[str, Any] = {"wait_for_async_insert": 1}
        if self.layout is not None:
            settings["distributed_foreground_insert"] = 1
        try:
            self._get_client().insert_arrow(SPANS_TABLE, table, settings=settings)
        except Exception as exc:
            raise self._map_error(exc, f"insert of {table.num_rows} spans",
                                  write=True) from exc

    def insert_table(self, name: str, table: pa.Table) -> None:
        """Insert an Arrow table into the derived table ``name`` (columns by name).

        Raises:
            StoreUnavailable: the server is unreachable or cannot take the write now.
            StoreError: ``name`` is ``spans`` (use :meth:`append_batch`) or the insert
                was refused.
        """
        self._check_open()
        if name == SPANS_TABLE:
            raise StoreError("Expected a derived table, got spans: use append_batch")
        if table.num_rows == 0:
            return
        try:
            self._get_client().insert_arrow(name, table,
                                            settings={"wait_for_async_insert": 1})
        except Exception as exc:
            raise self._map_error(exc, f"insert of {table.num_rows} rows into {name}",
                                  write=True) from exc

    def query_arrow(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        """Run a read query with ``{name:Type}`` server-side parameters; return Arrow.

        Args:
            sql: ClickHouse SQL without a FORMAT clause.
            params: values for the placeholders (datetimes must be timezone-aware).

        Raises:
            QueryTimeout: the query ran past ``query_timeout_s``.
            StoreUnavailable: the server does not answer.
            StoreError: the query failed.
        """
        self._check_open()
        try:
            result: pa.Table = self._get_client().query_arrow(
                sql, parameters=_bind_params(params), settings=self._query_settings())
        except Exception as exc:
            raise self._map_error(exc, "query") from exc
        return result

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        """Run a statement that returns nothing (DDL, mutations, INSERT … VALUES).

        Raises:
            StoreUnavailable: the server does not answer.
            StoreError: the statement failed.
        """
        self._check_open()
        try:
            self._get_client().command(sql, parameters=_bind_params(params),
                                       settings=self._query_settings())
        except Exception as exc:
            raise self._map_error(exc, "statement") from exc

    def close(self) -> None:
        """Close the HTTP connection pool; idempotent. Further calls raise StoreError."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            client, self._client = self._client, None
        if client is not None:
            client.close()

    # --- helpers ---------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has been called."""
        return self._closed

    def _query_settings(self) -> dict[str, Any]:
        # FINAL_READ_SETTING on every query: see storage/compaction.py (decision 0016).
        settings: dict[str, Any] = {FINAL_READ_SETTING: 1}
        if self.query_timeout_s > 0:
            settings["max_execution_time"] = self.query_timeout_s
        return settings

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"The ClickHouse span store {self.where} is closed")

    def _get_client(self) -> Client:
        with self._lock:
            if self._client is None:
                self._client = self._connect()
            return self._client

    def _connect(self) -> Client:
        try:
            return clickhouse_connect.get_client(database=self.database, **self._connect_args)
        except ClickHouseError as exc:
            if getattr(exc, "code", None) != _UNKNOWN_DATABASE:
                raise self._map_error(exc, "connect") from exc
        # The database is missing: create it through a client without one, then reconnect.
        try:
            bootstrap = clickhouse_connect.get_client(**self._connect_args)
            try:
                on_cluster = f" ON CLUSTER `{self.layout.cluster}`" if self.layout else ""
                bootstrap.command(f"CREATE DATABASE IF NOT EXISTS `{self.database}`{on_cluster}")
            finally:
                bootstrap.close()
            _log.info("created ClickHouse database %s", self.where)
            return clickhouse_connect.get_client(database=self.database, **self._connect_args)
        except ClickHouseError as exc:
            raise self._map_error(exc, "connect") from exc

    def _map_error(self, exc: Exception, what: str, *, write: bool = False) -> StoreError:
        if isinstance(exc, StoreError):
            return exc
        code = getattr(exc, "code", None)
        # No server answer (OperationalError without a code): refused, reset or timed out.
        no_answer = code is None and isinstance(exc, OperationalError)
        return store_error(code, f"ClickHouse {what} failed at {self.where}: {exc}",
                           write=write, no_answer=no_answer,
                           timed_out="timed out" in str(exc).lower())

    def __enter__(self) -> ClickHouseSpanStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_clickhouse_store(url: str, *, query_timeout_s: float = 30.0,
                          retention_days: int | None = 0) -> SpanStore:
    """Open (not migrate) the ClickHouse span store named by ``url``.

    Raises:
        ConfigError: a malformed URL.
    """
    return ClickHouseSpanStore(query_timeout_s=query_timeout_s, retention_days=retention_days,
                               **parse_clickhouse_url(url))
