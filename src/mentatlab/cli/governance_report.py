"""``mentatctl governance report ...``: build and check compliance evidence reports.

``report`` asks the server (``GET /api/v1/governance/report``, a credential with the
audit-log permission) and writes the JSON and its HTML rendering; ``report verify`` runs
on the server's machine against the control store itself (like ``audit verify``), so a
server that lies cannot vouch for its own report.

Exit codes of ``report verify``: 0 the report checks out, 1 a problem, 2 bad usage or an
unreadable file/store.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from mentatlab.cli._client import ApiClient, console, err_console
from mentatlab.cli._local import DataDirOpt, open_local_control_store

__all__ = ["register", "report_app"]

report_app = typer.Typer(
    help="Compliance evidence reports (GDPR, EU AI Act, SOC 2): build, verify.",
    invoke_without_command=True)

_STATUS_STYLE = {"in_force": "green", "partial": "yellow", "not_in_force": "red"}


def _file_stem(report: dict[str, Any]) -> str:
    period = report["period"]
    stem = f"mentatlab-{report['framework']}-{period['start'][:10]}_{period['end'][:10]}"
    return stem + (f"-{report['org_id']}" if report.get("org_id") else "")


@report_app.callback()
def report(
    ctx: typer.Context,
    framework: Annotated[str | None, typer.Option(
        help="gdpr, eu-ai-act or soc2.")] = None,
    period: Annotated[str | None, typer.Option(
        help="<start>..<end>, ISO-8601 (UTC if no offset; a date-only end includes that "
        "day); default the last 30 days.")] = None,
    org: Annotated[str | None, typer.Option(
        "--org", help="One org (installation-wide credentials).")] = None,
    out: Annotated[Path, typer.Option(
        help="Folder for <name>.json and <name>.html (created if missing).")] = Path("."),
    url: Annotated[str | None, typer.Option(help="Server URL (MENTATLAB_URL).")] = None,
    api_key: Annotated[str | None, typer.Option(help="API key (MENTATLAB_API_KEY).")] = None,
) -> None:
    """Build a report of the controls in force and their evidence; write JSON and HTML."""
    if ctx.invoked_subcommand is not None:
        return
    from mentatlab.governance.report import FRAMEWORKS, render_html

    if framework not in FRAMEWORKS:
        err_console.print(f"[red]Expected --framework to be one of {', '.join(FRAMEWORKS)},"
                          f" got {framework!r}[/red]")
        raise typer.Exit(2)
    with ApiClient(url, api_key) as client:
        answer = client.get_json("/api/v1/governance/report", framework=framework,
                                 period=period, org_id=org)
    answer.pop("ok", None)
    out.mkdir(parents=True, exist_ok=True)
    stem = _file_stem(answer)
    json_path, html_path = out / f"{stem}.json", out / f"{stem}.html"
    json_path.write_text(json.dumps(answer, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    html_path.write_text(render_html(answer))
    table = Table("control", "references", "status", title=answer["framework_title"])
    for control in answer["controls"]:
        style = _STATUS_STYLE.get(control["status"], "dim")
        table.add_row(control["title"], ", ".join(control["references"]),
                      f"[{style}]{control['status'].replace('_', ' ')}[/{style}]")
    console.print(table)
    chain = answer["audit_chain"]
    console.print(f"Built from audit entry seq {chain['head_seq']} hash {chain['head_hash']};"
                  f" digest {answer['digest']}", highlight=False)
    console.print(f"Wrote {json_path} and {html_path}", highlight=False)


@report_app.command("verify")
def verify(
    path: Annotated[Path, typer.Argument(help="The report's JSON file.")],
    data_dir: DataDirOpt = None,
) -> None:
    """Check a report: its digest, and that the audit chain still holds its head entry."""
    from mentatlab.errors import MentatLabError
    from mentatlab.governance.report import verify_report

    try:
        report_json = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        err_console.print(f"[red]Cannot read {path}: {exc}[/red]")
        raise typer.Exit(2) from None
    control = open_local_control_store(data_dir)
    try:
        check = verify_report(report_json, control)
    except MentatLabError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    finally:
        control.close()
    for note in check.notes:
        err_console.print(f"[yellow]note: {note}[/yellow]")
    for problem in check.problems:
        console.print(f"[red]{problem}[/red]", highlight=False)
    if not check.ok:
        console.print(f"[red]Report NOT verified: {len(check.problems)} problem(s)[/red]")
        raise typer.Exit(1)
    chain = report_json["audit_chain"]
    console.print(f"[green]Report verified[/green]: digest {report_json['digest']} matches; "
                  f"audit entry {chain['head_seq']} holds hash {chain['head_hash']}; "
                  "the audit log is intact", highlight=False)


def register(governance_app: typer.Typer) -> None:
    """Add ``report`` (and ``report verify``) to the ``mentatctl governance`` group."""
    governance_app.add_typer(report_app, name="report")
