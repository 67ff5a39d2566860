"""The top N keys of each group-by field, the rest lumped into one "other" key, exactly.

High-cardinality keys (customers, users, models) make a crossed breakdown unreadable:
``customer × project`` may have thousands of cells. :func:`cost_top` keeps, for each
group-by field on its own, the N keys with the highest total cost over the whole answer
(all buckets, all values of the other fields) and sums every other key's rows into one
row per remaining key combination (and bucket) whose lumped fields read "other". The
sums are Decimal and integer additions of the grouped rows, so the answer's total is
the same, to the last digit, as without ``top``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from decimal import Decimal
from operator import attrgetter
from typing import Any, Final

from mentatlab.analytics.cost import CostRow, cost_by
from mentatlab.analytics.query import QueryParams
from mentatlab.errors import ValidationError
from mentatlab.storage.base import SpanStore

__all__ = ["MAX_LUMPED_GROUPS", "MAX_TOP", "TopCost", "cost_top", "lump_top"]

MAX_TOP: Final = 100
"""Largest ``top`` the API accepts: more keys than that is not a readable chart."""
MAX_LUMPED_GROUPS: Final = 200_000
"""Most grouped rows (before lumping) :func:`cost_top` reads; more is refused rather
than lumped from a truncated answer (the "other" sums would be short)."""

_NO_BUCKET: Final = datetime(1970, 1, 1, tzinfo=UTC)
"""Sort key of a row without a bucket (never compared with a real bucket)."""
_SUMMED: Final = tuple(f.name for f in fields(CostRow) if f.name not in ("keys", "bucket_start"))
_VALUES: Final = attrgetter(*_SUMMED)
"""A row's money and counts, in :data:`_SUMMED` order."""


@dataclass(frozen=True, slots=True)
class TopCost:
    """Cost rows with each group-by field cut to its top keys (see :func:`lump_top`)."""

    rows: list[CostRow]
    """Rows ordered by bucket, then total cost (highest first), then keys; a lumped
    field's key is ``""`` in ``keys`` and named in the row's ``lumped`` entry."""
    lumped: list[tuple[str, ...]]
    """Per row (same index): the group-by fields whose key is "other" (empty: none)."""
    num_other: dict[str, int]
    """Per group-by field: how many distinct keys were lumped into "other" (0: none)."""


def _rank(rows: Sequence[CostRow], name: str, top: int) -> set[str]:
    """The ``top`` keys of field ``name`` by total cost (ties: more spans, then key)."""
    totals: dict[str, list[Any]] = {}
    for row in rows:
        key = row.keys[name]
        entry = totals.setdefault(key, [Decimal(0), 0])
        entry[0] += row.total_cost
        entry[1] += row.num_spans
    ranked = sorted(totals.items(), key=lambda kv: (-kv[1][0], -kv[1][1], kv[0]))
    return {key for key, _ in ranked[:top]}


def lump_top(rows: Sequence[CostRow], group_by: Sequence[str], top: int) -> TopCost:
    """Keep the ``top`` keys of each field in ``group_by``; sum the rest into "other" rows.

    Args:
        rows: every cost row of one answer (grouped by ``group_by``, maybe bucketed).
        group_by: the rows' group-by names, in order.
        top: keys kept per field (≥ 1).

    Returns:
        The lumped rows: money summed as Decimal, counts as int, so the total of the
        answer is unchanged. A row whose every field is among its top keys keeps its
        numbers.

    Raises:
        ValidationError: (field ``top``) ``top`` is below 1.
    """
    if top < 1:
        raise ValidationError("top", f"Expected at least 1, got {top}")
    kept = {name: _rank(rows, name, top) for name in group_by}
    num_other = {name: len({r.keys[name] for r in rows} - kept[name]) for name in group_by}
    # sums per (bucket, cell) as lists, one CostRow each at the end: no object per addition
    sums: dict[tuple[datetime | None, tuple[tuple[str, bool], ...]], list[Any]] = {}
    for row in rows:
        cell = tuple((row.keys[n], False) if row.keys[n] in kept[n] else ("", True)
                     for n in group_by)
        values = _VALUES(row)
        seen = sums.get((row.bucket_start, cell))
        if seen is None:
            sums[(row.bucket_start, cell)] = list(values)
        else:
            for i, value in enumerate(values):
                seen[i] += value
    merged = {key: CostRow(keys={n: k for n, (k, _) in zip(group_by, key[1], strict=True)},
                           bucket_start=key[0], **dict(zip(_SUMMED, values, strict=True)))
              for key, values in sums.items()}

    def order(item: tuple[tuple[datetime | None, tuple[tuple[str, bool], ...]], CostRow]
              ) -> tuple[Any, ...]:
        (bucket, cell), row = item
        return (bucket is not None, bucket or _NO_BUCKET, -row.total_cost,
                [(lumped, k) for k, lumped in cell])

    ordered = sorted(merged.items(), key=order)
    return TopCost(rows=[row for _, row in ordered],
                   lumped=[tuple(n for n, (_, lumped) in zip(group_by, cell, strict=True)
                                 if lumped) for (_, cell), _ in ordered],
                   num_other=num_other)


def cost_top(store: SpanStore, params: QueryParams, top: int) -> TopCost:
    """:func:`~mentatlab.analytics.cost.cost_by` with each group-by field cut to ``top`` keys.

    Reads every group of the range (at most :data:`MAX_LUMPED_GROUPS`), then lumps in
    Decimal (:func:`lump_top`), so "other" holds exactly what the kept keys do not.

    Args:
        store: the span store.
        params: time range, filters, group-by names and bucket.
        top: keys kept per group-by field, 1 to :data:`MAX_TOP`.

    Raises:
        ValidationError: (field ``top``) ``top`` is outside 1..:data:`MAX_TOP`, or the
            range has more than :data:`MAX_LUMPED_GROUPS` groups (narrow the range or
            the filters, or use a coarser bucket).
        QueryTimeout: the query ran past the store's time limit.
        StoreError: the query failed.
    """
    if not 1 <= top <= MAX_TOP:
        raise ValidationError("top", f"Expected 1 to {MAX_TOP}, got {top}")
    rows = cost_by(store, params, limit=MAX_LUMPED_GROUPS + 1)
    if len(rows) > MAX_LUMPED_GROUPS:
        raise ValidationError("top", f"Expected at most {MAX_LUMPED_GROUPS:,} groups to lump, "
                                     "got more: narrow the range or filters, or use a "
                                     "coarser bucket")
    return lump_top(rows, params.group_by, top)
