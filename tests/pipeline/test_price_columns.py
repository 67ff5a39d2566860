"""PriceColumns prices an Arrow table exactly as Price prices the spans, row by row."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conformance_corpus import require
from mentatlab.conventions.base import MAX_TOKENS_PER_SPAN
from mentatlab.model.schema import MONEY_ARROW, SPAN_SCHEMA, spans_to_arrow
from mentatlab.model.span import CanonicalSpan, SpanStatus
from mentatlab.pipeline.normalize import Normalize
from mentatlab.pipeline.price import COST_FIELDS, UNPRICED, Price
from mentatlab.pipeline.price_columns import (
    MAX_COLUMNAR_TOKENS,
    PriceColumns,
    decimal128_from_unscaled,
    rows_containing,
)
from mentatlab.pricing.catalog import PriceCatalog
from mentatlab.pricing.pricing_file import PricingConfig, parse_pricing
from mentatlab.receivers.decode import decode_otlp_json

CATALOG = PriceCatalog()
T0 = datetime(2026, 8, 21, 12, 0, tzinfo=UTC)
"""As ``tests/conformance/conformance_corpus.py`` finds it."""
RATES: dict[str, Any] = {
    "infrastructure": {"cpu_per_core_hour": "0.036", "memory_per_gb_hour": "0.0072",
                       "gpu_per_hour": "3.60", "network_in_per_gb": "0.01",
                       "network_out_per_gb": "0.09", "storage_per_gb_month": "0.023",
                       "storage_billed_months": "3"},
}
MODELS: dict[str, Any] = {"models": [
    {"provider": "openai", "model": "gpt-4o", "input_per_mtok": "1", "output_per_mtok": "2",
     "cache_read_per_mtok": "0.5", "per_request": "0.001"},
    {"provider": "self-hosted", "model": "llama-*", "input_per_mtok": "0.123456789",
     "output_per_mtok": "0.1", "cache_write_per_mtok": "7.77", "cache_read_per_mtok": "3"},
    # below 1e-12 a token: every part is rounded, ties and remainders are common
    {"provider": "lab", "model": "tiny-*", "input_per_mtok": "0.0000004",
     "output_per_mtok": "0.0000004", "cache_read_per_mtok": "0.0000005"},
    {"provider": "lab", "model": "cheap-cache-*", "input_per_mtok": "0.0000009",
     "output_per_mtok": "0.0000004", "cache_read_per_mtok": "0.0000001"},
]}
PRICINGS: dict[str, PricingConfig | None] = {
    "default": None,
    "models+infra": parse_pricing({**RATES, **MODELS}),
    "eur+discount": parse_pricing({
        **RATES, **MODELS, "discounts": [{"percent": "12.5", "org_id": "acme"}],
        "currency": {"code": "EUR", "rate_from_usd": "0.93"}}),
    "usd+discount": parse_pricing({"discounts": [{"percent": "10", "provider": "openai",
                                                  "applies_to": "tokens"}]}),
    "jpy": parse_pricing({**MODELS, "currency": {"code": "JPY",
                                                 "rate_from_usd": "151.123456789"}}),
    "tiny-fx": parse_pricing({"currency": {"code": "XAU", "rate_from_usd": "0.000412345"}}),
}
PRICES = {name: Price(CATALOG, pricing) for name, pricing in PRICINGS.items()}


def make_span(**fields: Any) -> CanonicalSpan:
    base: dict[str, Any] = dict(trace_id="ab" * 16, span_id="cd" * 8, parent_span_id="",
                                name="chat", kind="client", start_time=T0,
                                end_time=T0 + timedelta(seconds=1), duration_ms=1000.0,
                                status=SpanStatus.OK)
    base.update(fields)
    return CanonicalSpan(**base)


def assert_prices_alike(spans: list[CanonicalSpan], price: Price) -> pa.Table:
    """The columnar answer equals the per-span one, column by column and row by row."""
    expected = spans_to_arrow(price([dataclasses.replace(s) for s in spans]))
    unpriced = spans_to_arrow([dataclasses.replace(s) for s in spans])
    got = PriceColumns(price).price_table(unpriced)
    assert got.schema == SPAN_SCHEMA
    for name in COST_FIELDS:
        want, have = expected.column(name).to_pylist(), got.column(name).to_pylist()
        for row, (w, h) in enumerate(zip(want, have, strict=True)):
            assert h == w, (name, row, spans[row])
    assert got.equals(expected)
    return got


def test_decimal128_from_unscaled_equals_arrow_from_decimals() -> None:
    values = [0, 1, -1, 5, -5, 10**12, -(10**12), 123456789012345, -987654321,
              2**62, -(2**62), 2**63 - 1, -(2**63)]
    got = decimal128_from_unscaled(np.array(values, dtype=np.int64))
    want = pa.array([Decimal(v).scaleb(-12) for v in values], MONEY_ARROW)
    assert got.type == MONEY_ARROW
    assert got.equals(want)
    assert got.to_pylist() == want.to_pylist()
    got.validate(full=True)
    assert decimal128_from_unscaled(np.array([], dtype=np.int64)).equals(
        pa.array([], MONEY_ARROW))


@settings(max_examples=200, deadline=None)
@given(texts=st.lists(st.text(alphabet='ab"m.', max_size=8), max_size=12),
       cut=st.integers(0, 12), needle=st.sampled_from(['"ab', "a", 'b"m.', "ba"]))
def test_rows_containing_is_match_substring(texts: list[str], cut: int, needle: str) -> None:
    whole = pa.array(texts, pa.string())
    for strings in (pa.chunked_array([whole]),
                    pa.chunked_array([whole[:cut], whole[cut:]], pa.string()),
                    pa.chunked_array([whole[cut // 2:cut]], pa.string())):
        want = pc.match_substring(strings, needle).to_pylist()
        assert rows_containing(strings, needle.encode()).tolist() == want


def test_cache_savings_can_be_negative_and_price_alike() -> None:
    # a cache-read rate above the input rate (a pricing.toml may say so): negative savings
    price = PRICES["models+infra"]
    spans = [make_span(provider="self-hosted", request_model="llama-3", input_tokens=10**6,
                       cache_read_tokens=400_001, output_tokens=3)]
    got = assert_prices_alike(spans, price)
    assert got.column("cache_savings")[0].as_py() < 0


def test_rounding_is_half_even_and_the_remainder_goes_to_the_largest_part() -> None:
    price = PRICES["models+infra"]
    tiny = {"provider": "lab", "request_model": "tiny-1"}
    spans = [make_span(**tiny, input_tokens=1, output_tokens=3),  # 0.4 + 1.2 -> 0 + 1, 2
             make_span(**tiny, input_tokens=5, cache_read_tokens=5),  # 2.5 -> 2 (even)
             make_span(**tiny, input_tokens=7, cache_read_tokens=7),  # 3.5 -> 4 (even)
             make_span(**tiny, input_tokens=3, output_tokens=1)]
    got = assert_prices_alike(spans, price)
    pico = Decimal("1e-12")
    assert got.column("token_cost").to_pylist()[:3] == [2 * pico, 2 * pico, 4 * pico]
    assert got.column("input_cost")[0].as_py() == 0
    assert got.column("output_cost")[0].as_py() == 2 * pico  # 1 + the remainder 1
    assert got.column("input_cost")[3].as_py() == 2 * pico
    # a token cost that rounds to 0 has no parts and no savings, though the savings
    # alone would round to 1e-12
    cached = make_span(provider="lab", request_model="cheap-cache-1", input_tokens=1,
                       cache_read_tokens=1)
    got = assert_prices_alike([cached], price)
    assert got.column("cache_savings")[0].as_py() == 0


def test_a_mixed_batch_prices_alike_with_slow_rows_in_place() -> None:
    attributes = orjson.dumps({"mentat.usage.cache_write_1h_tokens": 1000}).decode()
    spans = [
        make_span(provider="openai", request_model="gpt-4o", input_tokens=1000,
                  output_tokens=100),
        make_span(provider="openai", request_model="gpt-4o", input_tokens=1000,
                  usage_is_rollup=True, unattributed_input_tokens=10),
        make_span(provider="anthropic", request_model="claude-sonnet-4-5",
                  input_tokens=300_000, cache_read_tokens=1000, output_tokens=7),
        make_span(cpu_core_seconds=3.5),
        make_span(provider="openai", request_model="my-finetune", input_tokens=3),
        make_span(provider="openai", request_model="gpt-4o", total_tokens=500),
        make_span(),
        make_span(provider="anthropic", request_model="claude-sonnet-4-5",
                  input_tokens=2000, cache_write_tokens=1000, attributes=attributes),
        make_span(provider="openai", request_model="gpt-4o", input_tokens=MAX_COLUMNAR_TOKENS + 1),
    ]
    for price in PRICES.values():
        got = assert_prices_alike(spans, price)
    assert got.column("price_source")[4].as_py() == UNPRICED


@settings(max_examples=30, deadline=None)
@given(first=st.lists(st.deferred(lambda: _spans()), min_size=1, max_size=6),
       second=st.lists(st.deferred(lambda: _spans()), min_size=1, max_size=6),
       pricing=st.sampled_from(list(PRICES)))
def test_a_table_of_several_chunks_prices_alike(first: list[CanonicalSpan],
                                                second: list[CanonicalSpan],
                                                pricing: str) -> None:
    price = PRICES[pricing]
    expected = spans_to_arrow(price([dataclasses.replace(s) for s in first + second]))
    chunked = pa.concat_tables([spans_to_arrow([dataclasses.replace(s) for s in part])
                                for part in (first, second)])
    assert chunked.column("attributes").num_chunks == 2
    got = PriceColumns(price).price_table(chunked)
    assert got.equals(expected)
    for name in COST_FIELDS:
        assert got.column(name).to_pylist() == expected.column(name).to_pylist(), name


def test_an_empty_table_is_returned_as_is() -> None:
    empty = SPAN_SCHEMA.empty_table()
    assert PriceColumns(PRICES["default"]).price_table(empty) is empty


def test_the_minute_is_the_per_span_minute_at_its_edges() -> None:
    edges = [T0 - timedelta(microseconds=1), T0, T0 + timedelta(microseconds=1),
             T0 + timedelta(seconds=59, microseconds=999_999)]
    spans = [make_span(provider="openai", request_model="gpt-4o", input_tokens=7,
                       output_tokens=3, start_time=at) for at in edges]
    assert_prices_alike(spans, PRICES["default"])


# -- conformance corpus -------------------------------------------------------------------

_USAGE_FIELDS = {"input_tokens": "input_tokens", "output_tokens": "output_tokens",
                 "cache_read_tokens": "cache_read_tokens",
                 "cache_write_tokens": "cache_write_tokens",
                 "output_reasoning_tokens": "reasoning_tokens"}


def _corpus_spans() -> list[CanonicalSpan]:
    corpus = require()
    spans: list[CanonicalSpan] = []
    for path in sorted((corpus / "otel-genai").glob("*.json")):
        case = json.loads(path.read_text())
        decoded = decode_otlp_json(orjson.dumps(case["otlp"]))
        spans += Normalize()(decoded.spans).spans
    for case in json.loads((corpus / "prices.json").read_text())["cases"]:
        lookup = dict(case["lookup"])
        stamp = lookup.get("genai_request_timestamp")
        at = datetime.fromisoformat(stamp) if stamp else T0
        fields = {_USAGE_FIELDS[k]: v for k, v in case["usage"].items() if k in _USAGE_FIELDS}
        extra = {f"mentat.usage.{k.removeprefix('output_')}": v
                 for k, v in case["usage"].items() if k not in _USAGE_FIELDS}
        spans.append(make_span(provider=lookup.get("provider_id", ""),
                               request_model=case["model"], start_time=at,
                               attributes=orjson.dumps(extra).decode(), **fields))
    return spans


@pytest.mark.parametrize("pricing", list(PRICES))
def test_the_conformance_corpus_prices_alike(pricing: str) -> None:
    spans = _corpus_spans()
    assert len(spans) > 70
    got = assert_prices_alike(spans, PRICES[pricing])
    if pricing == "default":
        priced = sum(1 for s in got.column("price_source").to_pylist()
                     if s.startswith("genai-prices@"))
        assert priced > 20


# -- generated spans ----------------------------------------------------------------------

_MODELS = [("openai", "gpt-4o"), ("openai", "gpt-4o-mini"), ("openai", "gpt-5"),
           ("openai", "gpt-4.1-2026-04-14"), ("anthropic", "claude-sonnet-4-5"),
           ("anthropic", "claude-3-5-haiku-latest"), ("anthropic", "claude-opus-4-1"),
           ("google", "gemini-2.5-pro"), ("google-vertex", "gemini-2.5-flash"),
           ("openrouter", "deepseek/deepseek-v3.2"), ("self-hosted", "llama-3-70b"),
           ("lab", "tiny-1"), ("lab", "cheap-cache-1"), ("openai", "my-finetune-x"),
           ("ollama", "llama3"), ("", ""), ("", "gpt-4o")]
_TOKENS = st.one_of(st.none(), st.just(0), st.integers(0, 5000),
                    st.sampled_from([199_999, 200_000, 200_001, 272_001]),
                    st.integers(0, MAX_TOKENS_PER_SPAN),
                    st.integers(MAX_COLUMNAR_TOKENS - 2, MAX_COLUMNAR_TOKENS + 2))
_ATTRIBUTES = st.sampled_from([
    "{}", '{"k": 1}', orjson.dumps({"mentat.usage.cache_write_1h_tokens": 500}).decode(),
    orjson.dumps({"mentat.usage.citation_tokens": 12}).decode(),
    orjson.dumps({"mentat.resource.gpu_model": "h100"}).decode()])
_MOMENTS = st.one_of(
    st.datetimes(datetime(2025, 1, 1), datetime(2026, 12, 1),  # noqa: DTZ001
                 timezones=st.just(UTC)),
    st.sampled_from([T0, T0 - timedelta(microseconds=1), datetime(2026, 10, 19, tzinfo=UTC),
                     datetime(2026, 11, 9, tzinfo=UTC), datetime(2026, 7, 29, tzinfo=UTC)]))


@st.composite
def _spans(draw: st.DrawFn) -> CanonicalSpan:
    provider, model = draw(st.sampled_from(_MODELS))
    response = draw(st.sampled_from(["", model, f"{model}-secret-build", "gpt-4o"]))
    infra = draw(st.booleans()) and draw(st.integers(0, 9)) == 0
    rollup = draw(st.integers(0, 9)) == 0
    unattributed = st.integers(0, 10**6) if rollup else st.just(0)
    return make_span(
        provider=provider, request_model=model, response_model=response,
        start_time=draw(_MOMENTS), org_id=draw(st.sampled_from(["acme", "other"])),
        input_tokens=draw(_TOKENS), output_tokens=draw(_TOKENS),
        cache_read_tokens=draw(_TOKENS), cache_write_tokens=draw(_TOKENS),
        reasoning_tokens=draw(_TOKENS), total_tokens=draw(_TOKENS),
        usage_is_rollup=rollup,
        unattributed_input_tokens=draw(unattributed),
        unattributed_output_tokens=draw(unattributed),
        unattributed_cache_read_tokens=draw(unattributed),
        unattributed_cache_write_tokens=draw(unattributed),
        cpu_core_seconds=draw(st.floats(0, 1e5, allow_nan=False)) if infra else 0.0,
        gpu_seconds=draw(st.floats(0, 1e3, allow_nan=False)) if infra else 0.0,
        network_bytes_out=draw(st.integers(0, 10**12)) if infra else 0,
        attributes=draw(_ATTRIBUTES))


@settings(max_examples=200, deadline=None)
@given(spans=st.lists(_spans(), min_size=1, max_size=12),
       pricing=st.sampled_from(list(PRICES)))
def test_generated_spans_price_alike(spans: list[CanonicalSpan], pricing: str) -> None:
    assert_prices_alike(spans, PRICES[pricing])
