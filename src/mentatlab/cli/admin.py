"""``mentatctl orgs|keys create`` (through the server) and ``mentatctl prices update``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mentatlab.cli._client import ApiClient, console, err_console

__all__ = ["keys_app", "orgs_app", "prices_app"]

orgs_app = typer.Typer(help="Organizations (tenants).", no_args_is_help=True)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
prices_app = typer.Typer(help="Token price data.", no_args_is_help=True)

UrlOpt = Annotated[str | None, typer.Option(help="Server URL (MENTATLAB_URL).")]
KeyOpt = Annotated[str | None, typer.Option(help="API key (MENTATLAB_API_KEY).")]


@orgs_app.command("create")
def create_org(
    name: Annotated[str, typer.Argument(help="Organization name.")],
    org_id: Annotated[str | None, typer.Option("--id", help="Org id spans will carry; "
                                               "default generated.")] = None,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
) -> None:
    """Create an organization."""
    with ApiClient(url, api_key) as client:
        body = client.post_json("/api/v1/orgs", {"name": name, "id": org_id})
    console.print(f"Organization [bold]{body['org']['name']}[/bold] id={body['org']['id']}")


@keys_app.command("create")
def create_key(
    org: Annotated[str, typer.Option(help="Organization id the key belongs to.")],
    project: Annotated[str | None, typer.Option(help="Limit the key to one project.")] = None,
    name: Annotated[str, typer.Option(help="A label for the key.")] = "default",
    url: UrlOpt = None,
    api_key: KeyOpt = None,
) -> None:
    """Create an API key; the secret is printed once and never stored in clear."""
    with ApiClient(url, api_key) as client:
        body = client.post_json("/api/v1/keys",
                                {"org_id": org, "project_id": project, "name": name})
    console.print(f"API key for org [bold]{org}[/bold]"
                  + (f", project [bold]{project}[/bold]" if project else "") + ":")
    typer.echo(body["key"]["secret"])


@prices_app.command("update")
def update(
    data_dir: Annotated[Path | None, typer.Option(help="Data folder (MENTATLAB_DATA_DIR).")] =
        None,
    url: Annotated[str | None, typer.Option("--source-url",
                                            help="Where to fetch genai-prices data.")] = None,
) -> None:
    """Fetch the latest genai-prices data (network!) into the data folder.

    The server uses it from its next start (or ``mentatctl reprice``, which reloads prices).
    """
    from mentatlab.errors import PricingError
    from mentatlab.pricing.catalog import DEFAULT_UPDATE_URL, update_prices
    from mentatlab.server.components import price_snapshot_path
    from mentatlab.settings import load_settings

    settings = load_settings(data_dir=data_dir)
    dest = price_snapshot_path(settings)
    try:
        with console.status(f"Fetching {url or DEFAULT_UPDATE_URL}"):
            result = update_prices(dest, url=url or DEFAULT_UPDATE_URL)
    except PricingError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    console.print(f"Saved {result.num_providers} providers ({result.num_bytes} bytes) to "
                  f"{result.path}; version {result.version}")
