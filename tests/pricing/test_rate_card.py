from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import genai_prices
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mentatlab.errors import PricingError
from mentatlab.pricing.catalog import PriceCatalog
from mentatlab.pricing.rate_card import TokenUsage

AT = datetime(2026, 8, 21, 12, 0, tzinfo=UTC)
CATALOG = PriceCatalog()

# (genai-prices provider id, model): plain, cached, cache-write TTLs, tiered, reasoning and
# citation rates, per-request fee, no cache price, audio modality (genai-prices fallback path)
MODELS = [
    ("openai", "gpt-4o"), ("openai", "gpt-4"), ("anthropic", "claude-sonnet-4-20250514"),
    ("anthropic", "claude-opus-5"), ("openai", "gpt-5.6-terra"), ("google", "gemini-1.5-flash"),
    ("google", "gemini-2.5-pro"), ("perplexity", "sonar-deep-research"), ("perplexity", "sonar"),
    ("openrouter", "deepseek/deepseek-v3.2"), ("google", "gemini-2.5-flash"),
    ("deepseek", "deepseek-chat"),
]

counts = st.integers(min_value=0, max_value=2_000_000)


@st.composite
def usages(draw: st.DrawFn) -> dict[str, int]:
    cache_read, w5, w1 = draw(counts), draw(counts), draw(counts)
    write = w5 + w1 + draw(st.integers(0, 1000))
    fresh = draw(counts)
    reasoning, citation, visible = draw(counts), draw(counts), draw(counts)
    return {"input_tokens": fresh + cache_read + write, "cache_read_tokens": cache_read,
            "cache_write_tokens": write, "cache_write_5m_tokens": w5,
            "cache_write_1h_tokens": w1, "output_tokens": reasoning + citation + visible,
            "output_reasoning_tokens": reasoning, "output_citation_tokens": citation}


@pytest.mark.parametrize(("provider", "model"), MODELS)
@settings(max_examples=40, deadline=None)
@given(values=usages())
def test_rate_card_equals_genai_prices(provider: str, model: str, values: dict[str, int]) -> None:
    resolved = CATALOG.lookup(provider, model, AT)
    assert resolved is not None
    usage = TokenUsage(
        input_tokens=values["input_tokens"], output_tokens=values["output_tokens"],
        cache_read_tokens=values["cache_read_tokens"],
        cache_write_tokens=values["cache_write_tokens"],
        cache_write_5m_tokens=values["cache_write_5m_tokens"],
        cache_write_1h_tokens=values["cache_write_1h_tokens"],
        reasoning_tokens=values["output_reasoning_tokens"],
        citation_tokens=values["output_citation_tokens"])
    ours = resolved.card.cost(usage)
    theirs = genai_prices.calc_price(genai_prices.Usage(**values), model, provider_id=provider,
                                     genai_request_timestamp=AT)
    assert (ours.input_usd, ours.output_usd, ours.total_usd) == (
        theirs.input_price, theirs.output_price, theirs.total_price)


def test_models_outside_the_compiled_units_are_delegated_to_genai_prices() -> None:
    audio = CATALOG.lookup("google", "gemini-2.5-flash", AT)
    plain = CATALOG.lookup("openai", "gpt-4o", AT)  # web/storage search prices: count 0
    assert audio is not None and plain is not None
    assert audio.card._lines is None
    assert plain.card._lines is not None


def test_cache_exclusive_input_is_made_inclusive() -> None:
    # Bedrock-style: emitted input 100 excludes 5000 cache reads -> inclusive 5100
    values = TokenUsage(input_tokens=100, cache_read_tokens=5000).to_genai_values()
    assert values == {"input_tokens": 5100, "cache_read_tokens": 5000}


def test_parts_are_capped_at_their_totals() -> None:
    values = TokenUsage(output_tokens=50, reasoning_tokens=60, citation_tokens=5).to_genai_values()
    assert values == {"output_tokens": 50, "output_reasoning_tokens": 50}
    values = TokenUsage(input_tokens=10, cache_write_1h_tokens=7).to_genai_values()
    assert values["cache_write_tokens"] == 7 and values["input_tokens"] == 10


def test_missing_total_is_the_sum_of_its_parts() -> None:
    values = TokenUsage(cache_read_tokens=30, reasoning_tokens=4).to_genai_values()
    assert values["input_tokens"] == 30
    assert values["output_tokens"] == 4 and values["output_reasoning_tokens"] == 4


def test_negative_count_is_refused() -> None:
    resolved = CATALOG.lookup("openai", "gpt-4o", AT)
    assert resolved is not None
    with pytest.raises(PricingError, match="input_tokens"):
        resolved.card.cost(TokenUsage(input_tokens=-1))


def test_cache_read_without_a_cache_price_is_billed_as_input() -> None:
    resolved = CATALOG.lookup("openai", "gpt-4", AT)
    assert resolved is not None
    cost = resolved.card.cost(TokenUsage(input_tokens=52, cache_read_tokens=20, output_tokens=47))
    assert cost.total_usd == Decimal("0.00438")
