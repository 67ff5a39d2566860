"""Per-kind token costs and cache savings of the price stage, worked out by hand.

``acme-1`` (pricing.toml): $2 input, $8 output, $0.5 cache read, $2.5 cache write per
million tokens and $0.001 a request; ``plain-1``: $3 input, $15 output, no cache prices.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from mentatlab.model.schema import TOKEN_KIND_COST_COLUMNS
from mentatlab.model.span import CanonicalSpan, SpanStatus
from mentatlab.pipeline.price import Price, reprice_spans
from mentatlab.pricing.pricing_file import Currency, ModelRate, PricingConfig

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
D = Decimal
ACME = ModelRate("*", "acme-1", D(2), D(8), cache_read_per_mtok=D("0.5"),
                 cache_write_per_mtok=D("2.5"), per_request=D("0.001"))
PLAIN = ModelRate("*", "plain-1", D(3), D(15))
KIND_PARTS = TOKEN_KIND_COST_COLUMNS[:6]


def _span(model: str, provider: str = "acme", **tokens: int | None) -> CanonicalSpan:
    return CanonicalSpan(trace_id="1" * 32, span_id="2" * 16, parent_span_id="", name="chat",
                         kind="client", start_time=T0, end_time=T0, duration_ms=1.0,
                         status=SpanStatus.OK, provider=provider, request_model=model,
                         **tokens)  # type: ignore[arg-type]


def _kinds(span: CanonicalSpan) -> dict[str, Decimal]:
    return {name: getattr(span, name) for name in TOKEN_KIND_COST_COLUMNS}


def test_every_kind_of_a_cached_reasoning_call_with_a_request_fee() -> None:
    price = Price(pricing=PricingConfig(models=(ACME, PLAIN)))
    # 10,000 input of which 3,000 cache reads and 1,000 cache writes; 2,000 output of
    # which 500 reasoning
    span = price([_span("acme-1", input_tokens=10_000, cache_read_tokens=3_000,
                        cache_write_tokens=1_000, output_tokens=2_000,
                        reasoning_tokens=500)])[0]
    assert _kinds(span) == {
        "input_cost": D("0.012"),         # 6,000 x $2/M
        "cache_read_cost": D("0.0015"),   # 3,000 x $0.5/M
        "cache_write_cost": D("0.0025"),  # 1,000 x $2.5/M
        "output_cost": D("0.012"),        # 1,500 x $8/M
        "reasoning_cost": D("0.004"),     # 500 x $8/M (no reasoning price of its own)
        "request_cost": D("0.001"),
        "cache_savings": D("0.0045"),     # 3,000 x $2/M - 0.0015
    }
    assert span.token_cost == D("0.033") == sum((getattr(span, k) for k in KIND_PARTS), D(0))


def test_cache_reads_without_a_cache_price_cost_the_input_rate_and_save_nothing() -> None:
    price = Price(pricing=PricingConfig(models=(ACME, PLAIN)))
    span = price([_span("plain-1", input_tokens=1_000, cache_read_tokens=400,
                        output_tokens=100)])[0]
    assert (span.input_cost, span.cache_read_cost, span.output_cost, span.cache_savings) == (
        D("0.0018"), D("0.0012"), D("0.0015"), D(0))
    assert span.token_cost == D("0.0045")


def test_a_rollup_and_an_unpriced_call_have_no_kind_costs() -> None:
    price = Price(pricing=PricingConfig(models=(ACME,)))
    rollup = replace(_span("acme-1", input_tokens=500, output_tokens=5),
                     usage_is_rollup=True, unattributed_input_tokens=500,
                     unattributed_output_tokens=5)
    unknown = _span("who-knows", provider="nobody", input_tokens=10, output_tokens=1)
    for span in price([rollup, unknown]):
        assert span.token_cost == 0 and all(v == 0 for v in _kinds(span).values())
    # 500 x $2/M + 5 x $8/M + the $0.001 request fee: priced, but not split by kind
    assert rollup.unattributed_cost == D("0.00204")


def test_the_parts_add_up_to_token_cost_exactly_after_currency_conversion() -> None:
    """Parts with more than 12 decimals: each rounds on its own, the remainder goes to the
    largest, and the sum is the token cost to the last digit."""
    odd = ModelRate("*", "odd-1", D("1.234567"), D("7.654321"),
                    cache_read_per_mtok=D("0.1234567"), cache_write_per_mtok=D("1.5432109"),
                    per_request=D("0.0000033"))
    price = Price(pricing=PricingConfig(models=(odd,),
                                        currency=Currency("EUR", D("0.921234567891"))))
    rng = random.Random(16)
    multi_part = 0
    for _ in range(300):
        inputs = rng.randint(0, 200_000)
        read = rng.randint(0, inputs // 2)
        write = rng.randint(0, inputs - read)
        output = rng.randint(0, 20_000)
        span = price([_span("odd-1", input_tokens=inputs, cache_read_tokens=read,
                            cache_write_tokens=write, output_tokens=output,
                            reasoning_tokens=rng.randint(0, output))])[0]
        parts = [getattr(span, k) for k in KIND_PARTS]
        assert sum(parts, D(0)) == span.token_cost
        assert all(p.as_tuple().exponent == -12 for p in parts)
        unrounded = D(read) * (D("1.234567") - D("0.1234567")) / 1_000_000 * D("0.921234567891")
        assert abs(span.cache_savings - unrounded) <= D("0.5e-12")
        multi_part += sum(1 for p in parts if p != 0) > 1
    assert multi_part > 100


@pytest.mark.parametrize(("provider", "model"), [
    ("openai", "gpt-4o"), ("anthropic", "claude-sonnet-4-20250514"), ("openai", "o3"),
    ("google", "gemini-2.5-pro"), ("anthropic", "claude-3-5-haiku-20241022")])
def test_genai_prices_models_split_exactly(provider: str, model: str) -> None:
    price = Price()
    rng = random.Random(model)
    for _ in range(50):
        inputs = rng.randint(1, 400_000)  # above 200k: gemini's higher tier
        read = rng.randint(0, inputs // 2)
        output = rng.randint(0, 30_000)
        span = price([_span(model, provider=provider, input_tokens=inputs,
                            cache_read_tokens=read, cache_write_tokens=rng.randint(0, 100),
                            output_tokens=output, reasoning_tokens=output // 3)])[0]
        assert span.token_cost > 0, span.price_source
        assert sum((getattr(span, k) for k in KIND_PARTS), D(0)) == span.token_cost
        assert span.cache_savings >= 0


def test_reprice_refills_the_kind_costs_of_a_span_stored_without_them() -> None:
    price = Price(pricing=PricingConfig(models=(ACME,)))
    stored = price([_span("acme-1", input_tokens=10_000, cache_read_tokens=3_000,
                          output_tokens=1_000)])[0]
    old = replace(stored, **{k: D(0) for k in TOKEN_KIND_COST_COLUMNS})  # before issue 16
    (new,) = reprice_spans([old], price)
    assert (new.input_cost, new.cache_read_cost, new.output_cost, new.cache_savings) == (
        D("0.014"), D("0.0015"), D("0.008"), D("0.0045"))
    assert new.revision == old.revision + 1 and new.token_cost == old.token_cost


@pytest.mark.parametrize(("provider", "model"), [
    ("openai", "gpt-4o"), ("anthropic", "claude-sonnet-4-20250514"),
    ("google", "gemini-2.5-pro"), ("openai", "o3")])
def test_the_kinds_add_up_to_the_genai_prices_total_before_rounding(provider: str,
                                                                   model: str) -> None:
    """The split charges each leaf count at its owner's rate: its sum is RateCard.cost's
    total (genai-prices' arithmetic), to the last digit, tiers and TTL writes included."""
    from mentatlab.pricing.catalog import PriceCatalog
    from mentatlab.pricing.rate_card import TokenUsage
    card = PriceCatalog().lookup(provider, model, T0)
    assert card is not None
    rng = random.Random(f"{provider}/{model}")
    for _ in range(200):
        inputs = rng.randint(0, 400_000)
        write = rng.randint(0, inputs // 4)
        usage = TokenUsage(input_tokens=inputs, cache_read_tokens=rng.randint(0, inputs // 2),
                           cache_write_tokens=write, cache_write_1h_tokens=write // 3,
                           output_tokens=rng.randint(0, 9_000),
                           reasoning_tokens=rng.randint(0, 3_000))
        kinds = card.card.cost_by_kind(usage)
        assert kinds.total_usd == sum(kinds.parts, D(0)) == card.card.cost(usage).total_usd


def test_the_decimal_path_splits_like_the_integer_path() -> None:
    """A card whose rates cannot be made integers (never seen in genai-prices' data, kept
    as a fallback) splits with Decimal arithmetic to the same numbers."""
    from mentatlab.pricing.catalog import PriceCatalog
    from mentatlab.pricing.rate_card import RateCard, TokenUsage
    found = PriceCatalog().lookup("anthropic", "claude-sonnet-4-20250514", T0)
    assert found is not None
    card = RateCard(found.card.model_price)  # our own: the catalog's cards are shared
    usage = TokenUsage(input_tokens=250_000, cache_read_tokens=40_000, cache_write_tokens=9_000,
                       cache_write_1h_tokens=3_000, output_tokens=7_000, reasoning_tokens=900)
    integers = card.cost_by_kind(usage)
    card._int_plan = None  # force the Decimal path
    decimals = card.cost_by_kind(usage)
    assert decimals.parts == integers.parts and decimals.total_usd == integers.total_usd
    assert decimals.cache_read_uncached_usd == integers.cache_read_uncached_usd
