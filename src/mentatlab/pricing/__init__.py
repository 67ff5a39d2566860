"""Prices: the genai-prices catalog, the pricing file, infrastructure rates, money rounding."""

from __future__ import annotations

from mentatlab.pricing.catalog import (
    OTEL_PROVIDER_IDS,
    PriceCatalog,
    PriceUpdate,
    ResolvedPrice,
    snapshot_path,
    undated_model,
    update_prices,
)
from mentatlab.pricing.infra_rates import (
    DefaultInfraRates,
    InfraRate,
    InfraRateCard,
    RateSource,
    load_default_infra_rates,
)
from mentatlab.pricing.money import quantize_money
from mentatlab.pricing.price_source import (
    ParsedPriceSource,
    format_price_source,
    parse_price_source,
)
from mentatlab.pricing.pricing_file import (
    Currency,
    Discount,
    GpuModelRate,
    InfraRates,
    ModelRate,
    PricingConfig,
    load_pricing_file,
    parse_pricing,
)
from mentatlab.pricing.rate_card import RateCard, TokenCost, TokenUsage

__all__ = [
    "OTEL_PROVIDER_IDS",
    "Currency",
    "DefaultInfraRates",
    "Discount",
    "GpuModelRate",
    "InfraRate",
    "InfraRateCard",
    "InfraRates",
    "ModelRate",
    "ParsedPriceSource",
    "PriceCatalog",
    "PriceUpdate",
    "PricingConfig",
    "RateCard",
    "RateSource",
    "ResolvedPrice",
    "TokenCost",
    "TokenUsage",
    "format_price_source",
    "load_default_infra_rates",
    "load_pricing_file",
    "parse_pricing",
    "parse_price_source",
    "quantize_money",
    "snapshot_path",
    "undated_model",
    "update_prices",
]
