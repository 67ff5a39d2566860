"""``mentatctl tail`` (recent and live spans) and ``mentatctl trace show`` (a span tree)."""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import Annotated, Any

import orjson
import typer
from rich.text import Text
from rich.tree import Tree

from mentatlab.cli._client import ApiClient, console, err_console, parse_range

__all__ = ["format_span_line", "render_trace", "tail", "trace_app"]

trace_app = typer.Typer(help="Inspect traces.", no_args_is_help=True)

UrlOpt = Annotated[str | None, typer.Option(help="Server URL (MENTATLAB_URL).")]
KeyOpt = Annotated[str | None, typer.Option(help="API key (MENTATLAB_API_KEY).")]

_STATUS_STYLE = {"ok": "green", "error": "red", "timeout": "yellow"}


def format_span_line(span: Mapping[str, Any]) -> Text:
    """One line per span: time, status, project, model, name, duration (ms), cost."""
    status = str(span.get("status", ""))
    model = span.get("response_model") or span.get("request_model") or ""
    line = Text()
    line.append(f"{str(span.get('start_time', ''))[:23]} ", style="dim")
    line.append(f"{status:<7} ", style=_STATUS_STYLE.get(status, ""))
    line.append(f"{span.get('project_id') or '-':<12} ")
    line.append(f"{model or '-':<20} ", style="cyan")
    line.append(f"{span.get('name', '')} ")
    line.append(f"{float(span.get('duration_ms') or 0):.1f} ms ", style="dim")
    line.append(f"${span.get('total_cost', '0')}", style="bold")
    line.append(f"  {span.get('trace_id', '')}", style="dim")
    return line


def tail(
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Stream new spans live.")] =
        False,
    filter_: Annotated[str | None, typer.Option(
        "--filter", help="e.g. project_id=acme,model=gpt-4o,status=error,min_cost=0.01")] = None,
    since: Annotated[str, typer.Option(help="First show spans committed in this window "
                                       "(30s, 5m, 1h); 0s shows none.")] = "5m",
    limit: Annotated[int, typer.Option(help="Most spans shown from the window.")] = 100,
    max_spans: Annotated[int | None, typer.Option(
        help="With --follow, stop after this many live spans.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
) -> None:
    """Show spans committed in the last --since; with --follow stream new ones live."""

    def emit(span: Mapping[str, Any]) -> None:
        if json_out:
            typer.echo(orjson.dumps(span).decode())
        else:
            console.print(format_span_line(span))

    window_s = parse_range(since).total_seconds()
    with ApiClient(url, api_key) as client:
        if window_s > 0 and limit > 0:
            body = client.get_json("/api/v1/spans", limit=limit, filter=filter_,
                                   window_s=window_s)
            for span in body.get("spans", [])[:limit]:
                emit(span)
        if not follow:
            return
        _follow(client, filter_, max_spans, emit)


def _follow(client: ApiClient, filter_: str | None, max_spans: int | None,
            emit: Any) -> None:
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    query: dict[str, str] = {}
    if filter_:
        query["filter"] = filter_
    if client.api_key:
        query["api_key"] = client.api_key
    ws_url = client.ws_url("/api/v1/live") + ("?" + urllib.parse.urlencode(query) if query else "")
    seen = 0
    try:
        with connect(ws_url, open_timeout=10) as ws:
            hello = orjson.loads(ws.recv())
            if not hello.get("ok", False):
                err_console.print(f"[red]{hello.get('error')}[/red]")
                for item in hello.get("errors", []):
                    err_console.print(f"  [red]{item['field']}: {item['reason']}[/red]")
                raise typer.Exit(1)
            while max_spans is None or seen < max_spans:
                emit(orjson.loads(ws.recv()))
                seen += 1
    except KeyboardInterrupt:
        pass
    except (ConnectionClosed, OSError) as exc:
        err_console.print(f"[red]Live stream closed: {exc}[/red]")
        raise typer.Exit(1) from None


_CRITICAL_MARK = "* "
"""Prefix of a span on the critical path in ``trace show``."""


def _node_label(span: Mapping[str, Any], critical: bool = False) -> Text:
    status = str(span.get("status", ""))
    label = Text()
    if critical:
        label.append(_CRITICAL_MARK, style="bold magenta")
    label.append(str(span.get("name", "")), style="bold")
    model = span.get("response_model") or span.get("request_model")
    if model:
        label.append(f" [{model}]", style="cyan")
    label.append(f"  {float(span.get('duration_ms') or 0):.1f} ms", style="dim")
    cost = span.get("subtree_cost", span.get("total_cost"))
    if cost not in (None, "0"):
        label.append(f"  ${cost}", style="bold")
    tokens = [f"{n}={span[k]}" for k, n in (("input_tokens", "in"), ("output_tokens", "out"))
              if span.get(k) is not None]
    if tokens:
        label.append("  " + " ".join(tokens), style="dim")
    if critical:
        label.append(f"  critical {float(span.get('critical_path_ms') or 0):.1f} ms",
                     style="magenta")
    if status != "ok":
        label.append(f"  {status}", style=_STATUS_STYLE.get(status, "red"))
        if span.get("error_type"):
            label.append(f" ({span['error_type']})", style="red")
    return label


def render_trace(body: Mapping[str, Any]) -> Tree:
    """A Rich tree of a trace answer from ``GET /api/v1/traces/{trace_id}``.

    Spans on the critical path start with ``*`` and show their own share of it
    (``critical_path_ms``).
    """
    path = set(body.get("critical_path", []))
    title = Text(f"trace {body.get('trace_id')}  total ${body.get('total_cost', '0')}",
                 style="bold")
    if path:
        title.append(f"  ({_CRITICAL_MARK.strip()} critical path: {len(path)} spans)",
                     style="magenta")
    root = Tree(title)

    def add(parent: Tree, node: Mapping[str, Any]) -> None:
        branch = parent.add(_node_label(node, node.get("span_id") in path))
        for child in node.get("children", []):
            add(branch, child)

    for node in body.get("roots", []):
        add(root, node)
    return root


@trace_app.command("show")
def show(
    trace_id: Annotated[str, typer.Argument(help="32 hex characters.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print the raw JSON.")] = False,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
) -> None:
    """A trace as a tree, with each span's duration (ms) and cost rolled up.

    Spans on the critical path (the chain that set the trace's duration) are marked ``*``.
    """
    with ApiClient(url, api_key) as client:
        body = client.get_json(f"/api/v1/traces/{trace_id}")
    if json_out:
        typer.echo(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
        return
    console.print(render_trace(body))
