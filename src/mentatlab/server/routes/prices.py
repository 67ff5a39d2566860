"""``GET /api/v1/prices``: the prices in force on this server and where each came from.

What the ingest pipeline prices new spans with (loaded at server start; ``POST
/api/v1/reprice`` re-reads the files for the spans it reprices): the infrastructure rates
(value in USD per unit, origin, and for a shipped default its provider, product, region,
URL and the date it was taken), the ``pricing.toml`` model prices and discounts, the
currency, and the genai-prices version and saved snapshot in use.
"""

from __future__ import annotations

import fnmatch
from typing import Any

import genai_prices
from fastapi import APIRouter, Request

from mentatlab.pipeline.price import Price
from mentatlab.pipeline.workers import price_of
from mentatlab.pricing.infra_rates import DEFAULTS_PATH, InfraRate, InfraRateCard
from mentatlab.pricing.pricing_file import PricingConfig
from mentatlab.server.components import build_price
from mentatlab.server.deps import Caller
from mentatlab.server.errors import error_responses
from mentatlab.server.serialize import jsonable
from mentatlab.server.state import ServerState, server_state

__all__ = ["describe_prices", "router"]

router = APIRouter(prefix="/api/v1", tags=["prices"])
GENAI_PRICES_URL = "https://github.com/pydantic/genai-prices"
"""Where the token price data comes from."""


def _rate(rate: InfraRate) -> dict[str, Any]:
    source = rate.source
    return {
        "key": rate.key, "value": jsonable(rate.usd), "currency": "USD", "unit": rate.unit,
        "origin": rate.origin,
        "source": None if source is None else {
            "provider": source.provider, "product": source.product, "region": source.region,
            "url": source.url, "taken": source.taken.isoformat(),
            "seen_in": list(source.seen_in), "note": source.note},
    }


def _infrastructure(card: InfraRateCard) -> dict[str, Any]:
    return {
        "priced": card.is_priced,
        "defaults": {"as_of": card.defaults.as_of.isoformat(), "in_use": card.use_defaults,
                     "price_source": card.defaults.tag, "file": str(DEFAULTS_PATH)},
        "storage_billed_months": jsonable(card.storage_billed_months),
        "rates": [_rate(rate) for rate in card.rates.values()],
        "gpu_models": [{**_rate(entry.rate), "match": list(entry.patterns)}
                       for entry in card.gpu_models],
    }


def _visible_discounts(pricing: PricingConfig, org_id: str | None) -> list[dict[str, Any]]:
    """Discounts an org-scoped key may see: those that can apply to its org."""
    return [jsonable(d) for d in pricing.discounts
            if org_id is None or fnmatch.fnmatchcase(org_id, d.org_id)]


def describe_prices(price: Price, settings_pricing_path: str | None,
                    org_id: str | None = None) -> dict[str, Any]:
    """The answer of ``GET /api/v1/prices`` for the processor ``price`` (money as strings).

    Args:
        price: the ``price`` processor in force.
        settings_pricing_path: the pricing file it was loaded from, or None.
        org_id: the org an API key is scoped to (only discounts that can apply to it are
            listed), or None.
    """
    catalog = price.catalog
    pricing = price.pricing
    return {
        "ok": True,
        "currency": jsonable(pricing.currency),
        "pricing_file": settings_pricing_path,
        "token_prices": {
            "source": "genai-prices", "url": GENAI_PRICES_URL,
            "version": genai_prices.__version__,
            "price_source": f"genai-prices@{catalog.version}",
            "snapshot": None if catalog.snapshot_path is None else str(catalog.snapshot_path),
        },
        "infrastructure": _infrastructure(price.infra),
        "models": [jsonable(rate) for rate in pricing.models],
        "discounts": _visible_discounts(pricing, org_id),
    }


def _price_in_force(state: ServerState) -> Price:
    price = price_of(state.pipeline)
    if price is not None:
        return price
    return build_price(state.settings)  # a pipeline without pricing: what reprice would use


@router.get("/prices", summary="Prices in force and their sources",
            responses=error_responses(401, 403, 429, 503))
async def prices(request: Request, caller: Caller) -> dict[str, Any]:
    """The prices new spans are priced with, and where each came from.

    Infrastructure rates (value in USD per unit, origin, source and date), model prices
    and discounts from ``pricing.toml``, the currency, and the genai-prices version.
    """
    state = server_state(request)
    path = state.settings.pricing_path
    return describe_prices(_price_in_force(state), None if path is None else str(path),
                           caller.org_id)
