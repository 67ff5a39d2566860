"""``mentatctl``: the MentatLab command line (Typer + Rich).

Every command but ``serve`` and ``prices update`` talks to a running server over HTTP
(``--url``, ``MENTATLAB_URL``, default ``http://127.0.0.1:4318``), because the server
process owns the store folder.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from mentatlab.cli import admin, alerts, cost, migrate, spans
from mentatlab.cli._client import err_console

__all__ = ["app"]

app = typer.Typer(name="mentatctl", help="MentatLab: observability and cost metering for AI "
                  "agents.", no_args_is_help=True, pretty_exceptions_show_locals=False)
app.add_typer(cost.app, name="cost")
app.add_typer(spans.trace_app, name="trace")
app.add_typer(admin.orgs_app, name="orgs")
app.add_typer(admin.keys_app, name="keys")
app.add_typer(admin.prices_app, name="prices")
app.add_typer(alerts.budgets_app, name="budgets")
app.add_typer(alerts.alerts_app, name="alerts")
app.command("tail")(spans.tail)
app.command("reprice")(cost.reprice)
app.command("migrate")(migrate.migrate)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind (MENTATLAB_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port (MENTATLAB_HTTP_PORT).")] = None,
    grpc_port: Annotated[int | None, typer.Option(
        help="OTLP/gRPC port, 0 disables (MENTATLAB_GRPC_PORT).")] = None,
    data_dir: Annotated[Path | None, typer.Option(
        help="Data folder (MENTATLAB_DATA_DIR).")] = None,
    workers: Annotated[int | None, typer.Option(
        help="Server processes sharing the ports; >1 needs a ClickHouse span store "
        "(MENTATLAB_WORKERS).")] = None,
) -> None:
    """Run the server: OTLP/HTTP, OTLP/gRPC, REST API, live tail and metrics."""
    import os

    import uvicorn

    from mentatlab.errors import ConfigError
    from mentatlab.server.app import create_app
    from mentatlab.settings import load_settings

    overrides = {"host": host, "http_port": port, "grpc_port": grpc_port,
                 "data_dir": data_dir, "workers": workers}
    try:
        settings = load_settings(**overrides)
    except ConfigError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    common = {"host": settings.host, "port": settings.http_port,
              "log_level": settings.log_level.lower(), "loop": "auto", "http": "auto",
              "timeout_graceful_shutdown": 10}
    if settings.workers == 1:
        uvicorn.run(create_app(settings), **common)  # type: ignore[arg-type]
        return
    # Worker processes load their settings from the environment: pass the options on.
    names = {"host": "MENTATLAB_HOST", "http_port": "MENTATLAB_HTTP_PORT",
             "grpc_port": "MENTATLAB_GRPC_PORT", "data_dir": "MENTATLAB_DATA_DIR",
             "workers": "MENTATLAB_WORKERS"}
    os.environ.update({names[k]: str(v) for k, v in overrides.items() if v is not None})
    uvicorn.run("mentatlab.server.app:app_from_env", factory=True, workers=settings.workers,
                **common)  # type: ignore[arg-type]


@app.command()
def demo(
    url: Annotated[str | None, typer.Option(
        help="Use this running server instead of starting one.")] = None,
    data_dir: Annotated[Path | None, typer.Option(
        help="Data folder of the started server (default: <user data dir>/demo).")] = None,
    port: Annotated[int, typer.Option(help="HTTP port; a free one if taken.")] = 4318,
    grpc_port: Annotated[int, typer.Option(help="OTLP/gRPC port; a free one if taken.")] =
        4317,
    runs: Annotated[int, typer.Option(min=1, max=50, help="Runs per agent.")] = 4,
    keep_running: Annotated[bool, typer.Option(
        "--keep-running", help="Leave the started server running.")] = False,
) -> None:
    """Start a server, drive realistic agent traffic through it and print what it cost."""
    from mentatlab.cli.demo import run_demo  # heavy (instrumented clients): imported lazily

    try:
        run_demo(url, data_dir=data_dir, http_port=port, grpc_port=grpc_port, runs=runs,
                 keep_running=keep_running)
    except RuntimeError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
