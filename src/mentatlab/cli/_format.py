"""How the CLI prints numbers and money: one rule for every table (``docs/cli.md``).

Money (exact decimal strings from the API, never floats):

* with its currency symbol (``$``, ``€``, ``£``, ``¥``; other codes as ``CHF 12.00``) and
  thousands separators, negatives as ``-$1.50``;
* at cents when it rounds to at least one cent (``$1,234.56``, ``$0.01``);
* below a cent, to 3 significant digits (``$0.000123``, ``$0.00456``), so small
  amounts never read as zero; exactly zero is ``$0.00``;
* rounded half to even, like stored costs (``pricing/money.py``).

Rates (prices per unit in ``mentatctl prices show``) are printed exactly, never rounded.
Counts get thousands separators (``1,234,567``). ``--format json|csv`` print the API's
exact values untouched.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

__all__ = ["CURRENCY_SYMBOLS", "format_count", "format_money", "format_rate", "to_decimal"]

CURRENCY_SYMBOLS: dict[str, str] = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥",
                                    "CNY": "¥", "INR": "₹", "KRW": "₩"}
"""Symbols printed before an amount; other ISO 4217 codes are printed as ``CODE ``."""

_CENT = Decimal("0.01")
_SIGNIFICANT_DIGITS = 3


def to_decimal(value: Any) -> Decimal:
    """An API money value (a decimal string, or a number) as Decimal; bad or missing is 0."""
    if isinstance(value, Decimal):
        return value
    if value is None or isinstance(value, bool):
        return Decimal(0)
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return Decimal(0)
    return number if number.is_finite() else Decimal(0)


def _symbol(currency: str) -> str:
    code = (currency or "USD").upper()
    return CURRENCY_SYMBOLS.get(code, f"{code} ")


def format_money(value: Any, currency: str = "USD") -> str:
    """``value`` (an API money string or Decimal) for people: ``$1,234.56``, ``$0.000123``."""
    amount = to_decimal(value)
    sign = "-" if amount < 0 else ""
    amount = abs(amount)
    cents = amount.quantize(_CENT, rounding=ROUND_HALF_EVEN)
    if cents >= _CENT or amount == 0:
        text = f"{cents:,.2f}"
    else:
        exponent = amount.adjusted() - _SIGNIFICANT_DIGITS + 1
        text = f"{amount.quantize(Decimal(1).scaleb(exponent), rounding=ROUND_HALF_EVEN):f}"
    return f"{sign}{_symbol(currency)}{text}"


def format_rate(value: Any, currency: str = "USD") -> str:
    """A price per unit, exact (no rounding): ``$0.004445``, ``$9.796550569``, ``$0``."""
    amount = to_decimal(value)
    sign = "-" if amount < 0 else ""
    amount = abs(amount)
    whole, _, fraction = f"{amount:f}".partition(".")
    text = f"{int(whole):,}" + (f".{fraction}" if fraction else "")
    return f"{sign}{_symbol(currency)}{text}"


def format_count(value: Any) -> str:
    """An integer count with thousands separators (``1,234,567``); "" when missing."""
    if value is None or value == "":
        return ""
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return str(value)
