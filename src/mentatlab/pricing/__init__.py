"""Prices: the genai-prices catalog, the pricing file, money rounding."""

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
from mentatlab.pricing.money import quantize_money
from mentatlab.pricing.pricing_file import (
    Currency,
    Discount,
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
    "Discount",
    "InfraRates",
    "ModelRate",
    "PriceCatalog",
    "PriceUpdate",
    "PricingConfig",
    "RateCard",
    "ResolvedPrice",
    "TokenCost",
    "TokenUsage",
    "load_pricing_file",
    "parse_pricing",
    "quantize_money",
    "snapshot_path",
    "undated_model",
    "update_prices",
]
