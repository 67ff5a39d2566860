"""``mentatctl quotas ...``: per-org quota overrides, written to the control store directly.

Limits protect the installation from its tenants, so an org's admin cannot raise its own:
these commands run on a server's machine, like ``keys create --bootstrap`` (same settings:
``MENTATLAB_DATA_DIR``, ``MENTATLAB_CONTROL_STORE``). Every server reads the overrides
within ``quota_refresh_s``; each change is recorded in the audit log.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from mentatlab.cli._client import console, err_console
from mentatlab.cli._local import DataDirOpt, open_local_control_store

if TYPE_CHECKING:
    pass

__all__ = ["quotas_app"]

quotas_app = typer.Typer(help="Per-org quota overrides (this machine's control store).",
                         no_args_is_help=True)

LimitOpt = Annotated[int | None, typer.Option(min=-1, help="-1: back to the setting.")]


@quotas_app.command("set")
def set_quotas(
    org: Annotated[str, typer.Argument(help="Org id.")],
    key_ingest_requests_per_s: LimitOpt = None,
    org_ingest_requests_per_s: LimitOpt = None,
    key_ingest_spans_per_min: LimitOpt = None,
    org_ingest_spans_per_min: LimitOpt = None,
    key_queries_per_min: LimitOpt = None,
    org_queries_per_min: LimitOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Override some limits of an org and of each of its keys (0 = unlimited).

    Limits not given keep their current value; -1 puts one back to its setting.
    """
    from mentatlab.errors import MentatLabError

    given = {"key_ingest_requests_per_s": key_ingest_requests_per_s,
             "org_ingest_requests_per_s": org_ingest_requests_per_s,
             "key_ingest_spans_per_min": key_ingest_spans_per_min,
             "org_ingest_spans_per_min": org_ingest_spans_per_min,
             "key_queries_per_min": key_queries_per_min,
             "org_queries_per_min": org_queries_per_min}
    limits = {name: None if value == -1 else value
              for name, value in given.items() if value is not None}
    if not limits:
        err_console.print("[red]Give at least one limit, e.g. --key-queries-per-min 100[/red]")
        raise typer.Exit(2)
    control = open_local_control_store(data_dir)
    try:
        override = control.quotas.set(org, limits)
        control.audit.record("cli", "quota.set", org_id=org, target=org,
                             details=limits)
    except MentatLabError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    finally:
        control.close()
    shown = ", ".join(f"{name}={value}" for name, value in override.items()) or "none"
    console.print(f"Org {org} overrides: {shown}", highlight=False)


@quotas_app.command("clear")
def clear_quotas(org: Annotated[str, typer.Argument(help="Org id.")],
                 data_dir: DataDirOpt = None) -> None:
    """Drop an org's overrides: the settings apply to it again."""
    control = open_local_control_store(data_dir)
    try:
        had = control.quotas.clear(org)
        if had:
            control.audit.record("cli", "quota.cleared", org_id=org, target=org)
    finally:
        control.close()
    console.print(f"Org {org}: {'overrides dropped' if had else 'had no overrides'}",
                  highlight=False)


@quotas_app.command("list")
def list_quotas(data_dir: DataDirOpt = None) -> None:
    """Every org with overrides and the limits they set."""
    control = open_local_control_store(data_dir)
    try:
        overrides = control.quotas.all()
    finally:
        control.close()
    table = Table("org", "limit", "value")
    for org, limits in sorted(overrides.items()):
        for name, value in limits.items():
            table.add_row(org, name, "unlimited" if value == 0 else f"{value:,}")
    console.print(table)
