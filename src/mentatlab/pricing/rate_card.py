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
from decimal import Context, Decimal
from typing import Any

from genai_prices.data_units import unit_data
from genai_prices.decompose import is_descendant_or_self
from genai_prices.types import ModelPrice, TieredPrices, Usage
from genai_prices.units import UnitDef, UnitRegistry

from mentatlab.errors import PricingError

__all__ = ["KIND_OF_USAGE_KEY", "TOKEN_KINDS", "IntegerRates", "KindCost", "RateCard", "TokenCost",
           "TokenUsage"]

_REGISTRY = UnitRegistry(unit_data)
_ZERO = Decimal(0)
_EXACT = Context(prec=80)
"""Enough digits that ``scaleb`` of any integer cost is exact."""

_REPORTED_KEYS = frozenset({
    "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
    "cache_write_5m_tokens", "cache_write_1h_tokens", "output_reasoning_tokens",
    "output_citation_tokens",
})
"""genai-prices usage keys MentatLab fills from a span (see :class:`TokenUsage`)."""

TOKEN_KINDS: tuple[str, ...] = ("input", "cache_read", "cache_write", "output", "reasoning",
                                "request")
"""The kinds a token cost is split into (``<kind>_cost`` span columns)."""
_KIND_INDEX = {kind: i for i, kind in enumerate(TOKEN_KINDS)}
_REQUEST = _KIND_INDEX["request"]
KIND_OF_USAGE_KEY: dict[str, str] = {
    "input_tokens": "input", "cache_read_tokens": "cache_read",
    "cache_write_tokens": "cache_write", "cache_write_5m_tokens": "cache_write",
    "cache_write_1h_tokens": "cache_write", "output_tokens": "output",
    "output_citation_tokens": "output", "output_reasoning_tokens": "reasoning",
}
"""The kind each reported genai-prices usage key's own (leaf) tokens belong to."""

_TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
                 "cache_write_5m_tokens", "cache_write_1h_tokens", "reasoning_tokens",
                 "citation_tokens")


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
        """The non-zero counts as genai-prices usage keys, made consistent (tokens).

        Rules, applied in order: a cache-write total below its TTL parts is raised to
        their sum; an input count below its cache reads plus writes is taken as
        cache-EXCLUSIVE (the Anthropic/Bedrock wire meaning) and the cache counts are
        added to it; a missing output count is the sum of its reasoning and citation
        parts; otherwise reasoning is capped at output and citations at output minus
        reasoning (the reported total wins over inconsistent details).

        Raises:
            PricingError: a count is negative.
        """
        read = self.cache_read_tokens or 0
        write_5m = self.cache_write_5m_tokens or 0
        write_1h = self.cache_write_1h_tokens or 0
        write_total = self.cache_write_tokens or 0
        inputs = self.input_tokens or 0
        reasoning = self.reasoning_tokens or 0
        citation = self.citation_tokens or 0
        if min(inputs, self.output_tokens or 0, read, write_total, write_5m, write_1h,
               reasoning, citation) < 0:
            for name in _TOKEN_FIELDS:
                value = getattr(self, name)
                if value is not None and value < 0:
                    raise PricingError(f"Expected {name} to be >= 0, got {value}")
        write = max(write_total, write_5m + write_1h)
        if inputs < read + write:
            inputs += read + write
        if self.output_tokens is None:
            output = reasoning + citation
        else:
            output = self.output_tokens
            reasoning = min(reasoning, output)
            citation = min(citation, output - reasoning)
        values = {
            "input_tokens": inputs, "output_tokens": output, "cache_read_tokens": read,
            "cache_write_tokens": write, "cache_write_5m_tokens": write_5m,
            "cache_write_1h_tokens": write_1h, "output_reasoning_tokens": reasoning,
            "output_citation_tokens": citation,
        }
        return {key: value for key, value in values.items() if value}


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
class KindCost:
    """A usage's cost split by token kind, in USD, unrounded.

    ``by_kind`` (keys :data:`TOKEN_KINDS`) adds up to the usage's genai-prices total
    (exactly, in ``Decimal``). Each *leaf* count of a reported usage key (its count minus
    its reported descendants', e.g. cache reads inside input) is charged at the rate of
    its nearest priced ancestor-or-self, the rule genai-prices applies
    (``genai_prices.types.ModelPrice.calc_price``, 0.2.x), and lands in the kind of the
    key (:data:`KIND_OF_USAGE_KEY`): cache reads of a model without a cache price are
    ``cache_read`` tokens charged at the input rate. Per-request fees are ``request``.
    """

    parts: tuple[Decimal, ...]
    """USD per kind, in :data:`TOKEN_KINDS` order (0 for a kind without tokens)."""
    cache_read_uncached_usd: Decimal
    """The cache-read tokens at the uncached input rate (the same tier): what they would
    have cost without the cache."""
    total_usd: Decimal
    """The usage's cost: the sum of ``parts``, equal to :meth:`RateCard.cost`'s total."""

    @property
    def by_kind(self) -> dict[str, Decimal]:
        """``parts`` by kind name."""
        return dict(zip(TOKEN_KINDS, self.parts, strict=True))


@dataclass(frozen=True, slots=True)
class IntegerRates:
    """A card's prices as integers, for pricing many usages at once (columns).

    The same plan :meth:`RateCard.cost_by_kind` follows in integers: every rate is an
    integer count of ``10**scale`` USD per unit (per token, per request).
    """

    scale: int
    """Exponent of the unit of every rate: ``rate * 10**scale`` is USD."""
    lines: tuple[tuple[int, tuple[tuple[int, int], ...]], ...]
    """Per priced line: base rate and ``(start, rate)`` tiers, highest start first (a tier
    applies when the request's inclusive input tokens are strictly above its start)."""
    kinds: tuple[tuple[str, int, int, tuple[str, ...]], ...]
    """Per reported usage key: key, index in :data:`TOKEN_KINDS`, the line that prices its
    leaf tokens (-1: none), its direct reported children (subtracted to get the leaf)."""
    request_line: int
    """The per-request line, -1 when the card has none."""
    input_line: int
    """The ``input_tokens`` line (the uncached rate of cache reads), -1 when none."""


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


_REPORTED_ORDER = tuple(sorted(_REPORTED_KEYS, key=lambda k: (
    -len(_REGISTRY.units[k].dimensions), k)))
"""Reported usage keys, most specific first (a key's descendants come before it)."""


def _kind_leaves(lines: tuple[_Line, ...]) -> tuple[tuple[str, str | None,
                                                          tuple[str, ...]], ...]:
    """Per reported usage key: its priced owner and its reported descendants.

    The owner is the nearest priced ancestor-or-self (None when nothing prices it); keys
    come most specific first.
    """
    units = _REGISTRY.units
    priced = [line.usage_key for line in lines if line.usage_key != "requests"]
    out: list[tuple[str, str | None, tuple[str, ...]]] = []
    for key in _REPORTED_ORDER:
        unit = units[key]
        descendants = tuple(d for d in _REPORTED_ORDER
                            if d != key and is_descendant_or_self(unit, units[d]))
        owners = [p for p in priced if is_descendant_or_self(units[p], unit)]
        owner = max(owners, key=lambda p: len(units[p].dimensions)) if owners else None
        out.append((key, owner, descendants))
    return tuple(out)


def _rate_and_tiers(
        price: Decimal | TieredPrices) -> tuple[Decimal, tuple[tuple[int, Decimal], ...]]:
    """Base rate and ``(start, rate)`` tiers, highest start first (USD per unit)."""
    if isinstance(price, TieredPrices):
        ascending = sorted(price.tiers, key=lambda tier: tier.start)  # as genai-prices
        return price.base, tuple((tier.start, tier.price) for tier in reversed(ascending))
    return price, ()


_IntPlan = tuple[tuple[str, int, tuple[tuple[int, int], ...], "str | None"], ...]


def _digits_exponent(value: Decimal) -> tuple[int, int] | None:
    """``value`` as ``(integer, exponent)`` with value == integer * 10**exponent, exactly."""
    if not value.is_finite():
        return None
    sign, digits, exponent = value.as_tuple()
    integer = int("".join(map(str, digits)) or "0")
    return (-integer if sign else integer), int(exponent)


def _per_exponent(per: int) -> int | None:
    text = str(per)
    return len(text) - 1 if per > 0 and text == "1" + "0" * (len(text) - 1) else None


def _integer_plan(price_plan: tuple[tuple[str, int, Decimal, tuple[tuple[int, Decimal], ...],
                                          str | None], ...]) -> tuple[int, _IntPlan | None]:
    """The price plan with every rate as an integer count of ``10**scale`` USD per unit.

    Returns ``(scale, plan)``; ``plan`` is None when a rate is not finite or a unit's
    ``per`` is not a power of ten (the Decimal path then prices).
    """
    parsed: list[tuple[str, int, tuple[int, int], tuple[tuple[int, tuple[int, int]], ...],
                       str | None]] = []
    for key, per, rate, tiers, direction in price_plan:
        per_exp = _per_exponent(per)
        base = _digits_exponent(rate)
        tier_parts = [(start, _digits_exponent(tier_rate)) for start, tier_rate in tiers]
        if per_exp is None or base is None or any(part is None for _, part in tier_parts):
            return 0, None
        parsed.append((key, per_exp, base,
                       tuple((start, part) for start, part in tier_parts if part is not None),
                       direction))
    exponents = [exp - per_exp for _, per_exp, (_, exp), _, _ in parsed]
    exponents += [exp - per_exp for _, per_exp, _, tiers, _ in parsed for _, (_, exp) in tiers]
    scale = min(exponents, default=0)

    def units(part: tuple[int, int], per_exp: int) -> int:
        integer, exponent = part
        return int(integer * 10 ** (exponent - per_exp - scale))

    plan = tuple((key, units(base, per_exp),
                  tuple((start, units(part, per_exp)) for start, part in tiers), direction)
                 for key, per_exp, base, tiers, direction in parsed)
    return scale, plan


class RateCard:
    """Prices of one model at one moment, ready to price many usages quickly."""

    __slots__ = ("_base_rates", "_input_at", "_int_plan", "_integer_rates", "_kind_by_key",
                 "_kind_int", "_kind_leaves", "_leaf_plan", "_lines", "_model_price",
                 "_price_plan", "_requests_at", "_scale")

    def __init__(self, model_price: ModelPrice) -> None:
        """Compile ``model_price`` (a genai-prices ``ModelPrice``; USD per unit)."""
        self._model_price = model_price
        self._lines = _compile(model_price)
        lines = self._lines or ()
        self._leaf_plan = tuple((line.usage_key, line.descendants) for line in lines
                                if line.usage_key != "requests")
        self._price_plan: tuple[tuple[str, int, Decimal, tuple[tuple[int, Decimal], ...],
                                      str | None], ...] = tuple(
            (line.usage_key, line.per, *_rate_and_tiers(line.price), line.direction)
            for line in lines)
        self._scale, self._int_plan = _integer_plan(self._price_plan)
        self._kind_leaves = _kind_leaves(lines)
        at = {line.usage_key: i for i, line in enumerate(lines)}
        self._kind_int = tuple((key, _KIND_INDEX[KIND_OF_USAGE_KEY[key]],
                                -1 if owner is None else at[owner], descendants)
                               for key, owner, descendants in self._kind_leaves)
        self._requests_at = at.get("requests", -1)
        self._input_at = at.get("input_tokens", -1)
        descendants_of = {key: set(d) for key, _, d in self._kind_leaves}
        self._kind_by_key = {
            key: (kind, owner, tuple(d for d in descendants if not any(
                d in descendants_of[m] for m in descendants)))
            for key, kind, owner, descendants in self._kind_int}
        """Per reported key: kind index, owner line index (-1: unpriced), direct children."""
        plan = self._int_plan
        self._base_rates = (None if plan is None or any(tiers for _, _, tiers, _ in plan)
                            else [rate for _, rate, _, _ in plan])
        self._integer_rates = None if plan is None or self._lines is None else IntegerRates(
            self._scale, tuple((rate, tiers) for _, rate, tiers, _ in plan),
            tuple((key, kind, owner, children)
                  for key, (kind, owner, children) in self._kind_by_key.items()),
            self._requests_at, self._input_at)

    @property
    def integer_rates(self) -> IntegerRates | None:
        """The card's rates as integers (what :meth:`cost_by_kind` sums in), or None.

        None when the card prices in ``Decimal`` or through genai-prices (a rate that is
        no integer count of a power of ten, a token modality MentatLab never reports).
        """
        return self._integer_rates

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
        if self._lines is None:
            return self._cost_by_genai_prices(values)
        leaves: dict[str, int] = {}
        for key, descendants in self._leaf_plan:
            leaf = values.get(key, 0)
            for descendant in descendants:
                leaf -= leaves[descendant]
            leaves[key] = leaf
        total_input = values.get("input_tokens", 0)
        if self._int_plan is not None:
            return self._cost_in_integers(self._int_plan, leaves, total_input)
        input_usd = output_usd = total_usd = _ZERO
        for key, per, rate, tiers, direction in self._price_plan:
            count = 1 if key == "requests" else leaves[key]
            if not count:
                continue  # adds 0: same value as genai-prices, fewer Decimal operations
            for start, tier_rate in tiers:  # highest tier first
                if total_input > start:
                    rate = tier_rate
                    break
            amount = rate * Decimal(count) / per
            total_usd += amount
            if direction == "input":
                input_usd += amount
            elif direction == "output":
                output_usd += amount
        return TokenCost(input_usd, output_usd, total_usd)

    def cost_by_kind(self, usage: TokenUsage) -> KindCost:
        """Price one usage (tokens) in USD split by token kind (see :class:`KindCost`).

        Raises:
            PricingError: a negative count, or usage genai-prices refuses.
        """
        values = usage.to_genai_values()
        if self._lines is None:
            # a modality we never report: genai-prices only says input, output and total
            cost = self._cost_by_genai_prices(values)
            parts = dict.fromkeys(TOKEN_KINDS, _ZERO)
            parts["input"] = cost.input_usd
            parts["output"] = cost.output_usd
            parts["request"] = cost.total_usd - cost.input_usd - cost.output_usd
            return KindCost(tuple(parts.values()), _ZERO, cost.total_usd)
        if self._int_plan is not None:
            return self._kinds_in_integers(self._int_plan, values)
        total_input = values.get("input_tokens", 0)
        rates = [self._rate_at(key, total_input) for key, _, _, _, _ in self._price_plan]
        kinds = [_ZERO] * len(TOKEN_KINDS)
        leaves: dict[str, int] = {}
        for key, kind, owner, descendants in self._kind_int:
            leaf = values.get(key, 0)
            for descendant in descendants:
                leaf -= leaves.get(descendant, 0)
            leaves[key] = leaf
            if leaf and owner >= 0:
                rate, per = rates[owner]
                kinds[kind] += rate * Decimal(leaf) / per
        if self._requests_at >= 0:
            rate, per = rates[self._requests_at]
            kinds[_REQUEST] += rate / per
        uncached = _ZERO
        read = values.get("cache_read_tokens", 0)
        if read and self._input_at >= 0:
            rate, per = rates[self._input_at]
            uncached = rate * Decimal(read) / per
        return KindCost(tuple(kinds), uncached, self.cost(usage).total_usd)

    def _kinds_in_integers(self, plan: _IntPlan, values: Mapping[str, int]) -> KindCost:
        # Integer units of 10**scale USD, as _cost_in_integers: one exact Decimal per
        # non-zero kind. A key's leaf is its count minus its direct reported children's
        # (their counts include their own descendants: to_genai_values makes them so).
        rates = self._base_rates
        if rates is None:  # tiered: the rates at this request's input size
            total_input = values.get("input_tokens", 0)
            tiered: list[int] = []
            for _, rate, tiers, _ in plan:
                for start, tier_rate in tiers:  # highest tier first
                    if total_input > start:
                        rate = tier_rate
                        break
                tiered.append(rate)
            rates = tiered
        kinds = [0] * len(TOKEN_KINDS)
        get = values.get
        table = self._kind_by_key
        for key, count in values.items():
            kind, owner, children = table[key]
            if owner >= 0:
                for child in children:
                    count -= get(child, 0)
                kinds[kind] += rates[owner] * count
        if self._requests_at >= 0:
            kinds[_REQUEST] += rates[self._requests_at]
        read = get("cache_read_tokens", 0)
        uncached = rates[self._input_at] * read if read and self._input_at >= 0 else 0
        scale = self._scale
        return KindCost(
            tuple(Decimal(k).scaleb(scale, _EXACT) if k else _ZERO for k in kinds),
            Decimal(uncached).scaleb(scale, _EXACT) if uncached else _ZERO,
            Decimal(sum(kinds)).scaleb(scale, _EXACT))

    def _rate_at(self, key: str, total_input: int) -> tuple[Decimal, int]:
        """USD rate of priced usage key ``key`` at ``total_input`` tokens, and its ``per``."""
        for line_key, per, rate, tiers, _ in self._price_plan:
            if line_key == key:
                for start, tier_rate in tiers:  # highest tier first
                    if total_input > start:
                        return tier_rate, per
                return rate, per
        raise KeyError(key)

    def _cost_in_integers(self, plan: _IntPlan, leaves: Mapping[str, int],
                          total_input: int) -> TokenCost:
        # The same sums as above in integer units of 10**scale USD, then one exact Decimal:
        # ~5x fewer Decimal operations. Equal to the Decimal path whenever genai-prices'
        # own 28-digit arithmetic is exact (rates of a few significant digits times token
        # counts are far below 28 digits); the stored cost is rounded to 12 places anyway.
        input_units = output_units = total_units = 0
        for key, rate, tiers, direction in plan:
            count = 1 if key == "requests" else leaves[key]
            if not count:
                continue
            for start, tier_rate in tiers:  # highest tier first
                if total_input > start:
                    rate = tier_rate
                    break
            amount = rate * count
            total_units += amount
            if direction == "input":
                input_units += amount
            elif direction == "output":
                output_units += amount
        scale = self._scale
        return TokenCost(Decimal(f"{input_units}E{scale}"), Decimal(f"{output_units}E{scale}"),
                         Decimal(f"{total_units}E{scale}"))

    def _cost_by_genai_prices(self, values: Mapping[str, int]) -> TokenCost:
        try:
            result = self._model_price.calc_price(Usage(**values))
        except ValueError as exc:
            raise PricingError(f"genai-prices refused usage {dict(values)}: {exc}") from exc
        return TokenCost(result["input_price"], result["output_price"], result["total_price"])
