"""The pre-aggregates of the span store: a per-trace ledger and aggregate tables, as data.

Every table here is written by ONE statement shape: the attribution resolver
(:mod:`mentatlab.resolver`) inserts signed differences into the ``Null`` table
``span_deltas`` and materialized views fan each insert out into

* ``span_ledger`` (per trace, minute and :data:`LEDGER_DIMENSIONS`): what the aggregates
  count for each trace, so the next difference can be computed exactly;
* the aggregate tables of every :data:`AGGREGATES` spec, once per time tier
  (``agg_<spec>_hour``, ``agg_<spec>_minute``), read by :mod:`mentatlab.analytics`;
* ``trace_summary`` (per minute, org, project and trace), read by the trace list.

Why differences and not a view over inserted spans: a materialized view sees inserts, so a
re-sent span, a repriced version or a span re-attributed once its parent arrived would
count twice. The resolver reads ``spans FINAL`` (one current version per span, resolved)
for the traces touched since its last pass and writes ``current - ledger`` for each
(trace, minute, dimensions) row; a second pass over the same traces writes nothing.
docs/decisions/0004-attribution-and-aggregates.md has the whole argument.

Signed sums live in ``SummingMergeTree`` tables (rows summing to zero disappear in merges)
or as ``SimpleAggregateFunction(sum, …)`` beside union-only states (the ``uniq`` trace
sketch, min/max durations) that only grow: a trace re-attributed from one agent to another
stays in the first agent's trace sketch, which is documented on ``Overview.num_traces``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mentatlab.model.schema import TOKEN_KIND_COST_COLUMNS

__all__ = [
    "AGGREGATES",
    "LATENCY_BUCKET_RATIO",
    "LATENCY_HIST",
    "LEDGER_DIMENSIONS",
    "LLM_CALL",
    "MEASURES",
    "MINUTE_TIER_DAYS",
    "MODEL_EXPR",
    "NOT_ROLLUP",
    "RESOLVER_STATE_TABLE",
    "SPAN_DELTAS_TABLE",
    "SPAN_LEDGER_TABLE",
    "TIERS",
    "TRACE_SKETCH",
    "TRACE_SUMMARY_TABLE",
    "AggregateSpec",
    "Measure",
    "aggregate_ddl",
    "aggregate_tables",
    "delta_insert_sql",
    "measure_upgrade_ddl",
]

MODEL_EXPR = "if(response_model != '', response_model, request_model)"
"""The model of a span: the response model when reported, else the request model."""
NOT_ROLLUP = "NOT usage_is_rollup"
"""Spans whose own token counts are added to totals (a roll-up repeats its descendants')."""
LLM_CALL = f"({MODEL_EXPR} != '' AND {NOT_ROLLUP})"
"""A span that is one LLM call (has a model, is not a roll-up of its descendants)."""
LATENCY_BUCKET_RATIO = 1.02
"""Latency histogram bucket ``b >= 1`` holds durations in ``[0.001 * r**(b-1), 0.001 * r**b)``
ms (``r`` this ratio); bucket 0 holds durations up to 0.001 ms. Reporting a bucket's
geometric middle is within 1% of any duration in it."""
LATENCY_HIST = ("sumMap(map(toUInt16(if(duration_ms <= 0.001, 0, least(65535,"
                f" floor(log(duration_ms / 0.001) / log({LATENCY_BUCKET_RATIO})) + 1))),"
                " toInt64(1)))")
"""Aggregate over spans: the duration histogram (``Map(UInt16, Int64)``, counts per bucket)
the latency percentiles come from; ``sumMap`` of histograms merges them, and a negative
count retracts."""
TRACE_SKETCH = "uniq"
"""Aggregate of the trace count: ClickHouse's adaptive-sampling distinct count (exact up to
tens of thousands, approximate beyond); merging states gives the raw function's number."""

SPAN_DELTAS_TABLE = "span_deltas"
"""``Null`` table the resolver inserts signed differences into (stores nothing itself)."""
SPAN_LEDGER_TABLE = "span_ledger"
"""Per (trace, minute, dimensions): what the aggregates count for that trace."""
TRACE_SUMMARY_TABLE = "trace_summary"
"""Per (minute, org, project, trace): the trace list's sums, times, root and models. Its
``trace_id`` is the 16 bytes (``unhex``): grouping by them is ~25% faster than by text."""
RESOLVER_STATE_TABLE = "resolver_state"
"""The resolver's watermark: every commit stamped up to it is in the aggregates."""

TIERS: tuple[str, ...] = ("hour", "minute")
"""Time tiers of every aggregate spec (the time key column is named after the tier)."""
MINUTE_TIER_DAYS = 8
"""Days the minute tier keeps (a table TTL): whole minutes inside a range's partial hours
come from it when younger than this, else from raw spans."""

LEDGER_DIMENSIONS: tuple[str, ...] = (
    "org_id", "workspace_id", "project_id", "agent_id", "workflow_id", "service_name",
    "provider", "model", "operation", "status", "tool_name", "user_id", "customer_id")
"""Dimension columns of the ledger: the union of every aggregate spec's dimensions
(``model`` is :data:`MODEL_EXPR`)."""


@dataclass(frozen=True, slots=True)
class Measure:
    """One additive (signed) column of the ledger and the aggregates."""

    name: str
    type: str
    """ClickHouse type (``Decimal(38, 12)`` for money, ``Int64`` for counts)."""
    expr: str
    """Aggregate over span rows that computes it."""


_MONEY = ("token_cost", "cpu_cost", "memory_cost", "gpu_cost", "network_cost", "storage_cost",
          "unattributed_cost", "discount", "total_cost")

MEASURES: tuple[Measure, ...] = (
    *(Measure(m, "Decimal(38, 12)", f"sum({m})") for m in _MONEY),
    Measure("requests", "Int64", f"toInt64(countIf({LLM_CALL}))"),
    Measure("num_spans", "Int64", "toInt64(count())"),
    Measure("error_spans", "Int64", "toInt64(countIf(status != 'ok'))"),
    Measure("timeout_spans", "Int64", "toInt64(countIf(status = 'timeout'))"),
    Measure("input_tokens", "Int64", f"toInt64(sumIf(ifNull(input_tokens, 0), {NOT_ROLLUP}))"),
    Measure("output_tokens", "Int64", f"toInt64(sumIf(ifNull(output_tokens, 0), {NOT_ROLLUP}))"),
    Measure("cached_tokens", "Int64",
            f"toInt64(sumIf(ifNull(cache_read_tokens, 0), {NOT_ROLLUP}))"),
    Measure("cache_write_tokens", "Int64",
            f"toInt64(sumIf(ifNull(cache_write_tokens, 0), {NOT_ROLLUP}))"),
    Measure("reasoning_tokens", "Int64",
            f"toInt64(sumIf(ifNull(reasoning_tokens, 0), {NOT_ROLLUP}))"),
    Measure("unattributed_input_tokens", "Int64", "toInt64(sum(unattributed_input_tokens))"),
    Measure("unattributed_output_tokens", "Int64", "toInt64(sum(unattributed_output_tokens))"),
    *(Measure(m, "Decimal(38, 12)", f"sum({m})") for m in TOKEN_KIND_COST_COLUMNS),
)
"""Every signed column, in table order. Money is Decimal-exact; token sums skip roll-up
spans (their unattributed part has its own columns); ``cached_tokens`` are cache reads.
The per-kind token costs come last: stores created before them gain them by ``ADD COLUMN``
at the end (migration 6, :func:`measure_upgrade_ddl`)."""


@dataclass(frozen=True, slots=True)
class AggregateSpec:
    """One aggregate: its dimensions, and whether it carries the overview's states."""

    name: str
    dimensions: tuple[str, ...]
    """Key columns after the time key, a subset of :data:`LEDGER_DIMENSIONS`."""
    overview_states: bool = False
    """Also the trace sketch, the latency histogram and min/max duration."""

    def table(self, tier: str) -> str:
        """``agg_<name>_<tier>``."""
        return f"agg_{self.name}_{tier}"


AGGREGATES: tuple[AggregateSpec, ...] = (
    AggregateSpec("cost", ("org_id", "workspace_id", "project_id", "agent_id", "workflow_id",
                           "service_name", "provider", "model", "operation", "status",
                           "tool_name")),
    AggregateSpec("scope", ("org_id", "workspace_id", "project_id", "agent_id", "workflow_id",
                            "service_name"), overview_states=True),
    AggregateSpec("principal", ("org_id", "workspace_id", "project_id", "customer_id", "user_id",
                                "agent_id", "provider", "model")),
)
"""Every aggregate; a query uses the first one whose dimensions cover its filters and
group-by (cost per model: ``cost``; the overview: ``scope``; cost per customer or user:
``principal``)."""

def aggregate_tables() -> tuple[str, ...]:
    """Every table that holds aggregated state (the ledger, each tier, the trace summary)."""
    return (SPAN_LEDGER_TABLE, *(spec.table(t) for spec in AGGREGATES for t in TIERS),
            TRACE_SUMMARY_TABLE)


_DIMENSION_EXPR = {d: (MODEL_EXPR if d == "model" else d) for d in LEDGER_DIMENSIONS}
_TS9 = "DateTime64(9, 'UTC')"
_NS_MAX = "9223372036854775807"

_UNION_ONLY: tuple[tuple[str, str, str, str], ...] = (
    # (column, type, aggregate over spans, neutral value when the trace side is absent)
    ("min_duration_ms", "Float64", "min(duration_ms)", "inf"),
    ("max_duration_ms", "Float64", "max(duration_ms)", "-inf"),
    ("min_start_ns", "Int64", "min(toUnixTimestamp64Nano(start_time))", _NS_MAX),
    ("max_start_ns", "Int64", "max(toUnixTimestamp64Nano(start_time))", "0"),
    ("max_end_ns", "Int64", "max(toUnixTimestamp64Nano(end_time))", "0"),
    ("root_name", "String", "maxIf(name, parent_span_id = '')", "''"),
    ("root_service", "String", "maxIf(service_name, parent_span_id = '')", "''"),
    ("models", "Array(String)", f"groupUniqArrayIf({MODEL_EXPR}, {MODEL_EXPR} != '')", "[]"),
)
"""Columns of a delta row that describe the CURRENT spans of its group (never differences):
states that only grow (min/max, names, the trace sketch) take them from present rows."""


def _dims_ddl(names: Sequence[str]) -> str:
    return "".join(f"  {d} LowCardinality(String),\n" for d in names)


def _measures_ddl(simple: bool) -> str:
    if simple:
        return "".join(f"  {m.name} SimpleAggregateFunction(sum, {m.type}),\n" for m in MEASURES)
    return "".join(f"  {m.name} {m.type},\n" for m in MEASURES)


EngineClause = Callable[..., str]
"""``SchemaOptions.shared_engine``: ``(table, engine[, args]) -> engine clause``."""


def aggregate_ddl(cluster_clause: str, shared_engine: EngineClause) -> list[str]:
    """Every table and materialized view of this module, for one node or a cluster.

    Args:
        cluster_clause: ``""`` or `` ON CLUSTER <name>``.
        shared_engine: ``SchemaOptions.shared_engine`` (engine clause of a table every node
            holds whole).

    Returns:
        ``CREATE … IF NOT EXISTS`` statements, in dependency order.
    """
    engine = shared_engine
    c = cluster_clause
    measures = ", ".join(m.name for m in MEASURES)
    ledger_key = ", ".join(LEDGER_DIMENSIONS)
    union_ddl = "".join(f"  {name} {type_},\n" for name, type_, _, _ in _UNION_ONLY)
    out = [
        f"CREATE TABLE IF NOT EXISTS {SPAN_DELTAS_TABLE}{c} (\n  trace_id String,\n"
        f"  minute DateTime('UTC'),\n{_dims_ddl(LEDGER_DIMENSIONS)}{_measures_ddl(False)}"
        f"  latency_hist Map(UInt16, Int64),\n  present UInt8,\n{union_ddl[:-2]}\n)"
        " ENGINE = Null",
        f"CREATE TABLE IF NOT EXISTS {SPAN_LEDGER_TABLE}{c} (\n  trace_id String,\n"
        f"  minute DateTime('UTC'),\n{_dims_ddl(LEDGER_DIMENSIONS)}{_measures_ddl(False)}"
        "  latency_hist Map(UInt16, Int64)\n)"
        f" ENGINE = {engine(SPAN_LEDGER_TABLE, 'SummingMergeTree')}\n"
        f"PARTITION BY toYYYYMM(minute) ORDER BY (trace_id, minute, {ledger_key})",
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS mv_{SPAN_LEDGER_TABLE}{c}"
        f" TO {SPAN_LEDGER_TABLE} AS SELECT trace_id, minute, {ledger_key}, {measures},"
        f" latency_hist FROM {SPAN_DELTAS_TABLE}",
    ]
    for spec in AGGREGATES:
        for tier in TIERS:
            out += _tier_ddl(spec, tier, c, engine)
    out += _trace_summary_ddl(c, engine)
    out.append(
        f"CREATE TABLE IF NOT EXISTS {RESOLVER_STATE_TABLE}{c} (\n  name String,\n"
        "  through_ns Int64,\n  complete UInt8,\n  version UInt64\n)"
        f" ENGINE = {engine(RESOLVER_STATE_TABLE, 'ReplacingMergeTree', 'version')}"
        " ORDER BY name")
    return out


def _tier_ddl(spec: AggregateSpec, tier: str, c: str, engine: EngineClause) -> list[str]:
    table = spec.table(tier)
    key = ", ".join(spec.dimensions)
    time_expr = "minute" if tier == "minute" else "toStartOfHour(minute)"
    sums = ", ".join(f"sum({m.name}) AS {m.name}" for m in MEASURES)
    partition = "toYYYYMMDD(minute)" if tier == "minute" else "toYYYYMM(hour)"
    ttl = (f"\nTTL minute + toIntervalDay({MINUTE_TIER_DAYS})" if tier == "minute" else "")
    if spec.overview_states:
        states_ddl = (f"  traces AggregateFunction({TRACE_SKETCH}, String),\n"
                      "  latency_hist SimpleAggregateFunction(sumMap, Map(UInt16, Int64)),\n"
                      "  min_duration_ms SimpleAggregateFunction(min, Float64),\n"
                      "  max_duration_ms SimpleAggregateFunction(max, Float64)\n")
        states = (f", {TRACE_SKETCH}StateIf(trace_id, present = 1) AS traces,"
                  " sumMap(latency_hist) AS latency_hist,"
                  " min(if(present = 1, min_duration_ms, inf)) AS min_duration_ms,"
                  " max(if(present = 1, max_duration_ms, -inf)) AS max_duration_ms")
        body = _measures_ddl(True) + states_ddl
        table_engine = engine(table, "AggregatingMergeTree")
    else:
        body = _measures_ddl(False)[:-2] + "\n"
        states = ""
        table_engine = engine(table, "SummingMergeTree")
    return [
        f"CREATE TABLE IF NOT EXISTS {table}{c} (\n  {tier} DateTime('UTC'),\n"
        f"{_dims_ddl(spec.dimensions)}{body})"
        f" ENGINE = {table_engine}\nPARTITION BY {partition} ORDER BY ({tier}, {key}){ttl}",
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS mv_{table}{c} TO {table} AS"
        f" SELECT {time_expr} AS {tier}, {key}, {sums}{states} FROM {SPAN_DELTAS_TABLE}"
        f" GROUP BY {tier}, {key}",
    ]


def measure_upgrade_ddl(cluster_clause: str, shared_engine: EngineClause,
                        names: Sequence[str]) -> list[str]:
    """Statements that add the measures ``names`` to the tables of an existing store.

    Each table gains the columns (``ADD COLUMN IF NOT EXISTS``, value 0 in existing rows:
    exactly what the ledger counted for them, so the resolver's next difference is right),
    all in one ``ALTER`` per table (each ``ALTER`` rewrites the table's metadata: one per
    column made a new store's migration 6 take ~0.4 s); the materialized views are dropped
    and created again from the current :data:`MEASURES` (a view's column list is fixed
    when it is created). Run while no resolver pass inserts (a migration runs before the
    server starts its resolver).
    """
    c = cluster_clause
    types = {m.name: m.type for m in MEASURES}
    out: list[str] = []
    for table, simple in [(SPAN_DELTAS_TABLE, False), (SPAN_LEDGER_TABLE, False),
                          *((spec.table(t), spec.overview_states)
                            for spec in AGGREGATES for t in TIERS)]:
        if not names:
            continue
        adds = ", ".join(
            f"ADD COLUMN IF NOT EXISTS {name} "
            + (f"SimpleAggregateFunction(sum, {types[name]})" if simple else types[name])
            for name in names)
        out.append(f"ALTER TABLE {table}{c} {adds}")
    out.append(f"DROP VIEW IF EXISTS mv_{SPAN_LEDGER_TABLE}{c}")
    out += [f"DROP VIEW IF EXISTS mv_{spec.table(t)}{c}" for spec in AGGREGATES for t in TIERS]
    return out + [s for s in aggregate_ddl(c, shared_engine)
                  if s.startswith("CREATE MATERIALIZED VIEW") and TRACE_SUMMARY_TABLE not in s]


def _trace_summary_ddl(c: str, engine: EngineClause) -> list[str]:
    sums = ("num_spans", "error_spans", "timeout_spans", "requests", "input_tokens",
            "output_tokens", "total_cost", "unattributed_cost")
    types = {m.name: m.type for m in MEASURES}
    sums_ddl = "".join(f"  {s} SimpleAggregateFunction(sum, {types[s]}),\n" for s in sums)
    return [
        f"CREATE TABLE IF NOT EXISTS {TRACE_SUMMARY_TABLE}{c} (\n  minute DateTime('UTC'),\n"
        "  org_id LowCardinality(String),\n  project_id LowCardinality(String),\n"
        f"  trace_id FixedString(16),\n{sums_ddl}"
        "  min_start_ns SimpleAggregateFunction(min, Int64),\n"
        "  max_start_ns SimpleAggregateFunction(max, Int64),\n"
        "  max_end_ns SimpleAggregateFunction(max, Int64),\n"
        "  root_name SimpleAggregateFunction(max, String),\n"
        "  root_service SimpleAggregateFunction(max, String),\n"
        "  any_service SimpleAggregateFunction(max, String),\n"
        "  models SimpleAggregateFunction(groupUniqArrayArray, Array(String))\n)"
        f" ENGINE = {engine(TRACE_SUMMARY_TABLE, 'AggregatingMergeTree')}\n"
        "PARTITION BY toYYYYMMDD(minute) ORDER BY (minute, org_id, project_id, trace_id)",
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS mv_{TRACE_SUMMARY_TABLE}{c}"
        f" TO {TRACE_SUMMARY_TABLE} AS SELECT minute, org_id,"
        f" project_id, unhex(trace_id) AS trace_id,"
        f" {', '.join(f'sum({s}) AS {s}' for s in sums)},"
        f" min(if(present = 1, min_start_ns, {_NS_MAX})) AS min_start_ns,"
        " max(if(present = 1, max_start_ns, 0)) AS max_start_ns,"
        " max(if(present = 1, max_end_ns, 0)) AS max_end_ns,"
        " max(if(present = 1, root_name, '')) AS root_name,"
        " max(if(present = 1, root_service, '')) AS root_service,"
        " max(if(present = 1, service_name, '')) AS any_service,"
        " groupUniqArrayArray(if(present = 1, models, [])) AS models"
        f" FROM {SPAN_DELTAS_TABLE} GROUP BY minute, org_id, project_id, trace_id",
    ]


def delta_insert_sql(spans_filter: str, ledger_filter: str | None = None) -> str:
    """``INSERT INTO span_deltas``: current minus counted, for the rows the filters select.

    Args:
        spans_filter: a condition on ``spans`` with bound parameters, e.g.
            ``trace_id IN {ids:Array(String)}``.
        ledger_filter: the same condition on the ledger's columns (``trace_id``,
            ``minute``, the ledger dimensions); None when ``spans_filter`` names only
            ``trace_id``. Both must select the same (trace, minute, dimensions) keys, or
            the difference would be taken against the wrong rows.

    The current side groups ``spans FINAL`` by (trace, minute, ledger dimensions); the
    counted side sums the ledger the same way; a ``FULL OUTER JOIN`` on the key gives every
    row where they differ (missing sides count as zero), and only those are inserted.
    """
    key = ", ".join(LEDGER_DIMENSIONS)
    current_dims = ", ".join(f"{_DIMENSION_EXPR[d]} AS {d}" for d in LEDGER_DIMENSIONS)
    current = ", ".join(f"{m.expr} AS {m.name}" for m in MEASURES)
    union = ", ".join(f"{expr} AS {name}" for name, _, expr, _ in _UNION_ONLY)
    counted = ", ".join(f"sum({m.name}) AS {m.name}" for m in MEASURES)
    diffs = ", ".join(f"t.{m.name} - c.{m.name} AS {m.name}" for m in MEASURES)
    union_out = ", ".join(f"if(t.present = 1, t.{name}, {neutral}) AS {name}"
                          for name, _, _, neutral in _UNION_ONLY)
    changed = " OR ".join([*(f"t.{m.name} != c.{m.name}" for m in MEASURES),
                           "t.latency_hist != c.latency_hist"])
    columns = ", ".join(["trace_id", "minute", *LEDGER_DIMENSIONS, *(m.name for m in MEASURES),
                         "latency_hist", "present", *(u[0] for u in _UNION_ONLY)])
    return (
        f"INSERT INTO {SPAN_DELTAS_TABLE} ({columns})"
        f" SELECT trace_id, minute, {key}, {diffs},"
        " mapFilter((k, v) -> v != 0, mapSubtract(t.latency_hist, c.latency_hist))"
        f" AS latency_hist, t.present AS present, {union_out}"
        f" FROM (SELECT trace_id, toStartOfMinute(start_time) AS minute, {current_dims},"
        f" {current}, {LATENCY_HIST} AS latency_hist, toUInt8(1) AS present, {union}"
        f" FROM spans FINAL WHERE {spans_filter} GROUP BY trace_id, minute, {key}) AS t"
        f" FULL OUTER JOIN (SELECT trace_id, minute, {key}, {counted},"
        f" sumMap(latency_hist) AS latency_hist FROM {SPAN_LEDGER_TABLE}"
        f" WHERE {ledger_filter or spans_filter} GROUP BY trace_id, minute, {key}) AS c"
        f" USING (trace_id, minute, {key})"
        f" WHERE {changed}"
        " SETTINGS do_not_merge_across_partitions_select_final = 1, join_use_nulls = 0"
    )
