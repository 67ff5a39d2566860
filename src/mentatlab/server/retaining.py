"""The server's retention job: one run of governance/retention.py, on the elected node.

The lifespan runs it every ``retention_interval_s`` (leader lock ``retention``, like the
compaction and alert jobs); 0 turns it off. It reads the per-org overrides from the control
store at each run, trims the span store and, when an audit retention is set, the audit log
at a signed checkpoint. With no ``audit_signing_key_file``, the key is the PEM file
``<data_dir>/audit-signing-key.pem``, generated on the first trim when the control store
is the embedded default (SQLite in the data folder); a PostgreSQL control store needs the
setting (every node and every verifier must use the same key).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mentatlab.governance.retention import enforce_retention, retention_defaults
from mentatlab.resolver.resolver import FLOORS_REFRESH_S
from mentatlab.settings import Settings
from mentatlab.storage.base import SpanStore

__all__ = ["DEFAULT_SIGNING_KEY_NAME", "default_signing_key_path", "ensure_signing_key",
           "retention_job"]

_log = logging.getLogger(__name__)

DEFAULT_SIGNING_KEY_NAME = "audit-signing-key.pem"
"""File in the data folder holding the embedded default's audit signing key."""


def default_signing_key_path(settings: Settings) -> Path:
    """``<data_dir>/audit-signing-key.pem``."""
    return settings.data_dir / DEFAULT_SIGNING_KEY_NAME


def ensure_signing_key(settings: Settings, control: Any) -> bool:
    """Give the audit log a signing key if it has none and the default may be generated.

    Returns:
        True when the audit log can sign checkpoints now.

    Raises:
        ConfigError: the key file cannot be written or read.
    """
    if control.audit.signing_key_id:
        return True
    embedded = settings.control_store == "" and settings.audit_signing_key_file is None
    if not embedded:
        return False
    from mentatlab.storage.control.audit import generate_signing_key, load_signing_key

    path = default_signing_key_path(settings)
    if not path.exists():
        key_id = generate_signing_key(path)
        _log.warning("generated the audit signing key %s (key id %s): keep a copy offline; "
                     "`mentatctl audit verify` needs it", path, key_id)
    control.audit.configure(checkpoint_every=settings.audit_checkpoint_every,
                            signing_key=load_signing_key(path),
                            retired_keys=control.audit.retired_keys)
    return True


def retention_job(settings: Settings, store: SpanStore, control: Any,
                  metrics: Any = None) -> Callable[[], None]:
    """One retention run (blocking; run in a thread by ``run_periodic``).

    Counts rows and partitions removed in ``mentatlab_retention_rows_deleted`` and
    ``mentatlab_retention_partitions_dropped`` (by table) when ``metrics`` has them.
    """
    warned = False

    def run() -> None:
        nonlocal warned
        if getattr(store, "layout", None) is not None:
            if not warned:
                _log.warning("retention: the span store is a ClickHouse cluster; the job "
                             "does not trim it (docs/governance.md)")
                warned = True
            return
        defaults = retention_defaults(settings)
        overrides = control.retention.all() if control is not None else {}
        audit = None
        wants_audit = defaults.audit_years or any(v.get("audit_years") for v in overrides.values())
        if control is not None and wants_audit:
            if ensure_signing_key(settings, control):
                audit = control.audit
            elif not warned:
                _log.warning("retention: audit retention is set but no audit signing key "
                             "(audit_signing_key_file): the audit log is not trimmed")
                warned = True
        result = enforce_retention(store, defaults, overrides, audit=audit,
                                   floor_settle_s=FLOORS_REFRESH_S + 1.0)
        if metrics is not None and hasattr(metrics, "retention_rows_deleted"):
            for table, num in result.rows_deleted.items():
                metrics.retention_rows_deleted.labels(table).inc(num)
            for table, num in result.partitions_dropped.items():
                metrics.retention_partitions_dropped.labels(table).inc(num)

    return run
