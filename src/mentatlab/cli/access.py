"""``mentatctl keys ...`` and ``mentatctl members ...``: API keys, people and their roles.

Every command goes through the server with an admin credential, except
``keys create --bootstrap``, which writes the control store directly: it issues the first
admin key of an installation, so it must run on the server's own machine (it reads the
same settings: ``MENTATLAB_DATA_DIR``, ``MENTATLAB_CONTROL_STORE``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from mentatlab.cli._client import ApiClient, console, err_console
from mentatlab.cli._local import open_local_control_store

__all__ = ["keys_app", "members_app"]

keys_app = typer.Typer(help="API keys: create (shown once), list, revoke, rotate.",
                       no_args_is_help=True)
members_app = typer.Typer(help="People in an org and their roles.", no_args_is_help=True)

UrlOpt = Annotated[str | None, typer.Option(help="Server URL (MENTATLAB_URL).")]
KeyOpt = Annotated[str | None, typer.Option(help="Admin API key (MENTATLAB_API_KEY).")]
OrgOpt = Annotated[str | None, typer.Option("--org", help="Org id (default: the caller's).")]


def _bootstrap(org: str | None, project: str | None, role: str, name: str,
               data_dir: Path | None) -> tuple[str, dict[str, Any]]:
    """Issue a key straight into the control store (the server's machine only)."""
    from mentatlab.errors import MentatLabError

    control = open_local_control_store(data_dir)
    try:
        if org is not None and org not in {o.id for o in control.list_orgs()}:
            control.create_org(org, org)
            control.audit.record("cli", "org.created", org_id=org, target=org,
                                 details={"name": org, "bootstrap": True})
        if project is not None and org is not None and \
                project not in {p.id for p in control.list_projects(org)}:
            control.create_project(org, project, project)
        issued = control.create_api_key(org, project, name, role=role, created_by="cli")
        control.audit.record("cli", "key.created", org_id=org, project_id=project,
                             target=issued.info.id,
                             details={"role": role, "name": name, "bootstrap": True})
    except MentatLabError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    finally:
        control.close()
    info = issued.info
    return issued.key, {"org_id": info.org_id, "project_id": info.project_id, "role": info.role,
                        "id": info.id}


@keys_app.command("create")
def create_key(
    org: Annotated[str | None, typer.Option(help="Org the key belongs to (default: the "
                                            "caller's; with --bootstrap and no --org, an "
                                            "installation-wide key).")] = None,
    project: Annotated[str | None, typer.Option(help="Limit the key to one project.")] = None,
    role: Annotated[str | None, typer.Option(help="ingest (send spans), read (queries, live, "
                                             "exports) or admin; default ingest, admin with "
                                             "--bootstrap.")] = None,
    name: Annotated[str, typer.Option(help="A label for the key.")] = "default",
    bootstrap: Annotated[bool, typer.Option(
        "--bootstrap", help="Write the control store directly (the server's machine only): "
        "the first admin key of an installation.")] = False,
    data_dir: Annotated[Path | None, typer.Option(
        help="Data folder, with --bootstrap (MENTATLAB_DATA_DIR).")] = None,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
) -> None:
    """Create an API key; the secret is printed once and never stored in clear.

    A key can never be wider (installation ⊃ org ⊃ project) or stronger than the one that
    creates it.
    """
    if bootstrap:
        secret, info = _bootstrap(org, project, role or "admin", name, data_dir)
    else:
        with ApiClient(url, api_key) as client:
            body = client.post_json("/api/v1/keys", {"org_id": org, "project_id": project,
                                                     "role": role or "ingest", "name": name})
        secret, info = body["key"]["secret"], body["key"]
    where = ("the whole installation" if info["org_id"] is None else f"org {info['org_id']}"
             + (f", project {info['project_id']}" if info["project_id"] else ""))
    err_console.print(f"[bold]{info['role']}[/bold] key {info['id']} for {where} "
                      "(shown once; store it now):")
    typer.echo(secret)


@keys_app.command("list")
def list_keys(
    org: OrgOpt = None,
    include_revoked: Annotated[bool, typer.Option("--all",
                                                  help="Also revoked and expired keys.")] =
    False,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
) -> None:
    """List keys of the caller's scope: role, scope and when each was last used."""
    with ApiClient(url, api_key) as client:
        params: dict[str, Any] = {"include_revoked": include_revoked}
        if org:
            params["org_id"] = org
        keys = client.get_json("/api/v1/keys", **params)["keys"]
    table = Table(title=f"{len(keys)} API keys")
    for column in ("id", "prefix", "name", "role", "org", "project", "created", "last used",
                   "ends"):
        table.add_column(column, overflow="fold")
    for key in keys:
        ends = key.get("revoked_at") and f"revoked {key['revoked_at'][:16]}" or \
            key.get("expires_at") and f"expires {key['expires_at'][:16]}" or ""
        table.add_row(key["id"], key["prefix"], key["name"], key["role"],
                      key["org_id"] or "(installation)", key["project_id"] or "",
                      key["created_at"][:16], (key["last_used_at"] or "never")[:16], ends)
    console.print(table)


@keys_app.command("revoke")
def revoke_key(
    key_id: Annotated[str, typer.Argument(help="The key's id (from `keys list`).")],
    url: UrlOpt = None,
    api_key: KeyOpt = None,
) -> None:
    """Revoke a key: every node refuses it within a second."""
    with ApiClient(url, api_key) as client:
        client.request("DELETE", f"/api/v1/keys/{key_id}")
    console.print(f"Revoked {key_id}")


@keys_app.command("rotate")
def rotate_key(
    key_id: Annotated[str, typer.Argument(help="The key's id (from `keys list`).")],
    grace: Annotated[int, typer.Option(help="Seconds the old key keeps working.")] = 0,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
) -> None:
    """Issue a replacement key (same name, role, scope) and retire the old one."""
    with ApiClient(url, api_key) as client:
        body = client.post_json(f"/api/v1/keys/{key_id}/rotate", {"grace_s": grace})
    when = f"in {grace} s" if grace else "now"
    err_console.print(f"New key {body['key']['id']} replaces {key_id} (which stops {when}); "
                      "shown once:")
    typer.echo(body["key"]["secret"])


@members_app.command("list")
def list_members(org: OrgOpt = None, url: UrlOpt = None, api_key: KeyOpt = None) -> None:
    """People in the org and their roles."""
    with ApiClient(url, api_key) as client:
        body = client.get_json("/api/v1/members", **({"org_id": org} if org else {}))
    table = Table(title=f"Members of {body['org_id']}")
    for column in ("user id", "email", "name", "role", "from"):
        table.add_column(column, overflow="fold")
    for m in body["members"]:
        table.add_row(m["user_id"], m["email"], m["name"], m["role"], m["source"])
    console.print(table)


@members_app.command("set")
def set_member(
    email: Annotated[str, typer.Argument(help="The person's email (they sign in with OIDC).")],
    role: Annotated[str, typer.Argument(help="owner, admin, member, viewer or billing.")],
    org: OrgOpt = None,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
) -> None:
    """Add a person to the org, or change their role."""
    with ApiClient(url, api_key) as client:
        body = client.post_json("/api/v1/members", {"email": email, "role": role,
                                                    "org_id": org})
    member = body["member"]
    console.print(f"{member['email']} is {member['role']} of {member['org_id']}")


@members_app.command("remove")
def remove_member(
    user_id: Annotated[str, typer.Argument(help="The person's user id (from `members list`).")],
    org: OrgOpt = None,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
) -> None:
    """Remove a person from the org (their sessions there end)."""
    with ApiClient(url, api_key) as client:
        client.request("DELETE", f"/api/v1/members/{user_id}",
                       params={"org_id": org} if org else None)
    console.print(f"Removed {user_id}")
