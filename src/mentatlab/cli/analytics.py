"""``mentatctl analytics latency|peers``: latency percentiles per group and agent peer ranks.

Both print the server's answers (``/api/v1/analytics/latency``, ``/api/v1/analytics/peers``)
as Rich tables, or ``--format json`` unchanged.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
import typer
from rich.markup import escape
from rich.table import Table

from mentatlab.cli._client import ApiClient, console, parse_range, parse_time
from mentatlab.cli._format import format_count, format_money

__all__ = ["app", "latency_table", "peers_table"]

app = typer.Typer(help="Trace analytics: latency percentiles, peer ranks, reliability.",
                  no_args_is_help=True)

UrlOpt = Annotated[str | None, typer.Option(help="Server URL (MENTATLAB_URL).")]
KeyOpt = Annotated[str | None, typer.Option(help="API key (MENTATLAB_API_KEY).")]
RangeOpt = Annotated[str, typer.Option("--range", help="How far back: 7d, 24h, 30m.")]
StartOpt = Annotated[str | None, typer.Option(help="Start (ISO-8601); overrides --range.")]
EndOpt = Annotated[str | None, typer.Option(help="End (ISO-8601); default now.")]
FilterOpt = Annotated[str | None, typer.Option("--filter", help="e.g. project_id=acme")]


class GroupBy(enum.StrEnum):
    """What latency is grouped by (the API's ``group_by``)."""

    operation = "operation"
    agent = "agent"
    tool = "tool"
    provider = "provider"
    model = "model"


class OutputFormat(enum.StrEnum):
    """How an answer is printed."""

    table = "table"
    json = "json"


def _window(range_: str, start: str | None, end: str | None) -> tuple[str, str]:
    until = parse_time(end) if end else datetime.now(UTC)
    since = parse_time(start) if start else until - parse_range(range_)
    return since.isoformat(), until.isoformat()


def _ms(value: float | None) -> str:
    """A duration in ms with two decimals below 10 ms, else whole ms."""
    if value is None:
        return ""
    return f"{value:,.2f}" if value < 10 else f"{value:,.0f}"


def latency_table(body: dict[str, Any], title: str) -> Table:
    """The latency answer as a table: group, spans, p50/p90/p95/p99, mean, max (ms)."""
    table = Table(title=title, caption=f"Percentiles: {body.get('quantile_method', '')}")
    table.add_column(str(body.get("group_by", "group")))
    for name in ("spans", "p50 ms", "p90 ms", "p95 ms", "p99 ms", "mean ms", "max ms"):
        table.add_column(name, justify="right", no_wrap=True)
    for g in body.get("groups", []):
        table.add_row(escape(str(g["key"])), format_count(g["num_spans"]),
                      *(_ms(g[k]) for k in ("p50_ms", "p90_ms", "p95_ms", "p99_ms", "mean_ms",
                                            "max_ms")))
    return table


def _rank(metric: dict[str, Any]) -> str:
    rank = metric.get("percentile_rank")
    return "" if rank is None else f"{rank:.1f}"


def peers_table(body: dict[str, Any], title: str) -> Table:
    """The peers answer as a table: each agent's values and percentile ranks (lower better)."""
    currency = str(body.get("currency", "USD"))
    table = Table(title=title, caption=f"Percentile rank among agents of the same operation "
                  f"type (scipy percentileofscore, kind={body.get('percentile_kind')}); "
                  "lower is better")
    table.add_column("agent")
    table.add_column("type")
    for name in ("runs", "ok", "cost/success", "rank", "p50 run ms", "rank", "tokens/success",
                 "rank"):
        table.add_column(name, justify="right", no_wrap=True)
    for a in body.get("agents", []):
        cost, latency, tokens = (a["cost_per_success"], a["latency_p50_ms"],
                                 a["tokens_per_success"])
        table.add_row(
            escape(str(a["agent_id"])), escape(str(a["operation_type"])),
            format_count(a["num_runs"]), format_count(a["num_successes"]),
            "" if cost["value"] is None else format_money(cost["value"], currency),
            _rank(cost), _ms(latency["value"]), _rank(latency),
            "" if tokens["value"] is None else f"{tokens['value']:,.1f}", _rank(tokens))
    return table


@app.command("latency")
def latency(
    group_by: Annotated[GroupBy, typer.Option("--group-by", help="operation, agent, tool, "
                                              "provider or model.")] = GroupBy.operation,
    range_: RangeOpt = "24h",
    start: StartOpt = None,
    end: EndOpt = None,
    filter_: FilterOpt = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Most groups.")] = 50,
    fmt: Annotated[OutputFormat, typer.Option("--format", help="table or json.")] =
        OutputFormat.table,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
) -> None:
    """Exact p50/p90/p95/p99 span latency per group (busiest first)."""
    since, until = _window(range_, start, end)
    with ApiClient(url, api_key) as client:
        body = client.get_json("/api/v1/analytics/latency", group_by=group_by.value,
                               start=since, end=until, filter=filter_, limit=limit)
    if fmt is OutputFormat.json:
        typer.echo(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
        return
    console.print(latency_table(body, f"Latency by {group_by.value} "
                                      f"({since[:16]} → {until[:16]} UTC)"))


@app.command("peers")
def peers(
    range_: RangeOpt = "7d",
    start: StartOpt = None,
    end: EndOpt = None,
    filter_: FilterOpt = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", help="table or json.")] =
        OutputFormat.table,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
) -> None:
    """Each agent's percentile rank among agents of its operation type."""
    since, until = _window(range_, start, end)
    with ApiClient(url, api_key) as client:
        body = client.get_json("/api/v1/analytics/peers", start=since, end=until,
                               filter=filter_)
    if fmt is OutputFormat.json:
        typer.echo(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
        return
    console.print(peers_table(body, f"Agents among their peers ({since[:16]} → {until[:16]} UTC)"))
