"""``mentatctl audit ...``: check, read and sign the audit log.

``verify``, ``checkpoint`` and ``keygen`` run on the server's machine: they read the control
store directly, with the server's settings (``MENTATLAB_DATA_DIR``,
``MENTATLAB_CONTROL_STORE``, ``MENTATLAB_AUDIT_SIGNING_KEY_FILE``), so a server that lies
cannot hide tampering. ``list`` goes through the server API with a credential allowed to
read the audit log.

Exit codes of ``verify``: 0 intact, 1 any problem, 2 bad usage or an unreadable store.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from mentatlab.cli._client import ApiClient, console, err_console, parse_time
from mentatlab.cli._local import DataDirOpt, open_local_control_store

if TYPE_CHECKING:
    pass

__all__ = ["audit_app", "record_cli_action"]

audit_app = typer.Typer(help="The tamper-evident audit log: verify, list, checkpoint, keygen.",
                        no_args_is_help=True)


def record_cli_action(action: str, *, data_dir: Path | None = None, target: str = "",
                      details: dict[str, Any] | None = None) -> None:
    """Append ``action`` by ``cli`` to the audit log of the installation's control store.

    Exits 1 (after saying why) when the append fails: the action is done but unrecorded.
    """
    from mentatlab.errors import MentatLabError

    control = open_local_control_store(data_dir)
    try:
        control.audit.record("cli", action, target=target, details=details)
    except MentatLabError as exc:
        err_console.print(f"[red]The audit log did not record {action!r}: {exc}[/red]")
        raise typer.Exit(1) from None
    finally:
        control.close()


@audit_app.command("verify")
def verify(data_dir: DataDirOpt = None) -> None:
    """Walk the whole chain and every checkpoint; name every problem (exit 1 if any).

    Names every edited, removed, inserted, reordered or truncated entry and every bad
    checkpoint signature. Checkpoint signatures are checked with the public half of
    ``audit_signing_key_file``.
    """
    from mentatlab.errors import MentatLabError

    control = open_local_control_store(data_dir)
    try:
        report = control.audit.verify()
    except MentatLabError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    finally:
        control.close()
    for note in report.notes:
        err_console.print(f"[yellow]note: {note}[/yellow]")
    for problem in report.problems:
        console.print(f"[red]{problem}[/red]", highlight=False)
    summary = (f"{report.entries:,} entries (head seq {report.head_seq}), "
               f"{report.checkpoints} checkpoints ({report.signed_checkpoints} with a valid "
               f"signature), checked in {report.seconds:.2f} s")
    if report.problems:
        console.print(f"[red]Audit log NOT intact: {len(report.problems)} problem(s)[/red]; "
                      f"{summary}", highlight=False)
        raise typer.Exit(1)
    console.print(f"[green]Audit log intact[/green]: {summary}", highlight=False)


@audit_app.command("checkpoint")
def checkpoint(data_dir: DataDirOpt = None) -> None:
    """Checkpoint the head of the chain now (signed when a key is configured).

    Keep the printed line somewhere else too: a checkpoint held outside the control store
    also proves its tail was not cut off.
    """
    control = open_local_control_store(data_dir)
    try:
        point = control.audit.checkpoint()
    finally:
        control.close()
    if point is None:
        console.print("The audit log is empty: nothing to checkpoint.")
        return
    signed = f"signed by {point.key_id[:16]}…" if point.signature else "unsigned"
    console.print(f"seq {point.seq} hash {point.hash} at {point.at.isoformat()} ({signed})",
                  highlight=False)


@audit_app.command("keygen")
def keygen(path: Annotated[Path, typer.Argument(
        help="Where to write the PEM private key (mode 0600; never overwritten).")]) -> None:
    """Write a new Ed25519 signing key for audit checkpoints.

    Set MENTATLAB_AUDIT_SIGNING_KEY_FILE to it on every node.
    """
    from mentatlab.errors import ConfigError
    from mentatlab.storage.control.audit import generate_signing_key

    try:
        fingerprint = generate_signing_key(path)
    except ConfigError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    console.print(f"Wrote {path} (key id {fingerprint}). Set MENTATLAB_AUDIT_SIGNING_KEY_FILE="
                  f"{path} on every node and keep a copy offline.", highlight=False)


@audit_app.command("list")
def list_entries(
    actor: Annotated[str | None, typer.Option(help="Only this actor (key:<id>, user:<id>, "
                                              "cli, system).")] = None,
    action: Annotated[str | None, typer.Option(help="Only this action (key.created) or a "
                                               "family (key.*).")] = None,
    since: Annotated[str | None, typer.Option(help="At or after (ISO-8601).")] = None,
    until: Annotated[str | None, typer.Option(help="Before (ISO-8601).")] = None,
    org: Annotated[str | None, typer.Option("--org", help="Only this org (installation-wide "
                                            "callers).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    url: Annotated[str | None, typer.Option(help="Server URL (MENTATLAB_URL).")] = None,
    api_key: Annotated[str | None, typer.Option(help="API key (MENTATLAB_API_KEY).")] = None,
) -> None:
    """Entries newest first, through the server API."""
    params: dict[str, Any] = {"limit": limit}
    for name, value in (("actor", actor), ("action", action), ("org_id", org)):
        if value:
            params[name] = value
    for name, text in (("since", since), ("until", until)):
        if text:
            params[name] = parse_time(text).isoformat()
    with ApiClient(url, api_key) as client:
        entries = client.get_json("/api/v1/audit", **params)["entries"]
    table = Table("seq", "at (UTC)", "actor", "action", "org", "target", "details")
    for entry in entries:
        table.add_row(str(entry["seq"]), entry["at"][:19], entry["actor"], entry["action"],
                      entry["org_id"] or "", entry["target"],
                      ", ".join(f"{k}={v}" for k, v in entry["details"].items()))
    console.print(table)
