"""Recommendations on constructed spans, on both backends, savings worked out by hand.

Range: 3 days (so a month is 10 windows). Org acme, project p; one agent per case, each
built to trigger one kind (T) or built NOT to (N); prices of genai-prices 0.2.5:

* cheaper_model T ``triage``: gpt-4o 100 calls, 95 ok, 0.01 each; gpt-4o-mini 100 calls,
  96 ok, 0.001 each → saving 100 × (0.01 − 0.001) = 0.90, a month 9.00.
  N ``router``: the same, but gpt-4o-mini succeeds 70 times in 100; N ``freebie``: the
  cheaper model is an unpriced one (cost 0 because no price is known, not free).
* prompt_caching T ``writer`` (claude-sonnet-4: input $3, cache read $0.30, cache write
  $3.75 per MTok): 12 calls a minute apart with one prefix, 4,000 input tokens, prefix
  4,096 of 8,192 chars → 2,000 cacheable tokens each; 11 warm, 1 cold:
  11 × 2000 × 2.70e-6 − 2000 × 0.75e-6 = 0.0594 − 0.0015 = 0.0579, a month 0.579.
  N ``reader``: the same with 3,000 cache-read tokens a call; N ``slow``: 10 min apart;
  N ``haiku``: claude-haiku-4-5, which caches prompts of 4,096 tokens or more only.
* context_trimming T ``chat`` (gpt-4o, input $2.50/MTok): 3 sessions of 5 runs with
  1,000, 1,500, ..., 3,000 input tokens (slope 500, r 1); excess 0+500+...+2000 = 5,000
  a session, 15,000 × 2.5e-6 = 0.0375, a month 0.375. N ``steady``: 1,000 every run.
* batching T ``tagger``: 120 gpt-4o-mini calls of 200 + 50 tokens 100 ms apart; token cost
  200 × 0.15e-6 + 50 × 0.6e-6 = 0.00006 each, 0.0072 in all; batch price half →
  0.0036, a month 0.036. N ``spaced``: 5 s apart; N ``local``: a model without prices.
* failing_retries T ``fetcher``: 20 retries of tool ``search``, 15 failed, 0.002 each →
  0.03, a month 0.30. N ``fetcher2``: 10 of 20 failed (half is not "mostly").
* globex (another org) has failing retries too: not in acme's answer.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import count
from typing import Any

import pytest
from scipy.stats import linregress
from statsmodels.stats.proportion import test_proportions_2indep as noninferiority_test

from mentatlab.analytics.query import QueryParams, TimeRange
from mentatlab.analytics.recommendations import (
    NONINFERIORITY_MARGIN,
    Recommendation,
    list_recommendations,
)
from mentatlab.errors import ValidationError
from mentatlab.model.span import CanonicalSpan, Operation, SpanStatus
from mentatlab.pipeline.price import Price
from mentatlab.pricing.pricing_file import Currency, PricingConfig
from mentatlab.storage.base import SpanStore

T0 = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)
RANGE = TimeRange(T0, T0 + timedelta(days=3))
ACME = {"org_id": "acme"}
_ids = count(1)
PREFIX_HASH = 0x1234_5678_9ABC_DEF0


def _span(start: datetime, *, agent: str, org: str = "acme", ok: bool = True,
          trace: str | None = None, **kw: Any) -> CanonicalSpan:
    n = next(_ids)
    fields: dict[str, Any] = dict(
        trace_id=trace or f"{n:032x}", span_id=f"{n:016x}", parent_span_id="", name="call",
        kind="client", start_time=start, end_time=start + timedelta(milliseconds=50),
        duration_ms=50.0, status=SpanStatus.OK if ok else SpanStatus.ERROR, org_id=org,
        project_id="p", agent_id=agent, operation=Operation.CHAT, ingested_at_ns=1)
    fields.update(kw)
    return CanonicalSpan(**fields)


def _calls(agent: str, model: str, n: int, n_ok: int, cost: str, start: datetime,
           gap: timedelta, provider: str = "openai", **kw: Any) -> list[CanonicalSpan]:
    return [_span(start + i * gap, agent=agent, ok=i < n_ok, provider=provider,
                  request_model=model, total_cost=Decimal(cost), token_cost=Decimal(cost),
                  **kw) for i in range(n)]


def build() -> list[CanonicalSpan]:
    big = dict(input_tokens=2000, output_tokens=100)
    minute, day = timedelta(minutes=1), timedelta(days=1)
    spans: list[CanonicalSpan] = []
    # cheaper_model
    spans += _calls("triage", "gpt-4o", 100, 95, "0.01", T0, minute, **big)
    spans += _calls("triage", "gpt-4o-mini", 100, 96, "0.001", T0 + day, minute, **big)
    spans += _calls("router", "gpt-4o", 100, 95, "0.01", T0, minute, **big)
    spans += _calls("router", "gpt-4o-mini", 100, 70, "0.001", T0 + day, minute, **big)
    spans += _calls("freebie", "gpt-4o", 100, 95, "0.01", T0, minute, **big)
    spans += _calls("freebie", "llama-self-hosted", 100, 96, "0", T0 + day, minute,
                    provider="", price_source="unpriced", **big)
    # prompt_caching
    cached = dict(input_tokens=4000, output_tokens=100, prompt_prefix_hash=PREFIX_HASH,
                  prompt_prefix_chars=4096, prompt_chars=8192)
    spans += _calls("writer", "claude-sonnet-4", 12, 12, "0.012", T0, minute,
                    provider="anthropic", **cached)
    spans += _calls("reader", "claude-sonnet-4", 12, 12, "0.012", T0, minute,
                    provider="anthropic", cache_read_tokens=3000, **cached)
    spans += _calls("slow", "claude-sonnet-4", 12, 12, "0.012", T0, 10 * minute,
                    provider="anthropic", **cached)
    spans += _calls("haiku", "claude-haiku-4-5", 12, 12, "0.012", T0, minute,
                    provider="anthropic", **cached)  # 2,000 < the 4,096 Haiku 4.5 caches
    # context_trimming: a session's runs are traces, an hour apart
    for agent, step in (("chat", 500), ("steady", 0)):
        for s in range(3):
            for run in range(5):
                spans.append(_span(T0 + timedelta(hours=run, minutes=s), agent=agent,
                                   provider="openai", request_model="gpt-4o",
                                   session_id=f"{agent}-s{s}", input_tokens=1000 + step * run,
                                   output_tokens=100, total_cost=Decimal("0.01")))
    # batching
    small = dict(input_tokens=200, output_tokens=50, price_source="genai-prices@0.2.5:x")
    spans += _calls("tagger", "gpt-4o-mini", 120, 120, "0.00006", T0 + 2 * day,
                    timedelta(milliseconds=100), **small)
    spans += _calls("spaced", "gpt-4o-mini", 120, 120, "0.00006", T0 + 2 * day,
                    timedelta(seconds=5), **small)
    spans += _calls("local", "llama-self-hosted", 120, 120, "0", T0 + 2 * day,
                    timedelta(milliseconds=100), provider="",
                    **{**small, "price_source": "unpriced"})
    # failing_retries
    tool = dict(operation=Operation.TOOL, tool_name="search", is_retry=True, attempt=2,
                total_cost=Decimal("0.002"))
    for agent, n_ok in (("fetcher", 5), ("fetcher2", 10)):
        spans += [_span(T0 + i * minute, agent=agent, ok=i < n_ok, **tool) for i in range(20)]
    spans += [_span(T0 + i * minute, agent="fetcher", org="globex", ok=False, **tool)
              for i in range(20)]
    return spans


@pytest.fixture(scope="module")
def spans() -> list[CanonicalSpan]:
    """Overrides the conftest dataset: ``loaded`` holds these spans (and resent copies)."""
    return build()


def _by_kind(recs: list[Recommendation]) -> dict[str, list[Recommendation]]:
    out: dict[str, list[Recommendation]] = {}
    for rec in recs:
        out.setdefault(rec.kind, []).append(rec)
    return out


def test_each_kind_triggers_once_with_the_saving_by_hand(loaded: SpanStore) -> None:
    answer = list_recommendations(loaded, QueryParams(RANGE, filters=ACME), Price())
    assert answer.currency == "USD" and answer.window_days == 3.0
    kinds = _by_kind(answer.recommendations)
    assert {k: len(v) for k, v in kinds.items()} == {
        "cheaper_model": 1, "prompt_caching": 1, "context_trimming": 1, "batching": 1,
        "failing_retries": 1}
    monthly = {k: v[0].saving_per_month for k, v in kinds.items()}
    window = {k: v[0].saving_in_window for k, v in kinds.items()}
    assert window == {"cheaper_model": Decimal("0.90"), "prompt_caching": Decimal("0.0579"),
                      "context_trimming": Decimal("0.0375"), "batching": Decimal("0.0036"),
                      "failing_retries": Decimal("0.03")}
    assert monthly == {k: v * 10 for k, v in window.items()}
    assert answer.total_saving_per_month == Decimal("10.2900")
    assert [r.kind for r in answer.recommendations] == [
        "cheaper_model", "prompt_caching", "context_trimming", "failing_retries", "batching"]
    for rec in answer.recommendations:
        assert rec.sample_trace_ids and rec.evidence and rec.saving_basis


def test_cheaper_model_evidence(loaded: SpanStore) -> None:
    recs = list_recommendations(loaded, QueryParams(RANGE, filters=ACME), Price(),
                                kinds=["cheaper_model"]).recommendations
    (rec,) = recs
    assert rec.scope == {"org_id": "acme", "project_id": "p", "agent_id": "triage",
                         "step": "", "operation": "chat"}
    ev = rec.evidence
    assert ev["quality_basis"] == "status"
    assert (ev["model"], ev["cheaper_model"]) == ("gpt-4o", "gpt-4o-mini")
    assert (ev["num_calls"], ev["num_successes"], ev["cheaper_num_successes"]) == (100, 95, 96)
    assert ev["cost_per_call"] == Decimal("0.01") and ev["cheaper_cost_per_call"] == Decimal(
        "0.001")
    want = noninferiority_test(96, 100, 95, 100, value=-NONINFERIORITY_MARGIN,
                                   method="agresti-caffo", compare="diff",
                                   alternative="larger")
    assert ev["p_value"] == pytest.approx(want.pvalue) and ev["p_value"] < 0.05
    # router's cheaper model: 70 of 100 is not "as often" as 95 of 100
    worse = noninferiority_test(70, 100, 95, 100, value=-NONINFERIORITY_MARGIN,
                                    method="agresti-caffo", compare="diff",
                                    alternative="larger")
    assert worse.pvalue > 0.05


def test_prompt_caching_evidence(loaded: SpanStore) -> None:
    (rec,) = list_recommendations(loaded, QueryParams(RANGE, filters=ACME), Price(),
                                  kinds=["prompt_caching"]).recommendations
    assert rec.scope["agent_id"] == "writer" and rec.scope["model"] == "claude-sonnet-4"
    ev = rec.evidence
    assert (ev["num_calls"], ev["num_warm_calls"], ev["cache_read_tokens"]) == (12, 11, 0)
    assert (ev["warm_cacheable_tokens"], ev["cold_cacheable_tokens"]) == (22_000, 2_000)
    assert ev["prefix_hash"] == f"{PREFIX_HASH:016x}" and ev["prefix_chars"] == 4096
    assert ev["min_cacheable_tokens"] == 1024
    assert (ev["input_price_per_mtok"], ev["cache_read_price_per_mtok"],
            ev["cache_write_price_per_mtok"]) == (Decimal(3), Decimal("0.3"), Decimal("3.75"))


def test_context_trimming_slope_equals_scipy(loaded: SpanStore) -> None:
    (rec,) = list_recommendations(loaded, QueryParams(RANGE, filters=ACME), Price(),
                                  kinds=["context_trimming"]).recommendations
    fit = linregress([1, 2, 3, 4, 5], [1000, 1500, 2000, 2500, 3000])
    ev = rec.evidence
    assert rec.scope["agent_id"] == "chat"
    assert ev["mean_slope_tokens_per_run"] == pytest.approx(fit.slope)
    assert ev["min_r"] == pytest.approx(fit.rvalue)
    assert (ev["num_sessions"], ev["num_growing_sessions"], ev["num_runs"]) == (3, 3, 15)
    assert (ev["input_tokens"], ev["excess_input_tokens"]) == (30_000, 15_000)
    assert ev["sample_session_ids"] == ["chat-s0", "chat-s1", "chat-s2"]


def test_batching_and_retries_evidence(loaded: SpanStore) -> None:
    answer = list_recommendations(loaded, QueryParams(RANGE, filters=ACME), Price(),
                                  kinds=["batching", "failing_retries"])
    kinds = _by_kind(answer.recommendations)
    (batch,) = kinds["batching"]
    assert batch.scope["agent_id"] == "tagger"
    assert batch.evidence["num_burst_calls"] == 120
    assert batch.evidence["batch_price_ratio"] == 0.5
    (retry,) = kinds["failing_retries"]
    assert retry.scope["agent_id"] == "fetcher" and retry.scope["tool_name"] == "search"
    assert (retry.evidence["num_retries"], retry.evidence["num_failed_retries"]) == (20, 15)
    assert retry.evidence["retry_failure_rate"] == 0.75


def test_tenancy_and_filters(loaded: SpanStore) -> None:
    globex = list_recommendations(loaded, QueryParams(RANGE, filters={"org_id": "globex"}),
                                  Price()).recommendations
    assert [(r.kind, r.saving_in_window) for r in globex] == [
        ("failing_retries", Decimal("0.04"))]
    only = list_recommendations(loaded, QueryParams(RANGE, filters={**ACME, "agent": "writer"}),
                                Price()).recommendations
    assert [r.kind for r in only] == ["prompt_caching"]


def test_nothing_triggers_outside_the_range_or_below_thresholds(loaded: SpanStore) -> None:
    later = TimeRange(T0 + timedelta(days=10), T0 + timedelta(days=11))
    empty = list_recommendations(loaded, QueryParams(later), Price())
    assert empty.recommendations == [] and empty.total_saving_per_month == 0
    # day 2 holds only the batching cases: one recommendation, a month = 30 such days
    day2 = TimeRange(T0 + timedelta(days=2), T0 + timedelta(days=3))
    recs = list_recommendations(loaded, QueryParams(day2, filters=ACME), Price())
    assert [r.kind for r in recs.recommendations] == ["batching"]
    assert recs.recommendations[0].saving_per_month == Decimal("0.0036") * 30


def test_currency_and_discount_of_the_pricing_config(loaded: SpanStore) -> None:
    eur = Price(pricing=PricingConfig(currency=Currency("EUR", Decimal("0.5"))))
    (rec,) = list_recommendations(loaded, QueryParams(RANGE, filters=ACME), eur,
                                  kinds=["prompt_caching"]).recommendations
    assert rec.saving_in_window == Decimal("0.02895")  # prices halved by the rate


def test_unknown_kind_names_the_field(loaded: SpanStore) -> None:
    with pytest.raises(ValidationError) as err:
        list_recommendations(loaded, QueryParams(RANGE), Price(), kinds=["cheaper"])
    assert err.value.field == "kind"
