"""PriceCatalog: token prices from the offline ``genai-prices`` snapshot, with memoized lookups.

Source of prices: https://github.com/pydantic/genai-prices (``genai-prices`` on PyPI, the
data bundled in the installed package). Nothing here touches the network except
:func:`update_prices`, which a person runs on purpose (``mentatctl prices update``); it
saves the fetched data to a file that a catalog loads only when told to.

Matching a span's ``(provider, model)``:

1. The provider, in OTel ``gen_ai.provider.name`` vocabulary (``aws.bedrock``,
   ``gcp.vertex_ai``, ``azure.ai.openai``, ``mistral_ai``...), is mapped to a genai-prices
   provider id (:data:`OTEL_PROVIDER_IDS`), else matched by genai-prices' own provider
   rules. An empty provider lets genai-prices find one from the model name, else the
   one model maker (:data:`MODEL_OWNERS`) that lists the model. A provider
   that matches nothing is *not* guessed from the model name: the span stays unpriced.
2. The model as given (genai-prices handles case, ``@suffix``, ``3.5``/``3-5`` and
   compact dates ``-20251211``).
3. A provider-prefixed model (``openai/gpt-5-mini``) split into provider and model.
4. A dated snapshot (``gpt-4.1-2026-04-14``, ``claude-x-20250101``) falls back to the
   undated model; ``price_source`` then ends with ``?fallback=<original model>``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import genai_prices
from genai_prices.data_snapshot import DataSnapshot, find_provider_by_id
from genai_prices.types import ModelInfo, Provider, _providers_from_raw
from genai_prices.update_prices import DEFAULT_UPDATE_URL

from mentatlab.errors import PriceNotFound, PricingError
from mentatlab.pricing.rate_card import RateCard, TokenCost, TokenUsage

__all__ = [
    "DEFAULT_UPDATE_URL",
    "MODEL_OWNERS",
    "OTEL_PROVIDER_IDS",
    "MatchedModel",
    "PriceCatalog",
    "PriceUpdate",
    "ResolvedPrice",
    "snapshot_path",
    "undated_model",
    "update_prices",
]

logger = logging.getLogger(__name__)

OTEL_PROVIDER_IDS: dict[str, str] = {
    "openai": "openai",
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "azure_openai": "azure",
    "azure": "azure",
    "anthropic": "anthropic",
    "aws.bedrock": "aws",
    "bedrock": "aws",
    "gcp.vertex_ai": "google",
    "gcp.gemini": "google",
    "gcp.gen_ai": "google",
    "vertex_ai": "google",
    "google": "google",
    "mistral_ai": "mistral",
    "mistralai": "mistral",
    "x_ai": "x-ai",
    "xai": "x-ai",
    "deepseek": "deepseek",
    "groq": "groq",
    "perplexity": "perplexity",
    "cohere": "cohere",
    "openrouter": "openrouter",
    "together_ai": "together",
    "fireworks_ai": "fireworks",
    "moonshot": "moonshotai",
}
"""OTel GenAI ``gen_ai.provider.name`` (and common ``gen_ai.system``) values → genai-prices
provider ids. Values not listed are tried as genai-prices ids and provider rules."""

MODEL_OWNERS: tuple[str, ...] = (
    "openai", "anthropic", "google", "mistral", "x-ai", "deepseek", "cohere", "perplexity",
    "moonshotai", "zai", "meta", "voyageai",
)
"""genai-prices ids of providers that make their own models. A span without a provider whose
model genai-prices cannot attribute is priced at its maker's list price when exactly one
of these lists the model (``text-embedding-3-small`` → openai)."""

_DATE_SUFFIX = re.compile(r"-(?:20\d\d-\d\d-\d\d|20\d{6})$")
_CACHE_SIZE = 65_536


def snapshot_path(data_dir: Path) -> Path:
    """Where ``mentatctl prices update`` saves fetched prices: ``<data_dir>/genai-prices.json``."""
    return data_dir / "genai-prices.json"


def undated_model(model: str) -> str:
    """``model`` without a trailing snapshot date (``-2026-04-14`` or ``-20260414``)."""
    return _DATE_SUFFIX.sub("", model)


@dataclass(frozen=True, slots=True)
class MatchedModel:
    """A genai-prices model matched for a span's ``(provider, model)``; time-independent."""

    provider: Provider
    model: ModelInfo
    fallback_from: str
    """The model reference that did not match when a dated fallback was used, else ``""``."""


@dataclass(frozen=True, slots=True)
class ResolvedPrice:
    """The prices that apply to one ``(provider, model)`` at one minute."""

    card: RateCard
    source: str
    """``price_source`` value: ``genai-prices@<version>:<provider id>/<model id>`` plus
    ``?fallback=<model>`` when a dated model fell back to its undated entry."""
    provider_id: str
    """genai-prices provider id, e.g. ``aws``."""
    model_id: str
    """genai-prices model id, e.g. ``claude-3-5-sonnet``."""


class PriceCatalog:
    """Token prices from a genai-prices data snapshot, with memoized lookups.

    Thread-safe for reads (lookups only fill caches). Create one per process and share it.
    """

    def __init__(self, snapshot_path: Path | None = None) -> None:
        """Load the bundled genai-prices data, or a file saved by :func:`update_prices`.

        Args:
            snapshot_path: JSON file written by :func:`update_prices`; ``None`` uses the
                data bundled in the installed ``genai-prices`` package.

        Raises:
            PricingError: the file cannot be read or is not genai-prices provider data.
        """
        version = genai_prices.__version__
        if snapshot_path is None:
            from genai_prices.data import providers
            self._snapshot = DataSnapshot(providers=providers, from_auto_update=False)
        else:
            try:
                raw = snapshot_path.read_bytes()
                loaded = _providers_from_raw(json.loads(raw))
            except (OSError, ValueError) as exc:
                raise PricingError(
                    f"Expected {snapshot_path} to hold genai-prices data, got: {exc}") from exc
            self._snapshot = DataSnapshot(providers=loaded, from_auto_update=False)
            version = f"{version}+snapshot.{hashlib.sha256(raw).hexdigest()[:12]}"
        self.version = version
        """Version tag written into ``price_source``."""
        self.snapshot_path = snapshot_path
        """The saved genai-prices file in use, or None for the data bundled in the package."""
        self._match = functools.lru_cache(maxsize=_CACHE_SIZE)(self._match_uncached)
        self._resolve = functools.lru_cache(maxsize=_CACHE_SIZE)(self._resolve_uncached)
        self._cards: dict[int, tuple[Any, RateCard]] = {}

    @classmethod
    def for_data_dir(cls, data_dir: Path) -> PriceCatalog:
        """The catalog a server uses for ``data_dir``.

        Prices saved by :func:`update_prices` at :func:`snapshot_path` when that file
        exists, else the snapshot bundled with genai-prices.

        Raises:
            PricingError: the saved file exists but cannot be used.
        """
        path = snapshot_path(data_dir)
        return cls(snapshot_path=path if path.exists() else None)

    def lookup(self, provider: str, model: str, at: datetime) -> ResolvedPrice | None:
        """Prices for ``model`` served by ``provider`` at time ``at``, or None if unknown.

        Memoized by (provider, model, UTC minute of ``at``): prices change by date and,
        for time-of-day prices such as DeepSeek's off-peak window, by minute.

        Args:
            provider: OTel provider name or genai-prices id; ``""`` when unknown.
            model: model reference as reported (response model, else request model).
            at: when the call happened (timezone-aware; naive means UTC).
        """
        if not model:
            return None
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        minute = int(at.timestamp() // 60)
        return self._resolve(provider.strip().lower(), model.strip().lower(), minute)

    def lookup_variant(self, provider: str, model: str, at: datetime,
                       context: dict[str, str]) -> ResolvedPrice | None:
        """Prices of a genai-prices price variant (``{"processing": "batch"}``), or None.

        None when the model is unknown or has no variant matching ``context`` at ``at``
        (genai-prices ``ModelInfo.get_prices(at, price_context)``); not memoized.
        """
        if not model:
            return None
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        matched = self._match(provider.strip().lower(), model.strip().lower())
        if matched is None:
            return None
        standard = matched.model.get_prices(at)
        variant = matched.model.get_prices(at, context)
        if variant.__dict__ == standard.__dict__:
            return None
        source = (f"genai-prices@{self.version}:{matched.provider.id}/{matched.model.id}"
                  + "".join(f"?{k}={v}" for k, v in sorted(context.items())))
        return ResolvedPrice(RateCard(variant), source, matched.provider.id, matched.model.id)

    def price(self, usage: TokenUsage, provider: str, model: str, at: datetime | None = None,
              *, provider_api_url: str | None = None) -> tuple[TokenCost, ResolvedPrice]:
        """Price one call: ``usage`` (tokens) of ``model`` at ``at`` (default now), in USD.

        Args:
            usage: token counts (inclusive meaning, see :class:`TokenUsage`).
            provider: OTel provider name or genai-prices id; ``""`` when unknown.
            model: model reference as reported.
            at: when the call happened; ``None`` means now (UTC).
            provider_api_url: the provider's API URL, used instead of ``provider`` to
                find the provider (genai-prices ``api_pattern``); not memoized.

        Raises:
            PriceNotFound: no price for this provider and model.
            PricingError: the usage cannot be priced (negative counts).
        """
        at = at or datetime.now(UTC)
        if provider_api_url is not None:
            try:
                gp_provider, info = self._snapshot.find_provider_model(
                    model, None, None, provider_api_url)
            except LookupError:
                raise PriceNotFound(provider_api_url, model) from None
            resolved = self._resolved(MatchedModel(gp_provider, info, ""), at)
        else:
            found = self.lookup(provider, model, at)
            if found is None:
                raise PriceNotFound(provider or None, model)
            resolved = found
        return resolved.card.cost(usage), resolved

    # -- internals ------------------------------------------------------------------

    def _resolve_uncached(self, provider: str, model: str, minute: int) -> ResolvedPrice | None:
        matched = self._match(provider, model)
        if matched is None:
            return None
        at = datetime.fromtimestamp(minute * 60, tz=UTC)
        return self._resolved(matched, at)

    def _resolved(self, matched: MatchedModel, at: datetime) -> ResolvedPrice:
        model_price = matched.model.get_prices(at)
        key = id(model_price)
        entry = self._cards.get(key)
        if entry is None or entry[0] is not model_price:
            entry = (model_price, RateCard(model_price))  # keep model_price alive: id stays valid
            self._cards[key] = entry
        source = f"genai-prices@{self.version}:{matched.provider.id}/{matched.model.id}"
        if matched.fallback_from:
            source += f"?fallback={matched.fallback_from}"
        return ResolvedPrice(entry[1], source, matched.provider.id, matched.model.id)

    def _provider_id(self, provider: str) -> str | None:
        """genai-prices id for an OTel provider name; None when nothing matches."""
        mapped = OTEL_PROVIDER_IDS.get(provider)
        if mapped is not None:
            return mapped
        found = find_provider_by_id(self._snapshot.providers, provider)
        return found.id if found is not None else None

    def _find(self, provider_id: str | None, model: str) -> MatchedModel | None:
        try:
            gp_provider, info = self._snapshot.find_provider_model(model, None, provider_id, None)
        except LookupError:
            return None
        return MatchedModel(gp_provider, info, "")

    def _find_owner(self, provider_id: str | None, model: str) -> MatchedModel | None:
        if provider_id is not None:
            return None
        owners = [found for owner in MODEL_OWNERS
                  if (found := self._find(owner, model)) is not None]
        return owners[0] if len(owners) == 1 else None

    def _match_uncached(self, provider: str, model: str) -> MatchedModel | None:
        provider_id: str | None = None
        if provider:
            provider_id = self._provider_id(provider)
            if provider_id is None:
                logger.debug("No genai-prices provider for %s; %s stays unpriced", provider, model)
                return None
        candidates: list[tuple[str | None, str]] = [(provider_id, model)]
        prefix, slash, rest = model.partition("/")
        if slash and rest:
            prefix_id = self._provider_id(prefix)
            if prefix_id is not None and provider_id is None:
                candidates.insert(0, (prefix_id, rest))  # the prefix names the provider
            elif prefix_id is not None and provider_id == prefix_id:
                candidates.append((prefix_id, rest))
        for candidate_provider, ref in candidates:
            found = self._find(candidate_provider, ref) or self._find_owner(candidate_provider, ref)
            if found is not None:
                return found
        for candidate_provider, ref in candidates:
            undated = undated_model(ref)
            if undated != ref:
                found = (self._find(candidate_provider, undated)
                         or self._find_owner(candidate_provider, undated))
                if found is not None:
                    return MatchedModel(found.provider, found.model, model)
        return None


@dataclass(frozen=True, slots=True)
class PriceUpdate:
    """Outcome of :func:`update_prices`."""

    path: Path
    """Where the data was saved."""
    num_providers: int
    """Providers in the fetched data."""
    num_bytes: int
    """Size of the saved file, in bytes."""
    version: str
    """The ``price_source`` version tag a catalog loading this file will use."""


def update_prices(dest: Path, *, url: str = DEFAULT_UPDATE_URL,
                  timeout_s: float = 30.0) -> PriceUpdate:
    """Fetch the latest genai-prices data over the network and save it to ``dest``.

    Explicit and one-shot: never called automatically. Load the result with
    ``PriceCatalog(snapshot_path=dest)``; the file is validated before it replaces
    ``dest`` (written to a temporary file, then renamed), so a bad download never
    leaves a broken price file behind.

    Args:
        dest: JSON file to write (parent folders are created).
        url: where to fetch from; default genai-prices' published ``data.json``.
        timeout_s: HTTP timeout, in seconds.

    Raises:
        PricingError: the download failed or is not genai-prices provider data.
    """
    import httpx  # here: only this explicit update talks to the network (issue 18)

    try:
        response = httpx.get(url, timeout=timeout_s, follow_redirects=True)
        response.raise_for_status()
        raw = response.content
        payload = json.loads(raw)
        if not isinstance(payload, list):
            raise ValueError("expected a JSON array of providers")
        providers = _providers_from_raw(payload)
    except (httpx.HTTPError, ValueError) as exc:
        raise PricingError(f"Expected genai-prices data from {url}, got: {exc}") from exc
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.write_bytes(raw)
    tmp.replace(dest)
    version = f"{genai_prices.__version__}+snapshot.{hashlib.sha256(raw).hexdigest()[:12]}"
    logger.info("Saved %s genai-prices providers (%s bytes) to %s", len(providers), len(raw), dest)
    return PriceUpdate(dest, len(providers), len(raw), version)
