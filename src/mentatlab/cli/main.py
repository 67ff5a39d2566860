"""``mentatctl``: the MentatLab command line (Typer + Rich).

Every command but ``serve``, ``prices update``, ``migrate`` and ``keys create --bootstrap``
talks to a running server over HTTP
(``--url``, ``MENTATLAB_URL``, default ``http://127.0.0.1:4318``), because the server
process owns the store folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mentatlab.cli import (  # cost_views adds `cost tree` and `cost tokens`
    access,
    admin,
    alerts,
    analytics,
    analyze,
    audit,
    bottlenecks,
    cost,
    cost_views,  # noqa: F401
    governance_keys,
    governance_report,
    governance_retention,
    governance_signals,
    migrate,
    policies,
    quotas,
    recommendations,
    reliability,
    replay,
    serve,
    spans,
)
from mentatlab.cli._client import err_console

__all__ = ["app"]

app = typer.Typer(name="mentatctl", help="MentatLab: observability and cost metering for AI "
                  "agents.", no_args_is_help=True, pretty_exceptions_show_locals=False)
app.add_typer(cost.app, name="cost")
app.add_typer(spans.trace_app, name="trace")
spans.trace_app.command("replay")(replay.replay)
app.add_typer(admin.orgs_app, name="orgs")
app.add_typer(access.keys_app, name="keys")
app.add_typer(access.members_app, name="members")
app.add_typer(admin.prices_app, name="prices")
app.add_typer(alerts.budgets_app, name="budgets")
app.add_typer(alerts.alerts_app, name="alerts")
app.add_typer(audit.audit_app, name="audit")
app.add_typer(quotas.quotas_app, name="quotas")
app.add_typer(policies.policies_app, name="policies")  # issue 17: guardrail policies
app.add_typer(analytics.app, name="analytics")
# issue 17: `mentatctl governance` (oversight and security signals, encryption keys at rest,
# compliance reports, retention and erasure)
governance_keys.register(governance_signals.governance_app)
governance_report.register(governance_signals.governance_app)
governance_retention.register(governance_signals.governance_app)
app.add_typer(governance_signals.governance_app, name="governance")
analytics.app.command("reliability")(reliability.reliability)
analytics.app.command("bottlenecks")(bottlenecks.bottlenecks)
app.command("tail")(spans.tail)
app.command("reprice")(cost.reprice)
app.command("migrate")(migrate.migrate)
app.command("serve")(serve.serve)
app.command("recommendations")(recommendations.recommendations)
app.command("analyze")(analyze.analyze)


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
    keep_running: Annotated[bool | None, typer.Option(
        "--keep-running/--no-keep-running", show_default="keep running unless CI is set",
        help="After the report, keep the started server running until Ctrl-C. With CI set "
        "(true, 1...) the demo always exits.")] = None,
) -> None:
    """Start a server, drive realistic agent traffic through it and print what it cost."""
    from mentatlab.cli.demo import ci_is_set, run_demo  # heavy: imported lazily

    if ci_is_set():
        if keep_running:
            err_console.print("CI is set: the demo stops its server and exits (--keep-running "
                              "ignored).")
        keep_running = False
    try:
        run_demo(url, data_dir=data_dir, http_port=port, grpc_port=grpc_port, runs=runs,
                 keep_running=keep_running is not False)
    except RuntimeError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        err_console.print("Interrupted: the demo stopped its server and traffic.")
        raise typer.Exit(130) from None


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
