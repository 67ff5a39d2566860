"""``mentatctl cost report|watch|unpriced`` and ``mentatctl reprice``."""

from __future__ import annotations

import enum
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
import typer
from rich.live import Live
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from mentatlab.cli._client import ApiClient, console, parse_range, parse_time

__all__ = ["app", "render_rows", "reprice"]

app = typer.Typer(help="Spend: reports, a live view and unpriced models.", no_args_is_help=True)

UrlOpt = Annotated[str | None, typer.Option(help="Server URL (MENTATLAB_URL).")]
KeyOpt = Annotated[str | None, typer.Option(help="API key (MENTATLAB_API_KEY).")]


class OutputFormat(enum.StrEnum):
    """How a report is printed."""

    table = "table"
    json = "json"
    csv = "csv"


_COST_COLUMNS = ("bucket", "requests", "input_tokens", "output_tokens", "token_cost",
                 "total_cost")
"""Numbers a cost table shows after the group-by keys (JSON and CSV carry every field)."""


def cost_columns(body: dict[str, Any]) -> list[str]:
    """The group-by keys the server answered with (canonical names), then the numbers."""
    keys = list(body.get("group_by") or [])
    if body.get("bucket"):
        keys.insert(0, "bucket")
    return keys + list(_COST_COLUMNS)


def render_rows(rows: Sequence[dict[str, Any]], title: str = "",
                columns: Sequence[str] | None = None) -> Table:
    """A Rich table of JSON rows (``columns``, default the first row's; numbers right)."""
    table = Table(title=title or None, show_lines=False)
    if columns is None:
        columns = list(rows[0]) if rows else []
    elif rows:
        columns = [c for c in columns if c in rows[0]]
    for name in columns:
        numeric = name.endswith(("_cost", "_tokens", "_ms")) or name.startswith("num_") \
            or name in ("discount", "spans", "count")
        table.add_column(name, justify="right" if numeric else "left", no_wrap=not numeric)
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in columns))
    return table


def _window(range_: str, start: str | None, end: str | None) -> tuple[str, str]:
    until = parse_time(end) if end else datetime.now(UTC)
    since = parse_time(start) if start else until - parse_range(range_)
    return since.isoformat(), until.isoformat()


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
    url: UrlOpt = None,
    api_key: KeyOpt = None,
) -> None:
    """Spend grouped by fields (and time buckets) over a time range."""
    since, until = _window(range_, start, end)
    params: dict[str, Any] = {"group_by": by, "bucket": bucket, "start": since, "end": until,
                              "filter": filter_}
    with ApiClient(url, api_key) as client:
        if fmt is OutputFormat.csv:
            text = client.request("GET", "/api/v1/cost",
                                  params={**{k: v for k, v in params.items() if v},
                                          "format": "csv"}).text
            typer.echo(text, nl=False)
            return
        body = client.get_json("/api/v1/cost", **params)
    if fmt is OutputFormat.json:
        typer.echo(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
        return
    rows = body.get("rows", [])
    console.print(render_rows(rows, f"Cost by {by} ({since[:16]} → {until[:16]})",
                              cost_columns(body)))
    if "total_cost" in body:
        console.print(f"Total: [bold]{body['total_cost']}[/bold] {body.get('currency', 'USD')}")


@app.command("watch")
def watch(
    by: Annotated[str, typer.Option(help="Group by these fields.")] = "project_id,model",
    range_: Annotated[str, typer.Option("--range", help="Window: 1h, 24h...")] = "24h",
    follow: Annotated[bool, typer.Option("--follow/--once", help="Keep refreshing.")] = True,
    interval_s: Annotated[float, typer.Option("--interval", help="Refresh period, s.")] = 2.0,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
) -> None:
    """A live-updating table of spend over the last ``--range``."""
    with ApiClient(url, api_key) as client:

        def snapshot() -> Table:
            since, until = _window(range_, None, None)
            body = client.get_json("/api/v1/cost", group_by=by, start=since, end=until)
            stamp = datetime.now(UTC).strftime("%H:%M:%S")
            return render_rows(body.get("rows", []),
                               f"Spend, last {range_} — total {body.get('total_cost', '?')} "
                               f"{body.get('currency', 'USD')} at {stamp} UTC",
                               cost_columns(body))

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
