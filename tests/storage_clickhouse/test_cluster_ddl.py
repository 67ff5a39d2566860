"""Cluster DDL: the shared span-store migrations rewritten for a ClickHouse cluster.

A cluster cannot run on the build machines, so these tests check the generated SQL; the
last test runs the migrations on a real cluster when CLICKHOUSE_URL and
MENTATLAB_TEST_CLUSTER name one.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import pytest
from chkit import make_span

from mentatlab.errors import ConfigError, StoreError
from mentatlab.model.schema import POLICY_COLUMNS, SPAN_COLUMNS, spans_to_arrow
from mentatlab.storage.aggregates import aggregate_tables
from mentatlab.storage.clickhouse_store import ClickHouseSpanStore, parse_clickhouse_url
from mentatlab.storage.cluster import ClusterLayout, ClusterSchemaTarget
from mentatlab.storage.span_schema import (
    SPANS_SORTING_KEY,
    column_codec,
    column_ddl,
    migrate_span_store,
)

LAYOUT = ClusterLayout("mentat_cluster", "observability")


class RecordingStore:
    """Records statements; answers the migration runner's lookups like a new cluster."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.lookups: list[Mapping[str, Any] | None] = []

    def migrate(self) -> None:
        raise AssertionError("not used")

    def append_batch(self, table: pa.Table) -> None:
        raise AssertionError("not used")

    def query_arrow(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        self.lookups.append(params)
        if "schema_migrations" in sql:
            return pa.table({"version": pa.array([], pa.uint32())})
        if "system.columns" in sql and "compression_codec" in sql:  # the derived tables
            return pa.table({"table": ["llm_calls", "llm_calls"], "name": ["span_id", "n"],
                             "type": ["String", "AggregateFunction(sum, UInt64)"],
                             "compression_codec": ["", ""]})
        if "system.columns" in sql:
            return pa.table({"name": [c.name for c in SPAN_COLUMNS[:-1]]})  # one column missing
        if "system.tables" in sql:
            return pa.table({"create_table_query": ["CREATE TABLE x (a UInt8) ENGINE = Log"]})
        raise AssertionError(sql)

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self.statements.append(sql)

    def close(self) -> None:
        pass


@pytest.fixture
def cluster_ddl() -> tuple[list[str], list[Mapping[str, Any] | None]]:
    recorder = RecordingStore()
    migrate_span_store(ClusterSchemaTarget(recorder, LAYOUT), LAYOUT.schema_options(),
                       retention_days=90)
    return recorder.statements, recorder.lookups


def test_every_ddl_statement_runs_on_the_cluster(cluster_ddl: Any) -> None:
    statements, _ = cluster_ddl
    ddl = [s for s in statements if not s.startswith("INSERT")]
    assert ddl
    for statement in ddl:
        assert " ON CLUSTER mentat_cluster" in statement, statement


def test_rows_live_in_a_replicated_local_table_per_shard(cluster_ddl: Any) -> None:
    statements, _ = cluster_ddl
    (local,) = [s for s in statements if s.startswith("CREATE TABLE IF NOT EXISTS spans_local")]
    assert ("ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/observability/"
            "spans_local', '{replica}', ingested_at_ns)") in local
    for column in SPAN_COLUMNS:
        assert f"`{column.name}` {column.clickhouse}" in local
    assert f"ORDER BY ({SPANS_SORTING_KEY})" in local


def test_spans_is_distributed_by_trace_after_the_local_table(cluster_ddl: Any) -> None:
    statements, _ = cluster_ddl
    creates = [s for s in statements if s.startswith("CREATE TABLE")]
    names = [re.match(r"CREATE TABLE IF NOT EXISTS (\w+)", s).group(1) for s in creates]  # type: ignore[union-attr]
    assert names == ["schema_migrations", "spans_local", "spans", "span_deltas",
                     *aggregate_tables(), "resolver_state", "span_timing", "trace_facts",
                     "version_sightings", "step_counts", "trace_agents", "llm_calls"]
    assert creates[2] == (
        "CREATE TABLE IF NOT EXISTS spans ON CLUSTER mentat_cluster AS spans_local"
        " ENGINE = Distributed(mentat_cluster, observability, spans_local, cityHash64(trace_id))")


def test_aggregates_are_replicated_whole_to_every_node(cluster_ddl: Any) -> None:
    statements, _ = cluster_ddl
    creates = {re.match(r"CREATE TABLE IF NOT EXISTS (\w+)", s).group(1): s  # type: ignore[union-attr]
               for s in statements if s.startswith("CREATE TABLE")}
    prefix = "/clickhouse/tables/observability"
    assert (f"ENGINE = ReplicatedSummingMergeTree('{prefix}/span_ledger', '{{replica}}')"
            in creates["span_ledger"])
    assert (f"ENGINE = ReplicatedSummingMergeTree('{prefix}/agg_cost_hour', '{{replica}}')"
            in creates["agg_cost_hour"])
    assert (f"ENGINE = ReplicatedAggregatingMergeTree('{prefix}/agg_scope_minute',"
            " '{replica}')" in creates["agg_scope_minute"])
    assert (f"ENGINE = ReplicatedReplacingMergeTree('{prefix}/resolver_state', '{{replica}}',"
            " version)" in creates["resolver_state"])
    assert "ENGINE = Null" in creates["span_deltas"]  # every node fans its inserts out
    for settled in ("span_timing", "trace_facts", "step_counts", "trace_agents"):  # settle job
        assert (f"ENGINE = ReplicatedReplacingMergeTree('{prefix}/{settled}', '{{replica}}',"
                " settled_ns)" in creates[settled])
    assert (f"ENGINE = ReplicatedAggregatingMergeTree('{prefix}/version_sightings',"
            " '{replica}')" in creates["version_sightings"])
    views = [s for s in statements if s.startswith("CREATE MATERIALIZED VIEW")]
    # one view per aggregate table (migration 6 re-creates each with the per-kind costs)
    assert {re.search(r" TO (\w+) AS ", v).group(1) for v in views} == set(  # type: ignore[union-attr]
        aggregate_tables())
    assert all(" ON CLUSTER mentat_cluster TO " in v for v in views)


def test_migrations_are_recorded_once_for_the_whole_cluster(cluster_ddl: Any) -> None:
    statements, _ = cluster_ddl
    assert ("ENGINE = ReplicatedMergeTree('/clickhouse/tables/observability/schema_migrations',"
            " '{replica}')") in statements[0]
    assert "{shard}" not in statements[0]


def test_new_columns_go_to_both_tables_and_ttl_to_the_local_one(cluster_ddl: Any) -> None:
    statements, lookups = cluster_ddl
    last = SPAN_COLUMNS[-1]
    adds = [s for s in statements if "ADD COLUMN" in s and s.startswith("ALTER TABLE spans")]
    # migration 9's policy columns (one ALTER), then the column the store lacks (the last one)
    policy_adds = ", ".join(f"ADD COLUMN IF NOT EXISTS {column_ddl(c)}" for c in POLICY_COLUMNS)
    assert adds == [
        *(f"ALTER TABLE {table} ON CLUSTER mentat_cluster {policy_adds}"
          for table in ("spans_local", "spans")),
        *(f"ALTER TABLE {table} ON CLUSTER mentat_cluster ADD COLUMN IF NOT EXISTS"
          f" {column_ddl(last)}" for table in ("spans_local", "spans"))]
    ttl = [s for s in statements if "TTL" in s and s.startswith("ALTER")]
    assert ttl == [f"ALTER TABLE {t} ON CLUSTER mentat_cluster"
                   " MODIFY TTL start_time + toIntervalDay(90)"
                   for t in ("spans_local", "span_timing", "trace_facts",
                             "version_sightings", "step_counts", "trace_agents",
                             "llm_calls")]  # shared
    assert {"t": "spans_local"} in lookups  # TTL and columns are read from the local table


def test_codecs_change_on_the_local_table_only(cluster_ddl: Any) -> None:
    statements, _ = cluster_ddl
    codecs = [s for s in statements if "CODEC(" in s and s.startswith("ALTER TABLE spans")
              and "ADD COLUMN" not in s]
    # migration 11: one codec-only ALTER of every column, where the parts are
    assert len(codecs) == 1
    assert codecs[0].startswith("ALTER TABLE spans_local ON CLUSTER mentat_cluster MODIFY")
    assert codecs[0].count("MODIFY COLUMN IF EXISTS") == len(SPAN_COLUMNS)
    for column in SPAN_COLUMNS:
        assert f"`{column.name}` {column_codec(column)}" in codecs[0]
    # a statement that changes more than codecs keeps both tables in step
    mixed = "ALTER TABLE spans ON CLUSTER c MODIFY COLUMN x CODEC(ZSTD(1)), ADD COLUMN y UInt8"
    assert LAYOUT.rewrite(mixed) == [mixed.replace("spans", "spans_local", 1), mixed]
    # a derived table's columns get their type's codec (not AggregateFunction states)
    assert ("ALTER TABLE llm_calls ON CLUSTER mentat_cluster"
            " MODIFY COLUMN `span_id` CODEC(ZSTD(1))") in statements


def test_statements_without_a_rule_are_refused() -> None:
    with pytest.raises(StoreError, match="No cluster rule"):
        LAYOUT.rewrite("CREATE MATERIALIZED VIEW spans_hourly_mv TO spans_hourly AS "
                       "SELECT toStartOfHour(start_time) AS h, count() AS n FROM spans GROUP BY h")
    with pytest.raises(StoreError, match="No cluster rule"):
        LAYOUT.rewrite("ALTER TABLE spans ON CLUSTER c FREEZE")
    assert LAYOUT.rewrite("ALTER TABLE spans ON CLUSTER c DELETE WHERE org_id = 'x'") == [
        "ALTER TABLE spans_local ON CLUSTER c DELETE WHERE org_id = 'x'"]
    assert LAYOUT.rewrite("INSERT INTO schema_migrations VALUES (1)") == [
        "INSERT INTO schema_migrations VALUES (1)"]


@pytest.mark.parametrize("bad", ["", "a b", "x;DROP", "`c`"])
def test_layout_names_must_be_identifiers(bad: str) -> None:
    with pytest.raises(ConfigError):
        ClusterLayout(bad)
    with pytest.raises(ConfigError):
        ClusterLayout("c", bad)


def test_migrations_on_a_real_cluster() -> None:
    url = os.environ.get("CLICKHOUSE_URL")
    cluster = os.environ.get("MENTATLAB_TEST_CLUSTER")
    if not url or not cluster:
        pytest.skip("not run: needs a real ClickHouse cluster; set CLICKHOUSE_URL and "
                    "MENTATLAB_TEST_CLUSTER (a remote_servers name with Keeper and "
                    "{shard}/{replica} macros) to run it")
    args = parse_clickhouse_url(url)
    args.update(database=f"mentat_cluster_test_{uuid.uuid4().hex[:8]}", cluster=cluster)
    with ClickHouseSpanStore(**args) as store:
        store.migrate()
        store.migrate()
        store.append_batch(spans_to_arrow([make_span(i, trace=i % 3) for i in range(30)]))
        store.append_batch(spans_to_arrow([make_span(i, trace=i % 3) for i in range(30)]))
        got = store.query_arrow("SELECT count() AS n FROM spans FINAL")
        assert got.column("n").to_pylist() == [30]
        store.execute(f"DROP DATABASE `{args['database']}` ON CLUSTER {cluster} SYNC")
