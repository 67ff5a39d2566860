from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import genai_prices
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mentatlab.errors import ConfigError
from mentatlab.model.schema import MONEY_COLUMNS, spans_to_arrow
from mentatlab.model.span import CanonicalSpan, SpanStatus
from mentatlab.pipeline.price import UNPRICED, Price, reprice_spans
from mentatlab.pricing.catalog import PriceCatalog
from mentatlab.pricing.pricing_file import PricingConfig, parse_pricing
from mentatlab.settings import load_settings

T0 = datetime(2026, 8, 21, 12, 0, tzinfo=UTC)
V = genai_prices.__version__
CATALOG = PriceCatalog()
RATES: dict[str, Any] = {
    "infrastructure": {"cpu_per_core_hour": "0.036", "memory_per_gb_hour": "0.0072",
                       "gpu_per_hour": "3.60", "network_in_per_gb": "0.01",
                       "network_out_per_gb": "0.09", "storage_per_gb_month": "0.023",
                       "storage_billed_months": "3"},
}


def make_span(**fields: Any) -> CanonicalSpan:
    base: dict[str, Any] = dict(trace_id="ab" * 16, span_id="cd" * 8, parent_span_id="",
                                name="chat gpt-4o", kind="client", start_time=T0,
                                end_time=T0 + timedelta(seconds=1), duration_ms=1000.0,
                                status=SpanStatus.OK)
    base.update(fields)
    return CanonicalSpan(**base)


def price_one(span: CanonicalSpan, pricing: PricingConfig | None = None) -> CanonicalSpan:
    return Price(CATALOG, pricing)([span])[0]


def test_tokens_are_priced_by_genai_prices_with_source() -> None:
    span = price_one(make_span(provider="openai", request_model="gpt-4o",
                               input_tokens=1000, output_tokens=100))
    assert span.token_cost == Decimal("0.003500000000")
    assert span.total_cost == span.token_cost
    assert span.price_source == f"genai-prices@{V}:openai/gpt-4o"
    assert span.currency == "USD"


def test_response_model_wins_over_request_model() -> None:
    span = price_one(make_span(provider="openai", request_model="gpt-4o-mini",
                               response_model="gpt-4-0613", input_tokens=12, output_tokens=5))
    assert span.token_cost == Decimal("0.00066")
    assert span.price_source == f"genai-prices@{V}:openai/gpt-4"


def test_unknown_response_model_falls_back_to_request_model_and_says_so() -> None:
    span = price_one(make_span(provider="openai", request_model="gpt-4o",
                               response_model="gpt-4o-secret-build", input_tokens=1000,
                               output_tokens=100))
    assert span.token_cost == Decimal("0.0035")
    assert span.price_source == f"genai-prices@{V}:openai/gpt-4o?fallback=gpt-4o-secret-build"


def test_dated_model_falls_back_to_undated() -> None:
    span = price_one(make_span(provider="openai", response_model="gpt-4.1-2026-04-14",
                               input_tokens=10, output_tokens=5))
    assert span.token_cost == Decimal("0.00006")
    assert span.price_source.endswith("openai/gpt-4.1?fallback=gpt-4.1-2026-04-14")


@pytest.mark.parametrize("fields", [
    dict(provider="openai", request_model="my-finetune-x", input_tokens=10),
    dict(provider="ollama", request_model="llama3", input_tokens=10, output_tokens=3),
    dict(input_tokens=10),  # tokens but no model at all
    dict(provider="openai", request_model="gpt-4o", total_tokens=500),  # no split
])
def test_tokens_without_a_known_price_are_unpriced_never_guessed(fields: dict[str, Any]) -> None:
    span = price_one(make_span(**fields))
    assert (span.token_cost, span.total_cost, span.price_source) == (0, 0, UNPRICED)


def test_nothing_to_price_has_empty_source() -> None:
    span = price_one(make_span(provider="openai", request_model="gpt-4o"))
    assert (span.token_cost, span.price_source) == (0, "")


def test_rollup_span_carries_no_token_cost() -> None:
    span = price_one(make_span(provider="openai", request_model="gpt-4", input_tokens=100,
                               output_tokens=200, usage_is_rollup=True, cpu_core_seconds=3600.0),
                     parse_pricing(RATES))
    assert span.token_cost == 0
    assert span.price_source == "infra=pricing.toml"  # no token source; CPU at the file's rate
    assert span.cpu_cost == Decimal("0.036")
    assert span.total_cost == Decimal("0.036")


def test_pricing_toml_model_overrides_genai_prices() -> None:
    pricing = parse_pricing({"models": [
        {"provider": "openai", "model": "gpt-4o", "input_per_mtok": "1", "output_per_mtok": "2",
         "cache_read_per_mtok": "0.5", "per_request": "0.001"},
        {"provider": "self-hosted", "model": "llama-*", "input_per_mtok": "0.1",
         "output_per_mtok": "0.1"}]})
    span = price_one(make_span(provider="openai", request_model="gpt-4o", input_tokens=3_000_000,
                               cache_read_tokens=1_000_000, output_tokens=1_000_000), pricing)
    # 2M fresh * 1 + 1M cached * 0.5 + 1M out * 2 + 1 request * 0.001
    assert span.token_cost == Decimal("4.501")
    assert span.price_source == "pricing.toml:openai/gpt-4o"
    own = price_one(make_span(provider="self-hosted", request_model="Llama-3-8B-ft",
                              input_tokens=5_000_000, output_tokens=5_000_000), pricing)
    assert own.token_cost == Decimal("1")
    assert own.price_source == "pricing.toml:self-hosted/llama-3-8b-ft"


def test_infrastructure_costs_follow_the_documented_formulas() -> None:
    span = price_one(make_span(cpu_core_seconds=7200.0, memory_gb_seconds=1800.0,
                               gpu_seconds=60.0, network_bytes_in=2_000_000_000,
                               network_bytes_out=500_000_000, storage_bytes=10**9),
                     parse_pricing(RATES))
    assert span.cpu_cost == Decimal("0.072")          # 2 core-hours * 0.036
    assert span.memory_cost == Decimal("0.0036")      # 0.5 GB-hour * 0.0072
    assert span.gpu_cost == Decimal("0.06")           # 1/60 h * 3.60
    assert span.network_cost == Decimal("0.065")      # 2 GB * 0.01 + 0.5 GB * 0.09
    assert span.storage_cost == Decimal("0.069")      # 1 GB * 0.023 * 3 months
    assert span.total_cost == Decimal("0.2696")
    assert span.price_source == "infra=pricing.toml"


def test_discount_currency_and_rounding() -> None:
    pricing = parse_pricing({**RATES,
                             "discounts": [{"percent": "10", "provider": "openai",
                                            "applies_to": "tokens"},
                                           {"percent": "50", "org_id": "acme"}],
                             "currency": {"code": "EUR", "rate_from_usd": "0.9"}})
    span = price_one(make_span(provider="openai", request_model="gpt-4o", input_tokens=1000,
                               output_tokens=100, cpu_core_seconds=3600.0, org_id="acme"),
                     pricing)
    assert span.currency == "EUR"
    assert span.token_cost == Decimal("0.00315")      # 0.0035 USD * 0.9
    assert span.cpu_cost == Decimal("0.0324")
    assert span.discount == Decimal("0.000315")       # first match: 10% of tokens only
    assert span.total_cost == Decimal("0.035235")
    third = price_one(make_span(cpu_core_seconds=1.0),
                      parse_pricing({"infrastructure": {"cpu_per_core_hour": "1"}}))
    assert third.cpu_cost == Decimal("0.000277777778")  # 1/3600, 12 places, half-even
    assert third.cpu_cost.as_tuple().exponent == -12


def test_extra_usage_attributes_price_one_hour_cache_writes() -> None:
    attributes = orjson.dumps({"mentat.usage.cache_write_1h_tokens": 1_000_000}).decode()
    span = price_one(make_span(provider="anthropic", request_model="claude-opus-5",
                               input_tokens=1_000_000, cache_write_tokens=1_000_000,
                               attributes=attributes))
    assert span.token_cost == Decimal("10")
    plain = price_one(make_span(provider="anthropic", request_model="claude-opus-5",
                                input_tokens=1_000_000, cache_write_tokens=1_000_000))
    assert plain.token_cost == Decimal("6.25")


def test_priced_spans_fit_the_arrow_schema() -> None:
    spans = Price(CATALOG, parse_pricing(RATES))([
        make_span(provider="openai", request_model="gpt-4o", input_tokens=1000, output_tokens=1,
                  cpu_core_seconds=0.123456789)])
    table = spans_to_arrow(spans)
    assert str(table.column("total_cost")[0].as_py()) == str(spans[0].total_cost)


def test_reprice_spans_writes_a_newer_version() -> None:
    processor = Price(CATALOG)
    old = make_span(provider="openai", request_model="gpt-4o", input_tokens=1000,
                    output_tokens=100, ingested_at_ns=time.time_ns() + 10**12)
    repriced = reprice_spans([old], processor)
    assert repriced[0].ingested_at_ns > old.ingested_at_ns
    assert repriced[0].token_cost == Decimal("0.0035")


def test_unattributed_usage_of_a_rollup_span_is_priced_like_its_model() -> None:
    processor = Price(CATALOG)
    agent = make_span(provider="openai", request_model="gpt-4o", usage_is_rollup=True,
                      input_tokens=1000, output_tokens=100, unattributed_input_tokens=400,
                      unattributed_output_tokens=40)
    priced = processor([agent])[0]
    llm = processor([make_span(provider="openai", request_model="gpt-4o", input_tokens=400,
                               output_tokens=40)])[0]
    assert priced.token_cost == 0
    assert priced.unattributed_cost == llm.token_cost == Decimal("0.0014")
    assert priced.total_cost == priced.unattributed_cost
    assert priced.price_source == llm.price_source
    unknown = processor([make_span(request_model="", usage_is_rollup=True, input_tokens=10,
                                   unattributed_input_tokens=10)])[0]
    assert (unknown.unattributed_cost, unknown.price_source) == (0, UNPRICED)
    covered = processor([make_span(provider="openai", request_model="gpt-4o",
                                   usage_is_rollup=True, input_tokens=10)])[0]
    assert (covered.total_cost, covered.price_source) == (0, "")


spans_st = st.builds(
    make_span,
    provider=st.sampled_from(["openai", "anthropic", "", "ollama", "gcp.vertex_ai"]),
    request_model=st.sampled_from(["gpt-4o", "claude-opus-4-5", "gemini-2.5-pro", "x", ""]),
    input_tokens=st.one_of(st.none(), st.integers(0, 10**7)),
    output_tokens=st.one_of(st.none(), st.integers(0, 10**6)),
    cache_read_tokens=st.one_of(st.none(), st.integers(0, 10**6)),
    cache_write_tokens=st.one_of(st.none(), st.integers(0, 10**6)),
    usage_is_rollup=st.booleans(),
    unattributed_input_tokens=st.integers(0, 10**6),
    unattributed_output_tokens=st.integers(0, 10**5),
    org_id=st.sampled_from(["acme", "other"]),
    cpu_core_seconds=st.floats(0, 1e6, allow_nan=False),
    memory_gb_seconds=st.floats(0, 1e6, allow_nan=False),
    gpu_seconds=st.floats(0, 1e5, allow_nan=False),
    network_bytes_in=st.integers(0, 10**12),
    network_bytes_out=st.integers(0, 10**12),
    storage_bytes=st.integers(0, 10**13),
    start_time=st.datetimes(datetime(2025, 1, 1), datetime(2026, 11, 1),  # noqa: DTZ001
                            timezones=st.just(UTC)),
)
PROPERTY_PRICE = Price(CATALOG, parse_pricing({
    **RATES, "discounts": [{"percent": "12.5", "org_id": "acme"}],
    "currency": {"code": "EUR", "rate_from_usd": "0.93"}}))


@settings(max_examples=150, deadline=None)
@given(span=spans_st)
def test_cost_parts_add_up_to_total(span: CanonicalSpan) -> None:
    priced = PROPERTY_PRICE([span])[0]
    parts = (priced.token_cost + priced.cpu_cost + priced.memory_cost + priced.gpu_cost
             + priced.network_cost + priced.storage_cost + priced.unattributed_cost)
    assert priced.total_cost == parts - priced.discount
    assert priced.total_cost >= 0 and priced.discount >= 0
    for name in MONEY_COLUMNS:
        assert getattr(priced, name).as_tuple().exponent == -12, name
    if priced.price_source == UNPRICED or span.usage_is_rollup:
        assert priced.token_cost == 0
    if not span.usage_is_rollup:
        assert priced.unattributed_cost == 0


@settings(max_examples=100, deadline=None)
@given(span=spans_st)
def test_pricing_twice_changes_nothing(span: CanonicalSpan) -> None:
    once = PROPERTY_PRICE([span])[0]
    assert PROPERTY_PRICE([once])[0] is once
    twice = reprice_spans(reprice_spans([span], PROPERTY_PRICE), PROPERTY_PRICE)[0]
    assert twice.revision == span.revision + 2
    assert dataclasses.replace(twice, ingested_at_ns=0, revision=0) == dataclasses.replace(
        once, ingested_at_ns=0, revision=0)


def test_lookups_are_memoized_per_model_and_minute() -> None:
    models = ["gpt-4o", "gpt-4.1", "claude-sonnet-4-20250514", "gemini-2.5-pro"]
    spans = [make_span(request_model=models[i % 4], input_tokens=1000 + i, output_tokens=100,
                       start_time=T0 + timedelta(seconds=i)) for i in range(1200)]
    processor = Price(PriceCatalog())
    priced = processor(spans)
    assert all(s.price_source.startswith("genai-prices@") for s in priced)
    info = processor._resolve.cache_info()
    assert info.misses == 4 * 20  # 4 models x 20 minutes
    assert info.hits == 1200 - info.misses


def test_hot_path_is_much_faster_than_calling_genai_prices_per_span() -> None:
    """Relative, so it holds on a loaded machine: both sides slow down together.
    Absolute figures are in docs/pricing.md."""
    models = ["gpt-4o", "gpt-4.1", "claude-sonnet-4-20250514", "gemini-2.5-pro"]
    spans = [make_span(request_model=models[i % 4], input_tokens=1000 + i, output_tokens=100,
                       cache_read_tokens=i % 500, start_time=T0 + timedelta(seconds=i),
                       cpu_core_seconds=0.5) for i in range(4000)]
    processor = Price(CATALOG, parse_pricing(RATES))
    processor(spans[:50])
    started = time.perf_counter()
    processor(spans)
    ours_s = (time.perf_counter() - started) / len(spans)
    started = time.perf_counter()
    for span in spans[:300]:
        genai_prices.calc_price(
            genai_prices.Usage(input_tokens=span.input_tokens, output_tokens=span.output_tokens,
                               cache_read_tokens=span.cache_read_tokens),
            span.request_model, genai_request_timestamp=span.start_time)
    theirs_s = (time.perf_counter() - started) / 300
    assert ours_s < theirs_s / 2, f"{ours_s * 1e6:.0f} us vs {theirs_s * 1e6:.0f} us per span"


def test_from_settings_reads_pricing_file_and_saved_prices(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "pricing.toml").write_text('[currency]\ncode = "EUR"\nrate_from_usd = "0.5"\n')
    processor = Price.from_settings(load_settings(data_dir=data_dir))
    span = processor([make_span(provider="openai", request_model="gpt-4o", input_tokens=1000,
                                output_tokens=100)])[0]
    assert (span.currency, span.token_cost) == ("EUR", Decimal("0.00175"))
    assert span.price_source == f"genai-prices@{V}:openai/gpt-4o"
    (data_dir / "pricing.toml").write_text("[currency]\ncode = 3\n")
    with pytest.raises(ConfigError, match="currency.code"):
        Price.from_settings(load_settings(data_dir=data_dir))
