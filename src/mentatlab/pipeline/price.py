"""Price: the pipeline processor that fills every cost field of a span.

Formulas (all ``Decimal``; prices in USD, converted to the pricing file's currency;
every part rounded to 12 decimal places, half to even, see ``pricing/money.py``)::

    token_cost   = genai-prices / pricing.toml cost of the span's tokens (0 for a roll-up)
    unattributed_cost = the same price of a roll-up span's unattributed_*_tokens (the part
                   of its usage no descendant carries, set by the attribution resolver)
    cpu_cost     = cpu_core_seconds  / 3600 * cpu_per_core_hour
    memory_cost  = memory_gb_seconds / 3600 * memory_per_gb_hour
    gpu_cost     = gpu_seconds       / 3600 * (rate of the span's GPU model, attribute
                   mentat.resource.gpu_model, else gpu_per_hour)
    network_cost = (network_bytes_in * network_in_per_gb
                    + network_bytes_out * network_out_per_gb) / 1e9
    storage_cost = storage_bytes / 1e9 * storage_per_gb_month * storage_billed_months
    discount     = percent / 100 * (the parts the first matching discount applies to;
                   "tokens" means token_cost + unattributed_cost)
    total_cost   = token + unattributed + cpu + memory + gpu + network + storage - discount
    input_cost + cache_read_cost + cache_write_cost + output_cost + reasoning_cost
                 + request_cost = token_cost, exactly (RateCard.cost_by_kind; each part
                   rounded to 12 places, the rounding remainder added to the largest part)
    cache_savings = cache-read tokens at the uncached input rate - their price (before
                   rounding; then rounded), docs/decisions/0012-token-kind-costs.md

Infrastructure rates: ``pricing.toml [infrastructure]`` key by key over the shipped
defaults, public on-demand list prices with their source and date
(``pricing/data/infrastructure.toml``, :mod:`mentatlab.pricing.infra_rates`).

Token prices: a ``[[models]]`` entry of ``pricing.toml`` wins, else genai-prices (see
``pricing/catalog.py``), priced by the response model when present, else the request
model (falling back to the request model when the response model is unknown). A span
with token counts but no known model gets token cost 0 and ``price_source = "unpriced"``:
a price is never guessed. A span with no token counts has no token source.
``price_source`` is the token source, then ``;infra=<origin>`` when the span has an
infrastructure cost (``pricing/price_source.py``): ``genai-prices@0.2.5:openai/gpt-4o``,
``genai-prices@0.2.5:openai/gpt-4o;infra=defaults@2026-12-06``, ``infra=pricing.toml``, ``""``.

At ingest these formulas run on columns (:mod:`mentatlab.pipeline.price_columns`, the
pipeline's last stage, decision 0027), which gives exactly what :class:`Price` gives per
span and calls :meth:`Price.cost_fields` for the rows its integer plan does not cover.
:class:`Price` prices spans where spans are at hand: reprice, the resolver, the CLI.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import operator
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

import orjson
from genai_prices.types import ModelPrice

from mentatlab.errors import PricingError
from mentatlab.model.schema import MONEY_COLUMNS, TOKEN_KIND_COST_COLUMNS
from mentatlab.model.span import CanonicalSpan
from mentatlab.pricing.catalog import PriceCatalog
from mentatlab.pricing.infra_rates import (
    GPU_MODEL_ATTRIBUTE,
    DefaultInfraRates,
    InfraRateCard,
    load_default_infra_rates,
)
from mentatlab.pricing.money import quantize_money, to_decimal
from mentatlab.pricing.price_source import UNPRICED, format_price_source
from mentatlab.pricing.pricing_file import ModelRate, PricingConfig, load_pricing_file
from mentatlab.pricing.rate_card import TOKEN_KINDS, KindCost, RateCard, TokenUsage
from mentatlab.settings import Settings

__all__ = ["COST_FIELDS", "EXTRA_USAGE_ATTRIBUTES", "UNPRICED", "Price", "PricingInputs",
           "reprice_spans"]

logger = logging.getLogger(__name__)

EXTRA_USAGE_ATTRIBUTES = {
    "mentat.usage.cache_write_5m_tokens": "cache_write_5m_tokens",
    "mentat.usage.cache_write_1h_tokens": "cache_write_1h_tokens",
    "mentat.usage.citation_tokens": "citation_tokens",
}
"""Span attributes (integers) that refine token counts beyond the canonical columns:
cache writes split by TTL (subsets of ``cache_write_tokens``; 1-hour writes cost more)
and citation tokens (a subset of ``output_tokens``, with their own rate at some providers)."""

_ZERO = Decimal(0)
_HOUR_S = Decimal(3600)
_GB_BYTES = Decimal(10) ** 9
_HUNDRED = Decimal(100)
_ZERO_MONEY = quantize_money(_ZERO)
_MONEY_EXPONENT = _ZERO_MONEY.as_tuple().exponent
_FIELDS = tuple(f.name for f in dataclasses.fields(CanonicalSpan))
_MONEY_FIELDS = (*MONEY_COLUMNS, *TOKEN_KIND_COST_COLUMNS)
COST_FIELDS = (*MONEY_COLUMNS, "currency", "price_source", *TOKEN_KIND_COST_COLUMNS)
"""Every field the ``price`` processor sets."""
_COST_FIELDS = COST_FIELDS
_GET_ALL = operator.attrgetter(*_FIELDS)
_GET_COSTS = operator.attrgetter(*_COST_FIELDS)
_COST_INDEX = tuple(_FIELDS.index(name) for name in _COST_FIELDS)


class PricingInputs(Protocol):
    """The fields of a span its price depends on (read only).

    A :class:`CanonicalSpan` has them; so has a row of an Arrow batch
    (:mod:`mentatlab.pipeline.price_columns` prices the rows it cannot price on columns
    from a small tuple of these, without building a whole span).
    """

    @property
    def trace_id(self) -> str: ...  # noqa: D102 - CanonicalSpan documents the fields
    @property
    def span_id(self) -> str: ...  # noqa: D102
    @property
    def start_time(self) -> datetime: ...  # noqa: D102
    @property
    def org_id(self) -> str: ...  # noqa: D102
    @property
    def provider(self) -> str: ...  # noqa: D102
    @property
    def request_model(self) -> str: ...  # noqa: D102
    @property
    def response_model(self) -> str: ...  # noqa: D102
    @property
    def model(self) -> str: ...  # noqa: D102
    @property
    def input_tokens(self) -> int | None: ...  # noqa: D102
    @property
    def output_tokens(self) -> int | None: ...  # noqa: D102
    @property
    def cache_read_tokens(self) -> int | None: ...  # noqa: D102
    @property
    def cache_write_tokens(self) -> int | None: ...  # noqa: D102
    @property
    def reasoning_tokens(self) -> int | None: ...  # noqa: D102
    @property
    def total_tokens(self) -> int | None: ...  # noqa: D102
    @property
    def usage_is_rollup(self) -> bool: ...  # noqa: D102
    @property
    def unattributed_input_tokens(self) -> int: ...  # noqa: D102
    @property
    def unattributed_output_tokens(self) -> int: ...  # noqa: D102
    @property
    def unattributed_cache_read_tokens(self) -> int: ...  # noqa: D102
    @property
    def unattributed_cache_write_tokens(self) -> int: ...  # noqa: D102
    @property
    def cpu_core_seconds(self) -> float: ...  # noqa: D102
    @property
    def memory_gb_seconds(self) -> float: ...  # noqa: D102
    @property
    def gpu_seconds(self) -> float: ...  # noqa: D102
    @property
    def network_bytes_in(self) -> int: ...  # noqa: D102
    @property
    def network_bytes_out(self) -> int: ...  # noqa: D102
    @property
    def storage_bytes(self) -> int: ...  # noqa: D102
    @property
    def attributes(self) -> str: ...  # noqa: D102
    @property
    def resource(self) -> str: ...  # noqa: D102


def _usage(span: PricingInputs) -> TokenUsage:
    extra: dict[str, int] = {}
    if '"mentat.usage.' in span.attributes:
        try:
            attributes = orjson.loads(span.attributes)
        except orjson.JSONDecodeError:
            attributes = {}
        for key, field in EXTRA_USAGE_ATTRIBUTES.items():
            value = attributes.get(key) if isinstance(attributes, dict) else None
            if isinstance(value, int) and not isinstance(value, bool):
                extra[field] = value
    return TokenUsage(
        input_tokens=span.input_tokens, output_tokens=span.output_tokens,
        cache_read_tokens=span.cache_read_tokens, cache_write_tokens=span.cache_write_tokens,
        reasoning_tokens=span.reasoning_tokens, **extra)


def _unattributed_usage(span: PricingInputs) -> TokenUsage | None:
    """A roll-up span's unattributed usage, or None when it has none."""
    if not (span.unattributed_input_tokens or span.unattributed_output_tokens
            or span.unattributed_cache_read_tokens or span.unattributed_cache_write_tokens):
        return None
    return TokenUsage(
        input_tokens=span.unattributed_input_tokens,
        output_tokens=span.unattributed_output_tokens,
        cache_read_tokens=span.unattributed_cache_read_tokens or None,
        cache_write_tokens=span.unattributed_cache_write_tokens or None)


_GPU_MODEL_KEY = f'"{GPU_MODEL_ATTRIBUTE}"'


def _gpu_model(span: PricingInputs) -> str:
    """The GPU model the span's GPU time ran on (span attribute, else resource), or ""."""
    for text in (span.attributes, span.resource):
        if _GPU_MODEL_KEY in text:
            try:
                decoded = orjson.loads(text)
            except orjson.JSONDecodeError:
                continue
            value = decoded.get(GPU_MODEL_ATTRIBUTE) if isinstance(decoded, dict) else None
            if isinstance(value, str):
                return value
    return ""


def _has_tokens(span: PricingInputs) -> bool:
    return (span.input_tokens is not None or span.output_tokens is not None
            or span.cache_read_tokens is not None or span.cache_write_tokens is not None
            or span.reasoning_tokens is not None)


def _model_price(rate: ModelRate) -> ModelPrice:
    prices: dict[str, Decimal] = {"input_mtok": rate.input_per_mtok,
                                  "output_mtok": rate.output_per_mtok}
    if rate.cache_read_per_mtok is not None:
        prices["cache_read_mtok"] = rate.cache_read_per_mtok
    if rate.cache_write_per_mtok is not None:
        prices["cache_write_mtok"] = rate.cache_write_per_mtok
    if rate.per_request is not None:
        prices["requests_kcount"] = rate.per_request * 1000
    return ModelPrice(**prices)


class Price:
    """Processor ``price``: fills token, infrastructure and discount costs of each span.

    Pure and thread-safe; lookups are memoized per (provider, model, minute), so a batch of
    N spans over a few models costs N small ``Decimal`` computations.
    """

    name = "price"

    def __init__(self, catalog: PriceCatalog | None = None,
                 pricing: PricingConfig | None = None, *,
                 infra_defaults: DefaultInfraRates | None = None) -> None:
        """Create the processor.

        Args:
            catalog: genai-prices catalog; default the bundled offline snapshot.
            pricing: the parsed ``pricing.toml``; default none (genai-prices, USD, the
                shipped infrastructure rates, no discounts).
            infra_defaults: the default infrastructure rates; default the shipped ones.

        Raises:
            ConfigError: the shipped infrastructure rates file cannot be read.
        """
        self.catalog = catalog if catalog is not None else PriceCatalog()
        self.pricing = pricing if pricing is not None else PricingConfig()
        self.infra = InfraRateCard(
            infra_defaults if infra_defaults is not None else load_default_infra_rates(),
            self.pricing.infrastructure)
        """The infrastructure rates in force, with where each came from."""
        self._config_cards = {id(rate): RateCard(_model_price(rate))
                              for rate in self.pricing.models}
        self._resolve = functools.lru_cache(maxsize=65_536)(self._resolve_uncached)

    @classmethod
    def from_settings(cls, settings: Settings) -> Price:
        """The processor a server runs, configured from ``settings``.

        Reads ``settings.pricing_path`` (if any) and the catalog of ``settings.data_dir``
        (:meth:`PriceCatalog.for_data_dir`).

        Raises:
            ConfigError: the pricing file is unreadable or invalid.
            PricingError: saved genai-prices data exists but cannot be used.
        """
        path = settings.pricing_path
        pricing = load_pricing_file(path) if path is not None else None
        return cls(PriceCatalog.for_data_dir(settings.data_dir), pricing)

    def __call__(self, spans: list[CanonicalSpan]) -> list[CanonicalSpan]:
        """Price a batch of N spans in place; returns the same N span objects.

        The pipeline owns the spans it passes from stage to stage, so setting the cost
        fields in place is safe and avoids rebuilding a ~75-field object per span
        (docs/decisions/0002-mutable-canonical-span.md).
        """
        costs = self._costs
        for span in spans:
            (span.token_cost, span.cpu_cost, span.memory_cost, span.gpu_cost,
             span.network_cost, span.storage_cost, span.unattributed_cost, span.discount,
             span.total_cost, span.currency, span.price_source, span.input_cost,
             span.cache_read_cost, span.cache_write_cost, span.output_cost,
             span.reasoning_cost, span.request_cost, span.cache_savings) = costs(span)
        return spans

    def price_span(self, span: CanonicalSpan) -> CanonicalSpan:
        """Return ``span`` with its cost fields recomputed from scratch.

        ``span`` itself is never changed: the answer is ``span`` when it was already
        priced exactly so, else a new object.
        """
        costs = self._costs(span)
        if _GET_COSTS(span) == costs and all(
                getattr(span, name).as_tuple().exponent == _MONEY_EXPONENT
                for name in _MONEY_FIELDS):
            return span  # already priced exactly so: keep the object (and its version)
        row = list(_GET_ALL(span))
        for index, value in zip(_COST_INDEX, costs, strict=True):
            row[index] = value
        return CanonicalSpan(*row)

    def resolve(self, provider: str, model: str, request_model: str, minute: int
                ) -> tuple[RateCard, str] | None:
        """The rate card and price source of a model at a minute, or None when unknown.

        ``model`` is the span's :attr:`CanonicalSpan.model`, ``minute`` its start time in
        whole minutes since the epoch (``int(start_time.timestamp() // 60)``). Memoized:
        the per-span and the columnar path (:mod:`mentatlab.pipeline.price_columns`)
        share one cache.
        """
        return self._resolve(provider, model, request_model, minute)

    def cost_fields(self, span: PricingInputs) -> tuple[Any, ...]:
        """The ``COST_FIELDS`` of ``span`` (``span`` is never changed).

        The 9 money fields (``MONEY_COLUMNS`` order, ``Decimal`` with 12 places, in the
        pricing currency), the currency code, the price source, the 7 kind costs.
        """
        return self._costs(span)

    def _costs(self, span: PricingInputs) -> tuple[Any, ...]:
        """The 9 money fields (``MONEY_COLUMNS`` order), currency, source, 7 kind costs."""
        token_usd, source, kinds = self._token_cost(span)
        unattributed_usd = _ZERO
        if span.usage_is_rollup:
            unattributed_usd, source = self._unattributed_cost(span)
        pricing = self.pricing
        currency = pricing.currency
        fx = currency.rate_from_usd
        if fx == 1 and not pricing.discounts and not unattributed_usd and not (
                span.cpu_core_seconds or span.memory_gb_seconds or span.gpu_seconds
                or span.network_bytes_in or span.network_bytes_out or span.storage_bytes):
            # the common case: tokens only, USD, no discount
            token = quantize_money(token_usd) if token_usd else _ZERO_MONEY
            z = _ZERO_MONEY
            return (token, z, z, z, z, z, z, z, token, currency.code, source,
                    *_kind_parts(kinds, token, fx))
        card = self.infra
        usd = {"token_cost": token_usd, "cpu_cost": _ZERO, "memory_cost": _ZERO,
               "gpu_cost": _ZERO, "network_cost": _ZERO, "storage_cost": _ZERO,
               "unattributed_cost": unattributed_usd}
        origins = 0  # bit set of the origins of the rates this span was charged at
        if span.cpu_core_seconds and card.cpu.usd:
            usd["cpu_cost"] = to_decimal(span.cpu_core_seconds) * card.cpu.usd / _HOUR_S
            origins |= card.cpu.origin_bit
        if span.memory_gb_seconds and card.memory.usd:
            usd["memory_cost"] = (to_decimal(span.memory_gb_seconds) * card.memory.usd
                                  / _HOUR_S)
            origins |= card.memory.origin_bit
        if span.gpu_seconds:
            gpu = card.gpu_rate(_gpu_model(span))
            if gpu.usd:
                usd["gpu_cost"] = to_decimal(span.gpu_seconds) * gpu.usd / _HOUR_S
                origins |= gpu.origin_bit
        if span.network_bytes_in and card.network_in.usd:
            usd["network_cost"] = span.network_bytes_in * card.network_in.usd / _GB_BYTES
            origins |= card.network_in.origin_bit
        if span.network_bytes_out and card.network_out.usd:
            usd["network_cost"] += span.network_bytes_out * card.network_out.usd / _GB_BYTES
            origins |= card.network_out.origin_bit
        if span.storage_bytes and card.storage.usd:
            usd["storage_cost"] = (span.storage_bytes * card.storage.usd
                                   * card.storage_billed_months / _GB_BYTES)
            origins |= card.storage.origin_bit
        if origins:
            source = format_price_source(source, card.source_tags[origins])
        parts = {k: quantize_money(v * fx if fx != 1 else v) if v else _ZERO_MONEY
                 for k, v in usd.items()}
        discount = _ZERO_MONEY
        rule = pricing.discount_for(span.provider, span.model, span.org_id) \
            if pricing.discounts else None
        if rule is not None:
            tokens = ("token_cost", "unattributed_cost")
            if rule.applies_to == "tokens":
                base = parts["token_cost"] + parts["unattributed_cost"]
            elif rule.applies_to == "infrastructure":
                base = sum((v for k, v in parts.items() if k not in tokens), _ZERO)
            else:
                base = sum(parts.values(), _ZERO)
            discount = quantize_money(base * rule.percent / _HUNDRED)
        total = sum(parts.values(), _ZERO) - discount
        p = parts
        return (p["token_cost"], p["cpu_cost"], p["memory_cost"], p["gpu_cost"],
                p["network_cost"], p["storage_cost"], p["unattributed_cost"], discount, total,
                currency.code, source, *_kind_parts(kinds, p["token_cost"], fx))

    def _unattributed_cost(self, span: PricingInputs) -> tuple[Decimal, str]:
        """USD of a roll-up span's unattributed usage, and its price source.

        Priced like an LLM call of the span's own model; a span without a known model
        is ``unpriced`` (its usage is never priced with a descendant's model: that would
        be a guess).
        """
        usage = _unattributed_usage(span)
        if usage is None:
            return _ZERO, ""
        usd, source, _ = self._price_usage(span, usage, by_kind=False)
        return usd, source

    def _token_cost(self, span: PricingInputs) -> tuple[Decimal, str, KindCost | None]:
        if span.usage_is_rollup:
            return _ZERO, "", None
        if not _has_tokens(span):
            # a bare total cannot be split into input and output: never guess the split
            return _ZERO, ("" if span.total_tokens is None else UNPRICED), None
        return self._price_usage(span, _usage(span), by_kind=True)

    def _price_usage(self, span: PricingInputs, usage: TokenUsage, *, by_kind: bool
                     ) -> tuple[Decimal, str, KindCost | None]:
        """USD of ``usage`` at the span model's price, source, cost by kind (``by_kind``)."""
        minute = int(span.start_time.timestamp() // 60)
        found = self._resolve(span.provider, span.model, span.request_model, minute)
        if found is None:
            return _ZERO, UNPRICED, None
        card, source = found
        try:
            if by_kind:
                kinds = card.cost_by_kind(usage)
                return kinds.total_usd, source, kinds
            return card.cost(usage).total_usd, source, None
        except PricingError as exc:
            logger.warning("Span %s/%s left unpriced: %s", span.trace_id, span.span_id, exc)
            return _ZERO, UNPRICED, None

    def _resolve_uncached(self, provider: str, model: str, request_model: str,
                          minute: int) -> tuple[RateCard, str] | None:
        if not model:
            return None
        refs = [model] if request_model in ("", model) else [model, request_model]
        for ref in refs:
            rate = self.pricing.model_rate(provider, ref)
            if rate is not None:
                label = f"{provider.lower() or '*'}/{ref.lower()}"
                return self._config_cards[id(rate)], f"pricing.toml:{label}"
        at = _minute_start(minute)
        for ref in refs:
            resolved = self.catalog.lookup(provider, ref, at)
            if resolved is not None:
                source = resolved.source
                if ref != model and "?fallback=" not in source:
                    source += f"?fallback={model.lower()}"
                return resolved.card, source
        return None


_NO_KINDS = (_ZERO_MONEY,) * len(TOKEN_KIND_COST_COLUMNS)
_CACHE_READ = TOKEN_KINDS.index("cache_read")


def _kind_parts(kinds: KindCost | None, token_cost: Decimal, fx: Decimal
                ) -> tuple[Decimal, ...]:
    """The 7 ``TOKEN_KIND_COST_COLUMNS`` of a span of (rounded) token cost ``token_cost``.

    ``kinds`` is the span's unrounded USD split; the answer is in the pricing currency.

    Each kind is converted (``* fx``) and rounded (:func:`quantize_money`) on its own; the
    difference between ``token_cost`` and their sum (a few 1e-12 at most, nonzero only
    when a part has more than 12 decimals) is added to the largest part (the first of
    the largest in ``TOKEN_KINDS`` order), so the six parts add up to ``token_cost``
    exactly. ``cache_savings`` is rounded from its unrounded difference.
    """
    if kinds is None or not token_cost:
        return _NO_KINDS
    parts = [quantize_money(p * fx) if fx != 1 else quantize_money(p) if p else _ZERO_MONEY
             for p in kinds.parts]
    remainder = token_cost - sum(parts, _ZERO)
    if remainder:
        largest = max(range(len(parts)), key=lambda i: (abs(parts[i]), -i))
        parts[largest] += remainder
    savings = kinds.cache_read_uncached_usd - kinds.parts[_CACHE_READ]
    if fx != 1:
        savings *= fx
    return (*parts, quantize_money(savings) if savings else _ZERO_MONEY)


def _minute_start(minute: int) -> datetime:
    return datetime.fromtimestamp(minute * 60, tz=UTC)


def reprice_spans(spans: Sequence[CanonicalSpan], processor: Price) -> list[CanonicalSpan]:
    """Recompute the costs of N stored spans with ``processor``'s current prices.

    Every returned span is a new version: ``ingested_at_ns`` is now (ns since the epoch),
    and always above the span's previous version, so the store's
    ``ReplacingMergeTree(ingested_at_ns)`` keeps the repriced row; ``revision`` is one more.
    """
    now_ns = time.time_ns()
    out: list[CanonicalSpan] = []
    for span in spans:
        priced = processor.price_span(span)
        version_ns = max(now_ns, span.ingested_at_ns + 1)
        out.append(dataclasses.replace(priced, ingested_at_ns=version_ns,
                                       revision=span.revision + 1))
    return out
