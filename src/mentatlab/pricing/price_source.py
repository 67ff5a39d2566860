"""``price_source``: where a span's prices came from, in one readable, parseable string.

Format (``docs/pricing.md``)::

    price_source = [<token source>][;infra=<infrastructure source>]

* token source: ``genai-prices@<version>:<provider>/<model>[?fallback=<model>]``,
  ``pricing.toml:<provider>/<model>``, ``unpriced``, or empty (no tokens to price);
* infrastructure source, present only when the span has an infrastructure cost:
  ``defaults@<YYYY-MM-DD>`` (the shipped list prices of that date), ``pricing.toml``, or
  ``pricing.toml+defaults@<YYYY-MM-DD>`` when both supplied a rate the span used.

Examples: ``genai-prices@0.2.5:openai/gpt-4o``,
``genai-prices@0.2.5:openai/gpt-4o;infra=defaults@2026-12-06``,
``infra=pricing.toml`` (a tool span with CPU time and no tokens).

One exception keeps the unpriced-model report exact: a span whose tokens are unpriced
keeps ``price_source = "unpriced"`` verbatim, without an ``infra=`` part, because
``GET /api/v1/unpriced`` and ``filter=price_source=unpriced`` match it exactly; the
infrastructure rates it was priced with are the ones in force (``GET /api/v1/prices``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["INFRA_PREFIX", "UNPRICED", "ParsedPriceSource", "format_price_source",
           "parse_price_source"]

UNPRICED = "unpriced"
"""Token source of a span with tokens whose model has no known price."""
INFRA_PREFIX = "infra="
"""Marks the infrastructure part."""
_SEPARATOR = ";"
_INFRA_PART = _SEPARATOR + INFRA_PREFIX


@dataclass(frozen=True, slots=True)
class ParsedPriceSource:
    """The two parts of a ``price_source`` value."""

    tokens: str
    """Token source (``genai-prices@…``, ``pricing.toml:…``, ``unpriced``) or ``""``."""
    infra: str
    """Infrastructure source (``defaults@2026-12-06``, ``pricing.toml``, …) or ``""``."""


def format_price_source(tokens: str, infra: str) -> str:
    """Join a token source and an infrastructure source (either may be ``""``).

    ``unpriced`` stays exactly ``unpriced`` (see the module docstring).
    """
    if not infra or tokens == UNPRICED:
        return tokens
    return f"{tokens}{_INFRA_PART}{infra}" if tokens else f"{INFRA_PREFIX}{infra}"


def parse_price_source(value: str) -> ParsedPriceSource:
    """Split a stored ``price_source`` into its token and infrastructure parts.

    The infrastructure part is always last, so a model name containing ``;`` cannot
    confuse it. A value written before infrastructure sources existed is all tokens.
    """
    if value.startswith(INFRA_PREFIX):
        return ParsedPriceSource("", value[len(INFRA_PREFIX):])
    tokens, sep, infra = value.rpartition(_INFRA_PART)
    if not sep:
        return ParsedPriceSource(value, "")
    return ParsedPriceSource(tokens, infra)
