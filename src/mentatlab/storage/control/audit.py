"""The tamper-evident audit log: an append-only, hash-chained record of sensitive actions.

Every entry carries ``seq`` (1, 2, 3... without gaps), ``at`` (UTC), ``actor``, ``action``,
``org_id``, ``project_id``, ``target`` and ``details`` (a JSON object), and::

    hash = SHA-256(bytes.fromhex(prev_hash) || canonical_json({action, actor, at, details,
                                                               org_id, project_id, seq,
                                                               target}))

where ``prev_hash`` is the previous entry's ``hash`` (:data:`GENESIS_HASH`, 64 zeros, for
the first), canonical JSON has sorted keys, no whitespace, ``ensure_ascii=False``, UTF-8,
and ``at`` is ISO 8601 with microseconds and ``+00:00``.

One chain per control store, however many nodes append: an append takes a database lock
(``BEGIN IMMEDIATE`` on SQLite, a transaction-scoped advisory lock on PostgreSQL), and
``seq``, ``prev_hash`` and ``hash`` are unique, so a fork is refused by the database even
if a lock were bypassed (the append is then retried on the new head).

Every ``checkpoint_every`` entries (and on demand) a checkpoint records the head's
``(seq, hash)``, signed with an Ed25519 key when one is configured: rewriting history
behind a signed checkpoint, or cutting the tail off before it, needs the private key.
:meth:`AuditLog.verify` walks the whole chain and the checkpoints and names every edited,
removed, inserted, reordered or truncated entry and every bad signature.

:meth:`AuditLog.trim` (audit retention) deletes the oldest entries, but only up to a
checkpoint signed with the configured key: that checkpoint stays, and :meth:`AuditLog.verify`
accepts it as the chain's new start when its signature verifies and the first stored entry
links to its hash. An unsigned, forged or altered checkpoint is not accepted, and the
missing entries are then reported as removed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from sqlalchemy import Connection, Engine, delete, insert, select, text
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from mentatlab.errors import ConfigError, StoreError, ValidationError
from mentatlab.storage.control.models import AuditCheckpoint, AuditEntry, utc_now

__all__ = [
    "GENESIS_HASH",
    "AuditLog",
    "AuditProblem",
    "AuditRecord",
    "AuditReport",
    "CheckpointInfo",
    "canonical_json",
    "entry_hash",
    "generate_signing_key",
    "key_fingerprint",
    "load_public_key",
    "load_signing_key",
]

_log = logging.getLogger(__name__)

SessionFactory = Callable[[], AbstractContextManager[Session]]
GENESIS_HASH = "0" * 64
"""The ``prev_hash`` of the first entry."""
AUDIT_LOCK_KEY = 0x6D746C6175646974
"""PostgreSQL advisory-lock key held while appending (ASCII ``mtlaudit``)."""
_APPEND_ATTEMPTS = 20
_BATCH = 10_000

ProblemKind = Literal["edited", "removed", "inserted", "reordered", "truncated", "checkpoint",
                      "signature"]


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One audit-log entry as stored."""

    seq: int
    at: datetime
    actor: str
    """``key:<id>``, ``user:<id>``, ``cli``, ``system`` or ``anonymous``."""
    action: str
    """``key.created``, ``member.role_changed``, ``alert_rule.deleted``, ``export``..."""
    org_id: str | None
    project_id: str | None
    target: str
    details: Mapping[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class CheckpointInfo:
    """A checkpoint: the chain's ``hash`` at ``seq``; ``signature``/``key_id`` empty if unsigned."""

    seq: int
    hash: str
    signature: str
    key_id: str
    at: datetime


@dataclass(frozen=True, slots=True)
class AuditProblem:
    """One thing :meth:`AuditLog.verify` found wrong; ``seq`` is the entry or checkpoint."""

    kind: ProblemKind
    seq: int | None
    message: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


@dataclass(frozen=True, slots=True)
class AuditReport:
    """What :meth:`AuditLog.verify` found.

    Attributes:
        entries: entries read.
        head_seq: the last entry's seq (0 when empty).
        checkpoints: checkpoints read; ``signed_checkpoints`` of them carried a signature
            that verified.
        problems: every problem, in chain order; empty when the log is intact.
        notes: facts that are not problems (no signing key configured, unsigned checkpoints).
        seconds: how long the walk took.
    """

    entries: int
    head_seq: int
    checkpoints: int
    signed_checkpoints: int
    problems: tuple[AuditProblem, ...]
    notes: tuple[str, ...] = ()
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return not self.problems


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                            allow_nan=False)
_DETAILS_SLOT = ',"details":0,'


def canonical_json(value: Any) -> bytes:
    """UTF-8 JSON with sorted keys, no whitespace, non-ASCII kept (what is hashed).

    Raises:
        TypeError: ``value`` holds something JSON cannot represent.
    """
    return _ENCODER.encode(value).encode()


def _at_text(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def _digest(prev_hash: str, seq: int, at: datetime, actor: str, action: str,
            org_id: str | None, project_id: str | None, target: str, details_json: str) -> str:
    """:func:`entry_hash` with ``details`` given as its canonical JSON text (as stored).

    The entry's other fields are encoded with a placeholder for ``details`` and the stored
    text is put in its place: the same bytes as encoding the whole entry when the text is
    canonical, and different bytes (so a mismatch) whenever the stored text was changed.
    """
    body = _ENCODER.encode({"action": action, "actor": actor, "at": _at_text(at), "details": 0,
                            "org_id": org_id, "project_id": project_id, "seq": seq,
                            "target": target})
    # Only the key can hold this text unescaped: every quote inside a value is escaped.
    body = body.replace(_DETAILS_SLOT, f',"details":{details_json},', 1)
    return hashlib.sha256(bytes.fromhex(prev_hash) + body.encode()).hexdigest()


def entry_hash(prev_hash: str, seq: int, at: datetime, actor: str, action: str,
               org_id: str | None, project_id: str | None, target: str,
               details: Mapping[str, Any]) -> str:
    """The hex SHA-256 of an entry (see the module docstring for the formula).

    Raises:
        ValueError: ``prev_hash`` is not hex.
        TypeError: ``details`` holds something JSON cannot represent.
    """
    return _digest(prev_hash, seq, at, actor, action, org_id, project_id, target,
                   _ENCODER.encode(details))


# --- signing keys ------------------------------------------------------------------------


def key_fingerprint(public_key: Ed25519PublicKey) -> str:
    """Hex SHA-256 of the raw 32-byte public key (the checkpoints' ``key_id``)."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 private key in PEM file ``path`` (unencrypted PKCS#8).

    Raises:
        ConfigError: the file cannot be read or holds no Ed25519 private key.
    """
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"audit_signing_key_file {str(path)!r}: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"audit_signing_key_file {str(path)!r}: expected an Ed25519 "
                          f"private key, got {type(key).__name__}")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """The Ed25519 public key in PEM file ``path`` (a public key, or a private key's half).

    Raises:
        ConfigError: the file cannot be read or holds no Ed25519 key.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"audit_retired_key_files {str(path)!r}: {exc}") from exc
    if b"PRIVATE KEY" in data:
        return load_signing_key(path).public_key()
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"audit_retired_key_files {str(path)!r}: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"audit_retired_key_files {str(path)!r}: expected an Ed25519 "
                          f"public key, got {type(key).__name__}")
    return key


def generate_signing_key(path: Path) -> str:
    """Write a new Ed25519 private key to ``path`` (PEM, mode 0600); returns its fingerprint.

    Raises:
        ConfigError: ``path`` exists already or cannot be written.
    """
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "xb", opener=lambda p, flags: os.open(p, flags, 0o600)) as out:
            out.write(pem)
    except FileExistsError as exc:
        raise ConfigError(f"{str(path)!r} exists already; not overwriting a signing key"
                          ) from exc
    except OSError as exc:
        raise ConfigError(f"Cannot write {str(path)!r}: {exc}") from exc
    return key_fingerprint(key.public_key())


def _signed_text(seq: int, hash_: str, at: datetime) -> bytes:
    return f"mentatlab-audit-checkpoint:v1:{seq}:{hash_}:{_at_text(at)}".encode()


# --- the log -----------------------------------------------------------------------------


def _record(row: Any) -> AuditRecord:
    try:
        details = json.loads(row.details)
    except ValueError:
        details = {"unreadable": row.details}
    return AuditRecord(row.seq, row.at, row.actor, row.action, row.org_id, row.project_id,
                       row.target, details, row.prev_hash, row.hash)


def _checkpoint(row: Any) -> CheckpointInfo:
    return CheckpointInfo(row.seq, row.hash, row.signature, row.key_id, row.at)


@dataclass
class _Signer:
    checkpoint_every: int = 1000
    key: Ed25519PrivateKey | None = None
    key_id: str = ""
    retired: tuple[Ed25519PublicKey, ...] = ()
    """Public keys of retired signing keys whose checkpoints still verify."""


class AuditLog:
    """The audit log in the control store (``ControlStore.audit``).

    Args:
        session: the store's session factory (reads).
        engine: the store's engine (appends take a database lock on their own connection).
    """

    def __init__(self, session: SessionFactory, engine: Engine) -> None:
        self._session = session
        self._engine = engine
        self._signer = _Signer()

    def configure(self, *, checkpoint_every: int = 1000,
                  signing_key: Ed25519PrivateKey | None = None,
                  retired_keys: tuple[Ed25519PublicKey, ...] = ()) -> None:
        """Set how often a checkpoint is taken (entries) and the key that signs it.

        ``retired_keys``: public keys of retired signing keys whose checkpoints
        :meth:`verify` still accepts (key rotation).

        Raises:
            ConfigError: ``checkpoint_every`` is below 1.
        """
        if checkpoint_every < 1:
            raise ConfigError(f"Expected audit_checkpoint_every >= 1, got {checkpoint_every}")
        key_id = "" if signing_key is None else key_fingerprint(signing_key.public_key())
        self._signer = _Signer(checkpoint_every, signing_key, key_id, tuple(retired_keys))

    @property
    def retired_keys(self) -> tuple[Ed25519PublicKey, ...]:
        """Public keys of retired signing keys whose checkpoints still verify."""
        return self._signer.retired

    @property
    def signing_key_id(self) -> str:
        """Fingerprint of the configured signing key; ``""`` when checkpoints are unsigned."""
        return self._signer.key_id

    # --- appending ---------------------------------------------------------------------

    def record(self, actor: str, action: str, *, org_id: str | None = None,
               project_id: str | None = None, target: str = "",
               details: Mapping[str, Any] | None = None) -> AuditRecord:
        """Append an entry (and a checkpoint every ``checkpoint_every`` entries).

        Args:
            actor: who acted: ``key:<id>``, ``user:<id>``, ``cli``, ``system``.
            action: what was done, ``<noun>.<verb>`` (``key.created``) or a word (``export``).
            org_id: the org acted on; None for installation-wide actions.
            project_id: the project acted in, when the action concerns one project.
            target: what was acted on (a key id, a user id, a rule id...).
            details: a JSON object; values JSON cannot hold are written as text.

        Raises:
            ValidationError: empty or oversized ``actor``/``action``, oversized ``target``,
                a NaN or infinite number in ``details``.
            StoreError: the control store failed, or the append kept losing races.
        """
        for name, value, limit in (("actor", actor, 200), ("action", action, 64)):
            if not value or len(value) > limit:
                raise ValidationError(name, f"Expected 1 to {limit} characters, got {value!r}")
        if len(target) > 500:
            raise ValidationError("target", "Expected at most 500 characters")
        try:
            body = json.loads(json.dumps(dict(details or {}), default=str, allow_nan=False))
        except ValueError as exc:
            raise ValidationError("details", f"Expected finite numbers: {exc}") from exc
        for attempt in range(_APPEND_ATTEMPTS):
            try:
                with self._locked() as conn:
                    return self._append(conn, actor, action, org_id, project_id, target, body)
            except (IntegrityError, OperationalError) as exc:
                # Lost a race for the head (or the SQLite lock timed out): read it again.
                _log.debug("audit append attempt %d lost a race: %s", attempt + 1, exc)
                time.sleep(random.uniform(0.001, 0.02) * (attempt + 1))
            except SQLAlchemyError as exc:
                raise StoreError(f"Audit log append failed: {exc}") from exc
        raise StoreError(f"Audit log append lost {_APPEND_ATTEMPTS} races in a row")

    @contextmanager
    def _locked(self) -> Iterator[Connection]:
        """A transaction holding the audit lock: one appender at a time, on every node."""
        with self._engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            elif conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": AUDIT_LOCK_KEY})
            try:
                yield conn
            except BaseException:
                conn.rollback()
                raise
            conn.commit()

    def _append(self, conn: Connection, actor: str, action: str, org_id: str | None,
                project_id: str | None, target: str, details: dict[str, Any]) -> AuditRecord:
        head = conn.execute(select(AuditEntry.seq, AuditEntry.hash)
                            .order_by(AuditEntry.seq.desc()).limit(1)).first()
        seq, prev = (1, GENESIS_HASH) if head is None else (head.seq + 1, head.hash)
        at = utc_now()
        digest = entry_hash(prev, seq, at, actor, action, org_id, project_id, target, details)
        conn.execute(insert(AuditEntry).values(
            seq=seq, at=at, actor=actor, action=action, org_id=org_id, project_id=project_id,
            target=target,
            details=canonical_json(details).decode(), prev_hash=prev, hash=digest))
        if seq % self._signer.checkpoint_every == 0:
            self._insert_checkpoint(conn, seq, digest)
        return AuditRecord(seq, at, actor, action, org_id, project_id, target, details, prev,
                           digest)

    def _insert_checkpoint(self, conn: Connection, seq: int, hash_: str) -> CheckpointInfo:
        at = utc_now()
        signature, key_id = "", ""
        if self._signer.key is not None:
            signature = self._signer.key.sign(_signed_text(seq, hash_, at)).hex()
            key_id = self._signer.key_id
        conn.execute(insert(AuditCheckpoint).values(seq=seq, hash=hash_, signature=signature,
                                                    key_id=key_id, at=at))
        return CheckpointInfo(seq, hash_, signature, key_id, at)

    def trim(self, *, before: datetime | None = None, through_seq: int | None = None) -> int:
        """Delete the oldest entries up to a signed checkpoint (audit retention).

        The entries to go are those written before ``before`` (or up to ``through_seq``),
        never the head. A checkpoint signed with the configured key is taken at the last of
        them (kept: :meth:`verify` starts the chain there), the checkpoints before it are
        deleted, and an ``audit.checkpoint`` entry records the trim (seq, hash, key id,
        entries removed).

        Args:
            before: trim the entries written before this instant (UTC).
            through_seq: trim the entries up to this seq.

        Returns:
            Entries deleted (0 when there was nothing to trim).

        Raises:
            ConfigError: no signing key is configured (an unsigned start could be forged).
            StoreError: the control store failed.
        """
        if self._signer.key is None:
            raise ConfigError("Trimming the audit log needs a signing key "
                              "(audit_signing_key_file, mentatctl audit keygen)")
        try:
            with self._locked() as conn:
                head = conn.execute(select(AuditEntry.seq).order_by(AuditEntry.seq.desc())
                                    .limit(1)).scalar()
                if head is None:
                    return 0
                query = select(AuditEntry.seq, AuditEntry.hash).where(AuditEntry.seq < head)
                if before is not None:
                    query = query.where(AuditEntry.at < before)
                if through_seq is not None:
                    query = query.where(AuditEntry.seq <= through_seq)
                last = conn.execute(query.order_by(AuditEntry.seq.desc()).limit(1)).first()
                if last is None:
                    return 0
                point = self._signed_checkpoint(conn, last.seq, last.hash)
                removed = conn.execute(delete(AuditEntry).where(AuditEntry.seq <= last.seq))
                conn.execute(delete(AuditCheckpoint).where(AuditCheckpoint.seq < last.seq))
                num = int(getattr(removed, "rowcount", 0) or 0)
                if num:
                    self._append(conn, "system", "audit.checkpoint", None, None, str(point.seq),
                                 {"seq": point.seq, "hash": point.hash, "key_id": point.key_id,
                                  "trimmed_entries": num})
                return num
        except SQLAlchemyError as exc:
            raise StoreError(f"Audit trim failed: {exc}") from exc

    def _signed_checkpoint(self, conn: Connection, seq: int, hash_: str) -> CheckpointInfo:
        """The checkpoint at ``seq`` signed with the configured key (re-signed if it was not)."""
        row = conn.execute(select(AuditCheckpoint).where(AuditCheckpoint.seq == seq)).first()
        if row is not None and row.signature and row.key_id == self._signer.key_id \
                and row.hash == hash_:
            return _checkpoint(row)
        if row is not None:
            conn.execute(delete(AuditCheckpoint).where(AuditCheckpoint.seq == seq))
        return self._insert_checkpoint(conn, seq, hash_)

    def checkpoint(self) -> CheckpointInfo | None:
        """Checkpoint the current head now (signed when a key is set); None when empty.

        The head's existing checkpoint is returned when there is one.

        Raises:
            StoreError: the control store failed.
        """
        try:
            with self._locked() as conn:
                head = conn.execute(select(AuditEntry.seq, AuditEntry.hash)
                                    .order_by(AuditEntry.seq.desc()).limit(1)).first()
                if head is None:
                    return None
                done = conn.execute(select(AuditCheckpoint)
                                    .where(AuditCheckpoint.seq == head.seq)).first()
                if done is not None:
                    return _checkpoint(done)
                return self._insert_checkpoint(conn, head.seq, head.hash)
        except SQLAlchemyError as exc:
            raise StoreError(f"Audit checkpoint failed: {exc}") from exc

    # --- reading -----------------------------------------------------------------------

    def entries(self, *, org_id: str | None = None, all_orgs: bool = False,
                project_id: str | None = None, actor: str | None = None, action: str | None = None,
                since: datetime | None = None, until: datetime | None = None,
                before_seq: int | None = None, limit: int = 100) -> list[AuditRecord]:
        """Entries newest first.

        Args:
            org_id: only this org's entries (with ``all_orgs`` False).
            all_orgs: every entry, installation-wide ones included (installation callers).
            project_id: only this project's entries (a project-scoped caller).
            actor: only this actor (exact).
            action: only this action (exact), or a family ending in ``.*`` (``key.*``).
            since: at or after this instant (UTC).
            until: before this instant (UTC).
            before_seq: only entries with a smaller seq (the paging cursor).
            limit: at most this many.
        """
        query = select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(limit)
        if not all_orgs:
            query = query.where(AuditEntry.org_id == org_id)
        if project_id is not None:
            query = query.where(AuditEntry.project_id == project_id)
        if actor is not None:
            query = query.where(AuditEntry.actor == actor)
        if action is not None and action.endswith(".*"):
            query = query.where(AuditEntry.action.startswith(action[:-1], autoescape=True))
        elif action is not None:
            query = query.where(AuditEntry.action == action)
        if since is not None:
            query = query.where(AuditEntry.at >= since)
        if until is not None:
            query = query.where(AuditEntry.at < until)
        if before_seq is not None:
            query = query.where(AuditEntry.seq < before_seq)
        with self._session() as session:
            return [_record(row) for row in session.scalars(query).all()]

    def checkpoints(self) -> list[CheckpointInfo]:
        """Every checkpoint, by seq."""
        with self._session() as session:
            rows = session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.seq)).all()
            return [_checkpoint(row) for row in rows]

    # --- verifying ---------------------------------------------------------------------

    def verify(self, public_key: Ed25519PublicKey | None = None) -> AuditReport:
        """Walk the whole chain and every checkpoint; name every problem.

        Args:
            public_key: the key checkpoints must be signed with; default the public half of
                the configured signing key. Without either, signatures are not checked
                (the report's notes say so).

        Raises:
            StoreError: the control store could not be read.
        """
        started = time.perf_counter()
        keys: dict[str, Ed25519PublicKey] = {}
        if public_key is None and self._signer.key is not None:
            public_key = self._signer.key.public_key()
            keys = {key_fingerprint(k): k for k in self._signer.retired}
        if public_key is not None:
            keys[key_fingerprint(public_key)] = public_key
        try:
            with self._engine.connect() as conn:
                checkpoints = [_checkpoint(r) for r in conn.execute(
                    select(AuditCheckpoint).order_by(AuditCheckpoint.seq)).all()]
                first = conn.execute(select(AuditEntry.seq, AuditEntry.prev_hash)
                                     .order_by(AuditEntry.seq).limit(1)).first()
                anchor = _trim_anchor(checkpoints, first, keys)
                walk = _ChainWalk(anchor)
                walk.run(self._rows(conn))
        except SQLAlchemyError as exc:
            raise StoreError(f"Audit log read failed: {exc}") from exc
        problems = walk.problems
        signed, notes = _check_checkpoints(checkpoints, walk, public_key, keys, problems)
        if anchor is not None:
            notes.append(f"the chain starts after the signed checkpoint at seq {anchor.seq} "
                         f"(entries up to it were trimmed)")
        return AuditReport(walk.count, walk.head_seq, len(checkpoints), signed,
                           tuple(problems), tuple(notes), time.perf_counter() - started)

    @staticmethod
    def _rows(conn: Connection) -> Iterator[Any]:
        columns = AuditEntry.__table__.c
        last: int | None = None
        while True:
            query = select(columns.seq, columns.at, columns.actor, columns.action,
                           columns.org_id, columns.project_id, columns.target, columns.details,
                           columns.prev_hash,
                           columns.hash).order_by(columns.seq).limit(_BATCH)
            if last is not None:
                query = query.where(columns.seq > last)
            rows = conn.execute(query).all()
            yield from rows
            if len(rows) < _BATCH:
                return
            last = rows[-1].seq


def _content_hash(row: Any, seq: int) -> str | None:
    """The hash ``row`` would have if written as entry ``seq``; None when unreadable."""
    try:
        return _digest(row.prev_hash, seq, row.at, row.actor, row.action, row.org_id,
                       row.project_id, row.target, row.details)
    except (ValueError, TypeError, AttributeError):
        return None


def _trim_anchor(checkpoints: list[CheckpointInfo], first: Any,
                 keys: dict[str, Ed25519PublicKey]) -> CheckpointInfo | None:
    """The checkpoint the stored chain starts after, when the start was trimmed legitimately.

    That is the checkpoint at the seq just before the first stored entry, whose hash that
    entry links to, signed by one of ``keys`` with a signature that verifies. None otherwise
    (nothing trimmed, or a start that cannot be trusted: the gap is then reported).
    """
    if first is None or first.seq <= 1 or not keys:
        return None
    for cp in checkpoints:
        if cp.seq != first.seq - 1 or cp.hash != first.prev_hash or not cp.signature:
            continue
        public_key = keys.get(cp.key_id)
        if public_key is None:
            return None
        try:
            public_key.verify(bytes.fromhex(cp.signature), _signed_text(cp.seq, cp.hash, cp.at))
        except (InvalidSignature, ValueError):
            return None
        return cp
    return None


class _ChainWalk:
    """One pass over the entries in seq order, naming what breaks the chain.

    * edited — an entry's content does not give its stored hash, or the entry before a
      broken link verifies but is not the one the next entry was chained to (rewritten and
      re-hashed);
    * removed — seqs missing (a gap, or a chain not starting at 1);
    * inserted — a seq stored twice, or an entry the next one links over;
    * reordered — an entry that verifies only at another seq (the entry it links to says
      where it was written): moved, or renumbered; a run renumbered alike is one problem.
    """

    def __init__(self, anchor: CheckpointInfo | None = None) -> None:
        self.problems: list[AuditProblem] = []
        self.count = 0
        self.anchor = anchor
        """The signed checkpoint the chain starts after (trimmed), or None (genesis)."""
        self.head_seq = 0 if anchor is None else anchor.seq
        self.hashes: dict[int, str] = {} if anchor is None else {anchor.seq: anchor.hash}
        """seq → stored hash (for the checkpoints)."""
        self._written_seq: dict[str, int] = {GENESIS_HASH: 0}
        if anchor is not None:
            self._written_seq[anchor.hash] = anchor.seq
        """stored hash → the seq its entry was written as (once known)."""
        self._run: tuple[int, int, int] | None = None
        """The last run of moved entries: (first stored seq, last stored seq, offset)."""
        self._moved_links: list[tuple[int, str]] = []
        """(written seq, prev_hash) of moved entries, checked once every hash is known."""

    def _add(self, kind: ProblemKind, seq: int | None, message: str) -> None:
        self.problems.append(AuditProblem(kind, seq, message))

    def run(self, rows: Iterator[Any]) -> None:
        """Walk ``rows`` (seq order) with a look-ahead of one for links skipped over."""
        prev: Any = None
        current: Any = None
        for row in rows:
            if current is not None:
                self._step(prev, current, row)
                prev = current
            current = row
        if current is not None:
            self._step(prev, current, None)
        stored = {GENESIS_HASH, *self.hashes.values()}
        for written, prev_hash in self._moved_links:
            if prev_hash not in stored:
                self._add("removed", written - 1, f"entry written as seq {written - 1} is "
                          f"missing (the moved entry written as seq {written} links to it)")

    def _step(self, prev: Any, row: Any, nxt: Any) -> None:
        self.count += 1
        self.hashes[row.seq] = row.hash
        self.head_seq = max(self.head_seq, row.seq)
        start = (0, GENESIS_HASH) if self.anchor is None else (self.anchor.seq, self.anchor.hash)
        prev_seq, prev_hash = start if prev is None else (prev.seq, prev.hash)
        if _content_hash(row, row.seq) == row.hash:
            self._written_seq[row.hash] = row.seq
        elif not self._judge_content(row):
            return  # moved: reported as reordered, its links are its old neighbours'
        if prev is not None and row.seq == prev_seq:
            self._add("inserted", row.seq, f"seq {row.seq} is stored twice (hashes "
                      f"{prev_hash[:12]}… and {row.hash[:12]}…): one entry is inserted")
        elif row.seq > prev_seq + 1:
            first, last = prev_seq + 1, row.seq - 1
            span = f"entry {first}" if first == last else f"entries {first}–{last}"
            self._add("removed", first, f"{span} missing ({last - first + 1} removed)")
        elif row.prev_hash == prev_hash or row.prev_hash in self._written_seq:
            pass  # linked, or linked to an entry reported as moved
        elif nxt is not None and nxt.prev_hash == prev_hash:
            self._add("inserted", row.seq, f"entry {row.seq} ({row.action} by {row.actor}) "
                      f"is not part of the chain: entry {nxt.seq} links over it to entry "
                      f"{prev_seq}")
        elif nxt is None:
            self._add("inserted", row.seq, f"entry {row.seq} ({row.action} by {row.actor}) "
                      f"does not link to entry {prev_seq}: appended outside the chain (or "
                      f"entry {prev_seq} was rewritten and re-hashed)")
        else:
            self._add("edited", prev_seq, f"entry {prev_seq} was rewritten and re-hashed: "
                      f"entry {row.seq} links to {row.prev_hash[:12]}…, not to its hash "
                      f"{prev_hash[:12]}…")

    def _judge_content(self, row: Any) -> bool:
        """An entry whose content does not give its hash: moved (False), or edited (True)."""
        for written in self._candidate_seqs(row):
            if _content_hash(row, written) == row.hash:
                self._written_seq[row.hash] = written
                self._moved_links.append((written, row.prev_hash))
                self._moved(row.seq, row.seq - written)
                return False
        self._add("edited", row.seq, f"entry {row.seq} ({row.action} by {row.actor}) does "
                  f"not match its hash: its content was changed after it was written")
        return True

    def _moved(self, stored: int, offset: int) -> None:
        run = self._run
        if run is not None and run[1] == stored - 1 and run[2] == offset and \
                self.problems and self.problems[-1].kind == "reordered":
            self.problems.pop()
            first = run[0]
        else:
            first = stored
        self._run = (first, stored, offset)
        if first == stored:
            message = f"entry written as seq {stored - offset} is stored at seq {stored}"
        else:
            message = (f"entries written as seq {first - offset}–{stored - offset} are stored "
                       f"at seq {first}–{stored} (renumbered by {offset:+d})")
        self._add("reordered", first, message)

    def _candidate_seqs(self, row: Any) -> list[int]:
        """Where the entry may have been written: after the entry it links to, or nearby."""
        out: list[int] = []
        linked = self._written_seq.get(row.prev_hash)
        if linked is not None and linked + 1 != row.seq:
            out.append(linked + 1)
        out.extend(s for s in (row.seq - 1, row.seq + 1, row.seq - 2, row.seq + 2)
                   if s > 0 and s not in out)
        return out


def _check_checkpoints(checkpoints: list[CheckpointInfo], walk: _ChainWalk,
                       public_key: Ed25519PublicKey | None, keys: dict[str, Ed25519PublicKey],
                       problems: list[AuditProblem]) -> tuple[int, list[str]]:
    """Check each checkpoint against the chain and its signature; returns (signed, notes)."""
    notes: list[str] = []
    key_id = "" if public_key is None else key_fingerprint(public_key)
    if public_key is None:
        notes.append("no audit signing key configured (audit_signing_key_file): checkpoint "
                     "signatures were not checked")
    signed = unsigned = 0
    for cp in checkpoints:
        stored = walk.hashes.get(cp.seq)
        if cp.seq > walk.head_seq:
            problems.append(AuditProblem("truncated", cp.seq, (
                f"checkpoint at seq {cp.seq} is past the last entry {walk.head_seq}: entries "
                f"{walk.head_seq + 1}–{cp.seq} (at least) were cut off")))
        elif stored is None:
            problems.append(AuditProblem("checkpoint", cp.seq, (
                f"checkpoint at seq {cp.seq} names an entry that is not stored")))
        elif stored != cp.hash:
            problems.append(AuditProblem("checkpoint", cp.seq, (
                f"checkpoint at seq {cp.seq} records hash {cp.hash[:12]}…, the entry has "
                f"{stored[:12]}…: history up to it was rewritten")))
        if not cp.signature:
            unsigned += 1
            continue
        if public_key is None:
            continue
        signer = keys.get(cp.key_id)
        if signer is None:
            problems.append(AuditProblem("signature", cp.seq, (
                f"checkpoint at seq {cp.seq} is signed by key {cp.key_id[:16]}…, not the "
                f"configured key {key_id[:16]}…")))
            continue
        try:
            signer.verify(bytes.fromhex(cp.signature), _signed_text(cp.seq, cp.hash, cp.at))
            signed += 1
        except (InvalidSignature, ValueError):
            problems.append(AuditProblem("signature", cp.seq, (
                f"checkpoint at seq {cp.seq}: bad signature (the checkpoint or its "
                f"signature was changed)")))
    if unsigned:
        notes.append(f"{unsigned} checkpoint(s) unsigned")
    return signed, notes
