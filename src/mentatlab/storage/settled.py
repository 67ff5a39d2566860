"""Tables of settled traces: per-span timing and one row of facts per trace.

A trace is *settled* once no span of it has arrived for the quiet period
(``settle_quiet_s``, docs/decisions/0010-settled-traces.md); the settle job
(:mod:`mentatlab.resolver.settle`) then writes

* ``span_timing``: one row per span with its ``self_time_ms``, ``critical_path_ms`` and
  ``on_critical_path`` (:mod:`mentatlab.analytics.critical_path`) beside the dimensions a
  bottleneck query groups or filters by, so :mod:`mentatlab.analytics.bottlenecks` needs
  no join with ``spans``;
* ``trace_facts``: one row per (org, project, trace) with the trace's end-to-end numbers,
  read by :mod:`mentatlab.analytics.compare`; its ``session_ids`` (every non-empty
  ``session_id`` of its spans) and ``num_runs`` (distinct ``run_id``s, a span without one
  counting as the trace's own run) let :mod:`mentatlab.analytics.recommendations` find the
  sessions with several runs without reading spans.

Both are ``ReplacingMergeTree(settled_ns)``: a late span re-settles its trace and the new
rows replace the old ones (same sorting key, higher ``settled_ns``); readers use
``FINAL``. On a cluster they are shared tables (every node holds them whole, like the
pre-aggregates), written once by the elected node.
"""

from __future__ import annotations

from mentatlab.storage.aggregates import EngineClause

__all__ = ["SETTLED_FILTER_COLUMNS", "SETTLED_TABLES", "SPAN_TIMING_TABLE", "TRACE_FACTS_TABLE",
           "settled_ddl"]

SPAN_TIMING_TABLE = "span_timing"
"""Per settled span: self time, critical-path time and whether it is on the path."""
TRACE_FACTS_TABLE = "trace_facts"
"""Per settled (org, project, trace): duration, status, cost, tokens, versions."""

SETTLED_TABLES: tuple[str, ...] = (SPAN_TIMING_TABLE, TRACE_FACTS_TABLE)
"""Both tables; span retention applies to them too (by ``start_time``)."""

SETTLED_FILTER_COLUMNS: tuple[str, ...] = (
    "org_id", "workspace_id", "project_id", "agent_id", "workflow_id", "service_name",
    "provider", "model", "operation", "status", "tool_name", "name", "user_id",
    "customer_id")
"""Dimension columns of ``span_timing`` (``model`` is the response model, else the request
model): the filter names a bottleneck query accepts."""


def settled_ddl(cluster_clause: str, shared_engine: EngineClause) -> list[str]:
    """``CREATE TABLE IF NOT EXISTS`` of both tables, for one node or a cluster.

    Args:
        cluster_clause: ``""`` or `` ON CLUSTER <name>``.
        shared_engine: ``SchemaOptions.shared_engine``.
    """
    c = cluster_clause
    dims = "".join(f"  {d} LowCardinality(String),\n" for d in SETTLED_FILTER_COLUMNS
                   if d != "name")
    return [
        f"CREATE TABLE IF NOT EXISTS {SPAN_TIMING_TABLE}{c} (\n{dims}"
        "  start_time DateTime64(9, 'UTC'),\n  trace_id String,\n  span_id String,\n"
        "  name String,\n  duration_ms Float64,\n  self_time_ms Float64,\n"
        "  critical_path_ms Float64,\n  on_critical_path UInt8,\n  settled_ns Int64\n)"
        f" ENGINE = {shared_engine(SPAN_TIMING_TABLE, 'ReplacingMergeTree', 'settled_ns')}\n"
        "PARTITION BY toDate(start_time)\n"
        "ORDER BY (org_id, project_id, toStartOfMinute(start_time), trace_id, span_id)",
        f"CREATE TABLE IF NOT EXISTS {TRACE_FACTS_TABLE}{c} (\n"
        "  org_id LowCardinality(String),\n  workspace_id LowCardinality(String),\n"
        "  project_id LowCardinality(String),\n  trace_id String,\n"
        "  start_time DateTime64(9, 'UTC'),\n  start_ns Int64,\n  end_ns Int64,\n"
        "  duration_ms Float64,\n  status LowCardinality(String),\n  num_spans Int64,\n"
        "  error_spans Int64,\n  timeout_spans Int64,\n  total_cost Decimal(38, 12),\n"
        "  input_tokens Int64,\n  output_tokens Int64,\n"
        "  root_name String,\n  root_agent_id LowCardinality(String),\n"
        "  root_operation LowCardinality(String),\n  workflow_id LowCardinality(String),\n"
        "  prompt_version String,\n  agent_version String,\n  workflow_version String,\n"
        "  prompt_versions Array(String),\n  agent_versions Array(String),\n"
        "  workflow_versions Array(String),\n  models Array(String),\n"
        "  primary_model LowCardinality(String),\n  user_id String,\n  session_id String,\n"
        "  customer_id String,\n  settled_ns Int64,\n"
        "  session_ids Array(String),\n  num_runs Int64,\n"
        "  INDEX idx_start start_time TYPE minmax GRANULARITY 1\n)"
        f" ENGINE = {shared_engine(TRACE_FACTS_TABLE, 'ReplacingMergeTree', 'settled_ns')}\n"
        "ORDER BY (org_id, project_id, trace_id)",
    ]
