"""Optimization recommendations: where money can be saved, each with its numbers.

Five kinds over the LLM calls (spans with a model that are not usage roll-ups) that start
in the range and meet the filter (the caller's tenancy included), in SQL through the
:class:`SpanStore` protocol (chDB and ClickHouse alike). Thresholds are module constants;
the reasoning behind each is in docs/decisions/0013-recommendations.md.

How it is read (the answer is the one a query per kind over ``spans FINAL`` gives): one
*census* pass groups every call by its stored columns, through a 64-bit hash of them
(``cheaper_model``'s counts and costs, the small calls' start times, the retries'
failures); ``prompt_caching`` runs only when a probe finds a call with a prefix,
``batching`` marks the bursts of the census's small calls in numpy (groups of a model
with a batch price only) and reads the sums of the groups with enough bursts,
``failing_retries`` reads only the groups whose retries mostly fail (for their error
types and samples); ``context_trimming`` reads only the sessions
that may have :data:`MIN_RUNS` runs, bounded from the settled traces' facts
(:mod:`mentatlab.analytics.session_runs`); sample trace ids are sorted only below a cut
(:func:`~mentatlab.analytics.sample_ids.low_ids_sql`).

* ``cheaper_model``: in one scope (org, project, agent, step, operation), a model C whose
  calls cost less on average than those of model E and succeed as often (calls without a
  price, ``price_source`` ``unpriced``, are left out: they only look free). "As often" is
  judged **by span status** (``quality_basis: "status"``; evaluation scores do not exist
  yet): a one-sided two-proportion non-inferiority test (statsmodels
  ``test_proportions_2indep(ok_C, n_C, ok_E, n_E, value=-NONINFERIORITY_MARGIN,
  compare="diff", alternative="larger")``, Agresti-Caffo) must reject "C's success rate
  is more than :data:`NONINFERIORITY_MARGIN` below E's" at :data:`ALPHA`, with at least
  :data:`MIN_CALLS_PER_MODEL` calls of each. Saving = n_E × (cost per call of E − cost per
  call of C) = cost_E − cost_C × n_E / n_C.
* ``prompt_caching``: calls of one model repeating one prompt-prefix hash
  (:mod:`mentatlab.pipeline.prompt_prefix`) while reading almost nothing from a cache
  (cache-read tokens < :data:`MAX_CACHE_READ_SHARE` of input tokens). A call is *warm*
  when the previous call with the same prefix and model started at most
  :data:`CACHE_TTL_MS` before it (providers keep a cache 5-10 minutes; Anthropic's
  default TTL is 5 minutes). Cacheable tokens of a call = input tokens ×
  prefix chars / prompt chars (the hashed share of its text). Needs
  :data:`MIN_WARM_CALLS` warm calls averaging at least the model's smallest cacheable
  prompt (:func:`min_cacheable_tokens`).
  Saving = warm cacheable tokens × (input − cache-read price) − cold cacheable tokens ×
  (cache-write − input price), prices per token of the model.
* ``context_trimming``: sessions whose input tokens grow run over run. A run is a
  ``run_id`` (else a trace) of the session; its input is the sum of its calls'. Per
  session with ≥ :data:`MIN_RUNS` runs: least-squares slope of input tokens against the
  run's index (ClickHouse ``simpleLinearRegression``, the same fit as
  ``scipy.stats.linregress``) and Pearson r (``corr``). Growing: slope ≥
  :data:`MIN_SLOPE_TOKENS_PER_RUN` and r ≥ :data:`MIN_R`. Emitted for a scope with
  ≥ :data:`MIN_GROWING_SESSIONS` growing sessions. Saving (an upper bound, said so in
  ``saving_basis``) = input tokens above each growing session's first run × input price.
* ``batching``: many small calls (input + output ≤ :data:`SMALL_CALL_TOKENS`) of one
  model and operation in bursts (a call within :data:`BURST_GAP_MS` of the previous or
  next one). Needs :data:`MIN_BURST_CALLS`. Saving = the burst calls' token cost ×
  (1 − batch price / standard price of their average call), the provider's batch price
  from genai-prices (``processing: batch``). A model without a batch price (or priced
  by ``pricing.toml``) gets **no** recommendation: a per-request overhead has no price
  we could defend.
* ``failing_retries``: retry spans (``is_retry``) in one scope (org, project, agent,
  operation, tool, model) of which more than :data:`MIN_RETRY_FAILURE_RATE` fail
  (status not ok), at least :data:`MIN_RETRIES`. Saving = what the failed retries cost.

Every saving is in the installation's currency (the stored costs' currency; prices from
the ``price`` processor in force: pricing.toml overrides, genai-prices, currency rate and
discounts), exact ``Decimal`` rounded to 1e-12 half-even. Per month:
``saving_per_month = saving_in_window × 30 / window_days`` (:data:`DAYS_PER_MONTH`),
``window_days`` the range's length in days. Per-token prices are the model's base rates
at the range's end (a 1M-token call priced by the processor, divided by 10^6).
"""

from __future__ import annotations

import fnmatch
import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Final

import pyarrow as pa

from mentatlab.analytics.bursts import burst_counts
from mentatlab.analytics.query import (
    FINAL_SETTINGS,
    LLM_CALL,
    LLM_CALL_FAST,
    MODEL_EXPR,
    QueryParams,
    SqlParts,
    build_where,
)
from mentatlab.analytics.sample_ids import (
    COUNT_CAP,
    keys_in,
    low_ids_sql,
    lowest_trace_ids,
    sample_cut,
    samples_of,
)
from mentatlab.analytics.session_runs import session_calls_sql
from mentatlab.analytics.settled_calls import calls_from
from mentatlab.model.schema import MONEY_SCALE
from mentatlab.model.span import CanonicalSpan, SpanStatus
from mentatlab.pipeline.price import Price
from mentatlab.pricing.rate_card import TokenUsage
from mentatlab.storage.base import SpanStore
from mentatlab.storage.settled import CENSUS_KEY_NAMES, PRICED_CHAT, TRACE_LOW_CUT

__all__ = [
    "ALPHA",
    "BURST_GAP_MS",
    "CACHE_TTL_MS",
    "DAYS_PER_MONTH",
    "KINDS",
    "MAX_CACHE_READ_SHARE",
    "MIN_BURST_CALLS",
    "MIN_CACHEABLE_TOKENS",
    "MIN_CACHEABLE_TOKENS_BY_MODEL",
    "MIN_CALLS_PER_MODEL",
    "MIN_GROWING_SESSIONS",
    "MIN_R",
    "MIN_RETRIES",
    "MIN_RETRY_FAILURE_RATE",
    "MIN_RUNS",
    "MIN_SLOPE_TOKENS_PER_RUN",
    "MIN_WARM_CALLS",
    "NONINFERIORITY_MARGIN",
    "SMALL_CALL_TOKENS",
    "Recommendation",
    "Recommendations",
    "list_recommendations",
    "min_cacheable_tokens",
]

ALPHA: Final = 0.05
"""Significance level of the non-inferiority test (``cheaper_model``)."""
NONINFERIORITY_MARGIN: Final = 0.05
"""``cheaper_model``: most the cheaper model's success rate may be below the other's
(0.05 = 5 percentage points) and still count as "as often"."""
MIN_CALLS_PER_MODEL: Final = 30
"""``cheaper_model``: fewest calls of each model in the scope."""
CACHE_TTL_MS: Final = 300_000
"""``prompt_caching``: a call within this many ms of the previous one with the same
prefix could have read the cache (Anthropic's default TTL, 5 min; OpenAI 5-10 min)."""
MAX_CACHE_READ_SHARE: Final = 0.05
"""``prompt_caching``: cache-read tokens below this share of input tokens count as ~0."""
MIN_WARM_CALLS: Final = 10
"""``prompt_caching``: fewest warm calls (a repeat within the TTL)."""
MIN_CACHEABLE_TOKENS: Final = 1024
"""``prompt_caching``: least average cacheable tokens of a warm call, for a model not in
:data:`MIN_CACHEABLE_TOKENS_BY_MODEL` (OpenAI: prompts of ≥ 1,024 tokens)."""
MIN_CACHEABLE_TOKENS_BY_MODEL: Final = (
    ("claude-3-haiku*", 2048), ("claude-haiku-3*", 2048), ("claude-3-5-haiku*", 2048),
    ("claude-haiku-3-5*", 2048), ("claude-haiku-4-5*", 4096), ("claude-opus-4-5*", 4096),
    ("claude-opus-4-6*", 4096),
)
"""``prompt_caching``: (model pattern, smallest cacheable prompt in tokens) where it is
above :data:`MIN_CACHEABLE_TOKENS`, first match wins. Anthropic's figures (1,024 on Sonnet
4/4.5 and Opus 4/4.1; 2,048 on Haiku 3/3.5; 4,096 on Opus 4.5/4.6 and Haiku 4.5) as its
prompt-caching page gave them in 2026 (quoted in anthropics/anthropic-sdk-python#1194);
they change with new models: check before relying on them."""
MIN_RUNS: Final = 4
"""``context_trimming``: fewest runs of a session for its slope to count."""
MIN_SLOPE_TOKENS_PER_RUN: Final = 200.0
"""``context_trimming``: least growth of input tokens per run (least-squares slope)."""
MIN_R: Final = 0.8
"""``context_trimming``: least Pearson r of input tokens against run index."""
MIN_GROWING_SESSIONS: Final = 3
"""``context_trimming``: fewest growing sessions in a scope."""
SMALL_CALL_TOKENS: Final = 1000
"""``batching``: most input + output tokens of a "small" call."""
BURST_GAP_MS: Final = 1000
"""``batching``: a small call within this many ms of the previous or next small call of
the same model and operation is part of a burst."""
MIN_BURST_CALLS: Final = 100
"""``batching``: fewest calls in bursts."""
MIN_RETRIES: Final = 10
"""``failing_retries``: fewest retries in a scope."""
MIN_RETRY_FAILURE_RATE: Final = 0.5
"""``failing_retries``: "mostly fail": a failed share strictly above this."""
DAYS_PER_MONTH: Final = 30
"""Days of the month the saving is extrapolated to."""
KINDS: Final = ("cheaper_model", "prompt_caching", "context_trimming", "batching",
                "failing_retries")
"""Every recommendation kind, in the order they are computed."""
_QUANTUM: Final = Decimal(1).scaleb(-MONEY_SCALE)
_MTOK: Final = 1_000_000


@dataclass(frozen=True, slots=True)
class Recommendation:
    """One recommendation with its evidence and estimated saving."""

    kind: str
    """One of :data:`KINDS`."""
    title: str
    """One line for people."""
    scope: dict[str, str]
    """Where it applies: ``org_id``, ``project_id``, ``agent_id``, ``model``..."""
    evidence: dict[str, Any]
    """The numbers behind it (counts, rates, tokens, test results), named with units."""
    sample_trace_ids: list[str]
    """Up to :data:`NUM_SAMPLES` traces showing it."""
    saving_in_window: Decimal
    """Estimated saving over the range (installation currency)."""
    saving_per_month: Decimal
    """``saving_in_window × 30 / window_days`` (installation currency)."""
    saving_basis: str
    """How the saving was worked out, in words."""


@dataclass(frozen=True, slots=True)
class Recommendations:
    """The answer of :func:`list_recommendations`."""

    currency: str
    window_days: float
    """Length of the range, in days."""
    total_saving_per_month: Decimal
    """Sum of the recommendations' monthly savings (they may overlap: an upper bound)."""
    recommendations: list[Recommendation] = field(default_factory=list)
    """Largest monthly saving first."""


def _q(value: Decimal) -> Decimal:
    return value.quantize(_QUANTUM, ROUND_HALF_EVEN)


def _where(params: QueryParams) -> SqlParts:
    return build_where(params.time_range, params.filters, SqlParts())


class _Pricer:
    """Per-token prices of a model in the installation currency, via the ``price`` processor."""

    def __init__(self, price: Price, at: datetime) -> None:
        self.price = price
        self.at = at

    def cost(self, org_id: str, provider: str, model: str, **tokens: int) -> Decimal:
        """What one call with these token counts costs (installation currency)."""
        span = CanonicalSpan(
            trace_id="0" * 32, span_id="0" * 16, parent_span_id="", name="price", kind="client",
            start_time=self.at, end_time=self.at, duration_ms=0.0, status=SpanStatus.OK,
            org_id=org_id, provider=provider, request_model=model,
            input_tokens=tokens.get("input_tokens"),
            cache_read_tokens=tokens.get("cache_read_tokens"),
            cache_write_tokens=tokens.get("cache_write_tokens"))
        return self.price.price_span(span).total_cost

    def per_token(self, org_id: str, provider: str, model: str, **tokens: int) -> Decimal:
        """Cost of a call with these counts (each 10^6) divided by 10^6: a per-token price."""
        return self.cost(org_id, provider, model, **{k: v * _MTOK for k, v in tokens.items()}
                         ) / _MTOK


_PRICED_CHAT: Final = PRICED_CHAT
"""``cheaper_model``'s calls: chat and completion calls with a price (``llm_calls`` holds it
as the flag ``priced_chat``)."""
_SMALL: Final = f"ifNull(input_tokens, 0) + ifNull(output_tokens, 0) <= {SMALL_CALL_TOKENS}"
"""``batching``'s calls: small ones."""
_CENSUS_KEYS: Final = ("org_id", "project_id", "agent_id", "step", "operation", "provider",
                       "response_model", "request_model")
_CENSUS_NAMES: Final = (*_CENSUS_KEYS, "tool_name", "is_retry", "llm")
"""The census's group columns (``llm``: :data:`LLM_CALL`); the settled ``census_key`` holds
the same (:data:`~mentatlab.storage.settled.CENSUS_KEY_NAMES`, then the two flags)."""
assert _CENSUS_NAMES == (*CENSUS_KEY_NAMES, "is_retry", "llm")


def _census_hash(llm: str) -> str:
    return " + ".join(
        f"{m} * cityHash64({e})" for m, e in zip((1, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31),
                                                 (*_CENSUS_NAMES[:-1], llm), strict=True))


_CENSUS_TUPLE: Final = ", ".join((*_CENSUS_NAMES[:-1], LLM_CALL))
_CENSUS_HASH: Final = _census_hash(LLM_CALL)
"""The census's GROUP BY key: a 64-bit hash of its group columns, each ``cityHash64``
computed on the column's dictionary (``LowCardinality``), so the aggregation hashes one
integer instead of 11 columns (~2x cheaper at 10M spans; two groups colliding in 64 bits
is a 2⁻⁶⁴ event, as for prompt prefixes in decision 0013); ``any(tuple(...))`` names it.
Over ``llm_calls`` the same key with its ``llm`` column (``cityHash64`` of a ``Bool`` and a
``UInt8``, of a ``String`` and a ``LowCardinality(String)`` of one value are equal)."""
_CENSUS_COLUMNS: Final = ("census_key", "llm", "priced_chat", "status", "total_cost",
                          "trace_id", "trace_low", "tokens", "start_time")
"""The ``llm_calls`` columns the census reads
(:func:`~mentatlab.analytics.settled_calls.calls_from`)."""


def _census_sums(parts: SqlParts, cut: str, llm: str, priced: str = _PRICED_CHAT,
                 column: str = "trace_id", small: str = _SMALL) -> str:
    """The census's aggregates.

    ``llm``: whether a row is an LLM call; ``priced``: whether it is a ``cheaper_model``
    call; ``column``: see :func:`~mentatlab.analytics.sample_ids.low_ids_sql`; ``small``:
    whether it is a small call.
    """
    return f"""toInt64(countIf({priced})) AS num_calls,
    toInt64(countIf({priced} AND status = 'ok')) AS num_ok,
    sumIf(total_cost, {priced}) AS cost, {low_ids_sql(parts, cut, priced, column)},
    toInt64(countIf({small})) AS num_small, toInt64(count()) AS num_spans,
    toInt64(countIf(status != 'ok')) AS num_failed, sumIf(total_cost, status != 'ok')
        AS failed_cost,
    groupArrayIf(toUnixTimestamp64Milli(start_time), {small} AND {llm}) AS small_ms"""


def _census_names(key: str) -> tuple[str | int, ...]:
    """The :data:`_CENSUS_NAMES` values of a ``census_key``.

    storage/settled.py ``CENSUS_KEY``: ``<n>:<value>`` per string column (``n`` in bytes),
    then two digits.
    """
    raw = key.encode()
    out: list[str | int] = []
    at = 0
    for _ in CENSUS_KEY_NAMES:
        colon = raw.index(b":", at)
        end = colon + 1 + int(raw[at:colon])
        out.append(raw[colon + 1:end].decode())
        at = end
    return (*out, int(raw[at:at + 1]), int(raw[at + 1:at + 2]))


def _group_of(values: list[Any]) -> tuple[Any, ...]:
    """A census group's names as a dict key (its two flags as ``int``, Bool or UInt8)."""
    return (*values[:-2], int(values[-2]), int(values[-1]))


class _Reader:
    """What the kinds share: store, range and filters, prices, and one pass over the calls.

    The *census* groups every LLM call and every retry of the range by
    :data:`_CENSUS_KEYS`, ``tool_name``, ``is_retry`` and ``llm`` (whether it is an LLM
    call), through one hashed key (:data:`_CENSUS_HASH`; callers roll rows up in Python),
    with ``cheaper_model``'s sums, the small calls' start times (:attr:`small_ms`) and the
    retries' failures, so ``batching`` and ``failing_retries`` read only what can give a
    recommendation. One scan instead of four; whether any call carries a prompt prefix
    (``prompt_caching``) is a separate probe that stops at the first one
    (:meth:`has_prefixed`).
    """

    def __init__(self, store: SpanStore, params: QueryParams, pricer: _Pricer) -> None:
        self.store = store
        self.params = params
        self.pricer = pricer
        self._census: list[dict[str, Any]] | None = None
        self._num_spans: int | None = None
        self._smalls: pa.ChunkedArray | None = None
        self.census_parts = _where(params)
        self.small_ms: pa.ChunkedArray | None = None
        """Per census row, the start times (Unix ms) of its small LLM calls."""

    def num_spans(self) -> int:
        """Spans in the range meeting the filter, counted up to :data:`COUNT_CAP`."""
        if self._num_spans is None:
            parts = _where(self.params)
            self._num_spans = int(self.store.query_arrow(
                f"SELECT count() AS n FROM (SELECT 1 FROM spans WHERE {parts.where}"
                f" LIMIT {COUNT_CAP})", parts.binds).column("n")[0].as_py())
        return self._num_spans

    def has_prefixed(self) -> bool:
        """Whether an LLM call of the range carries a prompt prefix (a hash, not 0).

        No ``FINAL``: a version with a prefix only makes ``prompt_caching`` run its query,
        which reads the current versions.
        """
        parts = _where(self.params)
        return bool(self.store.query_arrow(
            f"SELECT count() AS n FROM (SELECT 1 FROM spans PREWHERE prompt_prefix_hash != 0"
            f" WHERE {parts.where} AND {LLM_CALL} LIMIT 1)", parts.binds
        ).column("n")[0].as_py())

    def census(self) -> list[dict[str, Any]]:
        """The census rows (read on first use)."""
        if self._census is None:
            parts = self.census_parts
            cut = sample_cut(self.num_spans())
            source = calls_from(self.store, self.params, parts, _CENSUS_COLUMNS, retries=True)
            if source is None:  # raw spans: the same rows
                columns = ", ".join(f"k.{n} AS {name}"
                                    for n, name in enumerate(_CENSUS_NAMES, 1))
                sql = f"""SELECT {columns}, * EXCEPT (k)
FROM (SELECT {_CENSUS_HASH} AS hk, any(tuple({_CENSUS_TUPLE})) AS k,
    {_census_sums(parts, cut, LLM_CALL)}
FROM spans FINAL WHERE {parts.where} AND ({LLM_CALL_FAST} OR is_retry)
GROUP BY hk) {FINAL_SETTINGS}"""
            else:  # settled calls and the unsettled tail: the same rows, one narrow key
                column = "trace_low" if cut <= TRACE_LOW_CUT else "trace_id"
                sums = _census_sums(parts, cut, "llm", "priced_chat", column,
                                    f"tokens <= {SMALL_CALL_TOKENS}")
                sql = f"""SELECT census_key, {sums}
FROM {source}
GROUP BY census_key {FINAL_SETTINGS}"""
            table = self.store.query_arrow(sql, parts.binds)
            if "census_key" in table.column_names:
                keys = [_census_names(k) for k in table.column("census_key").to_pylist()]
                table = table.drop_columns(["census_key"])
                for n, name in enumerate(_CENSUS_NAMES):
                    table = table.append_column(name, pa.array([k[n] for k in keys]))
            self.small_ms = table.column("small_ms")
            self._census = table.drop_columns(["small_ms"]).to_pylist()
        return self._census

    @property
    def smalls(self) -> pa.ChunkedArray:
        """Per census row, its small LLM calls in full (see :func:`burst_groups`).

        Read apart from the census (one more pass over the small calls): ``batching`` needs
        only their start times (:attr:`small_ms`) and reads the sums of the groups with
        enough bursts again (:func:`_batching_sql`).
        """
        if self._smalls is None:
            census = self.census()
            parts = _where(self.params)
            table = self.store.query_arrow(f"""SELECT {_CENSUS_HASH} AS hk,
    any(tuple({_CENSUS_TUPLE})) AS k,
    groupArray((toUnixTimestamp64Milli(start_time), ifNull(input_tokens, 0),
                ifNull(output_tokens, 0), ifNull(cache_read_tokens, 0), token_cost,
                NOT startsWith(price_source, 'genai-prices'))) AS smalls
FROM spans FINAL WHERE {parts.where} AND {LLM_CALL_FAST} AND {_SMALL}
GROUP BY hk {FINAL_SETTINGS}""", parts.binds)
            index = {_group_of(list(k.values())): n
                     for n, k in enumerate(table.column("k").to_pylist())}
            self._smalls = table.column("smalls").take(pa.array(
                [index.get(_group_of([row[c] for c in _CENSUS_NAMES])) for row in census],
                pa.int64()))
        return self._smalls

    def calls(self) -> list[dict[str, Any]]:
        """The census rows of LLM calls."""
        return [row for row in self.census() if row["llm"]]


# ------------------------------------------------------------------ cheaper_model

def _cheaper_model(reader: _Reader) -> list[tuple[Recommendation, Decimal]]:
    store, parts = reader.store, reader.census_parts
    census = reader.calls()
    calls = f"{parts.where} AND {LLM_CALL} AND {_PRICED_CHAT}"
    groups: dict[tuple[str, ...], dict[str, Any]] = {}
    for row in census:
        if not row["num_calls"]:
            continue
        model = row["response_model"] or row["request_model"]
        key: tuple[str, ...] = (row["org_id"], row["project_id"], row["agent_id"], row["step"],
                                str(row["operation"]), model, row["provider"])
        group = groups.setdefault(key, {"provider": row["provider"], "model": model,
                                        "num_calls": 0, "num_ok": 0, "cost": Decimal(0),
                                        "low_ids": [], "num_low": 0})
        group["num_calls"] += row["num_calls"]
        group["num_ok"] += row["num_ok"]
        group["cost"] += Decimal(row["cost"])
        group["low_ids"] = sorted([*group["low_ids"], *row["low_ids"]])[:10]
        group["num_low"] += row["num_low"]
    scopes: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for key in sorted(groups):
        if groups[key]["num_calls"] >= MIN_CALLS_PER_MODEL:
            scopes[key[:5]].append(groups[key])
    found: list[tuple[tuple[str, ...], dict[str, Any], dict[str, Any], tuple[float, float],
                      Decimal]] = []
    for (org, project, agent, step, op), rows in scopes.items():
        for e in rows:
            best: tuple[Decimal, dict[str, Any], Any] | None = None
            cpc_e = Decimal(e["cost"]) / e["num_calls"]
            for c in rows:
                cpc_c = Decimal(c["cost"]) / c["num_calls"]
                if c is e or cpc_c >= cpc_e:
                    continue
                test = _noninferior(c["num_ok"], c["num_calls"], e["num_ok"], e["num_calls"])
                if test is None:
                    continue
                saving = _q(Decimal(e["cost"]) - Decimal(c["cost"]) * e["num_calls"]
                            / c["num_calls"])
                if best is None or saving > best[0]:
                    best = (saving, c, test)
            if best is not None and best[0] > 0:
                found.append(((org, project, agent, step, op, e["model"], e["provider"]),
                              e, best[1], best[2], best[0]))
    samples = {f[0]: samples_of(f[1]["low_ids"]) for f in found
               if f[1]["num_low"] >= min(10, f[1]["num_calls"])}
    samples.update(lowest_trace_ids(store, calls, parts.binds, (
        "org_id", "project_id", "agent_id", "step", "operation", MODEL_EXPR, "provider"),
        [f[0] for f in found if f[0] not in samples]))
    out = []
    for key, e, c, (z, p), saving in found:
        org, project, agent, step, op = key[:5]
        scope = {"org_id": org, "project_id": project, "agent_id": agent, "step": step,
                 "operation": op}
        evidence = {
            "quality_basis": "status",
            "model": e["model"], "provider": e["provider"],
            "cheaper_model": c["model"], "cheaper_provider": c["provider"],
            "num_calls": e["num_calls"], "num_successes": e["num_ok"],
            "success_rate": e["num_ok"] / e["num_calls"],
            "cheaper_num_calls": c["num_calls"], "cheaper_num_successes": c["num_ok"],
            "cheaper_success_rate": c["num_ok"] / c["num_calls"],
            "cost_per_call": _q(Decimal(e["cost"]) / e["num_calls"]),
            "cheaper_cost_per_call": _q(Decimal(c["cost"]) / c["num_calls"]),
            "test": "two-proportion non-inferiority (statsmodels test_proportions_2indep, "
                    "agresti-caffo, one-sided)",
            "margin": NONINFERIORITY_MARGIN, "alpha": ALPHA, "statistic": z, "p_value": p,
        }
        out.append((Recommendation(
            kind="cheaper_model",
            title=f"Use {c['model']} instead of {e['model']} for "
                  f"{agent or 'calls'} ({op}): it succeeds as often and costs less",
            scope=scope, evidence=evidence, sample_trace_ids=samples.get(key, []),
            saving_in_window=saving, saving_per_month=Decimal(0),
            saving_basis="calls of the dearer model × (its cost per call − the cheaper "
                         "model's cost per call), as observed"), saving))
    return out


def _noninferior(ok_c: int, n_c: int, ok_e: int, n_e: int) -> tuple[float, float] | None:
    """(statistic, p-value) when C is non-inferior to E within the margin, else None."""
    from statsmodels.stats.proportion import test_proportions_2indep  # lazy: heavy import

    if min(n_c, n_e) < MIN_CALLS_PER_MODEL:
        return None
    result = test_proportions_2indep(ok_c, n_c, ok_e, n_e, value=-NONINFERIORITY_MARGIN,
                                     method="agresti-caffo", compare="diff",
                                     alternative="larger")
    z, p = float(result.statistic), float(result.pvalue)
    if math.isnan(p) or p >= ALPHA:
        return None
    return z, p


# ------------------------------------------------------------------ prompt_caching

def min_cacheable_tokens(model: str) -> int:
    """The smallest prompt (tokens) ``model`` is cached from (see the table above)."""
    lowered = model.lower()
    for pattern, tokens in MIN_CACHEABLE_TOKENS_BY_MODEL:
        if fnmatch.fnmatchcase(lowered, pattern):
            return tokens
    return MIN_CACHEABLE_TOKENS


def _prompt_caching(reader: _Reader) -> list[tuple[Recommendation, Decimal]]:
    store, params, pricer = reader.store, reader.params, reader.pricer
    if not reader.has_prefixed():
        return []  # no call carries a prompt prefix
    parts = _where(params)
    keys = "org_id, project_id, agent_id, provider, model, h"
    sql = f"""WITH calls AS (
    SELECT org_id, project_id, agent_id, provider, {MODEL_EXPR} AS model,
        prompt_prefix_hash AS h, prompt_prefix_chars AS pchars, trace_id, start_time,
        ifNull(input_tokens, 0) AS inp, ifNull(cache_read_tokens, 0) AS cr,
        intDiv(ifNull(input_tokens, 0) * prompt_prefix_chars, greatest(prompt_chars, 1))
            AS cacheable
    FROM spans FINAL
    WHERE {parts.where} AND {LLM_CALL} AND prompt_prefix_hash != 0),
ordered AS (
    SELECT *, row_number() OVER w AS rn, lagInFrame(start_time) OVER w AS prev
    FROM calls
    WINDOW w AS (PARTITION BY {keys} ORDER BY start_time, trace_id
                 ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)),
marked AS (
    SELECT *, rn > 1 AND toUnixTimestamp64Milli(start_time) - toUnixTimestamp64Milli(prev)
        <= {CACHE_TTL_MS} AS warm FROM ordered)
SELECT {keys}, any(pchars) AS prefix_chars, toInt64(count()) AS num_calls,
    toInt64(countIf(warm)) AS num_warm, toInt64(sum(inp)) AS input_tokens,
    toInt64(sum(cr)) AS cache_read_tokens, toInt64(sumIf(cacheable, warm)) AS warm_cacheable,
    toInt64(sumIf(cacheable, NOT warm)) AS cold_cacheable, groupArraySorted(10)(trace_id)
    AS samples
FROM marked GROUP BY {keys}
HAVING num_warm >= {MIN_WARM_CALLS} AND cache_read_tokens < {MAX_CACHE_READ_SHARE} * input_tokens
    AND warm_cacheable >= {MIN_CACHEABLE_TOKENS} * num_warm
ORDER BY {keys} {FINAL_SETTINGS}"""
    out = []
    for row in store.query_arrow(sql, parts.binds).to_pylist():
        org, provider, model = row["org_id"], row["provider"], row["model"]
        minimum = min_cacheable_tokens(model)
        if row["warm_cacheable"] < minimum * row["num_warm"]:
            continue  # below what this model caches
        input_price = pricer.per_token(org, provider, model, input_tokens=1)
        read_price = pricer.per_token(org, provider, model, input_tokens=1, cache_read_tokens=1)
        write_price = pricer.per_token(org, provider, model, input_tokens=1,
                                       cache_write_tokens=1)
        saving = _q(row["warm_cacheable"] * (input_price - read_price)
                    - row["cold_cacheable"] * (write_price - input_price))
        if saving <= 0:
            continue  # no cache price for this model (or writes cost more than reads save)
        evidence = {
            "prefix_hash": f"{int(row['h']):016x}", "prefix_chars": row["prefix_chars"],
            "num_calls": row["num_calls"], "num_warm_calls": row["num_warm"],
            "input_tokens": row["input_tokens"], "cache_read_tokens": row["cache_read_tokens"],
            "cache_read_share": row["cache_read_tokens"] / row["input_tokens"]
            if row["input_tokens"] else 0.0,
            "warm_cacheable_tokens": row["warm_cacheable"],
            "cold_cacheable_tokens": row["cold_cacheable"],
            "input_price_per_mtok": _q(input_price * _MTOK),
            "cache_read_price_per_mtok": _q(read_price * _MTOK),
            "cache_write_price_per_mtok": _q(write_price * _MTOK),
            "cache_ttl_ms": CACHE_TTL_MS, "min_cacheable_tokens": minimum,
        }
        out.append((Recommendation(
            kind="prompt_caching",
            title=f"Cache the repeated prompt prefix of {model}: {row['num_calls']} calls "
                  "repeat it with almost no cache reads",
            scope={"org_id": org, "project_id": row["project_id"],
                   "agent_id": row["agent_id"], "provider": provider, "model": model},
            evidence=evidence, sample_trace_ids=samples_of(row["samples"]),
            saving_in_window=saving, saving_per_month=Decimal(0),
            saving_basis="warm calls' cacheable tokens × (input − cache-read price) − cold "
                         "calls' cacheable tokens × (cache-write − input price)"), saving))
    return out


# ------------------------------------------------------------------ context_trimming

def _context_trimming(reader: _Reader) -> list[tuple[Recommendation, Decimal]]:
    store, params, pricer = reader.store, reader.params, reader.pricer
    parts = _where(params)
    calls = session_calls_sql(store, params, parts, MIN_RUNS, reader.num_spans(),
                              COUNT_CAP)
    if calls is None:
        return []  # no session has MIN_RUNS runs
    growing = f"slope >= {MIN_SLOPE_TOKENS_PER_RUN} AND r >= {MIN_R}"
    sql = f"""WITH runs AS (
    SELECT org_id, project_id, session_id, if(run_id != '', run_id, trace_id) AS run,
        min(start_time) AS run_start, min(trace_id) AS a_trace,
        toInt64(sum(ifNull(input_tokens, 0))) AS inp,
        argMax(agent_id, ifNull(input_tokens, 0)) AS agent,
        argMax(provider, ifNull(input_tokens, 0)) AS prov,
        argMax(model, ifNull(input_tokens, 0)) AS mdl
    FROM ({calls})
    GROUP BY org_id, project_id, session_id, run),
indexed AS (
    SELECT *, row_number() OVER w AS idx, first_value(inp) OVER w AS first_inp
    FROM runs
    WINDOW w AS (PARTITION BY org_id, project_id, session_id ORDER BY run_start, run
                 ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)),
sessions AS (
    SELECT org_id, project_id, session_id, toInt64(count()) AS num_runs,
        tupleElement(simpleLinearRegression(toFloat64(idx), toFloat64(inp)), 1) AS slope,
        corr(toFloat64(idx), toFloat64(inp)) AS r,
        toInt64(sum(greatest(inp - first_inp, 0))) AS excess, toInt64(sum(inp)) AS total_inp,
        argMax(agent, inp) AS agent_id, argMax(prov, inp) AS provider,
        argMax(mdl, inp) AS model, min(a_trace) AS a_trace
    FROM indexed GROUP BY org_id, project_id, session_id
    HAVING num_runs >= {MIN_RUNS})
SELECT org_id, project_id, agent_id, provider, model, toInt64(count()) AS num_sessions,
    toInt64(countIf({growing})) AS num_growing, avgIf(slope, {growing}) AS mean_slope,
    minIf(r, {growing}) AS min_r, toInt64(sumIf(excess, {growing})) AS excess_tokens,
    toInt64(sumIf(total_inp, {growing})) AS input_tokens,
    toInt64(sumIf(num_runs, {growing})) AS num_runs,
    groupArraySortedIf(10)(session_id, {growing}) AS sessions,
    groupArraySortedIf(10)(a_trace, {growing}) AS samples
FROM sessions GROUP BY org_id, project_id, agent_id, provider, model
HAVING num_growing >= {MIN_GROWING_SESSIONS}
ORDER BY org_id, project_id, agent_id, provider, model {FINAL_SETTINGS}"""
    out = []
    for row in store.query_arrow(sql, parts.binds).to_pylist():
        org, provider, model = row["org_id"], row["provider"], row["model"]
        input_price = pricer.per_token(org, provider, model, input_tokens=1)
        saving = _q(row["excess_tokens"] * input_price)
        if saving <= 0:
            continue  # an unpriced model: no number, no recommendation
        evidence = {
            "num_sessions": row["num_sessions"], "num_growing_sessions": row["num_growing"],
            "num_runs": row["num_runs"],
            "mean_slope_tokens_per_run": row["mean_slope"], "min_r": row["min_r"],
            "input_tokens": row["input_tokens"],
            "excess_input_tokens": row["excess_tokens"],
            "input_price_per_mtok": _q(input_price * _MTOK),
            "sample_session_ids": samples_of(row["sessions"]),
            "thresholds": {"min_runs": MIN_RUNS,
                           "min_slope_tokens_per_run": MIN_SLOPE_TOKENS_PER_RUN,
                           "min_r": MIN_R},
        }
        out.append((Recommendation(
            kind="context_trimming",
            title=f"Trim the context of {row['agent_id'] or model}: input grows by "
                  f"~{row['mean_slope']:.0f} tokens per run in {row['num_growing']} sessions",
            scope={"org_id": org, "project_id": row["project_id"],
                   "agent_id": row["agent_id"], "provider": provider, "model": model},
            evidence=evidence, sample_trace_ids=samples_of(row["samples"]),
            saving_in_window=saving, saving_per_month=Decimal(0),
            saving_basis="upper bound: every input token above each growing session's "
                         "first run, at the model's input price"), saving))
    return out


# ------------------------------------------------------------------ batching

_BATCH_KEYS: Final = ("org_id", "project_id", "agent_id", "operation", "provider", MODEL_EXPR)
"""``batching``: the key of a group of calls (names :data:`_BATCH_NAMES` in the query)."""
_BATCH_NAMES: Final = ("org_id", "project_id", "agent_id", "op", "provider", "model")


def _batching_sql(where: str) -> str:
    """The sample trace ids of the burst calls meeting ``where``, per key.

    The window query ``batching`` ran before the census (:func:`burst_counts` computes the
    same marks from the census's start times): a call is in a burst when the previous or
    next small call of its key (by start ms) starts within :data:`BURST_GAP_MS` of it; only
    start times decide that, so the window sorts by the millisecond alone. Read for the
    groups with :data:`MIN_BURST_CALLS` burst calls only, for their sums and ``samples``
    (the lowest ids of burst calls).
    """
    keys = "org_id, project_id, agent_id, op, provider, model"
    gap = BURST_GAP_MS
    return f"""WITH calls AS (
    SELECT org_id, project_id, agent_id, operation AS op, provider,
        {MODEL_EXPR} AS model, toUnixTimestamp64Milli(start_time) AS t_ms,
        ifNull(input_tokens, 0) AS inp, ifNull(output_tokens, 0) AS outp,
        ifNull(cache_read_tokens, 0) AS cr, token_cost,
        NOT startsWith(price_source, 'genai-prices') AS other, trace_id
    FROM spans FINAL
    WHERE {where} AND {LLM_CALL}
        AND ifNull(input_tokens, 0) + ifNull(output_tokens, 0) <= {SMALL_CALL_TOKENS}),
marked AS (
    SELECT *, ifNull(t_ms - lagInFrame(toNullable(t_ms)) OVER w <= {gap}, 0)
        OR ifNull(leadInFrame(toNullable(t_ms)) OVER w - t_ms <= {gap}, 0) AS burst
    FROM calls
    WINDOW w AS (PARTITION BY {keys} ORDER BY t_ms ROWS BETWEEN 1 PRECEDING AND 1 FOLLOWING))
SELECT {keys}, toInt64(count()) AS num_small, toInt64(countIf(burst)) AS num_burst,
    toInt64(sumIf(inp, burst)) AS input_tokens, toInt64(sumIf(outp, burst)) AS output_tokens,
    toInt64(sumIf(cr, burst)) AS cache_read_tokens, sumIf(token_cost, burst) AS token_cost,
    toInt64(countIf(burst AND other)) AS num_other,
    groupArraySortedIf(10)(trace_id, burst) AS samples
FROM marked GROUP BY {keys}
HAVING num_burst >= {MIN_BURST_CALLS}
ORDER BY {keys} {FINAL_SETTINGS}"""


def _batch_candidates(reader: _Reader) -> list[tuple[str, ...]]:
    """Keys (as :data:`_BATCH_KEYS`) with enough small calls of a model with a batch price.

    The other groups cannot give a recommendation (fewer small calls than
    :data:`MIN_BURST_CALLS`, or no batch price to compare with), so their bursts are not
    worked out (a group's bursts depend on its own calls only).
    """
    small: dict[tuple[str, ...], int] = defaultdict(int)
    for row in reader.calls():
        model = row["response_model"] or row["request_model"]
        small[(row["org_id"], row["project_id"], row["agent_id"], str(row["operation"]),
               row["provider"], model)] += row["num_small"]
    catalog, at = reader.pricer.price.catalog, reader.pricer.at
    priced: dict[tuple[str, str], bool] = {}
    out = []
    for key, num_small in sorted(small.items()):
        if num_small < MIN_BURST_CALLS:
            continue
        provider, model = key[4], key[5]
        if (provider, model) not in priced:
            priced[provider, model] = (
                catalog.lookup(provider, model, at) is not None
                and catalog.lookup_variant(provider, model, at, {"processing": "batch"})
                is not None)
        if priced[provider, model]:
            out.append(key)
    return out


def _batching(reader: _Reader) -> list[tuple[Recommendation, Decimal]]:
    store, params, pricer = reader.store, reader.params, reader.pricer
    candidates = _batch_candidates(reader)
    if not candidates:
        return []
    keep = set(candidates)
    row_keys = []
    for row in reader.census():
        key: tuple[str, ...] = (row["org_id"], row["project_id"], row["agent_id"],
                                str(row["operation"]), row["provider"],
                                row["response_model"] or row["request_model"])
        row_keys.append(key if row["llm"] and key in keep else None)
    assert reader.small_ms is not None
    counts = burst_counts(reader.small_ms, row_keys, BURST_GAP_MS, MIN_BURST_CALLS)
    if not counts:
        return []
    # the sums and samples of the groups with enough bursts: the window query over their
    # calls marks the bursts burst_counts marked (tests/analytics/test_bursts.py)
    parts = _where(params)
    wanted = SqlParts(binds=dict(parts.binds))
    where = f"{parts.where} AND {keys_in(wanted, _BATCH_KEYS, counts)}"
    bursts = {key: row for row in store.query_arrow(_batching_sql(where),
                                                   wanted.binds).to_pylist()
              if (key := tuple(str(row[c]) for c in _BATCH_NAMES)) in counts}
    found = []
    catalog = pricer.price.catalog
    for key in sorted(bursts):
        row = bursts[key]
        provider, model, n = row["provider"], row["model"], row["num_burst"]
        if row["num_other"]:
            continue  # priced by pricing.toml (or unpriced): no batch price we know
        standard = catalog.lookup(provider, model, pricer.at)
        batch = catalog.lookup_variant(provider, model, pricer.at, {"processing": "batch"})
        if standard is None or batch is None:
            continue  # the pricing data has no batch price: do not invent one
        average = TokenUsage(input_tokens=row["input_tokens"] // n,
                             output_tokens=row["output_tokens"] // n,
                             cache_read_tokens=row["cache_read_tokens"] // n or None)
        standard_usd = standard.card.cost(average).total_usd
        if not standard_usd:
            continue
        ratio = batch.card.cost(average).total_usd / standard_usd
        saving = _q(Decimal(row["token_cost"]) * (1 - ratio))
        if saving <= 0:
            continue
        evidence = {
            "num_small_calls": row["num_small"], "num_burst_calls": n,
            "input_tokens": row["input_tokens"], "output_tokens": row["output_tokens"],
            "token_cost": _q(Decimal(row["token_cost"])),
            "batch_price_ratio": float(ratio), "batch_price_source": batch.source,
            "small_call_tokens": SMALL_CALL_TOKENS, "burst_gap_ms": BURST_GAP_MS,
        }
        found.append((Recommendation(
            kind="batching",
            title=f"Batch the small {row['op']} calls of {model}: {n} calls in bursts",
            scope={"org_id": row["org_id"], "project_id": row["project_id"],
                   "agent_id": row["agent_id"], "operation": row["op"], "provider": provider,
                   "model": model},
            evidence=evidence, sample_trace_ids=samples_of(row["samples"]),
            saving_in_window=saving, saving_per_month=Decimal(0),
            saving_basis="burst calls' token cost × (1 − batch / standard price of their "
                         "average call), if sent through the provider's batch API (answers "
                         "within 24 h)"), saving))
    return found


# ------------------------------------------------------------------ failing_retries

_RETRY_KEYS: Final = ("org_id", "project_id", "agent_id", "operation", "tool_name", MODEL_EXPR)
"""``failing_retries``: the key of a group of retries."""


def _retry_candidates(reader: _Reader) -> list[tuple[str, ...]]:
    """Keys (org, project, agent, operation, tool, model) whose retries mostly fail.

    From the census: the counts and failed cost the retries query's ``HAVING`` and saving
    test, so it reads only these groups (whole: the same rows for them).
    """
    groups: dict[tuple[str, ...], list[Any]] = {}
    for row in reader.census():
        if not row["is_retry"]:
            continue
        key = (row["org_id"], row["project_id"], row["agent_id"], str(row["operation"]),
               row["tool_name"], row["response_model"] or row["request_model"])
        group = groups.setdefault(key, [0, 0, Decimal(0)])
        group[0] += row["num_spans"]
        group[1] += row["num_failed"]
        group[2] += Decimal(row["failed_cost"])
    return [key for key, (n, failed, cost) in sorted(groups.items())
            if n >= MIN_RETRIES and failed > MIN_RETRY_FAILURE_RATE * n and _q(cost) > 0]


def _failing_retries(reader: _Reader) -> list[tuple[Recommendation, Decimal]]:
    store, params = reader.store, reader.params
    candidates = _retry_candidates(reader)
    if not candidates:
        return []
    parts = _where(params)
    keys = "org_id, project_id, agent_id, op, tool_name, model"
    failed = "status != 'ok'"
    sql = f"""SELECT org_id, project_id, agent_id, toString(operation) AS op, tool_name,
    {MODEL_EXPR} AS model, toInt64(count()) AS num_retries,
    toInt64(countIf({failed})) AS num_failed, sumIf(total_cost, {failed}) AS failed_cost,
    sum(total_cost) AS retry_cost, topKIf(3)(error_type, {failed}) AS error_types,
    {low_ids_sql(parts, sample_cut(reader.num_spans()), failed)}
FROM spans FINAL
WHERE {parts.where} AND is_retry AND {keys_in(parts, _RETRY_KEYS, candidates)}
GROUP BY {keys}
HAVING num_retries >= {MIN_RETRIES} AND num_failed > {MIN_RETRY_FAILURE_RATE} * num_retries
ORDER BY {keys} {FINAL_SETTINGS}"""
    rows = [row for row in store.query_arrow(sql, parts.binds).to_pylist()
            if _q(Decimal(row["failed_cost"])) > 0]
    names = ("org_id", "project_id", "agent_id", "op", "tool_name", "model")
    samples = lowest_trace_ids(
        store, f"{parts.where} AND is_retry AND {failed}", parts.binds, _RETRY_KEYS,
        [tuple(str(r[n]) for n in names) for r in rows
         if r["num_low"] < min(10, r["num_failed"])])
    out = []
    for row in rows:
        saving = _q(Decimal(row["failed_cost"]))
        key = tuple(str(row[n]) for n in names)
        what = row["tool_name"] or row["model"] or row["op"]
        evidence = {
            "num_retries": row["num_retries"], "num_failed_retries": row["num_failed"],
            "retry_failure_rate": row["num_failed"] / row["num_retries"],
            "failed_retry_cost": saving, "retry_cost": _q(Decimal(row["retry_cost"])),
            "error_types": [e for e in row["error_types"] if e],
        }
        out.append((Recommendation(
            kind="failing_retries",
            title=f"Stop retrying {what}: {row['num_failed']} of {row['num_retries']} "
                  "retries failed",
            scope={"org_id": row["org_id"], "project_id": row["project_id"],
                   "agent_id": row["agent_id"], "operation": row["op"],
                   "tool_name": row["tool_name"], "model": row["model"]},
            evidence=evidence,
            sample_trace_ids=samples.get(key, samples_of(row["low_ids"])),
            saving_in_window=saving, saving_per_month=Decimal(0),
            saving_basis="what the failed retries cost (their own spans)"), saving))
    return out


_Kind = Callable[[_Reader], list[tuple[Recommendation, Decimal]]]
_KIND_QUERIES: Final[Mapping[str, _Kind]] = {
    "cheaper_model": _cheaper_model, "prompt_caching": _prompt_caching,
    "context_trimming": _context_trimming, "batching": _batching,
    "failing_retries": _failing_retries,
}
assert tuple(_KIND_QUERIES) == KINDS


def list_recommendations(store: SpanStore, params: QueryParams, price: Price,
                         kinds: Sequence[str] = KINDS) -> Recommendations:
    """Every recommendation of ``kinds`` over the range and filters (see the module doc).

    Args:
        store: the span store.
        params: time range and filters (tenancy included); group-by and bucket are ignored.
        price: the ``price`` processor in force (prices, currency, discounts).
        kinds: which kinds to compute (a subset of :data:`KINDS`).

    Returns:
        The recommendations, largest monthly saving first, in the pricing currency.

    Raises:
        ValidationError: a kind outside :data:`KINDS` (field ``kind``).
        QueryTimeout: a query ran past the store's time limit.
        StoreError: a query failed.
    """
    from mentatlab.errors import ValidationError

    for kind in kinds:
        if kind not in _KIND_QUERIES:
            raise ValidationError("kind", f"Expected one of {list(KINDS)}, got {kind!r}")
    window = params.time_range.end - params.time_range.start
    window_days = window / timedelta(days=1)
    reader = _Reader(store, params, _Pricer(price, params.time_range.end))
    found: list[Recommendation] = []
    for kind in kinds:
        for rec, saving in _KIND_QUERIES[kind](reader):
            monthly = _q(saving * DAYS_PER_MONTH * 86_400
                         / Decimal(int(window.total_seconds())))
            found.append(Recommendation(
                rec.kind, rec.title, rec.scope, rec.evidence, rec.sample_trace_ids,
                rec.saving_in_window, monthly, rec.saving_basis))
    found.sort(key=lambda r: (-r.saving_per_month, r.kind, sorted(r.scope.items())))
    return Recommendations(
        currency=price.pricing.currency.code, window_days=window_days,
        total_saving_per_month=sum((r.saving_per_month for r in found), Decimal(0)),
        recommendations=found)
