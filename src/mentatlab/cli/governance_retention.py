"""``mentatctl governance retention show|set`` and ``mentatctl governance erase``.

Both go through the server API (``/api/v1/governance/retention``, ``…/erasures``) with an
admin credential: the server owns the embedded span store, and records each change in the
audit log (``governance.retention_set``, ``governance.erased``).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from mentatlab.cli._client import ApiClient, console, err_console

__all__ = ["register", "retention_app"]

retention_app = typer.Typer(help="How long each org's spans, aggregates and audit entries "
                            "are kept.", no_args_is_help=True)

UrlOpt = Annotated[str | None, typer.Option(help="Server URL (MENTATLAB_URL).")]
KeyOpt = Annotated[str | None, typer.Option(help="Admin API key (MENTATLAB_API_KEY).")]
OrgOpt = Annotated[str | None, typer.Option("--org", help="The org (default: the key's own; "
                                            "installation keys: every org with an override).")]


def _days(value: int) -> str:
    return "forever" if value == 0 else str(value)


@retention_app.command("show")
def show(org: OrgOpt = None, url: UrlOpt = None, api_key: KeyOpt = None) -> None:
    """The installation's retention and each org's (0 = forever)."""
    with ApiClient(url, api_key) as client:
        answer = client.get_json("/api/v1/governance/retention", org_id=org)
    defaults = answer["defaults"]
    table = Table("org", "span days", "aggregate days", "audit years", "overrides")
    table.add_row("(installation default)", _days(defaults["span_days"]),
                  _days(defaults["aggregate_days"]), _days(defaults["audit_years"]), "")
    for row in answer["orgs"]:
        kept = row["retention"]
        table.add_row(row["org_id"], _days(kept["span_days"]), _days(kept["aggregate_days"]),
                      _days(kept["audit_years"]),
                      ", ".join(f"{k}={v}" for k, v in row["overrides"].items()))
    console.print(table)


@retention_app.command("set")
def set_retention(
    org: OrgOpt = None,
    span_days: Annotated[int | None, typer.Option(min=0, help="Days of spans (0 = forever).")
                         ] = None,
    aggregate_days: Annotated[int | None, typer.Option(
        min=0, help="Days of the cost aggregates (0 = forever, else >= span days).")] = None,
    audit_years: Annotated[int | None, typer.Option(
        min=0, help="Years of audit-log entries (0 = forever).")] = None,
    reset: Annotated[list[str] | None, typer.Option(
        help="Put a value back to the installation setting (span_days, aggregate_days, "
        "audit_years); repeatable.")] = None,
    url: UrlOpt = None, api_key: KeyOpt = None,
) -> None:
    """Set some of an org's retention values; the retention job applies them."""
    values: dict[str, Any] = {name: value for name, value in (
        ("span_days", span_days), ("aggregate_days", aggregate_days),
        ("audit_years", audit_years)) if value is not None}
    for name in reset or []:
        values[name] = None
    if not values:
        err_console.print("[red]Nothing to set: give --span-days, --aggregate-days, "
                          "--audit-years or --reset[/red]")
        raise typer.Exit(2)
    body: dict[str, Any] = {"retention": values}
    if org:
        body["org_id"] = org
    with ApiClient(url, api_key) as client:
        answer = client.request("PUT", "/api/v1/governance/retention", json=body).json()
    kept = answer["retention"]
    console.print(f"Org {answer['org_id']}: spans {_days(kept['span_days'])} days, aggregates "
                  f"{_days(kept['aggregate_days'])} days, audit log "
                  f"{_days(kept['audit_years'])} years", highlight=False)


def erase(
    user_id: Annotated[str | None, typer.Option(help="Erase this user_id.")] = None,
    customer_id: Annotated[str | None, typer.Option(help="Erase this customer_id.")] = None,
    org: Annotated[str | None, typer.Option("--org", help="Only in this org (default: the "
                                            "key's org; installation keys: every org).")] = None,
    url: UrlOpt = None, api_key: KeyOpt = None,
) -> None:
    """Erase everything stored about one user or customer (GDPR); prints the receipt.

    Spans, the settled tables, the resolver's ledger and the per-user/customer aggregates
    go; cost totals without a person in them stay. The receipt in the audit log
    (``governance.erased``) names the subject by a salted hash only.
    """
    if (user_id is None) == (customer_id is None):
        err_console.print("[red]Give exactly one of --user-id and --customer-id[/red]")
        raise typer.Exit(2)
    body: dict[str, Any] = {"user_id": user_id} if user_id else {"customer_id": customer_id}
    if org:
        body["org_id"] = org
    with ApiClient(url, api_key) as client:
        answer = client.post_json("/api/v1/governance/erasures", body)
    receipt = answer["receipt"]
    table = Table("table", "rows removed")
    for name, num in sorted(receipt["counts"].items()):
        table.add_row(name, f"{num:,}")
    console.print(table)
    console.print(f"Erased {answer['removed']:,} rows ({receipt['num_traces']:,} traces) of "
                  f"{receipt['field']} hash {receipt['subject_hash']} at {receipt['at']}; "
                  f"{receipt['purged_parts']} replaced parts removed from disk",
                  highlight=False)


def register(governance_app: typer.Typer) -> None:
    """Add ``retention`` and ``erase`` to the ``governance`` command group."""
    governance_app.add_typer(retention_app, name="retention")
    governance_app.command("erase")(erase)
