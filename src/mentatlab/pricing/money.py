"""Money rounding: one rule for every stored cost."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal

from mentatlab.model.schema import MONEY_SCALE

__all__ = ["MONEY_QUANTUM", "quantize_money", "to_decimal"]

MONEY_QUANTUM = Decimal(1).scaleb(-MONEY_SCALE)
"""Smallest stored amount: 1e-12 of the currency unit (``model/schema.py`` MONEY_SCALE)."""
_CONTEXT = Context(prec=38)
"""Precision of the store's ``Decimal(38, 12)`` column, so quantizing never overflows the
default 28-digit context."""


def quantize_money(amount: Decimal) -> Decimal:
    """Round ``amount`` to 12 decimal places, half to even (banker's rounding).

    Half-even keeps sums of many rounded amounts unbiased; every stored cost part is
    rounded once with this rule, and totals are sums of rounded parts, so they add up.
    """
    return amount.quantize(MONEY_QUANTUM, rounding=ROUND_HALF_EVEN, context=_CONTEXT)


def to_decimal(value: float | int) -> Decimal:
    """A float or int measure as Decimal through its shortest decimal text (``repr``)."""
    if isinstance(value, int):
        return Decimal(value)
    return Decimal(repr(value))
