"""``mentatctl recommendations``: where money can be saved, with the evidence (Rich)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
import typer
from rich.console import Group, RenderableType
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from mentatlab.cli._client import ApiClient, console, parse_range, parse_time
from mentatlab.cli._format import format_count, format_money

__all__ = ["recommendations", "render_recommendations"]


def _value(name: str, value: Any, currency: str) -> str:
    """One evidence value for people: money with its symbol, rates as %, counts grouped."""
    if isinstance(value, bool) or value is None:
        return str(value).lower()
    if name.endswith(("_cost", "_per_call")) and isinstance(value, str):
        return format_money(value, currency)
    if name.endswith("_per_mtok") and isinstance(value, str):
        return format_money(value, currency) + "/Mtok"
    if name.endswith(("_rate", "_share")) and isinstance(value, float):
        return f"{value:.1%}"
    if isinstance(value, int):
        return format_count(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, dict)):
        return escape(orjson.dumps(value).decode())
    return escape(str(value))


def _card(rec: dict[str, Any], currency: str) -> Panel:
    scope = ", ".join(f"{k}={v}" for k, v in rec["scope"].items() if v)
    evidence = Table.grid(padding=(0, 2))
    evidence.add_column(style="dim")
    evidence.add_column()
    for name, value in rec["evidence"].items():
        evidence.add_row(name, _value(name, value, currency))
    evidence.add_row("sample traces", ", ".join(rec["sample_trace_ids"]) or "-")
    head = Text.assemble(
        (format_money(rec["saving_per_month"], currency) + " / month", "bold green"),
        f"  ({format_money(rec['saving_in_window'], currency)} in the range)\n",
        (escape(scope), "cyan"), "\n", (rec["saving_basis"], "dim italic"))
    return Panel(Group(head, evidence), title=f"[bold]{escape(rec['title'])}[/]",
                 subtitle=rec["kind"], title_align="left", subtitle_align="right")


def render_recommendations(body: dict[str, Any]) -> RenderableType:
    """The answer of ``GET /api/v1/recommendations`` as Rich panels, total first."""
    currency = body.get("currency", "USD")
    recs = body.get("recommendations", [])
    total = Text.assemble(
        ("Estimated saving: ", "bold"),
        (format_money(body["total_saving_per_month"], currency) + " / month", "bold green"),
        f" from {len(recs)} recommendation{'s' if len(recs) != 1 else ''} "
        f"({body['start'][:16]} → {body['end'][:16]} UTC, {body['window_days']:g} days; "
        f"{body['extrapolation']})")
    if not recs:
        return Group(total, Text("Nothing to recommend in this range.", style="dim"))
    return Group(total, *(_card(r, currency) for r in recs))


def recommendations(
    range_: Annotated[str, typer.Option("--range", help="How far back: 30d, 7d, 24h.")] =
        "30d",
    start: Annotated[str | None, typer.Option(help="Start (ISO-8601); overrides --range.")] =
        None,
    end: Annotated[str | None, typer.Option(help="End (ISO-8601); default now.")] = None,
    filter_: Annotated[str | None, typer.Option("--filter", help="e.g. project_id=acme")] =
        None,
    kind: Annotated[str | None, typer.Option(help="Only these kinds, comma-separated.")] =
        None,
    as_json: Annotated[bool, typer.Option("--json", help="The server's JSON as is.")] = False,
    url: Annotated[str | None, typer.Option(help="Server URL (MENTATLAB_URL).")] = None,
    api_key: Annotated[str | None, typer.Option(help="API key (MENTATLAB_API_KEY).")] = None,
) -> None:
    """Where money can be saved: each recommendation with its numbers and monthly saving."""
    until = parse_time(end) if end else datetime.now(UTC)
    since = parse_time(start) if start else until - parse_range(range_)
    with ApiClient(url, api_key) as client:
        body = client.get_json("/api/v1/recommendations", start=since.isoformat(),
                               end=until.isoformat(), filter=filter_, kind=kind)
    if as_json:
        typer.echo(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
        return
    console.print(render_recommendations(body))
