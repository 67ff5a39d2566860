"""``mentatctl cost report|watch|unpriced`` and ``mentatctl reprice``."""

from __future__ import annotations

import csv
import enum
import io
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
import typer
from rich.console import Group
from rich.live import Live
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from mentatlab.cli._client import ApiClient, console, parse_range, parse_time
from mentatlab.cli._cost_table import has_cost_or_requests, report_renderable
from mentatlab.cli._format import format_count, format_money

__all__ = ["app", "render_rows", "reprice"]

app = typer.Typer(help="Spend: reports, a live view and unpriced models.", no_args_is_help=True)

UrlOpt = Annotated[str | None, typer.Option(help="Server URL (MENTATLAB_URL).")]
KeyOpt = Annotated[str | None, typer.Option(help="API key (MENTATLAB_API_KEY).")]
AllOpt = Annotated[bool, typer.Option("--all", help="Also rows with no cost and no requests.")]


class OutputFormat(enum.StrEnum):
    """How a report is printed."""

    table = "table"
    json = "json"
    csv = "csv"


def _is_money(name: str) -> bool:
    return name.endswith("_cost") or name == "discount"


def _is_number(name: str) -> bool:
    return _is_money(name) or name.endswith(("_tokens", "_ms")) or name.startswith("num_") \
        or name in ("spans", "count", "requests")


def render_rows(rows: Sequence[dict[str, Any]], title: str = "",
                columns: Sequence[str] | None = None, currency: str = "USD") -> Table:
    """A Rich table of JSON rows (``columns``, default the first row's).

    Numbers are right-aligned with thousands separators; money (``*_cost``, ``discount``)
    is formatted with its currency symbol (``cli/_format.py``).
    """
    table = Table(title=title or None, show_lines=False)
    if columns is None:
        columns = list(rows[0]) if rows else []
    elif rows:
        columns = [c for c in columns if c in rows[0]]
    for name in columns:
        numeric = _is_number(name)
        table.add_column(name, justify="right" if numeric else "left", no_wrap=numeric)
    for row in rows:
        cells = []
        for name in columns:
            value = row.get(name)
            if value is None:
                cells.append("")
            elif _is_money(name):
                cells.append(format_money(value, currency))
            elif _is_number(name) and isinstance(value, int):
                cells.append(format_count(value))
            else:
                cells.append(escape(str(value)))
        table.add_row(*cells)
    return table


def _window(range_: str, start: str | None, end: str | None) -> tuple[str, str]:
    until = parse_time(end) if end else datetime.now(UTC)
    since = parse_time(start) if start else until - parse_range(range_)
    return since.isoformat(), until.isoformat()


def _filter_csv(text: str) -> str:
    """The server's CSV without rows that have no cost and no requests (values untouched)."""
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None:
        return text
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=reader.fieldnames, lineterminator="\n")
    writer.writeheader()
    writer.writerows(row for row in reader if has_cost_or_requests(row))
    return out.getvalue()


def _extras(client: ApiClient, since: str, until: str, filter_: str | None
            ) -> tuple[dict[str, Any] | None, list[dict[str, Any]] | None]:
    """The prices in force and the unpriced models of the range (None when unavailable)."""
    prices = client.try_get_json("/api/v1/prices")
    unpriced = client.try_get_json("/api/v1/unpriced", start=since, end=until, filter=filter_)
    rows = unpriced.get("rows") if isinstance(unpriced, dict) else None
    return (prices if isinstance(prices, dict) else None,
            list(rows) if isinstance(rows, list) else None)


@app.command("report")
def report(
    by: Annotated[str, typer.Option(help="Group by these fields, comma-separated.")] =
        "project_id,model",
    range_: Annotated[str, typer.Option("--range", help="How far back: 7d, 24h, 30m.")] = "7d",
    bucket: Annotated[str | None, typer.Option(help="Time bucket: minute, hour or day.")] =
        None,
    start: Annotated[str | None, typer.Option(help="Start (ISO-8601); overrides --range.")] =
        None,
    end: Annotated[str | None, typer.Option(help="End (ISO-8601); default now.")] = None,
    filter_: Annotated[str | None, typer.Option("--filter", help="e.g. project_id=acme")] = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", help="table, json or csv.")] =
        OutputFormat.table,
    show_all: AllOpt = False,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
) -> None:
    """Spend grouped by fields (and time buckets): token and infrastructure cost side by side.

    Rows with no cost and no requests are left out unless --all. The table rounds money
    for reading (docs/cli.md); json and csv carry the exact values the server computed.
    """
    since, until = _window(range_, start, end)
    params: dict[str, Any] = {"group_by": by, "bucket": bucket, "start": since, "end": until,
                              "filter": filter_}
    with ApiClient(url, api_key) as client:
        if fmt is OutputFormat.csv:
            text = client.request("GET", "/api/v1/cost",
                                  params={**{k: v for k, v in params.items() if v},
                                          "format": "csv"}).text
            typer.echo(text if show_all else _filter_csv(text), nl=False)
            return
        body = client.get_json("/api/v1/cost", **params)
        if fmt is OutputFormat.json:
            if not show_all:
                body["rows"] = [r for r in body.get("rows", []) if has_cost_or_requests(r)]
            typer.echo(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
            return
        prices, unpriced = _extras(client, since, until, filter_)
    console.print(report_renderable(body, f"Cost by {by} ({since[:16]} → {until[:16]} UTC)",
                                    show_all=show_all, prices=prices, unpriced=unpriced,
                                    width=console.width))


@app.command("watch")
def watch(
    by: Annotated[str, typer.Option(help="Group by these fields.")] = "project_id,model",
    range_: Annotated[str, typer.Option("--range", help="Window: 1h, 24h...")] = "24h",
    follow: Annotated[bool, typer.Option("--follow/--once", help="Keep refreshing.")] = True,
    interval_s: Annotated[float, typer.Option("--interval", help="Refresh period, s.")] = 2.0,
    show_all: AllOpt = False,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
) -> None:
    """A live-updating table of spend over the last ``--range`` (same columns as report)."""
    with ApiClient(url, api_key) as client:
        prices = client.try_get_json("/api/v1/prices")

        def snapshot() -> Group:
            since, until = _window(range_, None, None)
            body = client.get_json("/api/v1/cost", group_by=by, start=since, end=until)
            unpriced = client.try_get_json("/api/v1/unpriced", start=since, end=until)
            stamp = datetime.now(UTC).strftime("%H:%M:%S")
            return report_renderable(
                body, f"Spend, last {range_}, at {stamp} UTC", show_all=show_all,
                prices=prices if isinstance(prices, dict) else None,
                unpriced=unpriced.get("rows") if isinstance(unpriced, dict) else None,
                width=console.width)

        if not follow:
            console.print(snapshot())
            return
        with Live(snapshot(), console=console, refresh_per_second=4) as live:
            try:
                while True:
                    time.sleep(interval_s)
                    live.update(snapshot())
            except KeyboardInterrupt:
                pass


@app.command("unpriced")
def unpriced(
    range_: Annotated[str, typer.Option("--range", help="How far back.")] = "30d",
    fmt: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.table,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
) -> None:
    """Models seen without a known price (add them to pricing.toml, then reprice)."""
    since, until = _window(range_, None, None)
    with ApiClient(url, api_key) as client:
        body = client.get_json("/api/v1/unpriced", start=since, end=until)
    if fmt is OutputFormat.json:
        typer.echo(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
        return
    rows = body.get("rows", [])
    if not rows:
        console.print("Every model seen has a price.")
        return
    console.print(render_rows(rows, "Unpriced models",
                              ["provider", "model", "num_spans", "input_tokens",
                               "output_tokens"]))


def reprice(
    since: Annotated[str, typer.Option(help="Start (ISO-8601 or a range back: 7d).")] = "30d",
    until: Annotated[str | None, typer.Option(help="End (ISO-8601); default now.")] = None,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
) -> None:
    """Recompute the cost of stored spans with the current prices (reloads pricing.toml)."""
    start = parse_time(since).isoformat()
    end = (parse_time(until) if until else datetime.now(UTC)).isoformat()
    with ApiClient(url, api_key, timeout_s=3600.0) as client, Progress(
            SpinnerColumn(), TextColumn("[progress.description]{task.description}"),
            TimeElapsedColumn(), console=console, transient=True) as progress:
        progress.add_task(f"Repricing spans {start} → {end}", total=None)
        body = client.post_json("/api/v1/reprice", None, since=start, until=end)
    console.print(render_rows([{k: v for k, v in body.items() if k != "ok"}], "Repriced"))
