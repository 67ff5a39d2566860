"""``mentatctl governance versions|approvals|signals``: oversight and security signals.

Every command talks to a running server (``--url``, ``--api-key``) through
``/api/v1/governance/...`` (docs/api.md, "Oversight and security signals"):

* ``versions register`` registers a prompt or workflow version with its content hash
  (``--content-file``: MentatLab hashes the file, SHA-256; or ``--content-hash``);
* ``versions list`` and ``versions unregistered`` (spans naming an unregistered or changed
  version);
* ``approvals``: the human approval queue, its waits and approval rate;
* ``signals``: security findings with their severity and evidence.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.markup import escape
from rich.table import Table

from mentatlab.cli._client import ApiClient, console, err_console
from mentatlab.cli._format import format_count
from mentatlab.cli.cost import KeyOpt, UrlOpt, _window

__all__ = ["governance_app", "versions_app"]

governance_app = typer.Typer(help="Data governance: versions, approvals, signals, keys, reports.",
                             no_args_is_help=True)
versions_app = typer.Typer(help="Registered prompt and workflow versions.",
                           no_args_is_help=True)
governance_app.add_typer(versions_app, name="versions")

RangeOpt = Annotated[str, typer.Option("--range", help="How far back: 7d, 24h, 30m.")]
StartOpt = Annotated[str | None, typer.Option(help="Start (ISO-8601); overrides --range.")]
EndOpt = Annotated[str | None, typer.Option(help="End (ISO-8601); default now.")]
FilterOpt = Annotated[str | None, typer.Option("--filter", help="e.g. project=web,agent=triage")]


class Kind(enum.StrEnum):
    """What a version belongs to."""

    prompt = "prompt"
    workflow = "workflow"


class Output(enum.StrEnum):
    """How an answer is printed."""

    table = "table"
    json = "json"


FormatOpt = Annotated[Output, typer.Option("--format", help="table or json.")]


def _print_json(body: Any) -> None:
    typer.echo(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())


def _ms(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value / 60_000:.1f} min" if value >= 60_000 else f"{value / 1000:.1f} s"


@versions_app.command("register")
def register(
    kind: Annotated[Kind, typer.Option(help="prompt or workflow.")],
    version: Annotated[str, typer.Option(help="The version as spans name it.")],
    name: Annotated[str, typer.Option(help="Prompt name (as spans carry it) or workflow id.")]
        = "",
    content_file: Annotated[Path | None, typer.Option(
        exists=True, dir_okay=False, readable=True,
        help="The version's content: its SHA-256 is registered, nothing else.")] = None,
    content_hash: Annotated[str | None, typer.Option(
        help="The content hash as the spans carry it (instead of --content-file).")] = None,
    org: Annotated[str | None, typer.Option("--org", help="Org id (default: the key's).")] =
        None,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
) -> None:
    """Register a version with its content hash (refused if registered with another)."""
    if (content_file is None) == (content_hash is None):
        err_console.print("[red]Give exactly one of --content-file and --content-hash[/red]")
        raise typer.Exit(2)
    body: dict[str, Any] = {"kind": kind.value, "name": name, "version": version,
                            "org_id": org or ""}
    if content_file is not None:
        body["content"] = content_file.read_text(encoding="utf-8")
    else:
        body["content_hash"] = content_hash
    with ApiClient(url, api_key) as client:
        answer = client.post_json("/api/v1/governance/versions", body)
    info = answer["version"]
    verb = "Registered" if answer["created"] else "Already registered"
    console.print(f"{verb} {info['kind']} {info['name']!r} version {info['version']!r}: "
                  f"{info['content_hash']}", highlight=False)


@versions_app.command("list")
def list_versions(kind: Annotated[Kind | None, typer.Option(help="Only this kind.")] = None,
                  fmt: FormatOpt = Output.table, url: UrlOpt = None,
                  api_key: KeyOpt = None) -> None:
    """Registered versions, by kind and name."""
    with ApiClient(url, api_key) as client:
        body = client.get_json("/api/v1/governance/versions",
                               kind=kind.value if kind else None)
    if fmt is Output.json:
        _print_json(body)
        return
    table = Table("org", "kind", "name", "version", "content hash", "registered", "by")
    for v in body["versions"]:
        table.add_row(*(escape(str(x)) for x in (
            v["org_id"], v["kind"], v["name"], v["version"], v["content_hash"][:16],
            v["registered_at"][:16], v["registered_by"])))
    console.print(table)


@versions_app.command("unregistered")
def unregistered(range_: RangeOpt = "7d", start: StartOpt = None, end: EndOpt = None,
                 filter_: FilterOpt = None,
                 kind: Annotated[Kind | None, typer.Option(help="Only this kind.")] = None,
                 fmt: FormatOpt = Output.table, url: UrlOpt = None,
                 api_key: KeyOpt = None) -> None:
    """Spans naming an unregistered version, or a registered one with another hash."""
    since, until = _window(range_, start, end)
    with ApiClient(url, api_key) as client:
        body = client.get_json("/api/v1/governance/versions/unregistered", start=since,
                               end=until, filter=filter_, kind=kind.value if kind else None)
    if fmt is Output.json:
        _print_json(body)
        return
    if not body["flags"]:
        console.print(f"Every version named in {since[:16]} → {until[:16]} UTC is registered "
                      f"({body['num_versions_seen']} seen).", highlight=False)
        return
    table = Table("status", "kind", "name", "version", "spans", "hash", "last seen",
                  title=f"Versions ({since[:16]} → {until[:16]} UTC)")
    for f in body["flags"]:
        table.add_row(*(escape(str(x)) for x in (
            f["status"], f["kind"], f["name"], f["version"], format_count(f["num_spans"]),
            f["content_hash"][:12] or "–", f["last_seen"][:19])))
    console.print(table)


@governance_app.command("approvals")
def approvals(range_: RangeOpt = "24h", start: StartOpt = None, end: EndOpt = None,
              filter_: FilterOpt = None,
              group_by: Annotated[str | None, typer.Option(
                  help="agent, workflow or reviewer.")] = None,
              fmt: FormatOpt = Output.table, url: UrlOpt = None,
              api_key: KeyOpt = None) -> None:
    """The human approval queue: pending now, waits (p50/p95) and approval rate."""
    since, until = _window(range_, start, end)
    with ApiClient(url, api_key) as client:
        body = client.get_json("/api/v1/governance/approvals", start=since, end=until,
                               filter=filter_, group_by=group_by)
    if fmt is Output.json:
        _print_json(body)
        return
    table = Table("group", "requested", "decided", "approved", "rate", "wait p50", "wait p95",
                  "pending", "oldest pending",
                  title=f"Approvals ({since[:16]} → {until[:16]} UTC)")
    for group in [body["total"], *body["groups"]]:
        label = ", ".join(f"{v or '(none)'}" for v in group["key"].values()) or "all"
        rate = group["approval_rate"]
        table.add_row(escape(label), format_count(group["num_requested"]),
                      format_count(group["num_decided"]), format_count(group["num_approved"]),
                      "–" if rate is None else f"{rate * 100:.1f}%", _ms(group["wait_ms_p50"]),
                      _ms(group["wait_ms_p95"]), format_count(group["queue_length"]),
                      _ms(group["oldest_pending_ms"]))
    console.print(table)


@governance_app.command("signals")
def signals(range_: RangeOpt = "24h", start: StartOpt = None, end: EndOpt = None,
            filter_: FilterOpt = None,
            kind: Annotated[list[str] | None, typer.Option(
                help="prompt_injection_burst, blocked_action, new_tool, new_key (repeat).")]
                = None,
            min_severity: Annotated[str, typer.Option(help="low, medium or high.")] = "low",
            fmt: FormatOpt = Output.table, url: UrlOpt = None,
            api_key: KeyOpt = None) -> None:
    """Security findings, highest severity first, with their evidence."""
    since, until = _window(range_, start, end)
    with ApiClient(url, api_key) as client:
        body = client.get_json("/api/v1/governance/signals", start=since, end=until,
                               filter=filter_, kind=kind, min_severity=min_severity)
    if fmt is Output.json:
        _print_json(body)
        return
    for name, why in body["unavailable"].items():
        err_console.print(f"[yellow]{name}: not available: {why}[/yellow]")
    if not body["findings"]:
        console.print(f"No findings in {since[:16]} → {until[:16]} UTC.", highlight=False)
        return
    table = Table("severity", "kind", "subject", "count", "first seen", "last seen", "evidence",
                  title=f"Security signals ({since[:16]} → {until[:16]} UTC)")
    for f in body["findings"]:
        subject = ", ".join(f"{k}={v}" for k, v in f["subject"].items() if v)
        table.add_row(*(escape(str(x)) for x in (
            f["severity"], f["kind"], subject, format_count(f["count"]), f["first_seen"][:19],
            f["last_seen"][:19], (f["evidence"] or [""])[0])))
    console.print(table)


_SEVERITY_RANK = {"low": 1, "medium": 2, "high": 3}


@governance_app.command("alert")
def add_signal_alert(
    name: Annotated[str, typer.Argument(help="Rule name (unique in its org).")],
    notify: Annotated[list[str], typer.Option(
        "--notify", help="Channel (repeatable): webhook:URL, slack:URL or email:a@x.org.")],
    signal: Annotated[str, typer.Option(help="any, prompt_injection_burst, blocked_action, "
                                        "new_tool or new_key.")] = "any",
    min_severity: Annotated[str, typer.Option(help="low, medium or high.")] = "medium",
    window: Annotated[int, typer.Option(help="Window in seconds the findings are read "
                                        "over.")] = 900,
    filters: Annotated[list[str] | None, typer.Option(
        "--filter", help="Scope, key=value on a canonical span field (repeatable).")] = None,
    org: Annotated[str, typer.Option("--org", help="Org the rule watches (default: the "
                                     "key's).")] = "",
    url: UrlOpt = None,
    api_key: KeyOpt = None,
) -> None:
    """Create a security_signal alert rule: each finding at or above a severity notifies."""
    from mentatlab.cli.alerts import _filters, _print_rule

    if min_severity not in _SEVERITY_RANK:
        err_console.print("[red]--min-severity: expected low, medium or high[/red]")
        raise typer.Exit(2)
    with ApiClient(url, api_key) as client:
        body = client.post_json("/api/v1/alert-rules", {
            "name": name, "kind": "security_signal", "org_id": org, "metric": signal,
            "threshold": _SEVERITY_RANK[min_severity], "window_s": window,
            "filters": _filters(filters), "channels": notify})
    _print_rule(body)
