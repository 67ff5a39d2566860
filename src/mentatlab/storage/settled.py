"""Tables of settled traces: per-span timing and one row of facts per trace.

A trace is *settled* once no span of it has arrived for the quiet period
(``settle_quiet_s``, docs/decisions/0010-settled-traces.md); the settle job
(:mod:`mentatlab.resolver.settle`) then writes

* ``span_timing``: one row per span with its ``self_time_ms``, ``critical_path_ms`` and
  ``on_critical_path`` (:mod:`mentatlab.analytics.critical_path`) beside the dimensions a
  bottleneck query groups or filters by, so :mod:`mentatlab.analytics.bottlenecks` needs
  no join with ``spans``;
* ``trace_facts``: one row per (org, project, trace) with the trace's end-to-end numbers,
  read by :mod:`mentatlab.analytics.compare`;
* ``trace_agents``: one row per (org, project, trace) with its agents' runs and its agent
  and tool calls (arrays), read by :mod:`mentatlab.analytics.peers` and
  :mod:`mentatlab.analytics.graph`.

All are ``ReplacingMergeTree(settled_ns)``: a late span re-settles its trace and the new
rows replace the old ones (same sorting key, higher ``settled_ns``); readers use
``FINAL``. On a cluster they are shared tables (every node holds them whole, like the
pre-aggregates), written once by the elected node.
"""

from __future__ import annotations

from mentatlab.storage.aggregates import EngineClause

__all__ = ["AGENT_CALL", "CALL", "RUN_OP_TYPE", "SETTLED_FILTER_COLUMNS", "SETTLED_TABLES",
           "SPAN_TIMING_TABLE", "TRACE_AGENTS_TABLE", "TRACE_FACTS_TABLE", "settled_ddl"]

SPAN_TIMING_TABLE = "span_timing"
"""Per settled span: self time, critical-path time and whether it is on the path."""
TRACE_FACTS_TABLE = "trace_facts"
"""Per settled (org, project, trace): duration, status, cost, tokens, versions."""
TRACE_AGENTS_TABLE = "trace_agents"
"""Per settled (org, project, trace): its agent runs and its agent and tool calls."""

SETTLED_TABLES: tuple[str, ...] = (SPAN_TIMING_TABLE, TRACE_FACTS_TABLE, TRACE_AGENTS_TABLE)
"""Every settled table; span retention applies to them too (by ``start_time``)."""

CALL = ("(operation = 'agent' AND agent_id != '' AND bitAnd(inherited, 1) = 0)"
        " OR (operation = 'tool' AND tool_name != '')")
"""A span that is a call in the agent graph (:mod:`mentatlab.analytics.graph`)."""
AGENT_CALL = "operation = 'agent' AND agent_id != '' AND bitAnd(inherited, 1) = 0"
"""A span that is an agent call (its own ``agent_id``, not inherited)."""
RUN_OP_TYPE = ("argMin(if(operation_name != '', operation_name, toString(operation)),"
               " (bitAnd(inherited, 1), start_time, span_id))")
"""Aggregate: the operation type of an agent run (:mod:`mentatlab.analytics.peers`)."""

SETTLED_FILTER_COLUMNS: tuple[str, ...] = (
    "org_id", "workspace_id", "project_id", "agent_id", "workflow_id", "service_name",
    "provider", "model", "operation", "status", "tool_name", "name", "user_id",
    "customer_id")
"""Dimension columns of ``span_timing`` (``model`` is the response model, else the request
model): the filter names a bottleneck query accepts."""


def settled_ddl(cluster_clause: str, shared_engine: EngineClause) -> list[str]:
    """``CREATE TABLE IF NOT EXISTS`` of every settled table, for one node or a cluster.

    ``trace_agents`` (per org, project and trace; what a row holds is defined with the SQL
    that writes it, ``resolver/settle.py``): ``bucket`` (the day of the trace's first start
    when it was first settled, kept when it is settled again, so a row's key never changes
    and a new part overlaps only its days: ``FINAL`` then merges few rows, a partition
    at a time, where a key by trace alone made every new part overlap the whole table),
    ``single_scope`` (1 when every span of the
    trace is in this org, workspace and project), ``run_first_ns``/``run_last_ns`` (first
    and last start of a span with an ``agent_id``; 0 without one), one ``run_*`` element
    per agent (:mod:`mentatlab.analytics.peers`'s run) and one ``call_*`` element per agent
    or tool call (:mod:`mentatlab.analytics.graph`'s call with its caller, the nearest
    agent above it however far: a reader checks the look-back by the run starts). ``run_key``
    (agent and operation type) and ``call_link`` (kind, name and caller) are one
    ``LowCardinality`` value per group a reader aggregates by (one key groups 2-3× faster
    than two), written injectively: ``<n>:<agent><type>`` and ``<kind>:<n>:<name><caller>``
    with ``n`` the byte length of the agent or name.

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
        "  INDEX idx_start start_time TYPE minmax GRANULARITY 1\n)"
        f" ENGINE = {shared_engine(TRACE_FACTS_TABLE, 'ReplacingMergeTree', 'settled_ns')}\n"
        "ORDER BY (org_id, project_id, trace_id)",
        f"CREATE TABLE IF NOT EXISTS {TRACE_AGENTS_TABLE}{c} (\n"
        "  org_id LowCardinality(String),\n  workspace_id LowCardinality(String),\n"
        "  project_id LowCardinality(String),\n  trace_id String,\n"
        "  start_time DateTime64(9, 'UTC'),\n  bucket Date,\n  single_scope UInt8,\n"
        "  run_first_ns Int64,\n  run_last_ns Int64,\n"
        "  run_key Array(LowCardinality(String)),\n  run_agent Array(LowCardinality(String)),\n"
        "  run_op_type Array(LowCardinality(String)),\n  run_ok Array(UInt8),\n"
        "  run_cost Array(Decimal(38, 12)),\n  run_tokens Array(Int64),\n"
        "  run_latency_ms Array(Float64),\n"
        "  call_link Array(LowCardinality(String)),\n  call_kind Array(LowCardinality(String)),\n"
        "  call_name Array(LowCardinality(String)),\n"
        "  call_caller Array(LowCardinality(String)),\n  call_start_ns Array(Int64),\n"
        "  call_duration_ms Array(Float64),\n"
        "  call_failed Array(UInt8),\n  settled_ns Int64,\n"
        "  INDEX idx_trace_id trace_id TYPE bloom_filter(0.001) GRANULARITY 1\n)"
        f" ENGINE = {shared_engine(TRACE_AGENTS_TABLE, 'ReplacingMergeTree', 'settled_ns')}\n"
        "PARTITION BY bucket\nORDER BY (org_id, project_id, bucket, trace_id)",
    ]
