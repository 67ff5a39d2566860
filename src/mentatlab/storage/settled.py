"""Tables of settled traces: per-span timing and one row of facts per trace.

A trace is *settled* once no span of it has arrived for the quiet period
(``settle_quiet_s``, docs/decisions/0010-settled-traces.md); the settle job
(:mod:`mentatlab.resolver.settle`) then writes

* ``span_timing``: one row per span with its ``self_time_ms``, ``critical_path_ms`` and
  ``on_critical_path`` (:mod:`mentatlab.analytics.critical_path`) beside the dimensions a
  bottleneck query groups or filters by, so :mod:`mentatlab.analytics.bottlenecks` needs
  no join with ``spans``;
* ``step_counts``: per (org, project, minute, trace, workspace, operation, step, error
  class and category of the failed spans) the spans, failures, retries and fallbacks, the
  span figures :mod:`mentatlab.analytics.reliability` sums (a few rows per trace instead
  of one per span, the step as ``LowCardinality``);
* ``trace_facts``: one row per (org, project, trace) with the trace's end-to-end numbers,
  read by :mod:`mentatlab.analytics.compare` and :mod:`mentatlab.analytics.regressions`,
  and the outcome facts :mod:`mentatlab.analytics.reliability` reads (root status, retry
  and fallback flags, agent-cycle candidate; see :data:`RELIABILITY_COLUMNS`); its
  ``session_ids`` (every non-empty ``session_id`` of its spans) and ``num_runs`` (distinct
  ``run_id``s, a span without one counting as the trace's own run) let
  :mod:`mentatlab.analytics.recommendations` find the sessions with several runs without
  reading spans;
* ``version_sightings``: per (org, workspace, project, version field, agent, operation,
  value, UTC day) the earliest and latest ``start_time`` of a span carrying that value
  for that agent and operation, read by :mod:`mentatlab.analytics.regressions` to find
  the versions first seen in a window without scanning every span;
* ``trace_agents``: one row per (org, project, trace) with its agents' runs and its agent
  and tool calls (arrays), read by :mod:`mentatlab.analytics.peers` and
  :mod:`mentatlab.analytics.graph`;
* ``llm_calls``: one row per LLM call or retry span (:data:`LLM_CALLS_ROWS`) with only the
  columns :func:`mentatlab.analytics.cost_views.provider_models` and the recommendations
  census read, in narrow types (token counts without ``NULL``, ``step`` as
  ``LowCardinality``), sorted like ``spans``; ``llm`` is :data:`LLM_CALL` of the span.
  A span written before that no longer is a call or a retry when its trace settles again
  is written again with ``llm = 0`` and ``is_retry = 0`` (so its old row is replaced, and
  readers, who keep ``llm OR is_retry``, skip it).


All but ``version_sightings`` are ``ReplacingMergeTree(settled_ns)``: a late span
re-settles its trace and the new rows replace the old ones (same sorting key, higher
``settled_ns``); readers use ``FINAL``. ``version_sightings`` is an
``AggregatingMergeTree`` of ``min``/``max``: every settled batch adds its own sightings and
readers take ``min``/``max`` again, so settling a trace twice changes nothing; a span
whose agent, operation or version changed after its trace settled leaves its old sighting
behind (readers add the unsettled tail from raw spans, so only a value rewritten on an
already settled span can be early). On a cluster they are shared tables (every node holds
them whole, like the pre-aggregates), written once by the elected node.
"""

from __future__ import annotations

from collections.abc import Collection

from mentatlab.storage.aggregates import LLM_CALL, MODEL_EXPR, EngineClause

__all__ = ["AGENT_CALL", "AGENT_EXPR", "CALL", "CENSUS_KEY", "CENSUS_KEY_NAMES",
           "CYCLE_CANDIDATE", "LLM_CALLS_FILTERS", "PRICED_CHAT", "TRACE_LOW_CUT",
           "LLM_CALLS_COLUMNS", "LLM_CALLS_ROWS", "LLM_CALLS_TABLE", "RELIABILITY_COLUMNS",
           "RUN_OP_TYPE", "SETTLED_FILTER_COLUMNS", "SETTLED_TABLES", "SETTLE_STATE_NAME",
           "SPAN_TIMING_TABLE", "STEP_COUNTS_TABLE", "STEP_EXPR", "TRACE_AGENTS_TABLE",
           "TRACE_FACTS_LATER_COLUMNS", "TRACE_FACTS_TABLE", "VERSION_FIELDS",
           "VERSION_SIGHTINGS_TABLE", "settled_ddl"]

SPAN_TIMING_TABLE = "span_timing"
"""Per settled span: self time, critical-path time and whether it is on the path."""
TRACE_FACTS_TABLE = "trace_facts"
"""Per settled (org, project, trace): duration, status, cost, tokens, versions."""
VERSION_SIGHTINGS_TABLE = "version_sightings"
"""Per (tenancy, version field, agent, operation, value, day): first and last span start."""

SETTLE_STATE_NAME = "settle"
"""The settle job's row name in ``resolver_state`` (its watermark)."""
STEP_COUNTS_TABLE = "step_counts"
"""Per settled (org, project, minute, trace, workspace, operation, step, error class and
category): span, failure, retry and fallback counts."""

TRACE_AGENTS_TABLE = "trace_agents"
"""Per settled (org, project, trace): its agent runs and its agent and tool calls."""

LLM_CALLS_TABLE = "llm_calls"
"""Per settled LLM call or retry span: keys, status, duration, tokens and costs."""

SETTLED_TABLES: tuple[str, ...] = (SPAN_TIMING_TABLE, TRACE_FACTS_TABLE,
                                   VERSION_SIGHTINGS_TABLE, STEP_COUNTS_TABLE,
                                   TRACE_AGENTS_TABLE, LLM_CALLS_TABLE)
"""Every settled table; span retention applies to them too (by ``start_time``: the day's
start for ``version_sightings``)."""

VERSION_FIELDS: dict[str, str] = {
    "prompt_version": "prompt_version",
    "agent_version": "agent_version",
    "workflow_version": "workflow_version",
    "model": MODEL_EXPR,
}
"""Version fields (the names of ``analytics.compare.COMPARE_FIELDS``) and their SQL over
``spans``: the ``field`` values of ``version_sightings``."""

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


LLM_CALLS_ROWS = "response_model != '' OR request_model != '' OR is_retry"
"""The spans of a settled trace ``llm_calls`` holds (a superset of :data:`LLM_CALL` that does
not depend on ``usage_is_rollup``, which the resolver may set later)."""
LLM_CALLS_FILTERS: tuple[str, ...] = (
    "org_id", "workspace_id", "project_id", "agent_id", "workflow_id", "service_name",
    "provider", "model", "request_model", "response_model", "operation", "status",
    "tool_name", "user_id", "customer_id", "price_source")
"""Filter names (``analytics.query.FILTER_COLUMNS``) whose SQL reads only ``llm_calls``
columns: a filtered read of the table gives the raw answer."""
CENSUS_KEY_NAMES: tuple[str, ...] = (
    "org_id", "project_id", "agent_id", "step", "operation", "provider", "response_model",
    "request_model", "tool_name")
"""The string columns of the recommendations census's group, in :data:`CENSUS_KEY` order."""
CENSUS_KEY = ("concat(" + ", ".join(f"toString(length({c})), ':', {c}" for c in CENSUS_KEY_NAMES)
              + f", toString(toUInt8(is_retry)), toString(toUInt8({LLM_CALL})))")
"""SQL over ``spans`` of a call's census group as one string, written injectively:
``<n>:<value>`` per :data:`CENSUS_KEY_NAMES` column (``n`` its byte length), then
``is_retry`` and :data:`LLM_CALL` as ``0``/``1``. One ``LowCardinality`` key groups several
times faster than the columns or a hash of them (bench/RESULTS.md)."""
PRICED_CHAT = ("operation IN ('chat', 'completion')"
               " AND NOT startsWith(price_source, 'unpriced')")
"""The recommendations' ``cheaper_model`` calls: chat and completion calls with a price."""
TRACE_LOW_CUT = "10"
"""``llm_calls.trace_low`` holds the trace ids below it (1/16 of random hex ids)."""
_LLM_CALLS_DIMS: tuple[str, ...] = (
    "agent_id", "workflow_id", "service_name", "provider", "response_model", "request_model",
    "operation", "status", "tool_name", "step", "price_source", "user_id", "customer_id")
LLM_CALLS_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("org_id", "LowCardinality(String)", "org_id"),
    ("workspace_id", "LowCardinality(String)", "workspace_id"),
    ("project_id", "LowCardinality(String)", "project_id"),
    ("start_time", "DateTime64(9, 'UTC')", "start_time"),
    ("trace_id", "String", "trace_id"),
    ("span_id", "String", "span_id"),
    *((d, "LowCardinality(String)", d) for d in _LLM_CALLS_DIMS),
    ("llm", "UInt8", f"toUInt8({LLM_CALL})"),
    ("is_retry", "UInt8", "toUInt8(is_retry)"),
    ("duration_ms", "Float64", "duration_ms"),
    ("input_tokens", "UInt64", "ifNull(input_tokens, 0)"),
    ("output_tokens", "UInt64", "ifNull(output_tokens, 0)"),
    ("cache_read_tokens", "UInt64", "ifNull(cache_read_tokens, 0)"),
    ("tokens", "UInt64", "ifNull(input_tokens, 0) + ifNull(output_tokens, 0)"),
    ("total_cost", "Decimal(38, 12)", "total_cost"),
    ("token_cost", "Decimal(38, 12)", "token_cost"),
    ("priced_chat", "UInt8", f"toUInt8({PRICED_CHAT})"),
    ("trace_low", "String", f"if(trace_id < '{TRACE_LOW_CUT}', trace_id, '')"),
    ("census_key", "LowCardinality(String)", CENSUS_KEY),
)
"""``llm_calls``' columns before ``settled_ns``: (name, type, SQL over ``spans``). Token counts
are the spans' with ``NULL`` as 0 (every reader sums ``ifNull(…, 0)``), ``tokens`` input plus
output (the census's small-call test reads one column); ``priced_chat`` is
:data:`PRICED_CHAT` (a flag: ~30% of the census's CPU went to testing it); ``trace_low`` is the
trace id when below :data:`TRACE_LOW_CUT`, else empty (a sample-id read for a cut at or
below it reads this nearly empty column, not every 32-character id); ``census_key`` is
:data:`CENSUS_KEY`."""

STEP_EXPR = "if(step != '', step, name)"
"""SQL of a span's step: its ``step`` attribute when set, else its name."""
AGENT_EXPR = "if(agent_id != '' AND bitAnd(inherited, 1) = 0, agent_id, name)"
"""SQL of an agent span's identity: its own agent id (inherited bit 0 clear), else name."""
CYCLE_CANDIDATE = (f"uniqExactIf({AGENT_EXPR}, operation = 'agent') >= 2"
                   f" AND uniqExactIf(span_id, operation = 'agent')"
                   f" > uniqExactIf({AGENT_EXPR}, operation = 'agent')")
"""Aggregate over a trace's spans: it can hold an agent cycle (at least two distinct agents
and a repeated one; :mod:`mentatlab.analytics.reliability`)."""

RELIABILITY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("last_start_ns", "Int64"),
    ("num_scopes", "UInt32"),
    ("has_root", "UInt8"),
    ("root_status", "LowCardinality(String)"),
    ("root_error_category", "LowCardinality(String)"),
    ("has_fallback", "UInt8"),
    ("has_retry", "UInt8"),
    ("cycle_candidate", "UInt8"),
)
"""The ``trace_facts`` columns reliability reads (name, type), over every span of the
trace: the latest span start (ns); how many (org, workspace, project) its spans
have (0 on a row written before the column existed: readers then take the trace from raw
spans); whether it has a root span (no parent), the earliest root's status and error
category; whether a span is a fallback, a retry; :data:`CYCLE_CANDIDATE`."""

TRACE_FACTS_LATER_COLUMNS: tuple[tuple[str, str], ...] = (
    ("agent_ids", "Array(String)"),
    ("operations", "Array(String)"),
    ("trace_hash", "UInt64 MATERIALIZED cityHash64(trace_id)"),
    *RELIABILITY_COLUMNS,
    ("session_ids", "Array(String)"),
    ("num_runs", "Int64"),
)
"""The ``trace_facts`` columns after ``settled_ns`` (name, type clause), in table order:
the agents and operations of its spans (:mod:`mentatlab.analytics.regressions`), the
hash compare's sample is cut by, :data:`RELIABILITY_COLUMNS`, then every session id of
its spans and its number of distinct runs (:mod:`mentatlab.analytics.recommendations`).
A store created before them gains them by ``ADD COLUMN`` at the end (migration 8, which
has the settle job fill them again)."""


def settled_ddl(cluster_clause: str, shared_engine: EngineClause,
                tables: Collection[str] = SETTLED_TABLES) -> list[str]:
    """``CREATE TABLE IF NOT EXISTS`` of settled tables, for one node or a cluster.

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
        tables: which of :data:`SETTLED_TABLES` (default: all), in their order.
    """
    c = cluster_clause
    dims = "".join(f"  {d} LowCardinality(String),\n" for d in SETTLED_FILTER_COLUMNS
                   if d != "name")
    statements = [
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
        + "".join(f"  {name} {kind},\n" for name, kind in TRACE_FACTS_LATER_COLUMNS)
        + "  INDEX idx_start start_time TYPE minmax GRANULARITY 1\n)"
        f" ENGINE = {shared_engine(TRACE_FACTS_TABLE, 'ReplacingMergeTree', 'settled_ns')}\n"
        "ORDER BY (org_id, project_id, trace_id)",
        f"CREATE TABLE IF NOT EXISTS {VERSION_SIGHTINGS_TABLE}{c} (\n"
        "  org_id LowCardinality(String),\n  workspace_id LowCardinality(String),\n"
        "  project_id LowCardinality(String),\n  field LowCardinality(String),\n"
        "  agent_id LowCardinality(String),\n  operation LowCardinality(String),\n"
        "  value String,\n  start_time DateTime64(9, 'UTC'),\n"
        "  first_seen SimpleAggregateFunction(min, DateTime64(9, 'UTC')),\n"
        "  last_seen SimpleAggregateFunction(max, DateTime64(9, 'UTC'))\n)"
        f" ENGINE = {shared_engine(VERSION_SIGHTINGS_TABLE, 'AggregatingMergeTree')}\n"
        "PARTITION BY toYYYYMM(start_time)\n"
        "ORDER BY (org_id, project_id, workspace_id, field, agent_id, operation, value,"
        " start_time)",
        f"CREATE TABLE IF NOT EXISTS {STEP_COUNTS_TABLE}{c} (\n"
        "  org_id LowCardinality(String),\n  workspace_id LowCardinality(String),\n"
        "  project_id LowCardinality(String),\n  start_time DateTime('UTC'),\n"
        "  trace_id String,\n  operation LowCardinality(String),\n"
        "  step LowCardinality(String),\n  error_class LowCardinality(String),\n"
        "  error_category LowCardinality(String),\n  num_spans Int64,\n  num_failed Int64,\n"
        "  num_retries Int64,\n  num_retries_ok Int64,\n  num_fallbacks Int64,\n"
        "  settled_ns Int64\n)"
        f" ENGINE = {shared_engine(STEP_COUNTS_TABLE, 'ReplacingMergeTree', 'settled_ns')}\n"
        "PARTITION BY toDate(start_time)\n"
        "ORDER BY (org_id, project_id, start_time, trace_id, workspace_id, operation, step,"
        " error_class, error_category)",
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
        f"CREATE TABLE IF NOT EXISTS {LLM_CALLS_TABLE}{c} (\n"
        + "".join(f"  {name} {kind},\n" for name, kind, _ in LLM_CALLS_COLUMNS)
        + "  settled_ns Int64,\n"
        "  INDEX idx_trace_id trace_id TYPE bloom_filter(0.001) GRANULARITY 1\n)"
        f" ENGINE = {shared_engine(LLM_CALLS_TABLE, 'ReplacingMergeTree', 'settled_ns')}\n"
        "PARTITION BY toDate(start_time)\n"
        "ORDER BY (org_id, project_id, toStartOfMinute(start_time), trace_id, span_id)",
    ]
    return [ddl for name, ddl in zip(SETTLED_TABLES, statements, strict=True)
            if name in tables]
