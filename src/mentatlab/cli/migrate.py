"""``mentatctl migrate``: move an embedded installation to ClickHouse and PostgreSQL.

Reads the data dir's chDB folder and SQLite file directly (so ``mentatctl serve`` must be
stopped: chDB lets one process hold a folder) and writes through
:mod:`mentatlab.storage.transfer`. Exit codes: 0 copied and verified, 1 failed or the
verification found a difference, 2 bad usage (URL, option).
"""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from mentatlab.cli._client import console, err_console
from mentatlab.cli.audit import record_cli_action

if TYPE_CHECKING:  # the storage modules are imported when the command runs (fast --help)
    from mentatlab.pipeline.price import Price
    from mentatlab.storage.base import SpanStore
    from mentatlab.storage.transfer import Checkpoint, DayTotals

__all__ = ["migrate"]


class _RateColumn(ProgressColumn):
    """Spans per second over the last seconds."""

    def render(self, task: Task) -> Text:
        """``12,345 spans/s`` (or a dash before the first page)."""
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} spans/s" if speed else "- spans/s", style="progress.data.speed")


def _fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(Text(message, style="red"))
    return typer.Exit(code)


def migrate(
    to: Annotated[str | None, typer.Option(
        "--to", help="Target span store: clickhouse://user:pass@host:8123/db[?cluster=…].")] =
        None,
    control_to: Annotated[str | None, typer.Option(
        "--control-to", help="Target control store (SQLAlchemy URL): postgresql://user:pass@"
        "host:5432/db.")] = None,
    data_dir: Annotated[Path | None, typer.Option(
        help="Data folder of the embedded installation (MENTATLAB_DATA_DIR).")] = None,
    batch_rows: Annotated[int, typer.Option(
        min=1, help="Spans per page (one read and one insert each).")] = 50_000,
    restart: Annotated[bool, typer.Option(
        "--restart", help="Ignore the checkpoint of an earlier run and copy from the start.")
        ] = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print what would be copied; write nothing.")] = False,
) -> None:
    """Copy the embedded span store and control store to ClickHouse and PostgreSQL.

    Resumable (a checkpoint in the data dir after every page), with a verification of
    span counts per day and rows per control table at the end. Stop `mentatctl serve`
    first. Either target alone migrates only that part.
    """
    from mentatlab.errors import ConfigError, StoreError, StoreUnavailable
    from mentatlab.pipeline.price import Price
    from mentatlab.settings import load_settings
    from mentatlab.storage import transfer
    from mentatlab.storage.clickhouse_store import open_clickhouse_store

    if not to and not control_to:
        raise _fail("Expected --to (span store) and/or --control-to (control store)", 2)
    try:
        settings = load_settings(data_dir=data_dir)
        price = Price.from_settings(settings)  # roll-up spans are priced as the server would
        # Parsed now (a bad URL is exit 2); it connects on first use. migrate() sets or
        # removes the TTL, so it gets the installation's retention, as a node would.
        target = open_clickhouse_store(
            to, query_timeout_s=0, retention_days=settings.span_retention_days) if to else None
        if control_to:
            control_to = transfer.normalize_control_url(control_to)
    except ConfigError as exc:
        raise _fail(str(exc), 2) from None
    source_control = settings.control_store_url
    if control_to and source_control.startswith("sqlite:///") and not Path(
            source_control.removeprefix("sqlite:///")).exists():
        raise _fail(f"No embedded control store at {source_control} (wrong --data-dir?)", 2)
    cp_path = transfer.checkpoint_path(settings.data_dir, to, control_to)
    if restart:
        cp_path.unlink(missing_ok=True)
    described = " + ".join(transfer.mask_url(u) for u in (to, control_to) if u)
    try:
        checkpoint = transfer.Checkpoint.load(cp_path, described)
        # Opened even for --control-to alone: it proves no server is writing meanwhile.
        source = transfer.open_embedded_source(settings.span_store_url,
                                               settings.encryption_keys())
    except ConfigError as exc:
        raise _fail(str(exc), 2) from None
    except StoreError as exc:  # in use by a server, or a leftover log that cannot replay
        raise _fail(str(exc)) from None
    try:
        if not dry_run:  # recorded before copying, so the copied audit chain holds it too
            record_cli_action("migration", data_dir=data_dir, details={
                "span_store": transfer.mask_url(to) if to else None,
                "control_store": transfer.mask_url(control_to) if control_to else None})
        _run(source, target, source_control, control_to, checkpoint, price,
             batch_rows=batch_rows, dry_run=dry_run)
    except StoreUnavailable as exc:
        raise _fail(f"{exc}\nNothing committed is lost: rerun the same command to continue"
                    f" from {cp_path}.") from None
    except (StoreError, ConfigError) as exc:
        raise _fail(str(exc)) from None
    finally:
        source.close()
        if target is not None:
            target.close()


def _run(src: SpanStore, dst: SpanStore | None, source_control: str, control_to: str | None,
         checkpoint: Checkpoint, price: Price, *, batch_rows: int, dry_run: bool) -> None:
    from mentatlab.resolver.resolver import rebuild_aggregates
    from mentatlab.storage import transfer
    from mentatlab.storage.control import migrate_control_store

    source_days = transfer.span_totals_by_day(src) if dst is not None else None
    source_rows = transfer.control_row_counts(source_control) if control_to else None
    _print_plan(source_days, source_rows, checkpoint, dry_run)
    if control_to:
        for name in transfer.unmodelled_tables(source_control):
            console.print(f"[yellow]Table {name} has no model and is not copied[/yellow]")
    if dry_run:
        console.print("Dry run: nothing written.")
        return
    target_rows = None
    if control_to and source_rows is not None:
        migrate_control_store(control_to)
        copies = transfer.copy_control(source_control, control_to)
        console.print("Control store: " + ", ".join(
            f"{c.table} {c.copied} copied" + (f" ({c.skipped} already there)" if c.skipped else "")
            for c in copies))
        target_rows = transfer.control_row_counts(control_to)
    target_days = None
    if dst is not None and source_days is not None:
        dst.migrate()
        _copy_spans(src, dst, checkpoint, source_days, batch_rows)
        with console.status("Resolving attribution and building the aggregates on the target"):
            report = rebuild_aggregates(dst, price, transfer.on_cluster_clause(dst))
        console.print(f"Aggregates built on the target: {report.num_traces:,} traces,"
                      f" {report.num_versions:,} spans re-attributed, in"
                      f" {report.duration_s:.1f} s")
        target_days = transfer.span_totals_by_day(dst)
    mismatches = transfer.verify(source_days, target_days, source_rows, target_rows)
    _print_verification(source_days, target_days, source_rows, target_rows)
    if mismatches:
        lines = "\n".join(f"  {m.what}: source {m.source}, target {m.target}"
                          for m in mismatches)
        raise _fail(f"Verification failed:\n{lines}")
    console.print("[green]Verified: the target holds what the source holds.[/green]")


def _copy_spans(source: SpanStore, target: SpanStore, checkpoint: Checkpoint,
                source_days: dict[date, DayTotals], batch_rows: int) -> None:
    from mentatlab.storage import transfer

    total = sum(d.spans for d in source_days.values())
    done = transfer.count_spans_before(source, checkpoint)
    if checkpoint.resuming:
        console.print(f"Resuming from {checkpoint.path}: {done:,} of {total:,} spans already"
                      f" copied ({checkpoint.batches} pages committed before)")
    started_s, copied = time.monotonic(), 0
    with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(),
                  MofNCompleteColumn(), _RateColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=console) as progress:
        task = progress.add_task("Copying spans", total=total, completed=done)
        copied = transfer.copy_spans(
            source, target, checkpoint, sorted(source_days), batch_rows=batch_rows,
            on_batch=lambda n: progress.advance(task, n))
    elapsed_s = time.monotonic() - started_s
    console.print(f"Copied {copied:,} spans in {elapsed_s:.1f} s"
                  f" ({copied / elapsed_s if elapsed_s else 0:,.0f} spans/s)")


def _print_plan(source_days: dict[date, DayTotals] | None, source_rows: dict[str, int] | None,
                checkpoint: Checkpoint, dry_run: bool) -> None:
    verb = "Would copy" if dry_run else "Copying"
    if source_days is not None:
        total = sum(d.spans for d in source_days.values())
        span_range = (f", {min(source_days)} to {max(source_days)}" if source_days else "")
        console.print(f"{verb} {total:,} spans ({len(source_days)} days{span_range}) to"
                      f" {checkpoint.target}")
    if source_rows is not None:
        console.print(f"{verb} control rows: " + ", ".join(
            f"{name} {n}" for name, n in source_rows.items()))
    if checkpoint.resuming and not dry_run:
        state = "finished" if checkpoint.finished else f"at day {checkpoint.day}"
        console.print(f"Checkpoint {checkpoint.path}: span copy {state}"
                      " (--restart to copy from the start)")


def _print_verification(source_days: dict[date, DayTotals] | None,
                        target_days: dict[date, DayTotals] | None,
                        source_rows: dict[str, int] | None,
                        target_rows: dict[str, int] | None) -> None:
    from decimal import Decimal

    from mentatlab.storage.transfer import DayTotals

    table = Table(title="Verification", title_justify="left")
    for name in ("what", "source", "target", ""):
        table.add_column(name, justify="left" if name == "what" else "right")
    if source_days is not None and target_days is not None:
        empty = DayTotals(0, Decimal(0))
        for day in sorted(set(source_days) | set(target_days)):
            src, dst = source_days.get(day, empty), target_days.get(day, empty)
            table.add_row(f"spans {day}", f"{src.spans:,}", f"{dst.spans:,}",
                          _mark(src == dst))
        src_total = sum(d.spans for d in source_days.values())
        dst_total = sum(d.spans for d in target_days.values())
        table.add_row("spans total", f"{src_total:,}", f"{dst_total:,}",
                      _mark(src_total == dst_total))
    if source_rows is not None and target_rows is not None:
        for name in source_rows:
            table.add_row(f"table {name}", str(source_rows[name]),
                          str(target_rows.get(name, 0)),
                          _mark(source_rows[name] == target_rows.get(name, 0)))
    console.print(table)


def _mark(ok: bool) -> str:
    return "[green]ok[/green]" if ok else "[red]differs[/red]"
