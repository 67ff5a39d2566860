"""``mentatctl cost tree`` and ``mentatctl cost tokens``: the cost views in a terminal.

Both print what the server answers (``/api/v1/analytics/attribution`` and
``/api/v1/analytics/tokens``); money is rounded for reading (``cli/_format.py``), ``--format
json`` carries the exact values.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Annotated, Any

import orjson
import typer
from rich.console import Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from mentatlab.cli._client import ApiClient, console
from mentatlab.cli._format import format_count, format_money
from mentatlab.cli.cost import KeyOpt, OutputFormat, UrlOpt, _window, app

__all__ = ["attribution_tree", "tokens", "tokens_renderable", "tree"]

RangeOpt = Annotated[str, typer.Option("--range", help="How far back: 7d, 24h, 30m.")]
StartOpt = Annotated[str | None, typer.Option(help="Start (ISO-8601); overrides --range.")]
EndOpt = Annotated[str | None, typer.Option(help="End (ISO-8601); default now.")]
FilterOpt = Annotated[str | None, typer.Option("--filter", help="e.g. project=acme")]
FormatOpt = Annotated[OutputFormat, typer.Option("--format", help="table or json.")]

_KIND_LABELS = {"input": "input (uncached)", "cache_read": "cache read",
                "cache_write": "cache write", "output": "output", "reasoning": "reasoning",
                "request": "request fees", "unattributed": "unattributed (roll-ups)"}


def _share(part: str, whole: Decimal) -> str:
    return f"{Decimal(part) / whole * 100:.1f}%" if whole else "-"


def _label(node: Mapping[str, Any], total: Decimal, currency: str) -> str:
    key = node["key"] if node["key"] != "" else "(none)"
    return (f"[bold]{escape(key)}[/bold] {format_money(node['total_cost'], currency)}"
            f" ({_share(node['total_cost'], total)}) · requests {format_count(node['requests'])}")


def _grow(branch: Tree, node: Mapping[str, Any], total: Decimal, currency: str,
          depth: int, width: int | None) -> None:
    for child in node["children"][:width]:
        sub = branch.add(_label(child, total, currency))
        if depth > 1:
            _grow(sub, child, total, currency, depth - 1, width)


def attribution_tree(body: Mapping[str, Any], title: str, depth: int = 5,
                     width: int | None = None) -> Tree:
    """An attribution answer as a Rich tree: each node's spend, share of the root and requests.

    ``depth`` levels are printed, and at most ``width`` children per node (the costliest:
    the server sorts them), all when None.
    """
    root = body["tree"]
    currency = body.get("currency", "USD")
    out = Tree(f"{title}{format_money(root['total_cost'], currency)}")
    _grow(out, root, Decimal(root["total_cost"]), currency, depth, width)
    return out


def tokens_renderable(body: Mapping[str, Any], title: str) -> Group:
    """A token-waterfall answer: tokens and cost per kind with shares, then the cache savings."""
    currency = body.get("currency", "USD")
    spend = Decimal(body["token_cost"]) + Decimal(body["unattributed_cost"])
    table = Table(title=title or None)
    for name, right in (("kind", False), ("tokens", True), ("cost", True), ("share", True)):
        table.add_column(name, justify="right" if right else "left", no_wrap=right)
    for kind in body["kinds"]:
        table.add_row(_KIND_LABELS.get(kind["kind"], kind["kind"]),
                      format_count(kind["tokens"]), format_money(kind["cost"], currency),
                      _share(kind["cost"], spend))
    table.add_row("[bold]total[/bold]", "", f"[bold]{format_money(str(spend), currency)}"
                  "[/bold]", "")
    return Group(table, Text.from_markup(
        f"Cache savings: {format_money(body['cache_savings'], currency)} "
        f"({format_count(body['cache_read_tokens'])} cache-read tokens at the "
        "uncached input price, minus what they cost)"))


@app.command("tree")
def tree(
    levels: Annotated[str, typer.Option(help="Levels, outermost first (1 to 5): org, "
                                        "project, agent, model, user, provider...")] =
        "org,project,agent,model",
    range_: RangeOpt = "7d", start: StartOpt = None, end: EndOpt = None,
    filter_: FilterOpt = None, fmt: FormatOpt = OutputFormat.table,
    depth: Annotated[int, typer.Option(min=1, max=5, help="Levels to print.")] = 5,
    url: UrlOpt = None, api_key: KeyOpt = None,
) -> None:
    """Spend as a tree in the order given; every node adds up exactly to its children."""
    since, until = _window(range_, start, end)
    with ApiClient(url, api_key) as client:
        body = client.get_json("/api/v1/analytics/attribution", levels=levels, start=since,
                               end=until, filter=filter_)
    if fmt is not OutputFormat.table:
        typer.echo(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
        return
    console.print(attribution_tree(
        body, f"Spend by {' → '.join(body['levels'])} ({since[:16]} → {until[:16]} UTC): ",
        depth))


@app.command("tokens")
def tokens(
    range_: RangeOpt = "7d", start: StartOpt = None, end: EndOpt = None,
    filter_: FilterOpt = None, fmt: FormatOpt = OutputFormat.table,
    url: UrlOpt = None, api_key: KeyOpt = None,
) -> None:
    """Tokens and what each kind cost (the token waterfall), and the cache savings."""
    since, until = _window(range_, start, end)
    with ApiClient(url, api_key) as client:
        body = client.get_json("/api/v1/analytics/tokens", start=since, end=until,
                               filter=filter_)
    if fmt is not OutputFormat.table:
        typer.echo(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
        return
    console.print(tokens_renderable(body, f"Tokens by kind ({since[:16]} → {until[:16]} UTC)"))
