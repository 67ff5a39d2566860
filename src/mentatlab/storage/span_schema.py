"""Versioned span-store migrations: backend-neutral ClickHouse DDL built from SPAN_COLUMNS.

Both span-store backends (chDB in-process, a ClickHouse server) run exactly these
statements through :meth:`SpanStore.execute`; a backend only chooses the table engines
and an ``ON CLUSTER`` clause through :class:`SchemaOptions`.

Rules:

* Migrations are numbered and never edited once released; a new column in
  ``SPAN_COLUMNS`` needs no migration of its own: :func:`migrate_span_store` adds any
  column the table lacks (``ADD COLUMN IF NOT EXISTS``) after the numbered migrations.
* Every statement is idempotent (``IF NOT EXISTS``), and applied versions are recorded in
  ``schema_migrations``, so running the migrations twice, or after a crash midway, is safe.
* Retention is a runtime setting, not a migration: :func:`apply_retention` sets or removes
  the table TTL. The TTL uses ``DateTime64`` arithmetic; ``toDateTime(ts) + INTERVAL``
  overflows ``DateTime`` (wraps to 1987) and would silently delete rows in merges.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa

from mentatlab.errors import ConfigError, StoreError
from mentatlab.governance.policies import POLICY_DECISION_ACTIONS
from mentatlab.model.schema import (
    POLICY_COLUMNS,
    SPAN_COLUMNS,
    TOKEN_KIND_COST_COLUMNS,
    Column,
)
from mentatlab.storage.aggregates import (
    RESOLVER_STATE_TABLE,
    SPAN_LEDGER_TABLE,
    aggregate_ddl,
    measure_upgrade_ddl,
)
from mentatlab.storage.base import SpanStore
from mentatlab.storage.settled import (
    LLM_CALLS_TABLE,
    SETTLE_STATE_NAME,
    SETTLED_TABLES,
    SPAN_TIMING_TABLE,
    STEP_COUNTS_TABLE,
    TRACE_AGENTS_TABLE,
    TRACE_FACTS_LATER_COLUMNS,
    TRACE_FACTS_TABLE,
    VERSION_SIGHTINGS_TABLE,
    settled_ddl,
)

__all__ = [
    "DERIVED_CODEC_TABLES",
    "MIGRATIONS",
    "FINAL_READ_SETTING",
    "HOUR_SORTING_KEY",
    "SPANS_PARTITION_KEY",
    "SPANS_SORTING_KEY",
    "SPANS_TABLE",
    "Migration",
    "SchemaOptions",
    "apply_retention",
    "applied_versions",
    "column_codec",
    "column_ddl",
    "migrate_span_store",
    "spans_table_ddl",
]

_log = logging.getLogger(__name__)
_STRING = pa.string()
"""Arrow type of the :class:`Column` built for a derived column (only its ClickHouse type
matters to :func:`column_codec`)."""

SPANS_TABLE = "spans"
"""Name of the span table."""

_CODECS: dict[str, str] = {
    "ingested_at_ns": "CODEC(ZSTD(1))",
    "name": "CODEC(ZSTD(3))",
    "events": "CODEC(ZSTD(3))",
    "resource": "CODEC(ZSTD(3))",
    "status_message": "CODEC(ZSTD(3))",
}
"""Columns whose codec is not the one of their type (:func:`column_codec`), by measurement
(docs/decisions/0023-storage-codecs.md): one batch's ``ingested_at_ns`` is one value, which
ZSTD alone packs best; the span name and the repetitive JSON of events, resource and
status messages gain from ZSTD(3)."""


DERIVED_CODEC_TABLES: tuple[str, ...] = (
    LLM_CALLS_TABLE, SPAN_TIMING_TABLE, SPAN_LEDGER_TABLE, TRACE_FACTS_TABLE,
    TRACE_AGENTS_TABLE, STEP_COUNTS_TABLE)
"""Tables derived from ``spans`` whose columns take the codecs of their type
(:func:`column_codec`) too: the settled tables and the resolver's ledger, which together
held more bytes than ``spans`` (decision 0023). Their ``AggregateFunction`` columns keep
the server's default."""


def column_codec(column: Column) -> str:
    """The ``CODEC(...)`` clause of a span column, chosen by measurement (decision 0023).

    By ClickHouse type: integers, booleans, their arrays and ``DateTime64`` ``T64, ZSTD(1)``
    (T64 drops the unused high bits; times are ordered by trace inside a minute, so Delta
    and DoubleDelta gain less); floats ``Gorilla, ZSTD(1)``; everything else (strings,
    ``LowCardinality`` dimensions, ``Decimal`` money) ``ZSTD(1)``; :data:`_CODECS` names
    the exceptions. Measured on 100,000 demo-like spans with message payloads:
    bench/span_codecs.py, bench/RESULTS.md "Storage size with payloads (issue 18)".
    """
    if column.name in _CODECS:
        return _CODECS[column.name]
    kind = column.clickhouse
    for wrapper in ("Array(", "Nullable("):
        if kind.startswith(wrapper):
            kind = kind[len(wrapper):-1]
    if kind.startswith(("UInt", "Int", "Bool", "DateTime64")):
        return "CODEC(T64, ZSTD(1))"
    if kind.startswith("Float"):
        return "CODEC(Gorilla, ZSTD(1))"
    return "CODEC(ZSTD(1))"


@dataclass(frozen=True, slots=True)
class SchemaOptions:
    """What a backend may vary in the DDL; the columns, keys and indexes never vary."""

    spans_engine: str = "ReplacingMergeTree(ingested_at_ns)"
    """Engine of ``spans``; a cluster uses ``ReplicatedReplacingMergeTree(..., ingested_at_ns)``."""
    migrations_engine: str = "MergeTree"
    """Engine of ``schema_migrations``."""
    on_cluster: str = ""
    """Cluster name for ``ON CLUSTER`` DDL; ``""`` on a single node."""
    shared_keeper_prefix: str = ""
    """Keeper path prefix of tables every node holds whole (the rollups): set on a
    cluster, where they become ``Replicated*`` tables under ``<prefix>/<table>``."""
    replica: str = "{replica}"
    """Replica name of replicated tables (a server macro)."""

    def shared_engine(self, table: str, engine: str, args: str = "") -> str:
        """Engine clause of a table every node holds whole (``MergeTree`` family).

        On a single node ``engine(args)``; on a cluster ``Replicated<engine>('<prefix>/
        <table>', '<replica>'[, args])`` with one Keeper path for all shards.
        """
        if not self.shared_keeper_prefix:
            return f"{engine}({args})"
        extra = f", {args}" if args else ""
        return (f"Replicated{engine}('{self.shared_keeper_prefix}/{table}',"
                f" '{self.replica}'{extra})")

    @property
    def cluster_clause(self) -> str:
        """`` ON CLUSTER <name>`` or ``""``."""
        return f" ON CLUSTER {self.on_cluster}" if self.on_cluster else ""


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered schema change."""

    version: int
    name: str
    render: Callable[[SchemaOptions], list[str]]
    """Returns the statements to run, in order, for the given options."""



def column_ddl(column: Column) -> str:
    """The ``name Type CODEC(...)`` clause of one span column."""
    return f"`{column.name}` {column.clickhouse} {column_codec(column)}"


SPANS_SORTING_KEY = "org_id, project_id, toStartOfMinute(start_time), trace_id, span_id"
"""The key ``spans`` is sorted and deduplicated on (``ReplacingMergeTree``): by minute inside
a tenant, so reading a few minutes of a busy hour touches those minutes' granules."""
HOUR_SORTING_KEY = "org_id, project_id, toStartOfHour(start_time), trace_id, span_id"
"""The key of stores created before issue 13 (they keep it; the answers are the same)."""
SPANS_PARTITION_KEY = "toDate(start_time)"
"""The partition key of ``spans``: a function of the sorting key (``toDate`` of the minute or
hour of ``start_time``, UTC), so every version of a span lands in one partition."""
FINAL_READ_SETTING = "do_not_merge_across_partitions_select_final"
"""Set to 1 on every query of both stores (decision 0016): ``FINAL`` merges each partition on
its own and reads a partition held in one merged part as is. Correct because every table
read with ``FINAL`` (only ``spans``) has a partition key that is a function of its sorting
key (tests/storage/test_compaction.py checks each table's keys)."""


def spans_table_ddl(options: SchemaOptions, sorting_key: str = SPANS_SORTING_KEY) -> str:
    """``CREATE TABLE IF NOT EXISTS spans`` with every column of ``SPAN_COLUMNS``."""
    columns = ",\n  ".join(column_ddl(c) for c in SPAN_COLUMNS)
    return (
        f"CREATE TABLE IF NOT EXISTS {SPANS_TABLE}{options.cluster_clause} (\n  {columns},\n"
        "  INDEX idx_trace_id trace_id TYPE bloom_filter(0.001) GRANULARITY 1,\n"
        "  INDEX idx_ingested_at ingested_at_ns TYPE minmax GRANULARITY 1\n"
        f") ENGINE = {options.spans_engine}\n"
        f"PARTITION BY {SPANS_PARTITION_KEY}\n"
        f"ORDER BY ({sorting_key})\n"
        "SETTINGS index_granularity = 8192"
    )


def _m001(options: SchemaOptions) -> list[str]:
    # schema_migrations is created by the runner itself; 001 records that it exists.
    return []


def _m002(options: SchemaOptions) -> list[str]:
    # Stores created before issue 13 made spans sorted by hour (``HOUR_SORTING_KEY``) and
    # keep it: both keys deduplicate the same rows and give the same answers; the minute
    # key only reads less for the few seconds of a busy hour. Re-creating the table in a
    # later migration would race other nodes migrating or ingesting at the same moment.
    return [spans_table_ddl(options)]


_ROLLUP_TABLES = ("span_rollup_builds", "span_rollup_scope_hourly", "span_rollup_hourly")
"""The closed-hour rollups of migrations 3 and 4, dropped by migration 5."""


def _m003(options: SchemaOptions) -> list[str]:
    # Created the closed-hour rollups, which migration 5 drops: now nothing, so that nodes
    # migrating a new store at the same moment never alter a table another just dropped.
    return []


def _m004(options: SchemaOptions) -> list[str]:
    # Retyped a column of a rollup table that migration 5 drops: now nothing (see 3).
    return []


def _m005(options: SchemaOptions) -> list[str]:
    # The resolver's ledger and aggregates replace the closed-hour rollups: they are kept
    # current as spans arrive, with inherited attribution (storage/aggregates.py). The
    # resolver's first pass over an upgraded store builds them from every stored span.
    c = options.cluster_clause
    return [*(f"DROP TABLE IF EXISTS {t}{c}" for t in _ROLLUP_TABLES),
            *aggregate_ddl(c, options.shared_engine)]


def _m006(options: SchemaOptions) -> list[str]:
    # Per-kind token costs and cache savings become measures of the ledger and the
    # aggregates (docs/decisions/0012-token-kind-costs.md); their span columns come from the
    # add-missing-columns step. Existing rows count 0 for them, as the spans do until
    # `reprice` fills them; the resolver then moves the differences into the aggregates.
    return measure_upgrade_ddl(options.cluster_clause, options.shared_engine,
                               TOKEN_KIND_COST_COLUMNS)


def _m007(options: SchemaOptions) -> list[str]:
    # The settle job's per-span timing and per-trace facts (storage/settled.py); it fills
    # them from every stored trace on its first pass.
    return settled_ddl(options.cluster_clause, options.shared_engine,
                       (SPAN_TIMING_TABLE, TRACE_FACTS_TABLE))


def _m008(options: SchemaOptions) -> list[str]:
    # Issue 16's speed: more settled facts per trace (trace_facts' later columns) and the
    # version_sightings, step_counts and trace_agents tables (docs/decisions/0010). Rows
    # settled before lack them, so the settle watermark goes back to 0 (when the job ever
    # ran): readers take every trace from raw spans until the job's next pass has settled
    # them all again.
    c = options.cluster_clause
    return [f"ALTER TABLE {TRACE_FACTS_TABLE}{c} "  # one ALTER: one metadata rewrite
            + ", ".join(f"ADD COLUMN IF NOT EXISTS {name} {kind}"
                        for name, kind in TRACE_FACTS_LATER_COLUMNS),
            *settled_ddl(c, options.shared_engine,
                         (VERSION_SIGHTINGS_TABLE, STEP_COUNTS_TABLE, TRACE_AGENTS_TABLE)),
            f"INSERT INTO {RESOLVER_STATE_TABLE} (name, through_ns, complete, version)"
            f" SELECT name, 0, 1, toUInt64(toUnixTimestamp64Nano(now64(9)))"
            f" FROM {RESOLVER_STATE_TABLE} WHERE name = '{SETTLE_STATE_NAME}' LIMIT 1"]


def _m009(options: SchemaOptions) -> list[str]:
    # Guardrail policy decisions (docs/decisions/0018): a span may match several policies,
    # so the single policy_id/policy_result columns give way to parallel arrays. A stored
    # producer decision moves into them (version 0, its result word mapped to an action:
    # governance/policies.py POLICY_DECISION_ACTIONS) and the old columns are emptied;
    # they stay in the table (never written again) so older nodes keep inserting.
    c = options.cluster_clause
    by_action: dict[str, list[str]] = {}
    for word, action in POLICY_DECISION_ACTIONS.items():
        by_action.setdefault(action, []).append(f"'{word}'")
    action = "multiIf(" + "".join(
        f"lower(toString(policy_result)) IN ({', '.join(words)}), '{name}', "
        for name, words in by_action.items()) + "'log')"
    return [
        f"ALTER TABLE {SPANS_TABLE}{c} "  # one ALTER: one metadata rewrite
        + ", ".join(f"ADD COLUMN IF NOT EXISTS {column_ddl(column)}" for column in POLICY_COLUMNS),
        f"ALTER TABLE {SPANS_TABLE}{c} UPDATE"
        " policy_ids = [toString(policy_id)], policy_versions = [toUInt32(0)],"
        f" policy_actions = [{action}], policy_id = '', policy_result = ''"
        " WHERE policy_id != '' SETTINGS mutations_sync = 2",
    ]


def _m010(options: SchemaOptions) -> list[str]:
    # Issue 16's speed: the settled per-call table ``llm_calls`` (storage/settled.py) that
    # provider x model and the recommendations census read instead of the wide ``spans``.
    # Traces settled before have no rows in it, so the settle watermark goes back to 0 (as
    # in migration 8): readers take every trace from raw spans until the job's next pass
    # has settled them all again.
    return [*settled_ddl(options.cluster_clause, options.shared_engine, (LLM_CALLS_TABLE,)),
            _RESET_SETTLE]


_RESET_SETTLE = (f"INSERT INTO {RESOLVER_STATE_TABLE} (name, through_ns, complete, version)"
                 f" SELECT name, 0, 1, toUInt64(toUnixTimestamp64Nano(now64(9)))"
                 f" FROM {RESOLVER_STATE_TABLE} WHERE name = '{SETTLE_STATE_NAME}' LIMIT 1")
"""Sets the settle watermark to 0 when the job ever ran (a new version of its state row)."""


def _m011(options: SchemaOptions) -> list[str]:
    # Column codecs chosen by measurement (docs/decisions/0023-storage-codecs.md): one
    # ALTER of codecs only, which changes metadata and no data: new parts (every insert,
    # every merge) are written with the new codecs, and the parts already on disk keep
    # theirs until their next merge rewrites them. On a cluster it runs on the local
    # tables (storage/cluster.py: the Distributed table holds no data). A later change of
    # the codecs needs a migration of its own, like this one (it converges: a store that
    # runs both gets the newest).
    clauses = ", ".join(f"MODIFY COLUMN IF EXISTS `{c.name}` {column_codec(c)}"
                        for c in SPAN_COLUMNS)  # a missing column is added after, new codec
    return [f"ALTER TABLE {SPANS_TABLE}{options.cluster_clause} {clauses}"]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "schema_migrations", _m001),
    Migration(2, "spans", _m002),
    Migration(3, "span rollups", _m003),
    Migration(4, "approximate trace count in the scope rollup", _m004),
    Migration(5, "resolver ledger and aggregates replace the hourly rollups", _m005),
    Migration(6, "per-kind token costs in the ledger and aggregates", _m006),
    Migration(7, "settled traces: span_timing and trace_facts", _m007),
    Migration(8, "more settled facts: trace_facts columns, version_sightings, step_counts,"
                 " trace_agents",
              _m008),
    Migration(9, "policy decisions: policy_ids, policy_versions, policy_actions arrays",
              _m009),
    Migration(10, "settled per-call table llm_calls", _m010),
    Migration(11, "span column codecs chosen by measurement", _m011),
)
"""Every span-store migration, in version order."""


def _migrations_ddl(options: SchemaOptions) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS schema_migrations{options.cluster_clause} ("
        "version UInt32, name String, applied_at DateTime64(3, 'UTC'))"
        f" ENGINE = {options.migrations_engine} ORDER BY version"
    )


def applied_versions(store: SpanStore) -> set[int]:
    """Versions recorded in ``schema_migrations`` (empty when the table is new).

    Raises:
        StoreError: the table cannot be read.
    """
    table = store.query_arrow("SELECT DISTINCT version FROM schema_migrations")
    return {int(v) for v in table.column("version").to_pylist()}


def _existing_columns(store: SpanStore) -> set[str]:
    table = store.query_arrow(
        "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = {t:String}",
        {"t": SPANS_TABLE},
    )
    return {str(v) for v in table.column("name").to_pylist()}


def migrate_span_store(
    store: SpanStore, options: SchemaOptions | None = None, *, retention_days: int | None = 0
) -> list[int]:
    """Bring the span store to the latest schema; safe to run any number of times.

    Args:
        store: the store to migrate (its ``execute`` and ``query_arrow`` are used).
        options: engines and cluster clause; the single-node defaults when None.
        retention_days: drop spans older than this many days (by ``start_time``);
            0 keeps them forever; None leaves the TTL as it is (the server's retention job
            sets it, :mod:`mentatlab.governance.retention`).

    Returns:
        The versions applied by this call (empty when already current).

    Raises:
        StoreError: a statement failed.
        ConfigError: ``retention_days`` is negative.
    """
    opts = options or SchemaOptions()
    store.execute(_migrations_ddl(opts))
    done = applied_versions(store)
    applied: list[int] = []
    for migration in MIGRATIONS:
        if migration.version in done:
            continue
        started_s = time.monotonic()
        for statement in migration.render(opts):
            store.execute(statement)
        store.execute(
            "INSERT INTO schema_migrations (version, name, applied_at)"
            " VALUES ({v:UInt32}, {n:String}, now64(3))",
            {"v": migration.version, "n": migration.name},
        )
        applied.append(migration.version)
        _log.info("span store migration %s (%s) applied in %.3f s",
                  migration.version, migration.name, time.monotonic() - started_s)
    present = _existing_columns(store)
    for column in SPAN_COLUMNS:
        if column.name not in present:
            store.execute(
                f"ALTER TABLE {SPANS_TABLE}{opts.cluster_clause}"
                f" ADD COLUMN IF NOT EXISTS {column_ddl(column)}"
            )
            _log.info("span store column %s added", column.name)
    _apply_derived_codecs(store, opts)
    if retention_days is not None:
        apply_retention(store, retention_days, opts)
    return applied


def _codec_text(codec: str) -> str:
    """A codec clause as ``system.columns`` spells it, for comparing.

    No spaces; ClickHouse writes Gorilla's default width out.
    """
    return codec.replace(" ", "").replace("Gorilla(8)", "Gorilla")


def _apply_derived_codecs(store: SpanStore, options: SchemaOptions) -> None:
    """Give every column of :data:`DERIVED_CODEC_TABLES` the codec of its type.

    Like the add-missing-columns step, it runs on every migration and changes only what
    differs (codec-only ``ALTER``: metadata, no mutation; parts on disk keep their codecs
    until their next merge). Tables a store lacks are skipped.
    """
    names = ", ".join(f"'{t}'" for t in DERIVED_CODEC_TABLES)
    rows = store.query_arrow(
        "SELECT table, name, type, compression_codec FROM system.columns"
        f" WHERE database = currentDatabase() AND table IN ({names})"
        " ORDER BY table, position").to_pylist()
    clauses: dict[str, list[str]] = {}
    for row in rows:
        kind = str(row["type"])
        if "AggregateFunction" in kind:
            continue
        codec = column_codec(Column(str(row["name"]), _STRING, kind))
        if _codec_text(codec) != _codec_text(str(row["compression_codec"])):
            clauses.setdefault(str(row["table"]), []).append(
                f"MODIFY COLUMN `{row['name']}` {codec}")
    for table in DERIVED_CODEC_TABLES:
        if table in clauses:
            store.execute(f"ALTER TABLE {table}{options.cluster_clause} "
                          + ", ".join(clauses[table]))
            _log.info("span store: codecs of %d columns of %s set", len(clauses[table]), table)


def apply_retention(store: SpanStore, retention_days: int, options: SchemaOptions | None = None,
                    *, materialize: bool = True) -> None:
    """Set (``retention_days`` > 0) or remove (0) the TTL of ``spans`` and derived tables.

    The derived tables are the settled traces' (``span_timing``, ``trace_facts``,
    ``step_counts``), aged by their ``start_time`` like the spans they came from.
    ``materialize`` False leaves existing parts to later merges instead of rewriting them
    all now (the retention job, which drops and deletes the expired rows itself).

    Raises:
        ConfigError: ``retention_days`` is negative.
        StoreError: the ALTER failed.
    """
    if retention_days < 0:
        raise ConfigError(f"Expected span retention days >= 0, got {retention_days}")
    opts = options or SchemaOptions()
    for table in (SPANS_TABLE, *SETTLED_TABLES):
        current = _current_ttl(store, table)
        if retention_days == 0:
            if current:
                store.execute(f"ALTER TABLE {table}{opts.cluster_clause} REMOVE TTL")
            continue
        # start_time is DateTime64(9, 'UTC'): the addition stays in DateTime64 (no 2106 wrap).
        ttl = f"start_time + toIntervalDay({int(retention_days)})"
        if current.replace(" ", "") == ttl.replace(" ", ""):
            continue
        lazy = "" if materialize else " SETTINGS materialize_ttl_after_modify = 0"
        store.execute(f"ALTER TABLE {table}{opts.cluster_clause} MODIFY TTL {ttl}{lazy}")


def _current_ttl(store: SpanStore, name: str = SPANS_TABLE) -> str:
    table = store.query_arrow(
        "SELECT create_table_query FROM system.tables"
        " WHERE database = currentDatabase() AND name = {t:String}",
        {"t": name},
    )
    rows = table.column("create_table_query").to_pylist()
    if not rows:
        raise StoreError(f"Expected table {name} to exist before setting its TTL")
    ddl = str(rows[0])
    marker = " TTL "
    if marker not in ddl:
        return ""
    return ddl.split(marker, 1)[1].split(" SETTINGS ", 1)[0].strip()
