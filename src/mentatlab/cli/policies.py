"""``mentatctl policies ...``: guardrail policies through the REST API (``/api/v1/policies``).

Writes need an admin key (``manage_settings``); every change is a new version and an audit
entry on the server. docs/cli.md lists the commands, docs/governance.md the conditions.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.table import Table

from mentatlab.cli._client import ApiClient, console, err_console, parse_time

__all__ = ["policies_app"]

policies_app = typer.Typer(help="Guardrail policies: CEL rules enforced at ingest and by "
                                "the SDK's guard.", no_args_is_help=True)

UrlOpt = Annotated[str | None, typer.Option(help="Server URL (MENTATLAB_URL).")]
KeyOpt = Annotated[str | None, typer.Option(help="API key (MENTATLAB_API_KEY).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
ConditionOpt = Annotated[str | None, typer.Option(
    help="CEL condition over the span, e.g. 'span.tool_name == \"shell\"'; '@file' reads a "
         "file.")]
ActionOpt = Annotated[str | None, typer.Option(help="block, alert, redact or log.")]
ScopeOpt = Annotated[str | None, typer.Option(
    help="global, org, project, agent or tool; with a value: 'agent=planner'.")]
SeverityOpt = Annotated[str | None, typer.Option(help="low, medium, high or critical.")]
TagOpt = Annotated[list[str] | None, typer.Option(
    "--tag", help="Compliance tag (GDPR, HIPAA, 'EU AI Act', 'SOC 2'); repeat for more.")]
NotifyOpt = Annotated[list[str] | None, typer.Option(
    "--notify", help="Alert channel kind:target (action alert); repeat for more.")]
ParamsOpt = Annotated[str | None, typer.Option(
    help="The condition's params as a JSON object (or '@file').")]


def _text(value: str | None) -> str | None:
    if value is not None and value.startswith("@"):
        return Path(value[1:]).read_text()
    return value


def _body(name: str | None, condition: str | None, action: str | None, scope: str | None,
          severity: str | None, tags: list[str] | None, notify: list[str] | None,
          params: str | None, description: str | None, enabled: bool | None,
          draft: bool | None) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "condition": _text(condition), "action": action,
                            "severity": severity, "description": description,
                            "enabled": enabled, "draft": draft}
    if scope is not None:
        kind, _, value = scope.partition("=")
        body["scope"], body["scope_value"] = kind.strip(), value.strip()
    if tags is not None:
        body["compliance_tags"] = tags
    if notify is not None:
        body["channels"] = notify
    text = _text(params)
    if text is not None:
        try:
            body["params"] = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise typer.BadParameter(f"Expected a JSON object: {exc}",
                                     param_hint="--params") from None
    return {k: v for k, v in body.items() if v is not None}


def _print_policy(policy: dict[str, Any]) -> None:
    state = ("deleted" if policy["deleted"] else "draft" if policy["draft"]
             else "enforced" if policy["enforced"] else "disabled")
    scope = policy["scope"] + (f"={policy['scope_value']}" if policy["scope_value"] else "")
    console.print(f"[bold]{policy['id']}[/bold] v{policy['version']} {policy['name']!r}: "
                  f"{policy['action']} ({policy['severity']}), scope {scope}, {state}",
                  highlight=False)
    console.print(f"  condition: {policy['condition']}", highlight=False, markup=False)
    if policy["compliance_tags"]:
        console.print(f"  tags: {', '.join(policy['compliance_tags'])}", highlight=False)


@policies_app.command("list")
def list_policies(url: UrlOpt = None, api_key: KeyOpt = None, as_json: JsonOpt = False,
                  include_deleted: Annotated[bool, typer.Option(
                      help="Also deleted policies.")] = False) -> None:
    """The policies that apply to your org (and installation-wide ones)."""
    with ApiClient(url, api_key) as client:
        policies = client.get_json("/api/v1/policies",
                                   include_deleted=include_deleted or None)["policies"]
    if as_json:
        typer.echo(orjson.dumps(policies, option=orjson.OPT_INDENT_2).decode())
        return
    table = Table(title="Guardrail policies")
    for column in ("id", "v", "name", "action", "severity", "scope", "state", "tags"):
        table.add_column(column)
    for p in policies:
        state = ("deleted" if p["deleted"] else "draft" if p["draft"]
                 else "enforced" if p["enforced"] else "disabled")
        scope = p["scope"] + (f"={p['scope_value']}" if p["scope_value"] else "")
        table.add_row(p["id"], str(p["version"]), p["name"], p["action"], p["severity"],
                      scope, state, ", ".join(p["compliance_tags"]))
    console.print(table)


@policies_app.command("show")
def show_policy(policy_id: Annotated[str, typer.Argument(help="Policy id.")],
                version: Annotated[int | None, typer.Option(help="A past version.")] = None,
                url: UrlOpt = None, api_key: KeyOpt = None, as_json: JsonOpt = False) -> None:
    """One policy, with its versions and break-glass overrides."""
    with ApiClient(url, api_key) as client:
        body = client.get_json(f"/api/v1/policies/{policy_id}", version=version)
    if as_json:
        typer.echo(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
        return
    _print_policy(body["policy"])
    for v in body["versions"]:
        console.print(f"  v{v['version']} {v['created_at']} by {v['created_by']}: "
                      f"{v['action']}{' (deleted)' if v['deleted'] else ''}", highlight=False)
    for o in body["overrides"]:
        console.print(f"  override {o['id']} {o['scope']}={o['scope_value']} until "
                      f"{o['expires_at']}{' (active)' if o['active'] else ''}: {o['reason']}",
                      highlight=False, markup=False)


@policies_app.command("create")
def create_policy(
    name: Annotated[str, typer.Argument(help="Policy name.")],
    condition: ConditionOpt = None,
    action: ActionOpt = "log",
    scope: ScopeOpt = None,
    severity: SeverityOpt = None,
    tags: TagOpt = None,
    notify: NotifyOpt = None,
    params: ParamsOpt = None,
    description: Annotated[str | None, typer.Option(help="What it is for.")] = None,
    draft: Annotated[bool, typer.Option(help="Keep it as a draft (simulate, not enforce).")]
        = False,
    policy_id: Annotated[str | None, typer.Option("--id", help="A chosen id.")] = None,
    org: Annotated[str | None, typer.Option(
        help="Owner org (installation admin: '' = installation-wide).")] = None,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
) -> None:
    """Create a policy (enforced at once unless --draft)."""
    if condition is None:
        raise typer.BadParameter("Expected a condition", param_hint="--condition")
    body = _body(name, condition, action, scope, severity, tags, notify, params, description,
                 None, draft or None)
    if policy_id is not None:
        body["id"] = policy_id
    if org is not None:
        body["org_id"] = org
    with ApiClient(url, api_key) as client:
        made = client.post_json("/api/v1/policies", body)
    _print_policy(made["policy"])


@policies_app.command("update")
def update_policy(
    policy_id: Annotated[str, typer.Argument(help="Policy id.")],
    name: Annotated[str | None, typer.Option(help="New name.")] = None,
    condition: ConditionOpt = None,
    action: ActionOpt = None,
    scope: ScopeOpt = None,
    severity: SeverityOpt = None,
    tags: TagOpt = None,
    notify: NotifyOpt = None,
    params: ParamsOpt = None,
    description: Annotated[str | None, typer.Option(help="What it is for.")] = None,
    enabled: Annotated[bool | None, typer.Option("--enabled/--disabled",
                                                 help="Enforce it or not.")] = None,
    draft: Annotated[bool | None, typer.Option("--draft/--no-draft",
                                               help="Make it a draft or enforce it.")] = None,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
) -> None:
    """Change a policy: the fields given become its next version."""
    body = _body(name, condition, action, scope, severity, tags, notify, params, description,
                 enabled, draft)
    if not body:
        err_console.print("[red]Give at least one field to change[/red]")
        raise typer.Exit(2)
    with ApiClient(url, api_key) as client:
        changed = client.request("PATCH", f"/api/v1/policies/{policy_id}", json=body).json()
    _print_policy(changed["policy"])


@policies_app.command("delete")
def delete_policy(policy_id: Annotated[str, typer.Argument(help="Policy id.")],
                  url: UrlOpt = None, api_key: KeyOpt = None) -> None:
    """Stop enforcing a policy (its versions are kept)."""
    with ApiClient(url, api_key) as client:
        gone = client.request("DELETE", f"/api/v1/policies/{policy_id}").json()
    console.print(f"Deleted {policy_id} (last version {gone['policy']['version']})",
                  highlight=False)


@policies_app.command("override")
def grant_override(
    policy_id: Annotated[str, typer.Argument(help="Policy id.")],
    scope: Annotated[str, typer.Option(help="What it covers: 'agent=planner', "
                                            "'tool=shell', 'project=web' or 'global'.")],
    reason: Annotated[str, typer.Option(help="Why (at least 10 characters).")],
    duration: Annotated[str, typer.Option(help="How long: 30m, 2h, 1d (at most 7d).")] = "1h",
    url: UrlOpt = None,
    api_key: KeyOpt = None,
) -> None:
    """Break-glass: let a policy pass ``policies/check`` for one scope for a bounded time."""
    from mentatlab.cli._client import parse_range

    kind, _, value = scope.partition("=")
    with ApiClient(url, api_key) as client:
        body = client.post_json(f"/api/v1/policies/{policy_id}/overrides", {
            "scope": kind.strip(), "scope_value": value.strip(), "reason": reason,
            "duration_s": int(parse_range(duration).total_seconds())})
    grant = body["override"]
    console.print(f"Override {grant['id']} of {policy_id} for {scope} until "
                  f"{grant['expires_at']}", highlight=False)


@policies_app.command("simulate")
def simulate_policy(
    policy_id: Annotated[str | None, typer.Argument(
        help="A stored policy; or give --condition for a draft.")] = None,
    condition: ConditionOpt = None,
    action: ActionOpt = "log",
    scope: ScopeOpt = None,
    params: ParamsOpt = None,
    version: Annotated[int | None, typer.Option(help="A stored version.")] = None,
    since: Annotated[str, typer.Option(help="Window start: ISO time or a range back "
                                            "(7d).")] = "24h",
    until: Annotated[str | None, typer.Option(help="Window end (default now).")] = None,
    max_spans: Annotated[int, typer.Option(help="Spans read at most.")] = 100_000,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """What a policy (stored, or a draft --condition) would have matched in stored spans."""
    window = {"start": parse_time(since).isoformat(),
              "end": (parse_time(until) if until else datetime.now(UTC)).isoformat(),
              "max_spans": max_spans}
    if (policy_id is None) == (condition is None):
        raise typer.BadParameter("Give a policy id or --condition (a draft)")
    if policy_id is not None:
        request: dict[str, Any] = {"policy_id": policy_id, "version": version, **window}
        request = {k: v for k, v in request.items() if v is not None}
    else:
        request = {"policy": _body("draft", condition, action, scope, None, None, None,
                                   params, None, None, True), **window}
    with ApiClient(url, api_key) as client:
        report = client.post_json("/api/v1/policies/simulate", request)
    if as_json:
        typer.echo(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
        return
    console.print(f"Scanned {report['num_scanned']:,} spans ({report['num_in_scope']:,} in "
                  f"scope): {report['num_matched']:,} would match"
                  f"{' (truncated)' if report['truncated'] else ''}; "
                  f"{report['num_errors']:,} evaluation errors", highlight=False)
    for key, count in sorted(report["by_scope"].items(), key=lambda kv: -kv[1])[:20]:
        console.print(f"  {key}: {count:,}", highlight=False)
    for trace_id, span_id in report["sample_span_ids"][:10]:
        console.print(f"  sample: trace {trace_id} span {span_id}", highlight=False)
