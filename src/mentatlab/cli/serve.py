"""``mentatctl serve``: run the server (uvicorn for HTTP, ``grpc.aio`` for OTLP/gRPC).

It refuses to bind an address other hosts can reach while authentication is off: with
``auth_required`` false every caller acts as the whole installation (sends, reads and
changes everything), which is only safe on loopback.
"""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path
from typing import Annotated

import typer

from mentatlab.cli._client import err_console

__all__ = ["is_loopback", "serve"]

_log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` reaches this machine only: 127.0.0.0/8, ``::1``, ``localhost``.

    ``0.0.0.0``, ``::``, other addresses and host names are not loopback.
    """
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _refusal(host: str) -> str:
    return (f"Refusing to serve on {host} with authentication off: anyone who can reach "
            "that address could send, read and change everything. Set "
            "MENTATLAB_AUTH_REQUIRED=true (first admin key: mentatctl keys create "
            "--bootstrap), or bind 127.0.0.1, or pass --insecure-no-auth to serve it open "
            "anyway (docs/security.md).")


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
    insecure_no_auth: Annotated[bool, typer.Option(
        "--insecure-no-auth", help="Serve a non-loopback address with authentication off "
        "(MENTATLAB_AUTH_REQUIRED unset): anyone reaching it can do everything.")] = False,
) -> None:
    """Run the server: OTLP/HTTP, OTLP/gRPC, REST API, live tail and metrics."""
    import gc
    import os

    # Start-up makes ~370,000 objects that live as long as the process, and little garbage
    # (~1,000-10,000 objects): the collector's passes over them during the imports and the
    # lifespan cost ~0.3-0.5 s before ready and free next to nothing. It stays off until
    # the lifespan's freeze_heap (pipeline/workers.py) collects once, freezes what start-up
    # built and turns it back on (the pattern the gc.freeze documentation describes).
    gc.disable()

    import uvicorn

    from mentatlab.errors import ConfigError
    from mentatlab.server.app import create_app
    from mentatlab.server.tls import load_tls, uvicorn_tls_options
    from mentatlab.settings import load_settings

    # What the imports built (~270,000 objects: modules, classes, routes) lives as long as
    # the process: out of the collector's sight now, so freeze_heap's one collection walks
    # only what the lifespan makes (~100,000 objects, ~50 ms instead of ~0.3 s). The
    # imports' own garbage (~1,100 objects, ~0.4 MiB) is frozen with them.
    gc.freeze()

    overrides = {"host": host, "http_port": port, "grpc_port": grpc_port,
                 "data_dir": data_dir, "workers": workers}
    try:
        settings = load_settings(**overrides)
        tls = load_tls(settings)
    except ConfigError as exc:
        err_console.print(str(exc), style="red", markup=False)
        raise typer.Exit(2) from None
    if not settings.auth_required and not is_loopback(settings.host) and not insecure_no_auth:
        err_console.print(_refusal(settings.host), style="red", markup=False)
        raise typer.Exit(2)
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not settings.auth_required and not is_loopback(settings.host):
        _log.warning("Serving %s with authentication off (--insecure-no-auth): anyone who "
                     "can reach it can send, read and change everything", settings.host)
    common = {"host": settings.host, "port": settings.http_port,
              "log_level": settings.log_level.lower(), "loop": "auto", "http": "auto",
              "timeout_graceful_shutdown": 10, **uvicorn_tls_options(tls)}
    if settings.workers == 1:
        uvicorn.run(create_app(settings), **common)
        return
    # Worker processes load their settings from the environment: pass the options on.
    names = {"host": "MENTATLAB_HOST", "http_port": "MENTATLAB_HTTP_PORT",
             "grpc_port": "MENTATLAB_GRPC_PORT", "data_dir": "MENTATLAB_DATA_DIR",
             "workers": "MENTATLAB_WORKERS"}
    os.environ.update({names[k]: str(v) for k, v in overrides.items() if v is not None})
    gc.enable()  # this process only supervises; each worker process starts as usual
    uvicorn.run("mentatlab.server.app:app_from_env", factory=True, workers=settings.workers,
                **common)
