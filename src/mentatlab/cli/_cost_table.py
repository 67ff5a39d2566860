"""The cost table of ``mentatctl cost report|watch``: token and infrastructure cost side by side.

Rows come from ``GET /api/v1/cost`` and are read generically: a column the server adds
(``unattributed_cost``, ``cache_write_tokens``…) is shown when some row has a non-zero
value in it. Rows with no cost and no requests are left out unless asked (``--all``);
footnotes say how many, and when infrastructure or some models are unpriced
(``GET /api/v1/prices``, ``GET /api/v1/unpriced``). Money follows ``cli/_format.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from rich import box
from rich.console import Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from mentatlab.cli._format import format_count, format_money, to_decimal

__all__ = ["COST_COLUMNS", "INFRA_PARTS", "cost_footnotes", "cost_table", "has_cost_or_requests",
           "infra_cost", "report_renderable", "split_visible", "totals_line"]

INFRA_PARTS = ("cpu_cost", "memory_cost", "gpu_cost", "network_cost", "storage_cost")
"""The infrastructure parts of a cost row, summed into its ``infra`` column."""
_MAX_UNPRICED_NAMED = 3


def infra_cost(row: Mapping[str, Any]) -> Decimal:
    """CPU + memory + GPU + network + storage cost of a row."""
    return sum((to_decimal(row.get(name)) for name in INFRA_PARTS), Decimal(0))


def has_cost_or_requests(row: Mapping[str, Any]) -> bool:
    """Whether a row has any requests or any non-zero money field (``*_cost``, discount)."""
    if to_decimal(row.get("requests")):
        return True
    return any(to_decimal(value) for name, value in row.items()
               if name.endswith("_cost") or name == "discount")


def split_visible(rows: Sequence[Mapping[str, Any]], show_all: bool
                  ) -> tuple[list[Mapping[str, Any]], int]:
    """The rows to print and how many were left out (none with ``show_all``)."""
    if show_all:
        return list(rows), 0
    kept = [row for row in rows if has_cost_or_requests(row)]
    return kept, len(rows) - len(kept)


@dataclass(frozen=True, slots=True)
class _Column:
    header: str
    value: Callable[[Mapping[str, Any]], Any]
    money: bool
    always: bool


def _field(name: str) -> Callable[[Mapping[str, Any]], Any]:
    return lambda row: row.get(name)


COST_COLUMNS: tuple[_Column, ...] = (
    _Column("requests", _field("requests"), money=False, always=True),
    _Column("input\ntokens", _field("input_tokens"), money=False, always=True),
    _Column("output\ntokens", _field("output_tokens"), money=False, always=True),
    _Column("cached\ntokens", _field("cached_tokens"), money=False, always=False),
    _Column("cache write\ntokens", _field("cache_write_tokens"), money=False, always=False),
    _Column("reasoning\ntokens", _field("reasoning_tokens"), money=False, always=False),
    _Column("unattrib.\nin tokens", _field("unattributed_input_tokens"), money=False,
            always=False),
    _Column("unattrib.\nout tokens", _field("unattributed_output_tokens"), money=False,
            always=False),
    _Column("token\ncost", _field("token_cost"), money=True, always=True),
    _Column("infra\ncost", infra_cost, money=True, always=True),
    _Column("unattrib.\ncost", _field("unattributed_cost"), money=True, always=False),
    _Column("discount", lambda row: -to_decimal(row.get("discount")), money=True,
            always=False),
    _Column("total", _field("total_cost"), money=True, always=True),
)
"""The numbers of a cost table, left to right; optional ones show when a row has one."""


_KEY_MIN_WIDTH = 6
"""Group-key columns never shrink below this (6 characters): a narrow terminal folds names
onto more lines instead of hiding them or cutting numbers."""
_GAP = 2
"""Characters a column adds to the table width beside its text (divider and padding)."""
_EDGES = 2
"""Characters of the table's left and right edges."""


def _label(value: Any, *, day: bool = False) -> str:
    if value is None or value == "":
        return "(none)"
    text = str(value)
    if len(text) >= 16 and text[10:11] == "T":  # an ISO bucket start: no seconds, no zone
        return text[:10] if day else text[:16].replace("T", " ")
    return text


def cost_table(rows: Sequence[Mapping[str, Any]], keys: Sequence[str], title: str = "",
               currency: str = "USD", *, day_buckets: bool = False,
               width: int | None = None) -> Table:
    """A Rich table: the group keys (and bucket), then :data:`COST_COLUMNS`, right-aligned.

    Numbers are never cut: when the table is wider than ``width`` (the console's, in
    characters), the group-key columns fold their text instead. Bucket starts print as
    ``2026-12-06 10:00`` (UTC), or ``2026-12-06`` with ``day_buckets``.
    """
    table = Table(title=title or None, box=box.SIMPLE_HEAD, pad_edge=False,
                  collapse_padding=True)
    columns = [c for c in COST_COLUMNS if c.always
               or any(to_decimal(c.value(row)) for row in rows)]
    labels = [[escape(_label(row.get(key), day=day_buckets)) for key in keys] for row in rows]
    numbers = [[format_money(c.value(row), currency) if c.money
                else format_count(c.value(row) if c.value(row) is not None else 0)
                for c in columns] for row in rows]
    number_widths = [max([len(line) for line in c.header.split("\n")]
                         + [len(r[i]) for r in numbers]) for i, c in enumerate(columns)]
    key_widths = [max([len(key)] + [len(r[i]) for r in labels]) for i, key in enumerate(keys)]
    cap = None
    if width is not None and keys:
        room = width - _EDGES - sum(w + _GAP for w in number_widths) - _GAP * len(keys)
        if sum(key_widths) > room:
            cap = max(_KEY_MIN_WIDTH, room // len(keys))
    for key, key_width in zip(keys, key_widths, strict=True):
        folded = cap is not None and key_width > cap
        table.add_column(key, justify="left", overflow="fold",
                         min_width=cap if folded else key_width,
                         max_width=cap if folded else None)
    for column in columns:
        table.add_column(column.header, justify="right", no_wrap=True)
    for label_cells, number_cells in zip(labels, numbers, strict=True):
        table.add_row(*label_cells, *number_cells)
    return table


def totals_line(rows: Sequence[Mapping[str, Any]], total: Any, currency: str = "USD") -> str:
    """``Total $12.34 = token $10.00 + infrastructure $2.34`` (+ unattributed, - discount)."""
    token = sum((to_decimal(r.get("token_cost")) for r in rows), Decimal(0))
    infra = sum((infra_cost(r) for r in rows), Decimal(0))
    unattributed = sum((to_decimal(r.get("unattributed_cost")) for r in rows), Decimal(0))
    discount = sum((to_decimal(r.get("discount")) for r in rows), Decimal(0))
    parts = [f"token {format_money(token, currency)}",
             f"infrastructure {format_money(infra, currency)}"]
    if unattributed:
        parts.append(f"unattributed {format_money(unattributed, currency)}")
    text = f"Total [bold]{format_money(total, currency)}[/bold] = " + " + ".join(parts)
    if discount:
        text += f" - discount {format_money(discount, currency)}"
    return text


def cost_footnotes(num_hidden: int, rows: Sequence[Mapping[str, Any]],
                   prices: Mapping[str, Any] | None,
                   unpriced: Sequence[Mapping[str, Any]] | None) -> list[str]:
    """What a reader must know to trust the numbers: hidden rows, unpriced parts.

    Args:
        num_hidden: rows left out (no cost, no requests).
        rows: the rows shown.
        prices: ``GET /api/v1/prices`` answer, or None when unavailable.
        unpriced: ``GET /api/v1/unpriced`` rows over the same range, or None.
    """
    notes: list[str] = []
    if num_hidden:
        noun = "row" if num_hidden == 1 else "rows"
        notes.append(f"{num_hidden:,} {noun} with no cost and no requests not shown "
                     "(--all shows them).")
    infra = (prices or {}).get("infrastructure")
    if isinstance(infra, Mapping):
        if not infra.get("priced", True):
            notes.append("Infrastructure is not priced: every infrastructure rate in force is "
                         "0, so CPU, memory, GPU, network and storage show $0 (rates go in "
                         "pricing.toml [infrastructure]; see `mentatctl prices show`).")
        elif any(r.get("origin") == "defaults" for r in infra.get("rates", [])) and any(
                infra_cost(row) for row in rows):
            as_of = (infra.get("defaults") or {}).get("as_of", "?")
            notes.append(f"Infrastructure is priced at MentatLab's default list prices of "
                         f"{as_of} (public cloud on-demand rates) where pricing.toml sets "
                         "none: `mentatctl prices show` lists each rate and its source.")
    if unpriced:
        named = ", ".join(
            f"{r.get('provider') or '?'}/{r.get('model') or '?'} "
            f"({format_count(r.get('num_spans'))} span{'' if r.get('num_spans') == 1 else 's'})"
            for r in unpriced[:_MAX_UNPRICED_NAMED])
        more = len(unpriced) - _MAX_UNPRICED_NAMED
        noun = "model" if len(unpriced) == 1 else "models"
        notes.append(f"{len(unpriced):,} {noun} called without a known price, counted as $0 "
                     f"token cost: {named}{f' and {more:,} more' if more > 0 else ''} "
                     "(`mentatctl cost unpriced`).")
    return notes


def report_renderable(body: Mapping[str, Any], title: str, *, show_all: bool,
                      prices: Mapping[str, Any] | None,
                      unpriced: Sequence[Mapping[str, Any]] | None,
                      width: int | None = None) -> Group:
    """Table, total line and footnotes of a ``GET /api/v1/cost`` answer (``width``: chars)."""
    rows = list(body.get("rows", []))
    currency = _currency(body, prices)
    shown, num_hidden = split_visible(rows, show_all)
    keys = list(body.get("group_by") or [])
    if body.get("bucket"):
        keys.insert(0, "bucket")
    parts: list[Any] = [cost_table(shown, keys, title, currency,
                                   day_buckets=body.get("bucket") == "day", width=width)]
    if not shown:
        parts.append(Text("No spend in this range."))
    parts.append(Text.from_markup(totals_line(rows, body.get("total_cost", "0"), currency)))
    parts.extend(Text(f"* {note}", style="dim") for note in
                 cost_footnotes(num_hidden, shown, prices, unpriced))
    return Group(*parts)


def _currency(body: Mapping[str, Any], prices: Mapping[str, Any] | None) -> str:
    """The currency stored costs are in: the pricing file's (prices), else the answer's."""
    code = ((prices or {}).get("currency") or {}).get("code") if prices else None
    return str(code or body.get("currency") or "USD")
