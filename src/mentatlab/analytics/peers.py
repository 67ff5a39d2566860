"""Peer comparison: each agent's percentile rank among agents of the same operation type.

The unit is an agent's **run**: the spans of one trace carrying that ``agent_id`` (its own
spans and the LLM and tool calls that inherit its id; a sub-agent's spans carry the
sub-agent's id and count for it), over the spans in the time range and filter
(``spans FINAL``). The runs of settled traces are read from the rows the settle job stores
per trace (``trace_agents``), the rest from raw spans, with the same numbers
(:mod:`mentatlab.analytics.settled_agents` says which). Per run:

* latency: the run's first span start to its last span end, in ms;
* success: no span of the run with status ``error`` or ``timeout``;
* cost: sum of ``total_cost`` (USD, exact decimal);
* tokens: input plus output tokens of the spans that are not usage rollups.

Per agent: ``num_runs``, ``num_successes``; ``cost_per_success`` = total cost of every run
(failed ones included) / successful runs (USD, Decimal rounded half-even to 1e-12, as the
version comparison); ``tokens_per_success`` ("token efficiency") likewise in tokens;
``latency_p50_ms``, the **median** run latency (exact, linear interpolation: ClickHouse
``quantileExactInclusive(0.5)``, numpy ``method="linear"``). An agent without a successful
run has no cost or tokens per success and is not ranked on them.

**Operation type** of an agent: the operation of its *root span* in each run — its
earliest-starting span whose ``agent_id`` is its own (not inherited), else its earliest
span — named by ``operation_name`` (the producer's ``gen_ai.operation.name``:
``invoke_agent``, ``chat``, ...) or, when that is empty, by the coarse ``operation``
(``agent``, ``chat``, ...). An agent's type is the type of most of its runs (ties: the
alphabetically first).

**Percentile rank** of an agent on a metric, among the ``n`` agents of its type that have
a value: ``scipy.stats.percentileofscore(values, value, kind="mean")`` =
(#{v < value} + #{v ≤ value}) / (2n) × 100, the mean of the "strict" (% below) and "weak"
(% at or below) ranks, the agent itself included; ties share a rank. The metrics are
costs, so a **lower rank is better**: the cheapest, fastest or most token-efficient agent
of four has 12.5, the dearest 87.5; an agent alone in its type has 50.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Final

from mentatlab.analytics.query import FINAL_SETTINGS, NOT_ROLLUP, QueryParams, SqlParts, build_where
from mentatlab.analytics.settled_agents import plan_settled_read, raw_trace_ids
from mentatlab.model.schema import MONEY_SCALE
from mentatlab.storage.base import SpanStore
from mentatlab.storage.settled import RUN_OP_TYPE, TRACE_AGENTS_TABLE

__all__ = ["PEER_METRICS", "PERCENTILE_KIND", "AgentPeers", "PeerRank", "rank_peers",
           "percentile_ranks"]

PERCENTILE_KIND: Final = "mean"
"""The ``kind`` of ``scipy.stats.percentileofscore`` the ranks use."""
PEER_METRICS: Final = ("cost_per_success", "latency_p50_ms", "tokens_per_success")
"""The metrics agents are ranked on (lower is better on each)."""
_MONEY_QUANTUM: Final = Decimal(1).scaleb(-MONEY_SCALE)


@dataclass(frozen=True, slots=True)
class PeerRank:
    """One metric of one agent and its rank among its peers."""

    value: float | Decimal | None
    """The agent's value (Decimal USD for cost); None when it has none (no success)."""
    percentile_rank: float | None
    """0..100, lower is better (see the module doc); None without a value."""
    num_peers: int
    """Agents of the same type with a value on this metric (the agent included)."""


@dataclass(frozen=True, slots=True)
class AgentPeers:
    """One agent: its runs and its rank on each of :data:`PEER_METRICS`."""

    agent_id: str
    operation_type: str
    num_runs: int
    num_successes: int
    total_cost: Decimal
    """USD, every run."""
    total_tokens: int
    ranks: dict[str, PeerRank]
    """Keyed by :data:`PEER_METRICS`."""


def percentile_ranks(values: Sequence[float]) -> list[float]:
    """Each value's percentile rank among ``values``, in the order given (0..100).

    scipy ``percentileofscore(values, v, kind=PERCENTILE_KIND)`` for each ``v``.
    """
    from scipy.stats import percentileofscore  # lazy: scipy is heavy to import

    return [float(percentileofscore(values, v, kind=PERCENTILE_KIND)) for v in values]


_RAW_RUNS = f"""SELECT agent_id, {RUN_OP_TYPE} AS op_type,
    toUInt8(countIf(status != 'ok') = 0) AS success,
    sum(total_cost) AS cost,
    toInt64(sumIf(ifNull(input_tokens, 0) + ifNull(output_tokens, 0), {NOT_ROLLUP})) AS tokens,
    (toUnixTimestamp64Nano(max(end_time)) - toUnixTimestamp64Nano(min(start_time))) / 1e6
        AS latency_ms
FROM spans FINAL
WHERE {{where}} AND agent_id != ''
GROUP BY agent_id, trace_id"""
"""One row per run from raw spans (``{where}``: the range, filter and any trace ids)."""
_MEASURES = ("toInt64(count()) AS n, toInt64(sum(success)) AS ok, sum(cost) AS cost_sum,"
             " toInt64(sum(tokens)) AS token_sum,"
             " quantileExactInclusiveState(0.5)(latency_ms) AS latency")
"""Per (agent, operation type): the runs' sums and a mergeable exact-median state."""
_RAW_GROUPS = f"""SELECT agent_id, op_type, {_MEASURES}
FROM ({_RAW_RUNS}) GROUP BY agent_id, op_type"""
_SETTLED_GROUPS = f"""SELECT
    substring(key, position(key, ':') + 1,
              toUInt64(substring(key, 1, position(key, ':') - 1))) AS agent_id,
    substring(key, position(key, ':') + 1 + length(agent_id)) AS op_type,
    n, ok, cost_sum, token_sum, latency
FROM (
    SELECT key, {_MEASURES}
    FROM {TRACE_AGENTS_TABLE} FINAL
    ARRAY JOIN run_key AS key, run_ok AS success, run_cost AS cost, run_tokens AS tokens,
        run_latency_ms AS latency_ms
    WHERE {{where}}
    GROUP BY key)"""
"""Per (agent, operation type) over the settled traces ``{where}`` picks, grouped by the one
LowCardinality ``run_key`` (``<n>:<agent><type>``, n the agent's byte length) and split."""


def _agents_sql(groups: str) -> str:
    """Per agent, from rows per (agent, operation type) (merged: one side may hold both)."""
    return f"""WITH groups AS ({groups})
SELECT agent_id, arraySort((t, n) -> (-n, t), ops.1, ops.2)[1] AS operation_type,
    toInt64(sum(n)) AS num_runs, toInt64(sum(ok)) AS num_successes,
    sum(cost_sum) AS total_cost, toInt64(sum(token_sum)) AS total_tokens,
    quantileExactInclusiveMerge(0.5)(latency) AS latency_p50_ms,
    sumMap([op_type], [n]) AS ops
FROM groups GROUP BY agent_id ORDER BY operation_type, agent_id {FINAL_SETTINGS}"""


def _groups_sql(store: SpanStore, params: QueryParams, parts: SqlParts) -> str:
    """Runs per (agent, type): settled traces from ``trace_agents`` when it can, else raw."""
    read = plan_settled_read(store, params, parts)
    raw = build_where(params.time_range, params.filters, SqlParts(binds=parts.binds))
    if read is None:
        return _RAW_GROUPS.format(where=raw.where)
    # a run counts from its row only when every one of its spans is in the range
    inside = f"run_first_ns >= {read.lo} AND run_last_ns < {read.hi}"
    ids = raw_trace_ids(store, read, (
        f"notEmpty(run_agent) AND run_first_ns < {read.hi} AND run_last_ns >= {read.lo}"
        f" AND NOT (single_scope = 1 AND {inside})"), parts)
    if ids is None:
        return _RAW_GROUPS.format(where=raw.where)
    bound = parts.bind(ids, "Array(String)")
    settled = _SETTLED_GROUPS.format(where=(
        f"{read.scope} AND single_scope = 1 AND notEmpty(run_agent) AND {inside}"
        + (f" AND trace_id NOT IN {bound}" if ids else "")))
    if not ids:
        return settled
    return f"{settled}\nUNION ALL\n" + _RAW_GROUPS.format(
        where=f"{raw.where} AND trace_id IN {bound}")


def rank_peers(store: SpanStore, params: QueryParams) -> list[AgentPeers]:
    """Every agent with a run in the range and filter, ranked among its type's agents.

    Args:
        store: the span store.
        params: time range and equality filters (group-by and bucket are ignored).

    Returns:
        Agents by operation type, then agent id (see the module doc for every number).

    Raises:
        QueryTimeout: the query ran past the store's time limit.
        StoreError: the query failed.
    """
    parts = SqlParts()
    groups = _groups_sql(store, params, parts)
    rows = store.query_arrow(_agents_sql(groups), parts.binds).to_pylist()
    values: list[dict[str, float | Decimal | None]] = []
    for row in rows:
        ok = int(row["num_successes"])
        cost = Decimal(row["total_cost"])
        values.append({
            "cost_per_success": (cost / ok).quantize(_MONEY_QUANTUM, ROUND_HALF_EVEN)
            if ok else None,
            "latency_p50_ms": float(row["latency_p50_ms"]),
            "tokens_per_success": int(row["total_tokens"]) / ok if ok else None,
        })
    ranks = _rank(rows, values)
    return [AgentPeers(agent_id=str(row["agent_id"]), operation_type=str(row["operation_type"]),
                       num_runs=int(row["num_runs"]), num_successes=int(row["num_successes"]),
                       total_cost=Decimal(row["total_cost"]),
                       total_tokens=int(row["total_tokens"]), ranks=ranks[i])
            for i, row in enumerate(rows)]


def _rank(rows: Sequence[Mapping[str, Any]], values: Sequence[Mapping[str, float | Decimal | None]]
          ) -> list[dict[str, PeerRank]]:
    """Per row, its :class:`PeerRank` on each metric within its operation type."""
    out: list[dict[str, PeerRank]] = [{} for _ in rows]
    by_type: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        by_type[str(row["operation_type"])].append(i)
    for members in by_type.values():
        for metric in PEER_METRICS:
            having = [i for i in members if values[i][metric] is not None]
            ranked = percentile_ranks([float(values[i][metric]) for i in having])  # type: ignore[arg-type]
            rank_of = dict(zip(having, ranked, strict=True))
            for i in members:
                out[i][metric] = PeerRank(values[i][metric], rank_of.get(i), len(having))
    return out
