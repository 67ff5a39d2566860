"""Cost views: token waterfall, hierarchical attribution, unit economics, provider × model.

Every view is one or two ClickHouse SQL texts through :class:`SpanStore` (the same on chDB
and a ClickHouse server); money is ``Decimal`` (USD unless the pricing file says
otherwise), summed exactly (``Decimal(38, 12)`` columns), never through a float.

* **Token waterfall** (:func:`token_waterfall`): tokens and cost per kind: uncached input,
  cache read, cache write, output (without reasoning), reasoning, per-request fees, and the
  unattributed usage of roll-up spans (not split by kind). The kind costs add up to
  ``token_cost`` exactly (the price stage splits each span's token cost so,
  docs/decisions/0012-token-kind-costs.md). **Cache savings** = Σ over LLM calls of
  (cache-read tokens × the model's uncached input price − what those cache reads cost):
  the saving the provider's prompt cache gave, computed per span by the price stage from
  the same genai-prices / ``pricing.toml`` rates (``cache_savings`` column). Cache *writes*
  usually cost more than uncached input; that premium is in ``cache_write_cost``, not
  subtracted from the savings.
* **Attribution** (:func:`attribution_tree`): cost by 1 to :data:`MAX_LEVELS` group-by
  names in the caller's order, as a tree; every node's numbers are the exact sums of its
  children's, and the root's are the sums over every span in the range and filter
  (``total_cost`` includes ``unattributed_cost`` and infrastructure; spans without a value
  for a level are the node whose key is ``""``).
* **Unit economics** (:func:`unit_economics`): a *successful trace* is a trace none of whose
  spans (in the range and filter) has status ``error`` or ``timeout`` (the trace list's
  ``ok``, the same unit as the version comparison); ``cost_per_successful_trace`` = cost of
  every trace, failed ones included, / successful traces (what one success costs). Cost per
  user (``user_id``) and per session (``session_id``) divide the cost of the spans that carry
  one by the number of distinct values; the cost of spans without one is reported beside.
* **Provider × model** (:func:`provider_models`): per (provider, model) over LLM calls
  (spans with a model that are not roll-ups): cost, requests, error rate (status ``error``
  or ``timeout`` / requests) and latency percentiles p50/p95 of ``duration_ms``, exact with
  linear interpolation between closest ranks (ClickHouse ``quantileExactInclusive``, numpy's
  default ``method="linear"``).

Divisions are Decimal, rounded to 12 places half to even (``pricing/money.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Final

from mentatlab.analytics.aggregate_read import plan_read
from mentatlab.analytics.cost import CostRow, cost_by
from mentatlab.analytics.query import (
    FINAL_SETTINGS,
    GROUP_BY_COLUMNS,
    LLM_CALL_FAST,
    MODEL_EXPR,
    MODEL_HASH,
    NAME_ALIASES,
    QueryParams,
    SqlParts,
    build_where,
)
from mentatlab.analytics.settled_calls import calls_from
from mentatlab.errors import ValidationError
from mentatlab.pricing.money import quantize_money
from mentatlab.storage.aggregates import TRACE_SUMMARY_TABLE
from mentatlab.storage.base import SpanStore

__all__ = [
    "ATTRIBUTION_MEASURES",
    "MAX_GROUPS",
    "MAX_LEVELS",
    "MAX_PROVIDER_MODELS",
    "AttributionNode",
    "AttributionTree",
    "ProviderModelRow",
    "TokenKind",
    "TokenWaterfall",
    "UnitEconomics",
    "attribution_tree",
    "parse_levels",
    "provider_models",
    "token_waterfall",
    "unit_economics",
]

MAX_LEVELS: Final = 5
"""Most levels an attribution tree may have."""
MAX_GROUPS: Final = 50_000
"""Most leaves an attribution tree may have; more is refused (a filter narrows it), never
cut, since a cut tree would no longer add up."""
MAX_PROVIDER_MODELS: Final = 1_000
"""Most (provider, model) rows of the matrix (costliest first)."""
ATTRIBUTION_MEASURES: Final = ("total_cost", "token_cost", "unattributed_cost", "discount",
                               "requests", "num_spans")
"""The sums every attribution node carries (money in USD, counts)."""
_ZERO = Decimal(0)
_PROVIDER_MODEL_COLUMNS: Final = ("provider", "response_model", "request_model", "status",
                                  "duration_ms", "input_tokens", "output_tokens",
                                  "total_cost", "token_cost")


def _ratio(amount: Decimal, count: int) -> Decimal | None:
    return quantize_money(amount / count) if count else None


# --- token waterfall ---------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class TokenKind:
    """One step of the waterfall."""

    kind: str
    """``input`` (uncached), ``cache_read``, ``cache_write``, ``output`` (without
    reasoning), ``reasoning``, ``request`` (per-request fees; ``tokens`` is the number of
    LLM calls) or ``unattributed`` (roll-up usage no LLM call carries)."""
    tokens: int
    cost: Decimal
    """USD."""


@dataclass(frozen=True, slots=True)
class TokenWaterfall:
    """Tokens and their cost by kind over a range and filter."""

    kinds: list[TokenKind]
    token_cost: Decimal
    """Σ of the kind costs but ``unattributed`` (exactly)."""
    unattributed_cost: Decimal
    cache_savings: Decimal
    """Cache-read tokens at the uncached input price minus their cost (USD)."""
    cache_read_tokens: int
    input_tokens: int
    """All prompt tokens (uncached + cache read + cache write)."""
    output_tokens: int
    """All completion tokens (output + reasoning)."""
    requests: int


def token_waterfall(store: SpanStore, params: QueryParams) -> TokenWaterfall:
    """The token waterfall of ``params``' range and filters (group-by and bucket ignored).

    Read from the aggregates where they cover the filters (:func:`cost_by`).

    Raises:
        QueryTimeout: the query ran past the store's time limit.
        StoreError: the query failed.
    """
    rows = cost_by(store, replace(params, group_by=(), bucket=None))
    row = rows[0] if rows else None
    if row is None:
        z = _ZERO
        return TokenWaterfall([TokenKind(k, 0, z) for k in _KINDS], z, z, z, 0, 0, 0, 0)
    fresh = row.input_tokens - row.cached_tokens - row.cache_write_tokens
    kinds = [
        TokenKind("input", fresh, row.input_cost),
        TokenKind("cache_read", row.cached_tokens, row.cache_read_cost),
        TokenKind("cache_write", row.cache_write_tokens, row.cache_write_cost),
        TokenKind("output", row.output_tokens - row.reasoning_tokens, row.output_cost),
        TokenKind("reasoning", row.reasoning_tokens, row.reasoning_cost),
        TokenKind("request", row.requests, row.request_cost),
        TokenKind("unattributed", row.unattributed_input_tokens
                  + row.unattributed_output_tokens, row.unattributed_cost),
    ]
    return TokenWaterfall(kinds, row.token_cost, row.unattributed_cost, row.cache_savings,
                          row.cached_tokens, row.input_tokens, row.output_tokens, row.requests)


_KINDS = ("input", "cache_read", "cache_write", "output", "reasoning", "request",
          "unattributed")


# --- attribution -------------------------------------------------------------------------

def parse_levels(text: str) -> tuple[str, ...]:
    """``org,project,agent,model`` → ``("org_id", "project_id", "agent_id", "model")``.

    Names are the group-by names (:data:`~mentatlab.analytics.query.GROUP_BY_COLUMNS`)
    or their short forms (``NAME_ALIASES``), in the caller's order.

    Raises:
        ValidationError: (field ``levels``) no name, more than :data:`MAX_LEVELS`, an
            unknown name, or a name given twice (short and long forms count as one).
    """
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ValidationError("levels", "Expected 1 to 5 comma-separated names, got none")
    if len(names) > MAX_LEVELS:
        raise ValidationError("levels", f"Expected at most {MAX_LEVELS} levels, got "
                                        f"{len(names)}")
    out: list[str] = []
    for raw in names:
        name = NAME_ALIASES.get(raw, raw)
        if name not in GROUP_BY_COLUMNS:
            raise ValidationError("levels", f"Expected names from {sorted(GROUP_BY_COLUMNS)}"
                                            f" (or {sorted(NAME_ALIASES)}), got {raw[:100]!r}")
        if name in out:
            raise ValidationError("levels", f"Expected each level once, got {name!r} twice")
        out.append(name)
    return tuple(out)


@dataclass(slots=True)
class AttributionNode:
    """One node of the tree: a value of its level under its parent's values."""

    level: str
    """Group-by name of this node's level (``""`` at the root)."""
    key: str
    """This node's value of ``level`` (``""`` for spans without one, and at the root)."""
    total_cost: Decimal = _ZERO
    """USD: token + unattributed + infrastructure − discount."""
    token_cost: Decimal = _ZERO
    unattributed_cost: Decimal = _ZERO
    discount: Decimal = _ZERO
    requests: int = 0
    num_spans: int = 0
    children: list[AttributionNode] = field(default_factory=list)
    """Costliest first (ties by key)."""

    def add(self, row: CostRow) -> None:
        """Add a leaf row's sums to this node."""
        self.total_cost += row.total_cost
        self.token_cost += row.token_cost
        self.unattributed_cost += row.unattributed_cost
        self.discount += row.discount
        self.requests += row.requests
        self.num_spans += row.num_spans


@dataclass(frozen=True, slots=True)
class AttributionTree:
    """The tree and its levels."""

    levels: tuple[str, ...]
    root: AttributionNode
    num_leaves: int


def attribution_tree(store: SpanStore, params: QueryParams,
                     levels: tuple[str, ...]) -> AttributionTree:
    """Cost by ``levels`` (already parsed) as a tree whose totals add up exactly.

    One :func:`cost_by` over all levels gives the leaves (from the aggregates where they
    cover the levels and filters, else raw spans); each inner node is the Decimal sum of
    its leaves, so a parent equals the sum of its children to the last digit.

    Raises:
        ValidationError: (field ``levels``) more than :data:`MAX_GROUPS` leaves.
        QueryTimeout: the query ran past the store's time limit.
        StoreError: the query failed.
    """
    rows = cost_by(store, replace(params, group_by=levels, bucket=None),
                   limit=MAX_GROUPS + 1)
    if len(rows) > MAX_GROUPS:
        raise ValidationError("levels", f"Expected at most {MAX_GROUPS} leaves, got more: "
                                        "use fewer levels or a filter")
    root = AttributionNode("", "")
    index: dict[tuple[str, ...], AttributionNode] = {}
    for row in rows:
        root.add(row)
        parent: AttributionNode = root
        path: tuple[str, ...] = ()
        for level in levels:
            path = (*path, row.keys[level])
            node = index.get(path)
            if node is None:
                node = index[path] = AttributionNode(level, row.keys[level])
                parent.children.append(node)
            node.add(row)
            parent = node
    _sort(root)
    return AttributionTree(levels, root, len(rows))


def _sort(node: AttributionNode) -> None:
    node.children.sort(key=lambda n: (-n.total_cost, n.key))
    for child in node.children:
        _sort(child)


# --- unit economics ----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class UnitEconomics:
    """Cost per unit of outcome over a range and filter (USD; None where the count is 0)."""

    total_cost: Decimal
    num_traces: int
    num_successful_traces: int
    """Traces without a span of status ``error`` or ``timeout``."""
    cost_per_trace: Decimal | None
    cost_per_successful_trace: Decimal | None
    """``total_cost / num_successful_traces`` (failed traces' cost included)."""
    num_users: int
    """Distinct non-empty ``user_id``."""
    user_cost: Decimal
    """Cost of the spans with a ``user_id``."""
    cost_per_user: Decimal | None
    num_sessions: int
    """Distinct non-empty ``session_id``."""
    session_cost: Decimal
    """Cost of the spans with a ``session_id``."""
    cost_per_session: Decimal | None


def unit_economics(store: SpanStore, params: QueryParams, *,
                   use_aggregates: bool = True) -> UnitEconomics:
    """Cost per trace, successful trace, user and session.

    The traces come from ``trace_summary`` (per minute and trace: cost and failed spans)
    when the filters name at most org and project and the aggregates are built (the
    trace list's rule, :func:`~mentatlab.analytics.traces.list_traces`), else from
    ``spans FINAL`` grouped by trace; the same numbers either way (ranges are whole
    minutes). Users and sessions are distinct values over ``spans FINAL``.

    Raises:
        QueryTimeout: the query ran past the store's time limit.
        StoreError: the query failed.
    """
    parts = build_where(params.time_range, params.filters)
    where = parts.where
    if use_aggregates and set(params.filters) <= {"org_id", "project_id"} and plan_read(
            store, params.time_range.start, params.time_range.end, set(params.filters)):
        ts = "DateTime64(9, 'UTC')"
        minutes = (f"minute >= {parts.bind(params.time_range.start, ts)}"
                   f" AND minute < {parts.bind(params.time_range.end, ts)}")
        tenancy = "".join(f" AND {name} = {parts.bind(value, 'String')}"
                          for name, value in params.filters.items())
        per_trace = (f"SELECT trace_id, sum(total_cost) AS cost, sum(error_spans) AS failed"
                     f" FROM {TRACE_SUMMARY_TABLE} WHERE {minutes}{tenancy} GROUP BY trace_id"
                     " HAVING sum(num_spans) != 0")
    else:
        per_trace = ("SELECT trace_id, sum(total_cost) AS cost, max(status != 'ok') AS failed"
                     f" FROM spans FINAL WHERE {where} GROUP BY trace_id")
    sql = (
        "SELECT * FROM (SELECT toInt64(count()) AS num_traces,"
        " toInt64(countIf(failed = 0)) AS num_ok, sum(cost) AS total_cost FROM ("
        f"{per_trace})) AS t CROSS JOIN ("
        "SELECT toInt64(uniqExactIf(user_id, user_id != '')) AS num_users,"
        " sumIf(total_cost, user_id != '') AS user_cost,"
        # uniqExact of the whole column less the empty value: ~2x cheaper than uniqExactIf
        " toInt64(uniqExact(session_id)) - toInt64(max(session_id = '')) AS num_sessions,"
        " sumIf(total_cost, session_id != '') AS session_cost"
        f" FROM spans FINAL WHERE {where}) AS u {FINAL_SETTINGS}")
    row = store.query_arrow(sql, parts.binds).to_pylist()[0]
    total = Decimal(row["total_cost"] or 0)
    user_cost = Decimal(row["user_cost"] or 0)
    session_cost = Decimal(row["session_cost"] or 0)
    num_traces, num_ok = int(row["num_traces"]), int(row["num_ok"])
    users, sessions = int(row["num_users"]), int(row["num_sessions"])
    return UnitEconomics(
        total_cost=total, num_traces=num_traces, num_successful_traces=num_ok,
        cost_per_trace=_ratio(total, num_traces),
        cost_per_successful_trace=_ratio(total, num_ok), num_users=users,
        user_cost=user_cost, cost_per_user=_ratio(user_cost, users), num_sessions=sessions,
        session_cost=session_cost, cost_per_session=_ratio(session_cost, sessions))


# --- provider × model --------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ProviderModelRow:
    """One cell of the provider × model matrix (LLM calls only)."""

    provider: str
    model: str
    total_cost: Decimal
    """USD, every cost part of the calls."""
    token_cost: Decimal
    requests: int
    error_requests: int
    """Calls with status ``error`` or ``timeout``."""
    error_rate: float
    """``error_requests / requests``."""
    latency_p50_ms: float
    latency_p95_ms: float
    input_tokens: int
    output_tokens: int


def provider_models(store: SpanStore, params: QueryParams, *,
                    limit: int = MAX_PROVIDER_MODELS) -> list[ProviderModelRow]:
    """Cost, requests, error rate and latency per (provider, model), costliest first.

    LLM calls only, from the settled per-call rows (``llm_calls``) and the unsettled tail
    from raw ``spans FINAL`` (:func:`~mentatlab.analytics.settled_calls.calls_from`; raw
    spans only on a store never settled or with a filter ``llm_calls`` cannot answer):
    the same answer either way (the aggregates hold no per-model latency).

    Raises:
        QueryTimeout: the query ran past the store's time limit.
        StoreError: the query failed.
    """
    parts = SqlParts()
    source = calls_from(store, params, parts, _PROVIDER_MODEL_COLUMNS)
    if source is None:  # raw spans: the same rows, the same sums
        raw = build_where(params.time_range, params.filters, parts)
        source = f"spans FINAL WHERE {raw.where} AND {LLM_CALL_FAST}"
    # Grouped by hashes of the LowCardinality keys (computed on their dictionaries), not
    # by the strings: the same groups, ~15% less CPU at 10M spans (bench/RESULTS.md).
    sql = (
        f"SELECT any(provider) AS provider_name, any({MODEL_EXPR}) AS model_name,"
        " sum(total_cost) AS total_cost,"
        " sum(token_cost) AS token_cost, toInt64(count()) AS requests,"
        " toInt64(countIf(status != 'ok')) AS error_requests,"
        " quantilesExactInclusive(0.5, 0.95)(duration_ms) AS q,"
        " toInt64(sum(ifNull(input_tokens, 0))) AS input_tokens,"
        " toInt64(sum(ifNull(output_tokens, 0))) AS output_tokens"
        f" FROM {source}"
        f" GROUP BY cityHash64(provider), {MODEL_HASH}"
        f" ORDER BY total_cost DESC, provider_name, model_name"
        f" LIMIT {parts.bind(limit, 'UInt32')} {FINAL_SETTINGS}")
    out: list[ProviderModelRow] = []
    for row in store.query_arrow(sql, parts.binds).to_pylist():
        requests, errors = int(row["requests"]), int(row["error_requests"])
        q = row["q"]
        out.append(ProviderModelRow(
            provider=str(row["provider_name"]), model=str(row["model_name"]),
            total_cost=Decimal(row["total_cost"]), token_cost=Decimal(row["token_cost"]),
            requests=requests, error_requests=errors, error_rate=errors / requests,
            latency_p50_ms=float(q[0]), latency_p95_ms=float(q[1]),
            input_tokens=int(row["input_tokens"]), output_tokens=int(row["output_tokens"])))
    return out
