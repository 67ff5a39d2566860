"""``mentatctl trace replay ID``: step through a trace's event instants with its state.

Each step is one ``GET /api/v1/traces/{id}/replay?at=<ns>`` (docs/api.md, "Agent graph
and replay"): what started, finished or checkpointed at that instant, how many spans are
running, and the state after it. Without a terminal (a pipe, a test) it prints up to
``--steps`` instants from ``--at`` (default the trace's first); at a terminal it waits
for ``n`` (next), ``p`` (previous) or ``q`` (quit), unless ``--no-interactive``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Annotated, Any

import click
import orjson
import typer
from rich.text import Text

from mentatlab.cli._client import ApiClient, console

__all__ = ["format_instant", "replay"]

UrlOpt = Annotated[str | None, typer.Option(help="Server URL (MENTATLAB_URL).")]
KeyOpt = Annotated[str | None, typer.Option(help="API key (MENTATLAB_API_KEY).")]


def format_instant(body: Mapping[str, Any]) -> Text:
    """One instant of a replay answer: offset, events at it, counts and the state."""
    at = int(body["at_ns"])
    line = Text(f"+{(at - int(body['start_ns'])) / 1e6:.3f} ms  ", style="bold")
    line.append(f"{body['at']}  ", style="dim")
    events: list[str] = []
    spans = body.get("spans") or {}
    for name, start, end, status in zip(spans.get("name", []), spans.get("start_ns", []),
                                        spans.get("end_ns", []), spans.get("status", []),
                                        strict=True):
        if start == at:
            events.append(f"start {name}")
        if end == at:
            events.append(f"end {name} ({status})")
    checkpoint = body.get("last_checkpoint")
    if checkpoint and checkpoint["time_ns"] == at:
        events.append("checkpoint")
    line.append(", ".join(events) or "-")
    line.append(f"  [{body['num_running']} running, {body['num_finished']} finished, "
                f"{body['num_not_started']} not started]", style="dim")
    line.append("\n  state " + orjson.dumps(body["state"], option=orjson.OPT_SORT_KEYS
                                           ).decode())
    return line


def replay(
    trace_id: Annotated[str, typer.Argument(help="32 hex characters.")],
    at: Annotated[str | None, typer.Option(help=(
        "Start at this instant (ns since the epoch or ISO-8601); default the trace's "
        "first."))] = None,
    steps: Annotated[int, typer.Option(min=1, max=100_000, help=(
        "Most instants printed without a terminal."))] = 100,
    interactive: Annotated[bool | None, typer.Option(
        "--interactive/--no-interactive", help="Step with n/p/q keys (default: when "
        "stdin and stdout are a terminal).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON answer per line.")] = False,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
) -> None:
    """Step through a trace: each event instant (span start/end, checkpoint) with its state."""
    path = f"/api/v1/traces/{trace_id}/replay"
    if interactive is None:
        interactive = sys.stdin.isatty() and sys.stdout.isatty()
    with ApiClient(url, api_key) as client:
        body = client.get_json(path, at=at if at is not None else "0")
        if at is None and body["num_spans"] and body["next_ns"] is not None:
            body = client.get_json(path, at=str(body["next_ns"]))  # the first instant

        def show(answer: Mapping[str, Any]) -> None:
            if json_out:
                typer.echo(orjson.dumps(answer).decode())
            else:
                console.print(format_instant(answer), soft_wrap=True)

        show(body)
        if interactive:
            while True:
                key = click.getchar()
                if key in ("q", "\x1b", "\x03"):
                    return
                target = body["next_ns"] if key in ("n", " ", "\r") else (
                    body["previous_ns"] if key == "p" else None)
                if target is not None:
                    body = client.get_json(path, at=str(target))
                    show(body)
        shown = 1
        while body["next_ns"] is not None and shown < steps:
            body = client.get_json(path, at=str(body["next_ns"]))
            show(body)
            shown += 1
        if body["next_ns"] is not None:
            console.print(f"… more instants after {body['at']} (--at {body['next_ns']})",
                          style="dim")
