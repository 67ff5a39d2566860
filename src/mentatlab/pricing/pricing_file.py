"""pricing.toml: model price overrides, infrastructure rates, discounts and currency.

The file (``Settings.pricing_path``) is optional; every table in it is optional. All money
values are ``Decimal`` in USD (write them as TOML strings, ``"0.15"``, to keep them exact;
integers and floats are accepted and read through their decimal text). The reference for
every key is ``examples/pricing.toml`` and ``docs/pricing.md``. A bad file fails fast with a
:class:`~mentatlab.errors.ConfigError` naming the offending key.
"""

from __future__ import annotations

import fnmatch
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from mentatlab.errors import ConfigError

__all__ = [
    "Currency",
    "Discount",
    "GpuModelRate",
    "InfraRates",
    "ModelRate",
    "PricingConfig",
    "load_pricing_file",
    "parse_pricing",
]

_TOP_KEYS = {"models", "infrastructure", "discounts", "currency"}
_MODEL_PRICE_KEYS = ("input_per_mtok", "output_per_mtok", "cache_read_per_mtok",
                     "cache_write_per_mtok", "per_request")
_INFRA_RATE_KEYS = ("cpu_per_core_hour", "memory_per_gb_hour", "gpu_per_hour", "network_per_gb",
                    "network_in_per_gb", "network_out_per_gb", "storage_per_gb_month",
                    "storage_billed_months")
_INFRA_KEYS = (*_INFRA_RATE_KEYS, "gpu_models", "defaults")
_APPLIES_TO = ("all", "tokens", "infrastructure")


@dataclass(frozen=True, slots=True)
class ModelRate:
    """A price for a model that overrides or adds to genai-prices (USD)."""

    provider: str
    """Provider pattern (``fnmatch``, case-insensitive) against the span's provider;
    ``"*"`` matches any provider, including none."""
    model: str
    """Model pattern (``fnmatch``, case-insensitive) against the span's model."""
    input_per_mtok: Decimal
    """USD per million input tokens not read from or written to a cache."""
    output_per_mtok: Decimal
    """USD per million output tokens (reasoning included)."""
    cache_read_per_mtok: Decimal | None = None
    """USD per million cache-read tokens; None bills them at ``input_per_mtok``."""
    cache_write_per_mtok: Decimal | None = None
    """USD per million cache-write tokens; None bills them at ``input_per_mtok``."""
    per_request: Decimal | None = None
    """USD charged once per priced call, on top of tokens."""

    def matches(self, provider: str, model: str) -> bool:
        """Whether this rate applies to ``provider``/``model`` (both lower-case)."""
        return (fnmatch.fnmatchcase(model, self.model)
                and fnmatch.fnmatchcase(provider, self.provider))

    @property
    def label(self) -> str:
        """``<provider>/<model>`` as written in the file (for ``price_source``)."""
        return f"{self.provider}/{self.model}"


@dataclass(frozen=True, slots=True)
class GpuModelRate:
    """A GPU-hour rate for the GPU models whose name matches ``model`` (USD)."""

    model: str
    """Pattern (``fnmatch``, case-insensitive) against the span's GPU model, the NVML device
    name recorded as ``mentat.resource.gpu_model`` (``"NVIDIA A100-SXM4-80GB"``)."""
    per_hour: Decimal
    """USD per GPU-hour of a matching GPU."""


@dataclass(frozen=True, slots=True)
class InfraRates:
    """The ``[infrastructure]`` table: rates in USD that override the shipped defaults.

    ``None`` means "not set in this file": the shipped default rate applies
    (``pricing/data/infrastructure.toml``, see :mod:`mentatlab.pricing.infra_rates`), or 0
    when ``use_defaults`` is False. Set a rate to ``0`` to stop charging that resource.
    """

    cpu_per_core_hour: Decimal | None = None
    """USD per CPU core-hour (charged on ``cpu_core_seconds / 3600``)."""
    memory_per_gb_hour: Decimal | None = None
    """USD per GB-hour of memory (charged on ``memory_gb_seconds / 3600``)."""
    gpu_per_hour: Decimal | None = None
    """USD per GPU-hour of a GPU whose model is not recorded or matches no GPU model rate
    (charged on ``gpu_seconds / 3600``)."""
    network_in_per_gb: Decimal | None = None
    """USD per GB (10^9 bytes) received (``network_bytes_in``)."""
    network_out_per_gb: Decimal | None = None
    """USD per GB (10^9 bytes) sent (``network_bytes_out``)."""
    storage_per_gb_month: Decimal | None = None
    """USD per GB (10^9 bytes) stored for one month (``storage_bytes``)."""
    storage_billed_months: Decimal | None = None
    """Months of storage charged, once, to the span that wrote the bytes; None means 1."""
    gpu_models: tuple[GpuModelRate, ...] = ()
    """``[[infrastructure.gpu_models]]``: GPU-hour rates by GPU model, tried in file order
    before the shipped ones (the first match wins)."""
    use_defaults: bool = True
    """``defaults = false`` in the file: no shipped default applies (unset rates are 0)."""


@dataclass(frozen=True, slots=True)
class Discount:
    """A percentage off a span's cost; the first matching discount in file order applies."""

    percent: Decimal
    """Percentage off, 0 to 100."""
    provider: str = "*"
    """Provider pattern (``fnmatch``, case-insensitive)."""
    model: str = "*"
    """Model pattern (``fnmatch``, case-insensitive)."""
    org_id: str = "*"
    """Org id pattern (``fnmatch``, case-sensitive)."""
    applies_to: str = "all"
    """Which cost it reduces: ``all`` (tokens + infrastructure), ``tokens`` or
    ``infrastructure``."""

    def matches(self, provider: str, model: str, org_id: str) -> bool:
        """Whether this discount applies (provider and model lower-case)."""
        return (fnmatch.fnmatchcase(provider, self.provider)
                and fnmatch.fnmatchcase(model, self.model)
                and fnmatch.fnmatchcase(org_id, self.org_id))


@dataclass(frozen=True, slots=True)
class Currency:
    """The currency costs are stored in."""

    code: str = "USD"
    """ISO 4217 code, e.g. ``EUR``."""
    rate_from_usd: Decimal = Decimal(1)
    """Units of ``code`` per 1 USD (every price is in USD; costs are converted)."""


@dataclass(frozen=True, slots=True)
class PricingConfig:
    """Everything ``pricing.toml`` says; the default prices with genai-prices alone, in USD."""

    models: tuple[ModelRate, ...] = ()
    infrastructure: InfraRates = field(default_factory=InfraRates)
    discounts: tuple[Discount, ...] = ()
    currency: Currency = field(default_factory=Currency)
    source: str = "pricing.toml"
    """Where the config came from (for messages)."""

    def model_rate(self, provider: str, model: str) -> ModelRate | None:
        """The first ``[[models]]`` entry matching ``provider``/``model``, else None."""
        provider, model = provider.lower(), model.lower()
        for rate in self.models:
            if rate.matches(provider, model):
                return rate
        return None

    def discount_for(self, provider: str, model: str, org_id: str) -> Discount | None:
        """The first ``[[discounts]]`` entry matching, else None."""
        provider, model = provider.lower(), model.lower()
        for discount in self.discounts:
            if discount.matches(provider, model, org_id):
                return discount
        return None


def _decimal(where: str, value: Any, *, maximum: Decimal | None = None) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"Expected {where} to be a decimal number, got {value!r}")
    try:
        number = Decimal(repr(value) if isinstance(value, float) else str(value).strip())
    except InvalidOperation:
        raise ConfigError(f"Expected {where} to be a decimal number, got {value!r}") from None
    if not number.is_finite() or number < 0:
        raise ConfigError(f"Expected {where} to be a finite number >= 0, got {value!r}")
    if maximum is not None and number > maximum:
        raise ConfigError(f"Expected {where} to be at most {maximum}, got {value!r}")
    return number


def _text(where: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"Expected {where} to be a non-empty string, got {value!r}")
    return value.strip()


def _table(where: str, value: Any, allowed: tuple[str, ...] | set[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"Expected {where} to be a table, got {value!r}")
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        allowed_text = ", ".join(sorted(allowed))
        raise ConfigError(f"Unknown key {where}.{unknown[0]}; allowed: {allowed_text}")
    return value


def _array(where: str, value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ConfigError(f"Expected {where} to be an array of tables ([[{where}]]), got {value!r}")
    return value


def _parse_model(where: str, raw: Any) -> ModelRate:
    entry = _table(where, raw, ("provider", "model", *_MODEL_PRICE_KEYS))
    for key in ("model", "input_per_mtok", "output_per_mtok"):
        if key not in entry:
            raise ConfigError(f"Missing key {where}.{key}")
    prices = {key: _decimal(f"{where}.{key}", entry[key])
              for key in _MODEL_PRICE_KEYS if key in entry}
    return ModelRate(
        provider=_text(f"{where}.provider", entry.get("provider", "*")).lower(),
        model=_text(f"{where}.model", entry["model"]).lower(),
        **prices,
    )


def _parse_gpu_model(where: str, raw: Any) -> GpuModelRate:
    entry = _table(where, raw, ("model", "per_hour"))
    for key in ("model", "per_hour"):
        if key not in entry:
            raise ConfigError(f"Missing key {where}.{key}")
    return GpuModelRate(model=_text(f"{where}.model", entry["model"]).lower(),
                        per_hour=_decimal(f"{where}.per_hour", entry["per_hour"]))


def _parse_infra(raw: Any) -> InfraRates:
    entry = _table("infrastructure", raw, _INFRA_KEYS)
    values: dict[str, Any] = {key: _decimal(f"infrastructure.{key}", entry[key])
                              for key in _INFRA_RATE_KEYS if key in entry}
    network = values.pop("network_per_gb", None)
    if network is not None:
        values.setdefault("network_in_per_gb", network)
        values.setdefault("network_out_per_gb", network)
    gpu_models = tuple(
        _parse_gpu_model(f"infrastructure.gpu_models[{i}]", item)
        for i, item in enumerate(_array("infrastructure.gpu_models",
                                        entry.get("gpu_models", []))))
    use_defaults = entry.get("defaults", True)
    if not isinstance(use_defaults, bool):
        raise ConfigError(
            f"Expected infrastructure.defaults to be true or false, got {use_defaults!r}")
    return InfraRates(**values, gpu_models=gpu_models, use_defaults=use_defaults)


def _parse_discount(where: str, raw: Any) -> Discount:
    entry = _table(where, raw, ("percent", "provider", "model", "org_id", "applies_to"))
    if "percent" not in entry:
        raise ConfigError(f"Missing key {where}.percent")
    applies_to = _text(f"{where}.applies_to", entry.get("applies_to", "all"))
    if applies_to not in _APPLIES_TO:
        choices = ", ".join(_APPLIES_TO)
        raise ConfigError(
            f"Expected {where}.applies_to to be one of {choices}, got {applies_to!r}")
    return Discount(
        percent=_decimal(f"{where}.percent", entry["percent"], maximum=Decimal(100)),
        provider=_text(f"{where}.provider", entry.get("provider", "*")).lower(),
        model=_text(f"{where}.model", entry.get("model", "*")).lower(),
        org_id=_text(f"{where}.org_id", entry.get("org_id", "*")),
        applies_to=applies_to,
    )


def _parse_currency(raw: Any) -> Currency:
    entry = _table("currency", raw, ("code", "rate_from_usd"))
    code = _text("currency.code", entry.get("code", "USD")).upper()
    if len(code) != 3 or not code.isalpha():
        raise ConfigError(f"Expected currency.code to be a 3-letter ISO 4217 code, got {code!r}")
    rate = _decimal("currency.rate_from_usd", entry.get("rate_from_usd", 1))
    if rate == 0:
        raise ConfigError("Expected currency.rate_from_usd to be > 0, got 0")
    if code == "USD" and rate != 1:
        raise ConfigError(f"Expected currency.rate_from_usd to be 1 for USD, got {rate}")
    return Currency(code, rate)


def parse_pricing(data: Mapping[str, Any], source: str = "pricing.toml") -> PricingConfig:
    """Validate a decoded ``pricing.toml`` document.

    Args:
        data: the TOML document as a mapping.
        source: where it came from, kept on the result.

    Raises:
        ConfigError: an unknown key, a missing required key, or a bad value (the message
            names the key, e.g. ``models[2].input_per_mtok``).
    """
    _table("pricing.toml", data, _TOP_KEYS)
    models = tuple(_parse_model(f"models[{i}]", raw)
                   for i, raw in enumerate(_array("models", data.get("models", []))))
    discounts = tuple(_parse_discount(f"discounts[{i}]", raw)
                      for i, raw in enumerate(_array("discounts", data.get("discounts", []))))
    return PricingConfig(
        models=models,
        infrastructure=_parse_infra(data.get("infrastructure", {})),
        discounts=discounts,
        currency=_parse_currency(data.get("currency", {})),
        source=source,
    )


def load_pricing_file(path: Path) -> PricingConfig:
    """Read and validate ``pricing.toml`` at ``path``.

    Raises:
        ConfigError: the file cannot be read, is not TOML, or breaks a rule.
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"Expected a readable pricing file at {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"Expected {path} to be valid TOML: {exc}") from exc
    try:
        return parse_pricing(data, source=str(path))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
