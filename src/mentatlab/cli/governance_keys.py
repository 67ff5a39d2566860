"""``mentatctl governance keygen|encryption-status|rotate-secrets|copy-store``: keys at rest.

All run on the server's machine with the server's settings (``MENTATLAB_DATA_DIR``,
``MENTATLAB_ENCRYPTION_KEY`` or ``MENTATLAB_ENCRYPTION_KEY_FILE``...). The procedures
(turning encryption on, rotating a key) are in docs/governance.md, "Encryption at rest".
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated
from urllib.parse import urlparse

import typer

from mentatlab.cli._client import console, err_console
from mentatlab.cli._local import DataDirOpt, open_local_control_store

__all__ = ["register"]


def keygen(file: Annotated[Path | None, typer.Option(
        "--file", help="Write the key to this file (mode 0600; never overwritten) instead of "
        "printing it.")] = None) -> None:
    """Make a new encryption key (32 random bytes, URL-safe base64)."""
    from mentatlab.governance.encryption import generate_key, parse_keys

    key = generate_key()
    keys = parse_keys(key)
    assert keys is not None
    if file is None:
        typer.echo(key)
        return
    try:
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        err_console.print(f"[red]Cannot create {file}: {exc}[/red]")
        raise typer.Exit(2) from None
    with os.fdopen(fd, "w") as sink:
        sink.write(key + "\n")
    console.print(f"Wrote {file} (key id {keys.current_key_id}). Set "
                  f"MENTATLAB_ENCRYPTION_KEY_FILE={file} and keep a copy offline: data "
                  "encrypted with it is lost without it.", highlight=False)


def _span_store_folder(span_url: str) -> Path | None:
    parsed = urlparse(span_url)
    if parsed.scheme.lower() != "chdb":
        return None
    return Path((parsed.netloc or "") + parsed.path).expanduser()


def encryption_status(data_dir: DataDirOpt = None) -> None:
    """Say what is encrypted at rest: the span store, the control store's secrets."""
    from mentatlab.errors import MentatLabError
    from mentatlab.settings import load_settings
    from mentatlab.storage.encrypted_disk import MARKER_FILE

    try:
        settings = load_settings(data_dir=data_dir)
        keys = settings.encryption_keys()
    except MentatLabError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    console.print("Keys: " + (", ".join(keys.key_ids()) + " (the first encrypts)"
                              if keys else "none configured"), highlight=False)
    folder = _span_store_folder(settings.span_store_url)
    if folder is None:
        console.print("Span store: a ClickHouse server (encrypted by its own disks, "
                      "docs/scale-out.md)")
    elif (folder / MARKER_FILE).exists():
        marker = json.loads((folder / MARKER_FILE).read_text())
        console.print(f"Span store: encrypted ({marker.get('algorithm')}), keys used "
                      f"{marker.get('key_ids')}", highlight=False)
    else:
        console.print("Span store: [yellow]not encrypted[/yellow]")
    control = open_local_control_store(data_dir)
    try:
        counts = control.alerts.count_secrets()
        control.alerts.check_secrets()  # a missing or wrong key: say so (exit 2)
    except MentatLabError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    finally:
        control.close()
    console.print(f"Control-store secrets: {counts.num_encrypted} of {counts.num_secrets} "
                  f"encrypted, {counts.num_current_key} with the newest key", highlight=False)


def rotate_secrets(data_dir: DataDirOpt = None) -> None:
    """Re-encrypt every control-store secret with the newest key (plaintext ones too).

    Run after putting a new key first in MENTATLAB_ENCRYPTION_KEY (old keys after it);
    then the old keys may be removed. Recorded in the audit log.
    """
    from mentatlab.errors import MentatLabError

    control = open_local_control_store(data_dir)
    try:
        counts = control.alerts.reencrypt_secrets()
        key_id = control.secrets.keys.current_key_id if control.secrets.keys else ""
        control.audit.record("cli", "governance.secrets_reencrypted", target=key_id,
                             details={"num_secrets": counts.num_secrets,
                                      "num_current_key": counts.num_current_key})
    except MentatLabError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    finally:
        control.close()
    console.print(f"Re-encrypted {counts.num_current_key} of {counts.num_secrets} secrets "
                  f"with key {key_id}", highlight=False)


def copy_store(
    to: Annotated[Path, typer.Option(
        "--to", help="New, empty folder for the copy (encrypted with the configured key).")],
    data_dir: DataDirOpt = None,
    batch_rows: Annotated[int, typer.Option(
        min=1, help="Spans per page (one read and one insert each).")] = 50_000,
) -> None:
    """Copy the embedded span store into a new one encrypted with the newest key.

    Turns encryption on for an existing store (or re-encrypts one under a new disk key):
    stop `mentatctl serve` first; the source is read in a child process, page by page
    (resumable), the aggregates are rebuilt on the copy and span counts and costs per day
    are compared. Then swap the folders (docs/governance.md, "Encryption at rest").
    """
    from mentatlab.errors import MentatLabError
    from mentatlab.pipeline.price import Price
    from mentatlab.resolver.resolver import rebuild_aggregates
    from mentatlab.settings import load_settings
    from mentatlab.storage import transfer
    from mentatlab.storage.chdb_store import ChdbSpanStore
    from mentatlab.storage.span_reader_process import ChildSpanReader
    from mentatlab.storage.wal import leftover_segments

    try:
        settings = load_settings(data_dir=data_dir)
        keys = settings.encryption_keys()
        price = Price.from_settings(settings)
    except MentatLabError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    source_folder = _span_store_folder(settings.span_store_url)
    if source_folder is None or not (source_folder / "metadata").is_dir():
        err_console.print(f"[red]No embedded span store at {settings.span_store_url}[/red]")
        raise typer.Exit(2)
    if keys is None:
        err_console.print("[red]Set MENTATLAB_ENCRYPTION_KEY (or _FILE): the copy is encrypted "
                          "with its first key[/red]")
        raise typer.Exit(2)
    to = to.expanduser().resolve()
    if to == source_folder.resolve() or (to.exists() and any(to.iterdir()) and not
                                          (to / "encryption.json").exists()):
        err_console.print(f"[red]Expected --to to be a new or empty folder, got {to}[/red]")
        raise typer.Exit(2)
    checkpoint = transfer.Checkpoint.load(
        transfer.checkpoint_path(settings.data_dir, f"chdb://{to}", None), f"chdb://{to}")
    try:
        if leftover_segments(source_folder):
            # The child reads the source read-only: replay the log a crash left first,
            # here, before this process opens the copy (decision 0022).
            transfer.open_embedded_source(settings.span_store_url, keys).close()
        with ChildSpanReader(source_folder, keys) as source, \
                ChdbSpanStore(to, query_timeout_s=0, encryption_keys=keys,
                              retention_days=settings.span_retention_days) as target:
            target.migrate()
            source_days = transfer.span_totals_by_day(source)
            copied = transfer.copy_spans(source, target, checkpoint, sorted(source_days),
                                         batch_rows=batch_rows)
            rebuild_aggregates(target, price)
            target_days = transfer.span_totals_by_day(target)
    except MentatLabError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    mismatches = transfer.verify(source_days, target_days, None, None)
    if mismatches:
        for m in mismatches:
            console.print(f"[red]{m.what}: source {m.source}, copy {m.target}[/red]",
                          highlight=False)
        raise typer.Exit(1)
    control = open_local_control_store(data_dir)
    try:
        control.audit.record("cli", "governance.store_copied", target=keys.current_key_id,
                             details={"num_spans": sum(d.spans for d in target_days.values()),
                                      "encrypted": True})
    finally:
        control.close()
    console.print(f"Copied {copied:,} spans into {to} (encrypted, key {keys.current_key_id}); "
                  "counts and costs per day match. Next: move the old folder away, move the "
                  f"copy to {source_folder}, start the server, then delete the old folder.",
                  highlight=False)


def register(governance_app: typer.Typer) -> None:
    """Add the key commands to the ``mentatctl governance`` group."""
    governance_app.command("keygen")(keygen)
    governance_app.command("encryption-status")(encryption_status)
    governance_app.command("rotate-secrets")(rotate_secrets)
    governance_app.command("copy-store")(copy_store)
