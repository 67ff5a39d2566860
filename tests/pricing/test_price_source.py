from __future__ import annotations

import pytest

from mentatlab.pricing.price_source import (
    UNPRICED,
    ParsedPriceSource,
    format_price_source,
    parse_price_source,
)


@pytest.mark.parametrize(("tokens", "infra", "text"), [
    ("genai-prices@0.2.5:openai/gpt-4o", "defaults@2026-12-06",
     "genai-prices@0.2.5:openai/gpt-4o;infra=defaults@2026-12-06"),
    ("genai-prices@0.2.5:openai/gpt-4.1?fallback=gpt-4.1-2026-04-14", "pricing.toml",
     "genai-prices@0.2.5:openai/gpt-4.1?fallback=gpt-4.1-2026-04-14;infra=pricing.toml"),
    ("pricing.toml:self-hosted/llama;v2", "pricing.toml+defaults@2026-12-06",
     "pricing.toml:self-hosted/llama;v2;infra=pricing.toml+defaults@2026-12-06"),
    ("", "defaults@2026-12-06", "infra=defaults@2026-12-06"),
    ("genai-prices@0.2.5:openai/gpt-4o", "", "genai-prices@0.2.5:openai/gpt-4o"),
    ("", "", ""),
])
def test_format_and_parse_round_trip(tokens: str, infra: str, text: str) -> None:
    assert format_price_source(tokens, infra) == text
    assert parse_price_source(text) == ParsedPriceSource(tokens, infra)


def test_unpriced_stays_exact_for_the_unpriced_report() -> None:
    assert format_price_source(UNPRICED, "defaults@2026-12-06") == "unpriced"
    assert parse_price_source("unpriced") == ParsedPriceSource("unpriced", "")
