"""``mentatctl analytics reliability``: the reliability answer as Rich tables.

Prints what ``GET /api/v1/analytics/reliability`` answers (definitions in docs/api.md,
"Reliability"): a summary of rates, errors by class and category, the steps that fail
most, and the loops, cycles and deadlock suspects with their trace ids.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any

import orjson
import typer
from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table

from mentatlab.cli._client import ApiClient, console
from mentatlab.cli._format import format_count
from mentatlab.cli.cost import KeyOpt, UrlOpt, _window

__all__ = ["TOP_ROWS", "format_percent", "reliability", "reliability_renderable"]

TOP_ROWS = 15
"""Rows printed per table (the JSON has every row the server answers)."""


class ReliabilityFormat(enum.StrEnum):
    """How the answer is printed."""

    table = "table"
    json = "json"


def format_percent(rate: float | None) -> str:
    """A fraction as a percentage with one decimal (``0.8333`` → ``83.3%``); ``–`` for None."""
    return "–" if rate is None else f"{rate * 100:.1f}%"


def _table(title: str, columns: list[tuple[str, bool]], rows: list[list[str]],
           empty: str) -> RenderableType:
    if not rows:
        return f"[bold]{escape(title)}[/bold]: {escape(empty)}"
    table = Table(title=title, title_justify="left")
    for name, numeric in columns:
        table.add_column(name, justify="right" if numeric else "left", no_wrap=numeric)
    for row in rows:
        table.add_row(*(escape(c) for c in row))
    return table


def reliability_renderable(body: dict[str, Any], title: str) -> Group:
    """The tables of one reliability answer (the JSON of the route)."""
    traces, spans, retries = body["traces"], body["spans"], body["retries"]
    fallbacks, loops = body["fallbacks"], body["loop_detected"]
    cycles, suspects = body["cycles"], body["deadlock_suspects"]
    summary = [
        ["Traces succeeded (end to end)", format_percent(traces["success_rate"]),
         f"{format_count(traces['num_ok'])} of {format_count(traces['num_traces'])}"],
        ["Spans succeeded", format_percent(spans["success_rate"]),
         f"{format_count(spans['num_spans'] - spans['num_failed'])} of "
         f"{format_count(spans['num_spans'])}"],
        ["Ended in a timeout", "", format_count(traces["num_ended_in_timeout"])],
        ["Retry rate", format_percent(retries["retry_rate"]),
         f"{format_count(retries['num_retries'])} retries"],
        ["Retries that succeeded", format_percent(retries["retry_success_rate"]),
         format_count(retries["num_succeeded"])],
        ["Fallback activation", format_percent(fallbacks["activation_rate"]),
         f"{format_count(fallbacks['num_traces'])} traces"],
        [f"Loops (same tool and arguments ≥ {loops['min_calls']}x)",
         format_percent(loops["rate"]), f"{format_count(loops['num_traces'])} traces"],
        ["Agent cycles (A → B → A)", "", f"{format_count(cycles['num_traces'])} traces"
         + (" (truncated)" if cycles["truncated"] else "")],
        ["Deadlock suspects (timeout + cycle)", "",
         f"{format_count(suspects['num_traces'])} traces"],
    ]
    parts: list[RenderableType] = [
        _table(title, [("", False), ("rate", True), ("count", True)], summary, ""),
        _table("Errors by category", [("class", False), ("category", False),
                                      ("failed", True), ("error rate", True),
                                      ("share", True)],
               [[e["error_class"], e["error_category"], format_count(e["num_failed"]),
                 format_percent(e["error_rate"]), format_percent(e["share"])]
                for e in body["errors"]["by_category"][:TOP_ROWS]], "no failed spans"),
        _table("Steps that fail most", [("operation", False), ("step", False),
                                        ("spans", True), ("failed", True),
                                        ("success", True)],
               [[s["operation"], s["step"], format_count(s["num_spans"]),
                 format_count(s["num_failed"]), format_percent(s["success_rate"])]
                for s in body["steps"][:TOP_ROWS]], "no spans"),
        _table("Loops", [("trace", False), ("tool", False), ("calls", True)],
               [[x["trace_id"], x["tool_name"], format_count(x["num_calls"])]
                for x in loops["loops"][:TOP_ROWS]], "none"),
        _table("Agent cycles", [("trace", False), ("path", False), ("timed out", False)],
               [[c["trace_id"], " → ".join(c["agents"]), "yes" if c["timed_out"] else ""]
                for c in cycles["traces"][:TOP_ROWS]], "none"),
    ]
    return Group(*parts)


def reliability(
    range_: Annotated[str, typer.Option("--range", help="How far back: 7d, 24h, 30m.")] = "24h",
    start: Annotated[str | None, typer.Option(help="Start (ISO-8601); overrides --range.")] =
        None,
    end: Annotated[str | None, typer.Option(help="End (ISO-8601); default now.")] = None,
    filter_: Annotated[str | None, typer.Option("--filter", help="e.g. project=acme")] = None,
    fmt: Annotated[ReliabilityFormat, typer.Option("--format", help="table or json.")] =
        ReliabilityFormat.table,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
) -> None:
    """Success, failures by category, retries, fallbacks, loops and agent cycles."""
    since, until = _window(range_, start, end)
    with ApiClient(url, api_key) as client:
        body = client.get_json("/api/v1/analytics/reliability", start=since, end=until,
                               filter=filter_)
    if fmt is ReliabilityFormat.json:
        typer.echo(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
        return
    console.print(reliability_renderable(
        body, f"Reliability ({since[:16]} → {until[:16]} UTC)"))
