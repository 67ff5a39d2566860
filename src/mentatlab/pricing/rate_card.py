"""RateCard: one resolved set of model prices, compiled for fast per-span arithmetic.

``genai_prices.calc_price`` costs ~200 µs a call (it rebuilds its unit registry view,
validates and wraps the usage every time). The ingest hot path prices thousands of
spans per batch, so a :class:`RateCard` is compiled once per resolved
``genai_prices.types.ModelPrice`` (memoized by the catalog) and then prices a usage with
a handful of ``Decimal`` multiplications, using *the same* rules and the same operation
order as genai-prices 0.2.x (``ModelPrice.calc_price``):

* usage keys form a tree by their unit dimensions (``input_tokens`` ⊃ ``cache_read_tokens``,
  ``cache_write_tokens`` ⊃ ``cache_write_1h_tokens``, ``output_tokens`` ⊃
  ``output_reasoning_tokens``...). Each *priced* unit is charged for its leaf count: its
  own count minus the leaf counts of its priced descendants. A count whose unit has no
  price stays inside its nearest priced ancestor (cache reads of a model without a cache
  price are billed at the input rate).
* a tiered price applies to the WHOLE request once the inclusive input count is strictly
  above the tier start (genai-prices ``TieredPrices``, "cliff" model).
* ``requests_kcount`` charges one request per priced usage.

A price whose keys fall outside what MentatLab reports (audio/image/video token
modalities) is not compiled: :meth:`RateCard.cost` then delegates to genai-prices itself,
so a result is never an approximation. Prices of other families (web searches, audio
hours, document pages) are charged 0 because MentatLab never reports those counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from genai_prices.data_units import unit_data
from genai_prices.decompose import is_descendant_or_self
from genai_prices.types import ModelPrice, TieredPrices, Usage
from genai_prices.units import UnitDef, UnitRegistry

from mentatlab.errors import PricingError

__all__ = ["RateCard", "TokenCost", "TokenUsage"]

_REGISTRY = UnitRegistry(unit_data)
_ZERO = Decimal(0)

_REPORTED_KEYS = frozenset({
    "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
    "cache_write_5m_tokens", "cache_write_1h_tokens", "output_reasoning_tokens",
    "output_citation_tokens",
})
"""genai-prices usage keys MentatLab fills from a span (see :class:`TokenUsage`)."""


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Token counts of one model call, in MentatLab's meaning (``model/span.py``).

    ``input_tokens`` is inclusive of cache reads and writes, ``cache_write_tokens`` is
    inclusive of its 5-minute and 1-hour parts, ``output_tokens`` is inclusive of
    reasoning and citation tokens. ``None`` means "not reported". genai-prices uses the
    same inclusive meaning, so the counts map one to one onto its ``Usage`` keys.
    """

    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    cache_write_5m_tokens: int | None = None
    cache_write_1h_tokens: int | None = None
    reasoning_tokens: int | None = None
    citation_tokens: int | None = None

    def to_genai_values(self) -> dict[str, int]:
        """The counts as genai-prices usage keys, made consistent (tokens).

        Rules, applied in order: a cache-write total below its TTL parts is raised to
        their sum; an input count below its cache reads plus writes is taken as
        cache-EXCLUSIVE (the Anthropic/Bedrock wire meaning) and the cache counts are
        added to it; a missing output count is the sum of its reasoning and citation
        parts; otherwise reasoning is capped at output and citations at output minus
        reasoning (the reported total wins over inconsistent details).

        Raises:
            PricingError: a count is negative.
        """
        raw = {
            "input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "cache_write_5m_tokens": self.cache_write_5m_tokens,
            "cache_write_1h_tokens": self.cache_write_1h_tokens,
            "output_reasoning_tokens": self.reasoning_tokens,
            "output_citation_tokens": self.citation_tokens,
        }
        for key, value in raw.items():
            if value is not None and value < 0:
                raise PricingError(f"Expected {key} to be >= 0, got {value}")
        v = {k: (x or 0) for k, x in raw.items()}
        ttl_writes = v["cache_write_5m_tokens"] + v["cache_write_1h_tokens"]
        v["cache_write_tokens"] = max(v["cache_write_tokens"], ttl_writes)
        cache = v["cache_read_tokens"] + v["cache_write_tokens"]
        if v["input_tokens"] < cache:
            v["input_tokens"] += cache
        if raw["output_tokens"] is None:
            v["output_tokens"] = v["output_reasoning_tokens"] + v["output_citation_tokens"]
        out = v["output_tokens"]
        v["output_reasoning_tokens"] = min(v["output_reasoning_tokens"], out)
        v["output_citation_tokens"] = min(v["output_citation_tokens"],
                                          out - v["output_reasoning_tokens"])
        return {k: x for k, x in v.items() if x or raw[k] is not None}


@dataclass(frozen=True, slots=True)
class TokenCost:
    """Cost of one usage under one rate card, in USD, unrounded (exact genai-prices math)."""

    input_usd: Decimal
    """Cost of every input-direction unit (fresh input, cache reads and writes)."""
    output_usd: Decimal
    """Cost of every output-direction unit (output, reasoning, citations)."""
    total_usd: Decimal
    """Input plus output plus per-request fees."""


@dataclass(frozen=True, slots=True)
class _Line:
    usage_key: str
    per: int
    price: Decimal | TieredPrices
    direction: str | None
    descendants: tuple[str, ...]


def _price_items(model_price: ModelPrice) -> list[tuple[str, Any]]:
    return [(k, v) for k, v in model_price.__dict__.items()
            if not k.startswith("_") and v is not None]


def _compile(model_price: ModelPrice) -> tuple[_Line, ...] | None:
    units: list[tuple[UnitDef, Decimal | TieredPrices]] = []
    for price_key, value in _price_items(model_price):
        try:
            unit = _REGISTRY.unit_for_price_key(price_key)
        except KeyError:
            return None
        family = unit.dimensions.get("family")
        if family == "tokens" and unit.usage_key not in _REPORTED_KEYS:
            return None  # a token modality we never report: let genai-prices decide
        if family not in ("tokens", "requests"):
            continue  # searches, audio hours, pages...: never reported, count 0
        units.append((unit, value))
    order = sorted((u for u, _ in units if u.usage_key != "requests"),
                   key=lambda u: (-len(u.dimensions), u.usage_key))
    rank = {u.usage_key: i for i, u in enumerate(order)}
    lines = []
    for unit, value in units:
        descendants = tuple(
            d.usage_key for d in order
            if d is not unit and unit.usage_key != "requests" and is_descendant_or_self(unit, d))
        lines.append((rank.get(unit.usage_key, len(order)), _Line(
            unit.usage_key, unit.per, value, unit.dimensions.get("direction"), descendants)))
    return tuple(line for _, line in sorted(lines, key=lambda item: item[0]))


class RateCard:
    """Prices of one model at one moment, ready to price many usages quickly."""

    __slots__ = ("_lines", "_model_price", "_tiered")

    def __init__(self, model_price: ModelPrice) -> None:
        """Compile ``model_price`` (a genai-prices ``ModelPrice``; USD per unit)."""
        self._model_price = model_price
        self._lines = _compile(model_price)
        self._tiered = self._lines is not None and any(
            isinstance(line.price, TieredPrices) for line in self._lines)

    @property
    def model_price(self) -> ModelPrice:
        """The genai-prices prices this card was compiled from."""
        return self._model_price

    def cost(self, usage: TokenUsage) -> TokenCost:
        """Price one usage (tokens) in USD, exactly as genai-prices would.

        Raises:
            PricingError: a negative count, or usage genai-prices refuses.
        """
        values = usage.to_genai_values()
        lines = self._lines
        if lines is None:
            return self._cost_by_genai_prices(values)
        leaves: dict[str, int] = {}
        for line in lines:
            if line.usage_key == "requests":
                continue
            leaf = values.get(line.usage_key, 0) - sum(leaves[d] for d in line.descendants)
            if leaf < 0:  # pragma: no cover - to_genai_values keeps parts within totals
                raise PricingError(f"Expected parts of {line.usage_key} to fit in it, got {values}")
            leaves[line.usage_key] = leaf
        total_input = values.get("input_tokens", 0) if self._tiered else 0
        input_usd = output_usd = total_usd = _ZERO
        for line in lines:
            count = 1 if line.usage_key == "requests" else leaves[line.usage_key]
            price = line.price
            if isinstance(price, TieredPrices):
                rate = price.base
                for tier in reversed(price.tiers):
                    if total_input > tier.start:
                        rate = tier.price
                        break
            else:
                rate = price
            amount = rate * Decimal(count) / line.per
            total_usd += amount
            if line.direction == "input":
                input_usd += amount
            elif line.direction == "output":
                output_usd += amount
        return TokenCost(input_usd, output_usd, total_usd)

    def _cost_by_genai_prices(self, values: Mapping[str, int]) -> TokenCost:
        try:
            result = self._model_price.calc_price(Usage(**values))
        except ValueError as exc:
            raise PricingError(f"genai-prices refused usage {dict(values)}: {exc}") from exc
        return TokenCost(result["input_price"], result["output_price"], result["total_price"])
