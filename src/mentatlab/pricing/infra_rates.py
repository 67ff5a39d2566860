"""Infrastructure rates in force: ``pricing.toml`` key by key over the shipped defaults.

The defaults are public on-demand list prices shipped as data in
``pricing/data/infrastructure.toml`` (each with its provider, product, region, URL and the
date it was taken; nothing is fetched at run time): AWS Fargate per vCPU-hour and GB-hour
of memory, Google Cloud per-GPU prices by GPU model, AWS internet egress and S3 Standard
storage, as of :attr:`DefaultInfraRates.as_of`. ``pricing.toml`` ``[infrastructure]``
replaces any of them key by key; ``defaults = false`` there drops every default, so unset
rates are 0 (``docs/pricing.md``).

A priced span says where its infrastructure rates came from in ``price_source``
(:func:`mentatlab.pricing.price_source.format_price_source`): ``defaults@<as_of>``,
``pricing.toml``, or ``pricing.toml+defaults@<as_of>`` when both supplied a rate it used.
"""

from __future__ import annotations

import fnmatch
import functools
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any

from mentatlab.errors import ConfigError
from mentatlab.pricing.pricing_file import InfraRates

__all__ = [
    "DEFAULTS_PATH",
    "GPU_MODEL_ATTRIBUTE",
    "ORIGIN_DEFAULTS",
    "ORIGIN_PRICING_FILE",
    "RATE_KEYS",
    "UNITS",
    "DefaultInfraRates",
    "GpuRate",
    "InfraRate",
    "InfraRateCard",
    "RateSource",
    "load_default_infra_rates",
]

DEFAULTS_PATH = Path(str(resources.files("mentatlab.pricing") / "data" / "infrastructure.toml"))
"""The shipped default rates (a TOML file inside the package)."""

GPU_MODEL_ATTRIBUTE = "mentat.resource.gpu_model"
"""Span (or resource) attribute naming the GPU model a span's GPU time ran on: the NVML
device name, as the SDK's GPU meter records it (``sdk/meters.py`` ``ATTR_GPU_MODEL``)."""

RATE_KEYS: tuple[str, ...] = ("cpu_per_core_hour", "memory_per_gb_hour", "gpu_per_hour",
                              "network_in_per_gb", "network_out_per_gb", "storage_per_gb_month")
"""The infrastructure rates, each in USD per its unit (:data:`UNITS`)."""

UNITS: Mapping[str, str] = {
    "cpu_per_core_hour": "CPU core-hour", "memory_per_gb_hour": "GB-hour",
    "gpu_per_hour": "GPU-hour", "network_in_per_gb": "GB received",
    "network_out_per_gb": "GB sent", "storage_per_gb_month": "GB-month",
}
"""What one unit of each rate is (as MentatLab meters it; ``docs/pricing.md``)."""

ORIGIN_DEFAULTS = "defaults"
"""Origin of a rate taken from the shipped defaults."""
ORIGIN_PRICING_FILE = "pricing.toml"
"""Origin of a rate set in ``pricing.toml``."""

_SOURCE_KEYS = ("provider", "product", "region", "url", "taken")
_ENTRY_KEYS = {"value", "unit", *_SOURCE_KEYS, "seen_in", "note"}
_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class RateSource:
    """Where a shipped default rate was published, and when it was taken."""

    provider: str
    """e.g. ``AWS``."""
    product: str
    """The priced product and line, e.g. ``AWS Fargate, on-demand, Linux/x86: per vCPU…``."""
    region: str
    """e.g. ``us-east-1 (US East, N. Virginia)``."""
    url: str
    """The provider's price page."""
    taken: date
    """The date the figure was taken."""
    seen_in: tuple[str, ...] = ()
    """Copies the figure was read from (the build machine has no internet)."""
    note: str = ""
    """What the rate leaves out or how it is applied."""


@dataclass(frozen=True, slots=True)
class InfraRate:
    """One rate in force."""

    key: str
    """A :data:`RATE_KEYS` name, or ``gpu:<model key or pattern>`` for a GPU model rate."""
    usd: Decimal
    """USD per :attr:`unit`."""
    unit: str
    """e.g. ``vCPU-hour``."""
    origin: str
    """:data:`ORIGIN_DEFAULTS` or :data:`ORIGIN_PRICING_FILE`."""
    source: RateSource | None = None
    """Publication details of a default rate; None for a rate from ``pricing.toml``."""
    origin_bit: int = field(init=False, repr=False, compare=False)
    """1 for ``pricing.toml``, 2 for the defaults (OR-ed: an index of
    :attr:`InfraRateCard.source_tags`)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "origin_bit", 1 if self.origin == ORIGIN_PRICING_FILE else 2)


@dataclass(frozen=True, slots=True)
class GpuRate:
    """A GPU-hour rate for the GPU models matching any of ``patterns``."""

    patterns: tuple[str, ...]
    """Lower-case ``fnmatch`` patterns against the lower-cased GPU model name."""
    rate: InfraRate

    def matches(self, gpu_model: str) -> bool:
        """Whether ``gpu_model`` (lower-case) matches one of the patterns."""
        return any(fnmatch.fnmatchcase(gpu_model, pattern) for pattern in self.patterns)


@dataclass(frozen=True, slots=True)
class DefaultInfraRates:
    """The shipped default rates (``pricing/data/infrastructure.toml``)."""

    as_of: date
    """When the figures were compiled; ``price_source`` writes ``defaults@<as_of>``."""
    rates: Mapping[str, InfraRate]
    """Every :data:`RATE_KEYS` rate."""
    gpu_models: tuple[GpuRate, ...]
    """GPU-hour rates by GPU model, most specific first."""

    @property
    def tag(self) -> str:
        """``defaults@<as_of>`` (ISO date), as written in ``price_source``."""
        return f"{ORIGIN_DEFAULTS}@{self.as_of.isoformat()}"


def _decimal(where: str, value: Any) -> Decimal:
    try:
        number = Decimal(str(value).strip()) if isinstance(value, (str, int)) else None
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite() or number < 0:
        raise ConfigError(f"Expected {where} to be a decimal string >= 0, got {value!r}")
    return number


def _entry(where: str, raw: Any, key: str) -> InfraRate:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"Expected {where} to be a table, got {raw!r}")
    missing = [k for k in ("value", "unit", *_SOURCE_KEYS) if k not in raw]
    if missing:
        raise ConfigError(f"Missing key {where}.{missing[0]}")
    unknown = sorted(set(raw) - _ENTRY_KEYS - {"key", "match"})
    if unknown:
        raise ConfigError(f"Unknown key {where}.{unknown[0]}")
    taken = raw["taken"]
    if not isinstance(taken, date):
        raise ConfigError(f"Expected {where}.taken to be a TOML date, got {taken!r}")
    texts = {k: raw[k] for k in ("unit", "provider", "product", "region", "url")}
    for name, text in texts.items():
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(f"Expected {where}.{name} to be a non-empty string, got {text!r}")
    source = RateSource(provider=texts["provider"], product=texts["product"],
                        region=texts["region"], url=texts["url"], taken=taken,
                        seen_in=tuple(str(s) for s in raw.get("seen_in", ())),
                        note=str(raw.get("note", "")))
    return InfraRate(key=key, usd=_decimal(f"{where}.value", raw["value"]),
                     unit=texts["unit"], origin=ORIGIN_DEFAULTS, source=source)


def _parse_defaults(data: Mapping[str, Any], where: str) -> DefaultInfraRates:
    as_of = data.get("as_of")
    if not isinstance(as_of, date):
        raise ConfigError(f"Expected {where}: as_of to be a TOML date, got {as_of!r}")
    if data.get("currency", "USD") != "USD":
        raise ConfigError(f"Expected {where}: currency USD, got {data.get('currency')!r}")
    raw_rates = data.get("rates", {})
    missing = [k for k in RATE_KEYS if k not in raw_rates]
    if missing:
        raise ConfigError(f"Missing key {where}: rates.{missing[0]}")
    rates = {k: _entry(f"rates.{k}", raw_rates[k], k) for k in RATE_KEYS}
    gpu_models = []
    for i, raw in enumerate(data.get("gpu_models", [])):
        model_key = raw.get("key") if isinstance(raw, Mapping) else None
        patterns = raw.get("match") if isinstance(raw, Mapping) else None
        if not isinstance(model_key, str) or not isinstance(patterns, list) or not patterns:
            raise ConfigError(f"Expected gpu_models[{i}] to have a key and a match list")
        rate = _entry(f"gpu_models[{i}]", raw, f"gpu:{model_key}")
        gpu_models.append(GpuRate(tuple(str(p).lower() for p in patterns), rate))
    return DefaultInfraRates(as_of=as_of, rates=rates, gpu_models=tuple(gpu_models))


@functools.cache
def _load_cached(path: Path) -> DefaultInfraRates:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"Expected a readable TOML file of infrastructure rates at {path}: "
                          f"{exc}") from exc
    return _parse_defaults(data, str(path))


def load_default_infra_rates(path: Path | None = None) -> DefaultInfraRates:
    """Read the shipped default rates (``path``: another file of the same shape, for tests).

    Cached per path: the file is read once per process.

    Raises:
        ConfigError: the file is missing, not TOML, or an entry lacks its value, unit or
            source (provider, product, region, url, taken).
    """
    return _load_cached((path or DEFAULTS_PATH).resolve())


class InfraRateCard:
    """The infrastructure rates in force: ``pricing.toml`` over the defaults, key by key.

    Immutable after construction and thread-safe; GPU model lookups are memoized.
    """

    def __init__(self, defaults: DefaultInfraRates, overrides: InfraRates | None = None) -> None:
        """Merge ``overrides`` (``pricing.toml [infrastructure]``) over ``defaults``.

        Args:
            defaults: the shipped default rates.
            overrides: the pricing file's table; None or an empty table keeps every default.
        """
        overrides = overrides if overrides is not None else InfraRates()
        self.defaults = defaults
        self.use_defaults = overrides.use_defaults
        """False when ``pricing.toml`` says ``defaults = false``."""
        rates: dict[str, InfraRate] = {}
        for key in RATE_KEYS:
            value: Decimal | None = getattr(overrides, key)
            if value is not None:
                rates[key] = InfraRate(key, value, UNITS[key], ORIGIN_PRICING_FILE)
            elif overrides.use_defaults:
                rates[key] = defaults.rates[key]
            else:
                rates[key] = InfraRate(key, _ZERO, UNITS[key], ORIGIN_PRICING_FILE)
        self.rates: Mapping[str, InfraRate] = rates
        """Every :data:`RATE_KEYS` rate in force."""
        own = tuple(GpuRate((m.model,), InfraRate(f"gpu:{m.model}", m.per_hour, "GPU-hour",
                                                    ORIGIN_PRICING_FILE))
                    for m in overrides.gpu_models)
        shipped = overrides.use_defaults and overrides.gpu_per_hour is None
        self.gpu_models: tuple[GpuRate, ...] = own + (defaults.gpu_models if shipped else ())
        """GPU model rates in the order they are tried: ``pricing.toml``'s, then the shipped
        ones, unless ``pricing.toml`` sets ``gpu_per_hour`` (your GPU price then replaces
        every shipped GPU rate; list models in ``[[infrastructure.gpu_models]]``)."""
        months = overrides.storage_billed_months
        self.storage_billed_months = months if months is not None else Decimal(1)
        """Months of storage charged once to the span that wrote the bytes."""
        self.cpu = rates["cpu_per_core_hour"]
        self.memory = rates["memory_per_gb_hour"]
        self.gpu = rates["gpu_per_hour"]
        self.network_in = rates["network_in_per_gb"]
        self.network_out = rates["network_out_per_gb"]
        self.storage = rates["storage_per_gb_month"]
        self.gpu_rate = functools.lru_cache(maxsize=256)(self._gpu_rate_uncached)
        self.source_tags: tuple[str, ...] = tuple(
            self.source_tag(from_file=bool(bits & 1), from_defaults=bool(bits & 2))
            for bits in range(4))
        """``infra=`` values of ``price_source`` by OR-ed :attr:`InfraRate.origin_bit`."""

    @property
    def is_priced(self) -> bool:
        """Whether any rate in force is above 0 (else infrastructure costs nothing)."""
        return any(r.usd for r in self.rates.values()) or any(
            g.rate.usd for g in self.gpu_models)

    def _gpu_rate_uncached(self, gpu_model: str) -> InfraRate:
        """The GPU-hour rate of ``gpu_model`` (any case); ``gpu_per_hour`` when unmatched."""
        name = gpu_model.strip().lower()
        if name:
            for entry in self.gpu_models:
                if entry.matches(name):
                    return entry.rate
        return self.gpu

    def source_tag(self, *, from_file: bool, from_defaults: bool) -> str:
        """The ``infra=`` value of ``price_source`` for rates of these origins ("" for none)."""
        if from_file and from_defaults:
            return f"{ORIGIN_PRICING_FILE}+{self.defaults.tag}"
        if from_file:
            return ORIGIN_PRICING_FILE
        return self.defaults.tag if from_defaults else ""
