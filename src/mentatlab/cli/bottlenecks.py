"""``mentatctl analytics bottlenecks``: what holds the settled traces' critical paths up."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
import typer
from rich.markup import escape
from rich.table import Table

from mentatlab.cli._client import ApiClient, console, parse_range
from mentatlab.cli._format import format_count

__all__ = ["bottlenecks", "bottlenecks_table"]

_SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "dim"}


class GroupBy(enum.StrEnum):
    """What the rows are."""

    name = "name"
    tool = "tool"
    model = "model"
    agent = "agent"
    operation = "operation"


def _ms(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def _trend(value: float | None) -> str:
    if value is None:
        return "new"
    arrow = "↑" if value > 0 else "↓" if value < 0 else "→"
    return f"{arrow} {value:+.0f}%"


def bottlenecks_table(body: dict[str, Any], title: str) -> Table:
    """A Rich table of a ``/api/v1/analytics/bottlenecks`` answer, largest first."""
    table = Table(title=title, show_lines=False)
    table.add_column(body.get("group_by", "key"))
    for name in ("critical path ms", "share", "per hour", "on path", "trend"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("severity")
    for row in body.get("rows", []):
        style = _SEVERITY_STYLE.get(row["severity"], "")
        table.add_row(escape(str(row["key"])), _ms(float(row["critical_path_ms"])),
                      f"{float(row['share_pct']):.1f}%",
                      f"{float(row['occurrences_per_hour']):,.1f}",
                      f"{format_count(int(row['on_path']))}/"
                      f"{format_count(int(row['occurrences']))}",
                      _trend(row.get("trend_pct")),
                      f"[{style}]{row['severity']}[/]" if style else row["severity"])
    return table


def bottlenecks(
    range_: Annotated[str, typer.Option("--range", help="How far back: 24h, 7d, 30m.")] = "24h",
    group_by: Annotated[GroupBy, typer.Option("--group-by", help=(
        "Rows: span name, tool, model, agent or operation."))] = GroupBy.name,
    filter_: Annotated[str | None, typer.Option("--filter", help="e.g. project=acme")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="Most rows.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print the server's JSON.")] = False,
    url: Annotated[str | None, typer.Option(help="Server URL (MENTATLAB_URL).")] = None,
    api_key: Annotated[str | None, typer.Option(help="API key (MENTATLAB_API_KEY).")] = None,
) -> None:
    """Span names, tools, models, agents or operations ranked by critical-path time.

    Reads settled traces only (no span for ``MENTATLAB_TRACE_QUIET_S``, default 120 s):
    share of the total critical path, occurrences per hour, trend against the previous
    period of equal length, severity (docs/api.md#bottlenecks).
    """
    until = datetime.now(UTC)
    since = until - parse_range(range_)
    with ApiClient(url, api_key) as client:
        body = client.get_json("/api/v1/analytics/bottlenecks", start=since.isoformat(),
                               end=until.isoformat(), group_by=group_by.value,
                               filter=filter_, limit=limit)
    if as_json:
        typer.echo(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
        return
    title = (f"Bottlenecks by {group_by.value}, last {range_} "
             f"({body.get('num_traces', 0)} settled traces, "
             f"{_ms(float(body.get('total_critical_path_ms', 0)))} ms on critical paths)")
    if not body.get("rows"):
        console.print(f"{title}: no settled trace in the range.")
        return
    console.print(bottlenecks_table(body, title))

