"""``mentatctl budgets add|list`` and ``mentatctl alerts add|rules|history|enable|disable|delete``.

Both talk to the server's ``/api/v1/alert-rules`` and ``/api/v1/alerts``; the server's
alert evaluator (on the elected node) measures the rules and sends the notifications.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import orjson
import typer
from rich.table import Table

from mentatlab.cli._client import ApiClient, console

__all__ = ["alerts_app", "budgets_app"]

budgets_app = typer.Typer(help="Spend budgets that notify at 50/80/100 % (or your fractions).",
                          no_args_is_help=True)
alerts_app = typer.Typer(help="Alert rules on cost, errors, latency and traffic; their alerts.",
                         no_args_is_help=True)

UrlOpt = Annotated[str | None, typer.Option(help="Server URL (MENTATLAB_URL).")]
KeyOpt = Annotated[str | None, typer.Option(help="API key (MENTATLAB_API_KEY).")]
FilterOpt = Annotated[list[str] | None, typer.Option(
    "--filter", help="Scope, key=value on a canonical span field (repeatable), e.g. "
    "project_id=acme.")]
NotifyOpt = Annotated[list[str], typer.Option(
    "--notify", help="Channel (repeatable): webhook:URL, slack:URL or email:a@x.org,b@y.org.")]
OrgOpt = Annotated[str, typer.Option("--org", help="Org the rule watches; default every org "
                                     "(or the API key's org).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _filters(items: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"Expected key=value, got {item!r}", param_hint="--filter")
        out[key.strip()] = value.strip()
    return out


def _decimal(text: str, option: str) -> str:
    try:
        Decimal(text)
    except InvalidOperation:
        raise typer.BadParameter(f"Expected a number, got {text!r}", param_hint=option) from None
    return text


def _print_rule(body: dict[str, Any]) -> None:
    rule = body["rule"]
    console.print(f"Rule [bold]{rule['name']}[/bold] id={rule['id']} ({rule['kind']}, "
                  f"{'enabled' if rule['enabled'] else 'disabled'})")


def _scope(rule: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(rule["filters"].items())) or "all spans"


@budgets_app.command("add")
def add_budget(
    name: Annotated[str, typer.Argument(help="Budget name (unique in its org).")],
    limit: Annotated[str, typer.Option("--limit", help="Limit in USD (or the spans' "
                                       "currency), e.g. 500 or 99.50.")],
    notify: NotifyOpt,
    period: Annotated[str, typer.Option(help="day or month (calendar, UTC).")] = "month",
    thresholds: Annotated[str, typer.Option(help="Fractions of the limit that notify, "
                                            "comma-separated.")] = "0.5,0.8,1",
    filters: FilterOpt = None,
    org: OrgOpt = "",
    url: UrlOpt = None,
    api_key: KeyOpt = None,
) -> None:
    """Create a budget: notify when a period's spend crosses each threshold (once each)."""
    fractions = [_decimal(t.strip(), "--thresholds") for t in thresholds.split(",") if t.strip()]
    with ApiClient(url, api_key) as client:
        body = client.post_json("/api/v1/alert-rules", {
            "name": name, "kind": "budget", "org_id": org, "period": period,
            "limit_amount": _decimal(limit, "--limit"), "thresholds": fractions,
            "filters": _filters(filters), "channels": notify})
    _print_rule(body)


@budgets_app.command("list")
def list_budgets(url: UrlOpt = None, api_key: KeyOpt = None, as_json: JsonOpt = False) -> None:
    """Budgets with the spend of their current period (as of the last evaluation)."""
    with ApiClient(url, api_key) as client:
        rules = [r for r in client.get_json("/api/v1/alert-rules")["rules"]
                 if r["kind"] == "budget"]
    if as_json:
        typer.echo(orjson.dumps(rules, option=orjson.OPT_INDENT_2).decode())
        return
    table = Table(title="Budgets")
    for column in ("name", "org", "scope", "period", "limit", "spend", "used", "state"):
        table.add_column(column, justify="right" if column in ("limit", "spend", "used")
                         else "left")
    for rule in rules:
        spend = Decimal(rule["last_value"] or 0)
        limit = Decimal(rule["limit_amount"])
        table.add_row(rule["name"], rule["org_id"] or "*", _scope(rule), rule["period"],
                      f"{limit:.2f}", f"{spend:.2f}", f"{spend / limit * 100:.1f} %",
                      rule["state"])
    console.print(table)


@alerts_app.command("add")
def add_rule(
    name: Annotated[str, typer.Argument(help="Rule name (unique in its org).")],
    metric: Annotated[str, typer.Option(help="cost, requests, spans, errors, error_rate, "
                                        "tokens, latency_p95_ms or latency_p99_ms.")],
    threshold: Annotated[str, typer.Option(help="Value compared with the metric (its unit; "
                                           "error_rate is 0..1).")],
    notify: NotifyOpt,
    op: Annotated[str, typer.Option(help="Fires when `metric OP threshold`: >, >=, <, <=.")] =
        ">=",
    window: Annotated[int, typer.Option(help="Window in seconds the metric is measured "
                                        "over.")] = 300,
    filters: FilterOpt = None,
    org: OrgOpt = "",
    url: UrlOpt = None,
    api_key: KeyOpt = None,
) -> None:
    """Create a threshold rule: notify when it starts to hold and when it resolves."""
    with ApiClient(url, api_key) as client:
        body = client.post_json("/api/v1/alert-rules", {
            "name": name, "kind": "threshold", "org_id": org, "metric": metric, "op": op,
            "threshold": _decimal(threshold, "--threshold"), "window_s": window,
            "filters": _filters(filters), "channels": notify})
    _print_rule(body)


@alerts_app.command("rules")
def list_rules(url: UrlOpt = None, api_key: KeyOpt = None, as_json: JsonOpt = False) -> None:
    """Every rule and budget with its state and last measured value."""
    with ApiClient(url, api_key) as client:
        rules = client.get_json("/api/v1/alert-rules")["rules"]
    if as_json:
        typer.echo(orjson.dumps(rules, option=orjson.OPT_INDENT_2).decode())
        return
    table = Table(title="Alert rules")
    for column in ("id", "name", "kind", "condition", "scope", "value", "state", "enabled"):
        table.add_column(column, justify="right" if column == "value" else "left")
    for rule in rules:
        condition = (f"cost/{rule['period']} ≥ {rule['thresholds']} × {rule['limit_amount']}"
                     if rule["kind"] == "budget" else
                     f"{rule['metric']} findings, severity ≥ "
                     f"{('low', 'medium', 'high')[int(rule['threshold']) - 1]}, over "
                     f"{rule['window_s']} s" if rule["kind"] == "security_signal" else
                     f"{rule['metric']} {rule['op']} {rule['threshold']} over {rule['window_s']} s")
        table.add_row(rule["id"], rule["name"], rule["kind"], condition, _scope(rule),
                      rule["last_value"] or "", rule["state"], "yes" if rule["enabled"] else "no")
    console.print(table)


@alerts_app.command("history")
def history(
    rule: Annotated[str | None, typer.Option(help="Only this rule id.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Recorded alerts, newest first, with where each was delivered."""
    with ApiClient(url, api_key) as client:
        alerts = client.get_json("/api/v1/alerts", rule_id=rule, limit=limit)["alerts"]
    if as_json:
        typer.echo(orjson.dumps(alerts, option=orjson.OPT_INDENT_2).decode())
        return
    table = Table(title="Alerts")
    for column in ("time", "rule", "state", "message", "deliveries"):
        table.add_column(column)
    for alert in alerts:
        deliveries = ", ".join(f"{d['channel'].split(':')[0]} {d['status']}"
                               for d in alert["deliveries"]) or "—"
        table.add_row(alert["created_at"], alert["rule_name"], alert["state"], alert["message"],
                      deliveries)
    console.print(table)


def _set_enabled(rule_id: str, enabled: bool, url: str | None, api_key: str | None) -> None:
    with ApiClient(url, api_key) as client:
        body = client.request("PATCH", f"/api/v1/alert-rules/{rule_id}",
                              json={"enabled": enabled}).json()
    _print_rule(body)


@alerts_app.command("enable")
def enable(rule_id: Annotated[str, typer.Argument(help="Rule id.")], url: UrlOpt = None,
           api_key: KeyOpt = None) -> None:
    """Turn a rule (or budget) on."""
    _set_enabled(rule_id, True, url, api_key)


@alerts_app.command("disable")
def disable(rule_id: Annotated[str, typer.Argument(help="Rule id.")], url: UrlOpt = None,
            api_key: KeyOpt = None) -> None:
    """Turn a rule (or budget) off; it keeps its history."""
    _set_enabled(rule_id, False, url, api_key)


@alerts_app.command("delete")
def delete(rule_id: Annotated[str, typer.Argument(help="Rule id.")], url: UrlOpt = None,
           api_key: KeyOpt = None) -> None:
    """Delete a rule (or budget) with its alerts."""
    with ApiClient(url, api_key) as client:
        client.request("DELETE", f"/api/v1/alert-rules/{rule_id}")
    console.print(f"Deleted rule {rule_id}")
