"""GDPR erasure: remove everything stored about one ``user_id`` or ``customer_id``.

What holds a subject, and what :func:`erase_subject` does to it:

* ``spans`` (the column, and every attribute of those spans), ``span_timing`` and
  ``trace_facts`` (they carry ``user_id``/``customer_id``), the resolver's ``span_ledger``
  and the ``principal`` aggregates (``agg_principal_*``, keyed by user and customer):
  the rows of the subject are deleted;
* ``step_counts``, ``trace_agents`` and ``trace_summary`` (per trace, no person column):
  the rows of the subject's traces are deleted;
* the aggregates without a person dimension (``agg_cost_*``, ``agg_scope_*``) keep their
  totals: they hold no personal value, and cost history stays whole. ``version_sightings``
  holds versions, agents and days only, and is left alone;
* the OTLP forwarding queue (:mod:`mentatlab.exporters.otlp_forward`) and the span
  writer's buffer are in memory only (at most ``forward_retry_max_s`` and one write
  batch); chDB's ``_ingest`` files live for one insert. Nothing else is written to disk.

Deletes are ``ALTER TABLE … DELETE`` mutations run to completion (``mutations_sync = 2``):
they rewrite the parts, so the values are gone from the current data, where a lightweight
``DELETE`` only masks rows until a merge. The subject's value never appears in a
statement: it is put in a ``Memory`` table (never written to disk) the mutations read with
``IN (SELECT …)``, because ClickHouse keeps each mutation's text in ``mutation_<n>.txt``
beside the data. On chDB the replaced parts are then removed from disk at once
(:meth:`~mentatlab.storage.chdb_store.ChdbSpanStore.purge_outdated_parts`); a ClickHouse
server removes them itself after ``old_parts_lifetime`` (8 minutes by default).

The receipt (:class:`ErasureReceipt`) names the subject by an HMAC-SHA256 of
``<field>:<value>`` keyed with the installation's erasure salt: whoever holds the salt
and the value can check a receipt, the audit log never holds the value.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from mentatlab.errors import ConfigError, ValidationError
from mentatlab.storage.aggregates import AGGREGATES, SPAN_LEDGER_TABLE, TIERS, TRACE_SUMMARY_TABLE
from mentatlab.storage.base import SpanStore
from mentatlab.storage.settled import (
    LLM_CALLS_TABLE,
    SPAN_TIMING_TABLE,
    STEP_COUNTS_TABLE,
    TRACE_AGENTS_TABLE,
    TRACE_FACTS_TABLE,
)
from mentatlab.storage.span_schema import SPANS_TABLE

__all__ = ["SUBJECT_FIELDS", "ErasureReceipt", "erase_subject", "erasure_receipts",
           "load_erasure_salt", "subject_hash"]

SubjectField = Literal["user_id", "customer_id"]
SUBJECT_FIELDS: tuple[SubjectField, ...] = ("user_id", "customer_id")
"""The identifiers an erasure can name."""
SALT_FILE = "erasure-salt"
"""File in the data folder holding the generated salt (hex) when ``erasure_salt`` is unset."""

_BY_SUBJECT: tuple[str, ...] = (
    SPANS_TABLE, SPAN_TIMING_TABLE, TRACE_FACTS_TABLE, LLM_CALLS_TABLE, SPAN_LEDGER_TABLE,
    *(spec.table(tier) for spec in AGGREGATES for tier in TIERS
      if {"user_id", "customer_id"} <= set(spec.dimensions)))
"""Tables with ``user_id`` and ``customer_id`` columns: the subject's rows go."""
_BY_TRACE: tuple[tuple[str, str], ...] = (
    (STEP_COUNTS_TABLE, "trace_id"), (TRACE_AGENTS_TABLE, "trace_id"),
    (TRACE_SUMMARY_TABLE, "lower(hex(trace_id))"))
"""Per-trace tables without a person column (table, trace id as text): the subject's
traces' rows go."""


@dataclass(frozen=True, slots=True)
class ErasureReceipt:
    """What an erasure removed (the ``governance.erased`` audit entry holds the same)."""

    field: str
    """``user_id`` or ``customer_id``."""
    org_id: str | None
    """The org erased in; None: every org."""
    subject_hash: str
    """HMAC-SHA256 (hex) of ``<field>:<value>`` keyed with the erasure salt."""
    counts: dict[str, int]
    """Table → rows removed (tables with none are left out)."""
    num_traces: int
    """Traces the subject's spans belonged to."""
    purged_parts: int
    """Replaced parts removed from disk right away (chDB); 0 on a ClickHouse server."""
    at: datetime
    seconds: float = 0.0

    @property
    def total(self) -> int:
        """Rows removed in all."""
        return sum(self.counts.values())

    def details(self) -> dict[str, Any]:
        """The audit entry's details: ids, hashes and counts only."""
        return {"field": self.field, "org_id": self.org_id, "subject_hash": self.subject_hash,
                "counts": self.counts,
                "total": self.total, "num_traces": self.num_traces,
                "purged_parts": self.purged_parts, "at": self.at.isoformat()}


def load_erasure_salt(setting: str, data_dir: Path) -> bytes:
    """The erasure salt: the ``erasure_salt`` setting, else ``<data_dir>/erasure-salt``.

    The file is created with 32 random bytes (hex), mode 0600, on first use.

    Raises:
        ConfigError: the salt file cannot be read or written.
    """
    if setting:
        return setting.encode()
    path = data_dir / SALT_FILE
    try:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "x", opener=lambda p, flags: os.open(p, flags, 0o600)) as out:
                out.write(secrets.token_hex(32))
        return path.read_text().strip().encode()
    except FileExistsError:
        return path.read_text().strip().encode()
    except OSError as exc:
        raise ConfigError(f"Cannot read or create the erasure salt {str(path)!r}: {exc}"
                          ) from exc


def subject_hash(salt: bytes, field_name: str, value: str) -> str:
    """HMAC-SHA256 (hex) of ``<field>:<value>`` with key ``salt`` (RFC 2104)."""
    return hmac.new(salt, f"{field_name}:{value}".encode(), hashlib.sha256).hexdigest()


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


def _count(store: SpanStore, sql: str) -> int:
    return int(store.query_arrow(sql).column("n")[0].as_py())


def erase_subject(store: SpanStore, field_name: str, value: str, *, salt: bytes,
                  org_id: str | None = None, purge_wait_s: float = 30.0) -> ErasureReceipt:
    """Delete every row about one subject from the span store; returns the receipt.

    Args:
        store: the span store (chDB or one ClickHouse server).
        field_name: ``user_id`` or ``customer_id``.
        value: the subject's identifier (exact match).
        org_id: erase only in this org (an org admin's erasure); None: in every org.
        salt: the erasure salt (:func:`load_erasure_salt`).
        purge_wait_s: on chDB, longest wait for running calls before the replaced parts
            are removed from disk.

    Raises:
        ValidationError: an unknown field or an empty value.
        StoreError: a statement failed (running the erasure again finishes it).
    """
    if field_name not in SUBJECT_FIELDS:
        raise ValidationError("field", f"Expected one of {list(SUBJECT_FIELDS)}")
    if not value or len(value) > 1000:
        raise ValidationError(field_name, "Expected 1 to 1000 characters")
    started = time.perf_counter()
    suffix = uuid.uuid4().hex[:12]
    subject, traces = f"erasure_subject_{suffix}", f"erasure_traces_{suffix}"
    counts: dict[str, int] = {}
    store.execute(f"CREATE TABLE {subject} (v String) ENGINE = Memory")
    store.execute(f"CREATE TABLE {traces} (t String) ENGINE = Memory")
    try:
        store.execute(f"INSERT INTO {subject} (v) VALUES ({{v:String}})", {"v": value})
        # The org id is a tenant id, not personal: it may appear in the statements.
        in_org = "" if org_id is None else f" AND org_id = '{_quoted(org_id)}'"
        store.execute(f"INSERT INTO {traces} (t) SELECT DISTINCT trace_id FROM {SPANS_TABLE}"
                      f" WHERE {field_name} IN (SELECT v FROM {subject}){in_org}")
        num_traces = _count(store, f"SELECT count() AS n FROM {traces}")
        wheres = [(table, f"{field_name} IN (SELECT v FROM {subject}){in_org}")
                  for table in _BY_SUBJECT]
        wheres += [(table, f"{column} IN (SELECT t FROM {traces}){in_org}")
                   for table, column in _BY_TRACE]
        for table, where in wheres:
            num = _count(store, f"SELECT count() AS n FROM {table} WHERE {where}")
            if not num:
                continue
            store.execute(f"ALTER TABLE {table} DELETE WHERE {where}"
                          " SETTINGS mutations_sync = 2")
            counts[table] = num
    finally:
        store.execute(f"DROP TABLE IF EXISTS {subject} SYNC")
        store.execute(f"DROP TABLE IF EXISTS {traces} SYNC")
    purged = 0
    purge = getattr(store, "purge_outdated_parts", None)
    if purge is not None:
        # Every table that may hold the subject, not only those with rows now: a TTL or a
        # merge may have left an outdated part with the value behind (the minute tier).
        purged = int(purge([*_BY_SUBJECT, *(t for t, _ in _BY_TRACE)], purge_wait_s))
    return ErasureReceipt(field_name, org_id, subject_hash(salt, field_name, value), counts,
                          num_traces, purged, datetime.now(UTC), time.perf_counter() - started)


def erasure_receipts(control: Any, *, org_id: str | None = None, all_orgs: bool = False,
                     limit: int = 100) -> list[dict[str, Any]]:
    """The deletion receipts in the audit log (``governance.erased``), newest first.

    Args:
        control: the :class:`~mentatlab.storage.control.ControlStore`.
        org_id: only this org's receipts (with ``all_orgs`` False; None: installation-wide
            erasures).
        all_orgs: every receipt.
        limit: at most this many.

    Returns:
        ``{"seq", "at", "actor", "org_id", **details}`` per receipt.

    Raises:
        StoreError: the control store failed.
    """
    entries = control.audit.entries(org_id=org_id, all_orgs=all_orgs,
                                    action="governance.erased", limit=limit)
    return [{**dict(e.details), "seq": e.seq, "at": e.at.isoformat(), "actor": e.actor,
             "org_id": e.org_id} for e in entries]
