"""``mentatctl orgs create|list`` (through the server) and ``mentatctl prices show|update``."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.markup import escape
from rich.table import Table

from mentatlab.cli._client import ApiClient, console, err_console
from mentatlab.cli._format import format_rate

__all__ = ["orgs_app", "prices_app"]

orgs_app = typer.Typer(help="Organizations (tenants).", no_args_is_help=True)
prices_app = typer.Typer(help="Prices: what is in force and where it came from; price data.",
                         no_args_is_help=True)

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


@orgs_app.command("list")
def list_orgs(url: UrlOpt = None, api_key: KeyOpt = None) -> None:
    """Every organization (an installation-wide admin key)."""
    with ApiClient(url, api_key) as client:
        orgs = client.get_json("/api/v1/orgs")["orgs"]
    for org in orgs:
        console.print(f"{org['id']}\t{escape(org['name'])}\t{org['created_at'][:10]}")


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


class PricesFormat(enum.StrEnum):
    """How ``prices show`` prints."""

    table = "table"
    json = "json"


def _source_text(rate: Mapping[str, Any]) -> str:
    source = rate.get("source")
    if not source:
        return "pricing.toml"
    return escape(f"{source['provider']}: {source['product']}, {source['region']}\n"
                  f"{source['url']}")


def _rates_table(title: str, rates: list[dict[str, Any]], *, gpu: bool = False) -> Table:
    table = Table(title=title)
    table.add_column("GPU model (match)" if gpu else "rate", justify="left")
    table.add_column("USD per unit", justify="right", no_wrap=True)
    table.add_column("origin", justify="left", no_wrap=True)
    table.add_column("source", justify="left")
    table.add_column("taken", justify="left", no_wrap=True)
    for rate in rates:
        name = escape(", ".join(rate.get("match", [])) if gpu else str(rate["key"]))
        source = rate.get("source") or {}
        table.add_row(name, f"{format_rate(rate['value'])} / {rate['unit']}", rate["origin"],
                      _source_text(rate), str(source.get("taken", "")))
    return table


def _print_prices(body: Mapping[str, Any]) -> None:
    currency = body.get("currency") or {}
    tokens = body.get("token_prices") or {}
    infra = body.get("infrastructure") or {}
    defaults = infra.get("defaults") or {}
    snapshot = tokens.get("snapshot") or "the data bundled with the package"
    console.print(f"Token prices: genai-prices {tokens.get('version', '?')} ({snapshot}); "
                  f"price_source tag {tokens.get('price_source', '?')}")
    console.print(f"Pricing file: {body.get('pricing_file') or 'none'}")
    code, rate = currency.get("code", "USD"), currency.get("rate_from_usd", "1")
    console.print(f"Currency: {code}" + ("" if code == "USD" else f" ({rate} per USD; every "
                                         "price below is USD and converted)"))
    if not infra.get("priced", True):
        console.print("[bold]Infrastructure is not priced[/bold]: every rate in force is 0.")
    elif defaults.get("in_use"):
        console.print(f"Infrastructure defaults: list prices of {defaults.get('as_of', '?')} "
                      f"(price_source infra={defaults.get('price_source', '?')}); "
                      "pricing.toml \\[infrastructure] overrides them key by key.")
    console.print(_rates_table("Infrastructure rates in force", list(infra.get("rates", []))))
    gpus = list(infra.get("gpu_models", []))
    if gpus:
        console.print(_rates_table("GPU-hour by GPU model (first match wins; else gpu_per_hour)",
                                   gpus, gpu=True))
    console.print(f"Storage is charged once for {infra.get('storage_billed_months', '1')} "
                  "month(s) to the span that wrote the bytes.")
    models = list(body.get("models", []))
    if models:
        table = Table(title="Model prices from pricing.toml (win over genai-prices)")
        for name in ("provider", "model", "input_per_mtok", "output_per_mtok",
                     "cache_read_per_mtok", "cache_write_per_mtok", "per_request"):
            table.add_column(name, justify="left" if name in ("provider", "model") else "right")
        for model in models:
            table.add_row(escape(model["provider"]), escape(model["model"]), *(
                "" if model.get(k) is None else format_rate(model[k])
                for k in ("input_per_mtok", "output_per_mtok", "cache_read_per_mtok",
                          "cache_write_per_mtok", "per_request")))
        console.print(table)
    discounts = list(body.get("discounts", []))
    if discounts:
        table = Table(title="Discounts (first match applies)")
        for name in ("percent", "provider", "model", "org_id", "applies_to"):
            table.add_column(name, justify="right" if name == "percent" else "left")
        for discount in discounts:
            table.add_row(f"{discount['percent']}%", *(escape(discount[k]) for k in (
                "provider", "model", "org_id", "applies_to")))
        console.print(table)


@prices_app.command("show")
def show(
    fmt: Annotated[PricesFormat, typer.Option("--format", help="table or json.")] =
        PricesFormat.table,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
) -> None:
    """The prices the server prices new spans with, and where each came from.

    Infrastructure rates (USD per unit, origin: shipped defaults or pricing.toml, source
    and date), pricing.toml model prices and discounts, currency and genai-prices version.
    """
    with ApiClient(url, api_key) as client:
        body = client.get_json("/api/v1/prices")
    if fmt is PricesFormat.json:
        typer.echo(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
        return
    _print_prices(body)
