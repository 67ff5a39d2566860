"""Cluster DDL: the shared span-store schema laid out on a ClickHouse cluster.

:mod:`mentatlab.storage.span_schema` writes every table once, for one node. On a cluster
the same statements are rewritten, as data, by :class:`ClusterLayout`:

* every DDL statement runs ``ON CLUSTER <name>`` (span_schema's ``SchemaOptions``);
* rows live in ``spans_local``, a ``ReplicatedReplacingMergeTree`` whose Keeper path is
  per shard (``/clickhouse/tables/{shard}/<database>/spans_local``, replica ``{replica}``);
* ``spans`` becomes a ``Distributed`` table over ``spans_local``, sharded by
  ``cityHash64(trace_id)``: all spans of a trace, and every re-sent copy of a span, land
  on one shard, so ``FINAL`` deduplicates and trace queries stay shard-local. Inserts
  and every query in :mod:`mentatlab.analytics` keep using ``spans`` unchanged;
* ``schema_migrations`` is one ``ReplicatedMergeTree`` shared by every node of the
  cluster (Keeper path without ``{shard}``), so a migration is recorded once.
* an ``ALTER`` of ``spans`` that changes codecs only (``MODIFY COLUMN x CODEC(...)``) runs
  on the local table alone: the ``Distributed`` table holds no data to compress;
* the hourly rollups (``span_rollup_*``, see :mod:`mentatlab.storage.rollup`) are small
  and every node holds them whole: ``Replicated*MergeTree`` tables with one Keeper path
  for the cluster, no ``Distributed`` table. A rollup build reads ``spans FINAL`` (per
  shard, then merged) and inserts once; replication copies the rows to every node.

The server's configuration must define ``remote_servers.<name>``, Keeper, and the
``{shard}`` and ``{replica}`` macros (``{replica}`` unique across the cluster).

A statement this module has no rule for that names ``spans`` raises :class:`StoreError`
rather than running unsharded: a new kind of migration needs a rule here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from mentatlab.errors import ConfigError, StoreError
from mentatlab.storage.base import SpanStore
from mentatlab.storage.span_schema import SPANS_TABLE, SchemaOptions

__all__ = ["ClusterLayout", "ClusterSchemaTarget"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")
_SPANS = re.escape(SPANS_TABLE)
_CREATE_SPANS = re.compile(rf"^(\s*CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?){_SPANS}\b", re.I)
_ALTER_SPANS = re.compile(rf"^(\s*ALTER\s+TABLE\s+){_SPANS}\b", re.I)
_LOCAL_ONLY_ALTER = re.compile(
    r"\b(MODIFY\s+TTL|REMOVE\s+TTL|MATERIALIZE\s+TTL|DELETE\s+WHERE|UPDATE\s|"
    r"ADD\s+INDEX|DROP\s+INDEX|MATERIALIZE\s+INDEX|ADD\s+PROJECTION|DROP\s+PROJECTION|"
    r"MATERIALIZE\s+PROJECTION|DROP\s+PARTITION)", re.I)
_CODEC_CLAUSES = re.compile(
    r"(?:MODIFY\s+COLUMN\s+(?:IF\s+EXISTS\s+)?`?\w+`?\s+CODEC\((?:[^()]|\([^()]*\))*\)\s*,?\s*)+",
    re.I)
"""Clauses that only change column codecs (span-store migration 11)."""
_ALTER_PREFIX = re.compile(r"^\s*ALTER\s+TABLE\s+\S+(?:\s+ON\s+CLUSTER\s+\S+)?\s+", re.I)
_SCHEMA_ALTER = re.compile(r"\b(ADD|DROP|MODIFY|RENAME|COMMENT)\s+COLUMN\b", re.I)
_MENTIONS_SPANS = re.compile(rf"(?<![\w.`]){_SPANS}(?![\w`])", re.I)
_SYSTEM_LOOKUP = re.compile(r"\bsystem\.(tables|columns|parts|data_skipping_indices)\b", re.I)


@dataclass(frozen=True, slots=True)
class ClusterLayout:
    """How the span tables are laid out on the cluster ``cluster``.

    Args:
        cluster: cluster name from the server's ``remote_servers``.
        database: database holding the tables (named explicitly in ``Distributed``).
        local_table: name of the per-shard table behind the ``Distributed`` ``spans``.
        keeper_prefix: Keeper path prefix of replicated tables; ``{shard}`` keeps shards
            apart.
        replica: replica name (a server macro).
        sharding_key: expression choosing a row's shard.
    """

    cluster: str
    database: str = "default"
    local_table: str = f"{SPANS_TABLE}_local"
    keeper_prefix: str = "/clickhouse/tables/{shard}"
    replica: str = "{replica}"
    sharding_key: str = "cityHash64(trace_id)"

    def __post_init__(self) -> None:
        for label, value in (("cluster", self.cluster), ("database", self.database),
                             ("local_table", self.local_table)):
            if not _NAME.match(value):
                raise ConfigError(f"Expected the {label} to be a plain identifier, got {value!r}")

    def keeper_path(self, table: str, *, per_shard: bool = True) -> str:
        """Keeper path of a replicated ``table`` (shared by all shards when not per_shard)."""
        prefix = self.keeper_prefix if per_shard else self.keeper_prefix.replace("/{shard}", "")
        return f"{prefix}/{self.database}/{table}"

    def schema_options(self) -> SchemaOptions:
        """The span_schema options for this cluster: replicated engines, ``ON CLUSTER``."""
        spans = self.keeper_path(self.local_table)
        migrations = self.keeper_path("schema_migrations", per_shard=False)
        return SchemaOptions(
            spans_engine=f"ReplicatedReplacingMergeTree('{spans}', '{self.replica}',"
                         " ingested_at_ns)",
            migrations_engine=f"ReplicatedMergeTree('{migrations}', '{self.replica}')",
            on_cluster=self.cluster,
            shared_keeper_prefix=self.keeper_path("", per_shard=False).rstrip("/"),
            replica=self.replica,
        )

    def distributed_ddl(self) -> str:
        """``CREATE TABLE spans`` as a ``Distributed`` table over the local table."""
        return (
            f"CREATE TABLE IF NOT EXISTS {SPANS_TABLE} ON CLUSTER {self.cluster}"
            f" AS {self.local_table} ENGINE = Distributed({self.cluster}, {self.database},"
            f" {self.local_table}, {self.sharding_key})"
        )

    def rewrite(self, statement: str) -> list[str]:
        """The statements a cluster runs for one shared single-node DDL ``statement``.

        Raises:
            StoreError: the statement names ``spans`` in a way no rule covers.
        """
        if _CREATE_SPANS.match(statement):
            local = _CREATE_SPANS.sub(rf"\g<1>{self.local_table}", statement, count=1)
            return [local, self.distributed_ddl()]
        if _ALTER_SPANS.match(statement):
            local = _ALTER_SPANS.sub(rf"\g<1>{self.local_table}", statement, count=1)
            if _LOCAL_ONLY_ALTER.search(statement) or _CODEC_CLAUSES.fullmatch(
                    _ALTER_PREFIX.sub("", statement, count=1).strip()):
                return [local]  # a codec only matters where the parts are
            if _SCHEMA_ALTER.search(statement):
                return [local, statement]  # keep the Distributed table's columns in step
            raise StoreError(f"No cluster rule for the span-store statement: {statement!r}")
        if _MENTIONS_SPANS.search(statement) and not statement.lstrip().upper().startswith(
                "INSERT"):
            raise StoreError(f"No cluster rule for the span-store statement: {statement!r}")
        return [statement]

    def lookup_params(self, sql: str, params: Mapping[str, Any] | None,
                      ) -> Mapping[str, Any] | None:
        """Point metadata lookups (``system.tables`` etc.) of ``spans`` at the local table.

        The ``Distributed`` table has no TTL, parts or indexes of its own; the local table
        holds the truth about them.
        """
        if not params or not _SYSTEM_LOOKUP.search(sql):
            return params
        return {k: (self.local_table if v == SPANS_TABLE else v) for k, v in params.items()}


class ClusterSchemaTarget:
    """A SpanStore view for the migration runner: rewrites its DDL for a cluster.

    ``migrate_span_store(ClusterSchemaTarget(store, layout), layout.schema_options())``
    runs the shared migrations against the cluster layout.
    """

    def __init__(self, store: SpanStore, layout: ClusterLayout) -> None:
        self.store = store
        self.layout = layout

    def migrate(self) -> None:
        """Not used: the runner drives this view.

        Raises:
            StoreError: always.
        """
        raise StoreError("ClusterSchemaTarget is a migration view; call the store's migrate()")

    def append_batch(self, table: pa.Table) -> None:
        """Insert through the store (into the ``Distributed`` table)."""
        self.store.append_batch(table)

    def insert_table(self, name: str, table: pa.Table) -> None:
        """Insert through the store (derived tables are shared: no rewrite)."""
        self.store.insert_table(name, table)

    def query_arrow(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        """Run a query, with metadata lookups of ``spans`` pointed at the local table."""
        return self.store.query_arrow(sql, self.layout.lookup_params(sql, params))

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        """Run each statement of the cluster rewrite of ``sql``.

        Raises:
            StoreError: a statement failed or has no cluster rule.
        """
        for statement in self.layout.rewrite(sql):
            self.store.execute(statement, params)

    def close(self) -> None:
        """Leave the store open: it belongs to the caller."""
