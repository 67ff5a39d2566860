"""Conformance: every price case of shared/conformance prices to the last decimal.

Cases: ``prices.json`` (18 acceptance cases) and the ``otel-genai`` spans whose expected
tokens and model carry ``cost_usd_genai_prices``. Expected values were computed with the
genai-prices data at commit 47df840a5ab1; a case without a request timestamp is evaluated
at that snapshot's date (2026-08-21), not at "now", so later price changes in the
installed data cannot make it pass or fail by the calendar.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import genai_prices
import pytest

from conformance_corpus import require
from mentatlab.model.span import CanonicalSpan, SpanStatus
from mentatlab.pipeline.price import Price
from mentatlab.pricing.catalog import PriceCatalog
from mentatlab.pricing.money import quantize_money
from mentatlab.pricing.rate_card import TokenUsage

CONFORMANCE_DIR = require()

SNAPSHOT_DATE = datetime(2026, 8, 21, 12, 0, tzinfo=UTC)
"""Date of genai-prices commit 47df840a5ab1, which the expected values were computed at."""
_USAGE_NAMES = {"output_reasoning_tokens": "reasoning_tokens",
                "output_citation_tokens": "citation_tokens"}

PRICE_CASES: list[dict[str, Any]] = json.loads(
    (CONFORMANCE_DIR / "prices.json").read_text())["cases"]


def _span_cases() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted((CONFORMANCE_DIR / "otel-genai").glob("*.json")):
        case = json.loads(path.read_text())
        for i, expected in enumerate(case.get("expected_per_span") or [case["expected"]]):
            if expected.get("cost_usd_genai_prices") is not None:
                out.append((f"{case['id']}#{i}", expected))
    return out


SPAN_CASES = _span_cases()


@pytest.fixture(scope="module")
def catalog() -> PriceCatalog:
    return PriceCatalog()


def test_the_corpus_is_the_one_described() -> None:
    assert len(PRICE_CASES) == 18
    assert len(SPAN_CASES) >= 20


@pytest.mark.parametrize("case", PRICE_CASES, ids=[c["id"] for c in PRICE_CASES])
def test_price_case_prices_to_the_last_decimal(catalog: PriceCatalog, case: dict[str, Any]) -> None:
    lookup = dict(case["lookup"])
    stamp = lookup.pop("genai_request_timestamp", None)
    at = datetime.fromisoformat(stamp) if stamp else SNAPSHOT_DATE
    usage = TokenUsage(**{_USAGE_NAMES.get(k, k): v for k, v in case["usage"].items()})
    cost, resolved = catalog.price(usage, lookup.get("provider_id", ""), case["model"], at,
                                   provider_api_url=lookup.get("provider_api_url"))
    exact = case["expected_usd"]["exact"]
    assert (cost.input_usd, cost.output_usd, cost.total_usd) == (
        Decimal(exact["input"]), Decimal(exact["output"]), Decimal(exact["total"]))
    assert resolved.model_id == case["matched_model_id"]
    assert resolved.source == f"genai-prices@{genai_prices.__version__}:{resolved.provider_id}/" \
        f"{case['matched_model_id']}"


def test_price_without_timestamp_uses_the_price_in_force_at_that_time(
        catalog: PriceCatalog) -> None:
    """The one drift from 47df840a5ab1: OpenRouter re-priced deepseek-v3.2 on 2026-10-19
    and 2026-11-09. The fixture's value holds at its date; today's price is genai-prices'
    own answer for today."""
    usage = TokenUsage(input_tokens=2_000_000, output_tokens=1_000_000,
                       cache_read_tokens=1_000_000)
    now = datetime(2026, 11, 22, tzinfo=UTC)
    cost, _ = catalog.price(usage, "openrouter", "deepseek/deepseek-v3.2", now)
    direct = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=2_000_000, output_tokens=1_000_000,
                           cache_read_tokens=1_000_000),
        "deepseek/deepseek-v3.2", provider_id="openrouter", genai_request_timestamp=now)
    assert cost.total_usd == direct.total_price
    assert cost.total_usd != Decimal("0.8008")


def test_alternative_timestamp_of_the_tiered_case(catalog: PriceCatalog) -> None:
    case = next(c for c in PRICE_CASES if c["id"] == "gpt-5.6-terra-long-context-cache-write")
    usage = TokenUsage(**case["usage"])
    cost, _ = catalog.price(usage, "openai", case["model"],
                            datetime(2026, 7, 29, tzinfo=UTC))
    alt = case["alt_if_timestamp_2026-07-29"]
    assert (cost.input_usd, cost.output_usd, cost.total_usd) == (
        Decimal(alt["input"]), Decimal(alt["output"]), Decimal(alt["total"]))


def _span_for(expected: dict[str, Any], at: datetime) -> CanonicalSpan:
    provider = expected.get("provider") or ""
    return CanonicalSpan(
        trace_id="0" * 32, span_id="0" * 16, parent_span_id="", name="llm", kind="client",
        start_time=at, end_time=at, duration_ms=0.0, status=SpanStatus.OK,
        provider=provider, request_model=expected.get("request_model") or "",
        response_model=expected.get("response_model") or "",
        input_tokens=expected.get("input_tokens"), output_tokens=expected.get("output_tokens"),
        cache_read_tokens=expected.get("cached_input_tokens"),
        cache_write_tokens=expected.get("cache_write_input_tokens"),
        reasoning_tokens=expected.get("reasoning_tokens"))


@pytest.mark.parametrize("expected", [c for _, c in SPAN_CASES], ids=[i for i, _ in SPAN_CASES])
def test_span_case_prices_like_genai_prices(expected: dict[str, Any]) -> None:
    detail = expected["cost_detail"]
    at = datetime.fromisoformat(detail["genai_request_timestamp"])
    span = _span_for(expected, at)
    if not span.request_model and not span.response_model:
        span = span.__class__(**{**{f: getattr(span, f) for f in span.__dataclass_fields__},
                                 "request_model": expected["model"]})
    priced = Price()([span])[0]
    assert priced.token_cost == quantize_money(Decimal(detail["total_usd"]))
    assert priced.total_cost == priced.token_cost
    assert priced.price_source.startswith(
        f"genai-prices@{genai_prices.__version__}:{detail['provider_id']}/{detail['matched_model']}")
    # and the installed genai-prices, asked directly with the case's own lookup, agrees
    direct = genai_prices.calc_price(
        genai_prices.Usage(**detail["usage"]), detail["model_ref"],
        provider_id=detail["provider_id"], genai_request_timestamp=at)
    assert direct.total_price == Decimal(detail["total_usd"])
