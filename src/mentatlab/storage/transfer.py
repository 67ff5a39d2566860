"""Moving up: copy an embedded installation (chDB + SQLite) to ClickHouse and PostgreSQL.

What is copied, and how:

* **Spans**: the newest version of every span (``spans FINAL``), day partition by day
  partition, keyset-paged on the table's sorting key ``(org_id, project_id,
  toStartOfHour(start_time), trace_id, span_id)`` (the very key ``ReplacingMergeTree``
  deduplicates on, so a page boundary can never split or skip a span). Each page is one
  Arrow insert (:meth:`SpanStore.append_batch`) with ``ingested_at_ns`` kept as is: the
  target's ``ReplacingMergeTree(ingested_at_ns)`` keeps the newest version, so a page
  copied twice (a crash between the insert and the checkpoint) counts once.
* **Aggregates** (the resolver's ledger and aggregate tables) are not copied: the caller
  rebuilds them on the target (:func:`mentatlab.resolver.resolver.rebuild_aggregates`)
  from the copied spans. Copying them would be exact only if the source's resolver were
  current, and the copied spans keep their old commit stamps, which a target's resolver
  would never see as new. A rebuild from ``spans FINAL`` is exact by construction.
* **Control data**: every table of the SQLAlchemy models, parents before children
  (``Base.metadata.sorted_tables``); a row whose primary key is already on the target is
  skipped, so a rerun copies nothing twice. On PostgreSQL, the sequences of integer
  primary keys are moved past the copied ids.

Progress is kept in a :class:`Checkpoint` file written after every committed page; a
rerun continues after the last committed key.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pyarrow as pa
from sqlalchemy import Engine, Table, create_engine, func, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from mentatlab.errors import ConfigError, StoreError, StoreUnavailable
from mentatlab.governance.encryption import EncryptionKeys
from mentatlab.model.schema import SPAN_SCHEMA
from mentatlab.storage.base import SpanStore
from mentatlab.storage.control.models import Base
from mentatlab.storage.span_schema import SPANS_TABLE

__all__ = [
    "Checkpoint",
    "ControlTableCopy",
    "DayTotals",
    "Mismatch",
    "SpanKey",
    "checkpoint_path",
    "control_row_counts",
    "copy_control",
    "copy_spans",
    "count_spans_before",
    "mask_url",
    "normalize_control_url",
    "open_embedded_source",
    "replay_leftover_log",
    "on_cluster_clause",
    "span_totals_by_day",
    "unmodelled_tables",
    "verify",
]

_log = logging.getLogger(__name__)

_COLUMNS = ", ".join(f"`{name}`" for name in SPAN_SCHEMA.names)
_FINAL_SETTINGS = "SETTINGS do_not_merge_across_partitions_select_final = 1"
_TS = "DateTime64(9, 'UTC')"
_KEY_EXPR = "(org_id, project_id, toStartOfHour(start_time), trace_id, span_id)"
_KEY_PARAMS = ("({ko:String}, {kp:String}, toDateTime({kh:UInt32}, 'UTC'), {kt:String},"
               " {ks:String})")
_CHECKPOINT_VERSION = 1
_HOUR_NS = 3600 * 10**9


# --- URLs -------------------------------------------------------------------------------


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for messages and checkpoints)."""
    parsed = urlparse(url)
    if parsed.password is None:
        return url
    netloc = parsed.netloc.replace(f":{parsed.password}@", ":***@", 1)
    return parsed._replace(netloc=netloc).geturl()


def normalize_control_url(url: str) -> str:
    """A SQLAlchemy URL that loads here: bare ``postgresql://`` gets the psycopg 3 driver.

    SQLAlchemy's default PostgreSQL driver is psycopg2; MentatLab ships psycopg 3.

    Raises:
        ConfigError: not a SQLAlchemy URL, or its database driver is not installed.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"Expected a SQLAlchemy URL like postgresql://user:pass@host/db,"
                          f" got {mask_url(url)!r}") from None
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    try:
        parsed.get_dialect()
    except NoSuchModuleError:
        raise ConfigError(f"Expected a database SQLAlchemy knows, got {parsed.drivername!r}"
                          f" in {mask_url(url)!r}") from None
    if parsed.get_backend_name() == "postgresql":
        try:
            parsed.get_dialect().import_dbapi()
        except ImportError:
            raise ConfigError(f"The driver of {parsed.drivername!r} is not installed:"
                              " pip install 'mentatlab[postgres]'") from None
    return parsed.render_as_string(hide_password=False)


def checkpoint_path(data_dir: Path, span_url: str | None, control_url: str | None) -> Path:
    """``<data_dir>/migrate-<16 hex>.json``: one checkpoint per pair of targets.

    The hash covers the URLs without their passwords, so a changed password keeps the
    checkpoint.
    """
    ident = json.dumps([mask_url(span_url) if span_url else None,
                        mask_url(control_url) if control_url else None])
    return Path(data_dir) / f"migrate-{hashlib.sha256(ident.encode()).hexdigest()[:16]}.json"


# --- the source -------------------------------------------------------------------------


def open_embedded_source(span_url: str,
                         encryption_keys: EncryptionKeys | None = None) -> SpanStore:
    """Open the embedded (chDB) span store of a data dir for reading.

    A write-ahead log left by a server that did not stop cleanly is replayed into it
    first (:func:`replay_leftover_log`), so the copy holds every acknowledged span.

    Args:
        span_url: ``chdb:///path`` of the installation (``Settings.span_store_url``).
        encryption_keys: the installation's keys (``Settings.encryption_keys()``), needed
            when the store is encrypted.

    Raises:
        ConfigError: not a ``chdb://`` URL, or no span store in that folder; an encrypted
            store and no (right) key.
        StoreUnavailable: another process (a running ``mentatctl serve``) holds the folder.
        StoreError: a leftover write-ahead log cannot be replayed (its folder is named).
    """
    from mentatlab.storage.chdb_store import ChdbSpanStore
    from mentatlab.storage.encrypted_disk import is_encrypted_store

    parsed = urlparse(span_url)
    if parsed.scheme.lower() != "chdb":
        raise ConfigError(f"Expected the source to be an embedded chdb:// span store, got"
                          f" {mask_url(span_url)!r}")
    folder = Path((parsed.netloc or "") + parsed.path).expanduser()
    if not (folder / "metadata").is_dir():
        raise ConfigError(f"No embedded span store at {folder} (wrong --data-dir?)")
    try:
        store = ChdbSpanStore(folder, query_timeout_s=0,
                              encryption_keys=encryption_keys if is_encrypted_store(folder)
                              else None)
    except StoreUnavailable as exc:
        raise StoreUnavailable(
            f"The embedded span store at {folder} is in use by another process: stop"
            f" `mentatctl serve` (or whatever holds it) first. ({exc})") from exc
    try:
        replay_leftover_log(store, folder)
    except BaseException:
        store.close()
        raise
    return store


def replay_leftover_log(store: SpanStore, folder: Path) -> int:
    """Insert what the write-ahead log of a server that did not stop cleanly holds.

    Commands that open the chDB folder themselves (no server) call it first, so that they
    see every acknowledged span (decision 0022): the server would replay the same log at
    its next start. Logged as a warning when there was a log.

    Args:
        store: the embedded store opened writable on ``folder``.
        folder: the store's folder (its log is ``<folder>/_wal``).

    Returns:
        Spans inserted (0 without a log).

    Raises:
        StoreError: the log holds batches of another span schema (written by another
            version: start that version once and stop it with SIGTERM), or an insert
            failed; the log stays either way, naming its folder.
    """
    from mentatlab.storage.wal import WAL_FOLDER, leftover_segments, replay_leftover

    segments = leftover_segments(folder)
    if not segments:
        return 0
    try:
        report = replay_leftover(store, folder)
    except StoreError as exc:
        raise StoreError(
            f"The span store at {folder} has a write-ahead log left by a server that did not"
            f" stop cleanly ({folder / WAL_FOLDER}, {len(segments)} files) and it could not"
            f" be replayed: {exc}") from exc
    return report.spans_inserted


# --- checkpoint -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SpanKey:
    """A span's position in the copy order: its sorting key (what FINAL dedups on)."""

    org_id: str
    project_id: str
    hour_s: int
    """``toStartOfHour(start_time)`` in s since the epoch."""
    trace_id: str
    span_id: str

    def params(self) -> dict[str, Any]:
        """Values of the ``{ko}``, ``{kp}``, ``{kh}``, ``{kt}``, ``{ks}`` placeholders."""
        return {"ko": self.org_id, "kp": self.project_id, "kh": self.hour_s,
                "kt": self.trace_id, "ks": self.span_id}


@dataclass(slots=True)
class Checkpoint:
    """Where a span copy stands; saved (atomically) after every committed page.

    Every day before ``day`` is copied whole; within ``day``, every span up to ``key``.
    """

    path: Path
    target: str = ""
    """The masked target URLs (for people reading the file)."""
    day: date | None = None
    """The day partition being copied; None before the first page."""
    key: SpanKey | None = None
    """Last copied span of ``day``; None at the start of it."""
    spans_copied: int = 0
    """Rows inserted over all runs (a page re-sent after a crash counts twice)."""
    batches: int = 0
    finished: bool = False
    """The span copy reached the end (rollups and verification may still follow)."""
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    @classmethod
    def load(cls, path: Path, target: str) -> Checkpoint:
        """The checkpoint at ``path``, or a new one when there is none.

        Raises:
            ConfigError: the file exists but cannot be read (delete it or use --restart).
        """
        if not path.exists():
            return cls(path, target)
        try:
            raw = json.loads(path.read_text())
            if raw.get("version") != _CHECKPOINT_VERSION:
                raise ValueError(f"version {raw.get('version')!r}")
            key = raw.get("key")
            return cls(path, target, date.fromisoformat(raw["day"]) if raw.get("day") else None,
                       SpanKey(str(key[0]), str(key[1]), int(key[2]), str(key[3]),
                               str(key[4])) if key else None, int(raw["spans_copied"]),
                       int(raw["batches"]), bool(raw["finished"]), str(raw["started_at"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"Cannot read the migration checkpoint {path} ({exc}): delete it"
                              " or pass --restart") from None

    @property
    def resuming(self) -> bool:
        """True when an earlier run committed at least one page."""
        return self.day is not None

    def save(self) -> None:
        """Write the file atomically (temp file, fsync, rename)."""
        body = {"version": _CHECKPOINT_VERSION, "target": self.target,
                "day": self.day.isoformat() if self.day else None,
                "key": [self.key.org_id, self.key.project_id, self.key.hour_s,
                        self.key.trace_id, self.key.span_id] if self.key else None,
                "spans_copied": self.spans_copied, "batches": self.batches,
                "finished": self.finished, "started_at": self.started_at,
                "updated_at": datetime.now(UTC).isoformat()}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".json.tmp")
        with tmp.open("w") as out:
            json.dump(body, out, indent=2)
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(self.path)


# --- spans ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DayTotals:
    """Newest-version spans of one day partition."""

    spans: int
    total_cost: Decimal
    """Sum of ``total_cost`` over them, exact."""


def span_totals_by_day(store: SpanStore) -> dict[date, DayTotals]:
    """Span count and cost per UTC day (``FINAL``: each span once), days ascending.

    Raises:
        StoreError: the query failed.
    """
    table = store.query_arrow(
        f"SELECT toDate(start_time) AS day, count() AS spans, sum(total_cost) AS cost"
        f" FROM {SPANS_TABLE} FINAL GROUP BY day ORDER BY day {_FINAL_SETTINGS}")
    return {row["day"]: DayTotals(int(row["spans"]), Decimal(row["cost"]))
            for row in table.to_pylist()}


def _day_bounds(day: date) -> dict[str, Any]:
    lo = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return {"lo": lo, "hi": lo + timedelta(days=1)}


def count_spans_before(store: SpanStore, checkpoint: Checkpoint) -> int:
    """Spans (FINAL) before the checkpoint's position: what earlier runs copied for sure.

    Raises:
        StoreError: the query failed.
    """
    if checkpoint.day is None:
        return 0
    params: dict[str, Any] = {"lo": _day_bounds(checkpoint.day)["lo"]}
    earlier = f"start_time < {{lo:{_TS}}}"
    if checkpoint.key is not None:
        params |= _day_bounds(checkpoint.day) | checkpoint.key.params()
        earlier = (f"({earlier} OR (start_time >= {{lo:{_TS}}} AND start_time < {{hi:{_TS}}}"
                   f" AND {_KEY_EXPR} <= {_KEY_PARAMS}))")
    table = store.query_arrow(f"SELECT count() AS n FROM {SPANS_TABLE} FINAL WHERE {earlier}"
                              f" {_FINAL_SETTINGS}", params)
    return int(table.column("n")[0].as_py())


def _pages(source: SpanStore, day: date, after: SpanKey | None,
           batch_rows: int) -> Iterator[tuple[pa.Table, SpanKey]]:
    while True:
        params = _day_bounds(day) | {"n": batch_rows}
        where = f"start_time >= {{lo:{_TS}}} AND start_time < {{hi:{_TS}}}"
        if after is not None:
            params |= after.params()
            where += f" AND {_KEY_EXPR} > {_KEY_PARAMS}"
        table = source.query_arrow(
            f"SELECT {_COLUMNS} FROM {SPANS_TABLE} FINAL WHERE {where}"
            f" ORDER BY org_id, project_id, toStartOfHour(start_time), trace_id, span_id"
            f" LIMIT {{n:UInt32}} {_FINAL_SETTINGS}", params)
        if table.num_rows == 0:
            return
        last = table.slice(table.num_rows - 1, 1)
        start_ns = int(last.column("start_time").cast(pa.int64())[0].as_py())
        value = {c: str(last.column(c)[0].as_py())
                 for c in ("org_id", "project_id", "trace_id", "span_id")}
        after = SpanKey(value["org_id"], value["project_id"], start_ns // _HOUR_NS * 3600,
                        value["trace_id"], value["span_id"])
        if not table.schema.equals(SPAN_SCHEMA):
            table = table.cast(SPAN_SCHEMA)
        yield table, after
        if table.num_rows < batch_rows:
            return


def copy_spans(source: SpanStore, target: SpanStore, checkpoint: Checkpoint,
               days: list[date], *, batch_rows: int = 50_000,
               on_batch: Callable[[int], None] | None = None) -> int:
    """Copy the newest version of every span of ``days`` from the checkpoint on.

    Args:
        source: the embedded span store.
        target: a migrated span store (ClickHouse).
        checkpoint: where to start; advanced and saved after every committed page.
        days: the source's day partitions, ascending (:func:`span_totals_by_day`).
        batch_rows: spans per page (one query and one insert each).
        on_batch: called with the number of rows of each committed page.

    Returns:
        Rows inserted by this call.

    Raises:
        StoreUnavailable: the target stopped answering (rerun to continue).
        StoreError: a read or insert failed.
    """
    if batch_rows < 1:
        raise ConfigError(f"Expected batch_rows >= 1, got {batch_rows}")
    copied = 0
    for day in days:
        if checkpoint.day is not None and day < checkpoint.day:
            continue
        after = checkpoint.key if checkpoint.day == day else None
        for table, last in _pages(source, day, after, batch_rows):
            target.append_batch(table)
            checkpoint.day, checkpoint.key = day, last
            checkpoint.spans_copied += table.num_rows
            checkpoint.batches += 1
            checkpoint.save()
            copied += table.num_rows
            if on_batch is not None:
                on_batch(table.num_rows)
    checkpoint.finished = True
    checkpoint.save()
    return copied


def on_cluster_clause(target: SpanStore) -> str:
    """`` ON CLUSTER `<name>` `` when ``target`` is laid out on a cluster, else ``""``."""
    layout = getattr(target, "layout", None)
    return f" ON CLUSTER `{layout.cluster}`" if layout is not None else ""


# --- control data -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ControlTableCopy:
    """What :func:`copy_control` did to one table."""

    table: str
    source_rows: int
    copied: int
    skipped: int
    """Rows whose primary key was already on the target."""


def _engine(url: str) -> Engine:
    try:
        return create_engine(url)
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise ConfigError(f"Cannot use control store URL {mask_url(url)!r}: {exc}") from None


def _model_tables(engine: Engine) -> list[Table]:
    present = set(inspect(engine).get_table_names())
    return [t for t in Base.metadata.sorted_tables if t.name in present]


def copy_control(source_url: str, target_url: str, *, chunk_rows: int = 1000
                 ) -> list[ControlTableCopy]:
    """Copy every control-store table from ``source_url`` to ``target_url`` (migrated).

    Tables go parents first; rows already on the target (same primary key) are skipped;
    each table is one transaction. On PostgreSQL the sequences of integer primary keys
    are advanced past the largest copied id.

    Raises:
        StoreError: a read or write failed, e.g. a row that clashes with a different row
            already on the target (same unique name, other id).
    """
    source, target = _engine(source_url), _engine(target_url)
    report: list[ControlTableCopy] = []
    try:
        target_tables = {t.name for t in _model_tables(target)}
        for table in _model_tables(source):
            if table.name not in target_tables:
                raise StoreError(f"Control table {table.name} is missing on the target"
                                 " (migration failed?)")
            report.append(_copy_table(source, target, table, chunk_rows))
    except SQLAlchemyError as exc:
        raise StoreError(f"Control store copy failed: {exc}") from exc
    finally:
        source.dispose()
        target.dispose()
    return report


def _copy_table(source: Engine, target: Engine, table: Table, chunk_rows: int
                ) -> ControlTableCopy:
    pk = list(table.primary_key.columns)
    with source.connect() as src:
        rows = [dict(r._mapping) for r in src.execute(select(table))]
    with target.begin() as dst:
        existing = {tuple(r) for r in dst.execute(select(*pk))}
        missing = [r for r in rows if tuple(r[c.name] for c in pk) not in existing]
        for i in range(0, len(missing), chunk_rows):
            dst.execute(table.insert(), missing[i:i + chunk_rows])
        if dst.dialect.name == "postgresql":
            for column in pk:
                if column.autoincrement is True or (
                        column.autoincrement == "auto" and len(pk) == 1
                        and column.type.python_type is int):
                    # setval(seq, max + 1, false): the next id handed out is max + 1.
                    dst.execute(text(
                        f"SELECT setval(pg_get_serial_sequence(:t, :c),"
                        f" (SELECT COALESCE(MAX({column.name}), 0) + 1 FROM {table.name}),"
                        f" false)"), {"t": table.name, "c": column.name})
    return ControlTableCopy(table.name, len(rows), len(missing), len(rows) - len(missing))


def control_row_counts(url: str) -> dict[str, int]:
    """Rows per control-store model table present at ``url``.

    Raises:
        StoreError: a query failed.
    """
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            return {t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
                    for t in _model_tables(engine)}
    except SQLAlchemyError as exc:
        raise StoreError(f"Counting control rows at {mask_url(url)!r} failed: {exc}") from exc
    finally:
        engine.dispose()


def unmodelled_tables(url: str) -> list[str]:
    """Tables at ``url`` that no model describes (not copied), without ``alembic_version``."""
    engine = _engine(url)
    try:
        known = set(Base.metadata.tables) | {"alembic_version"}
        return sorted(set(inspect(engine).get_table_names()) - known)
    finally:
        engine.dispose()


# --- verification -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Mismatch:
    """One figure that differs between source and target."""

    what: str
    """``spans 2026-11-03``, ``total_cost 2026-11-03``, ``spans total`` or ``table orgs``."""
    source: str
    target: str


def verify(source_days: Mapping[date, DayTotals] | None,
           target_days: Mapping[date, DayTotals] | None,
           source_rows: Mapping[str, int] | None,
           target_rows: Mapping[str, int] | None) -> list[Mismatch]:
    """Compare span counts and costs per day and in total, and rows per control table.

    A None pair is not compared (that part was not migrated).
    """
    out: list[Mismatch] = []
    if source_days is not None and target_days is not None:
        empty = DayTotals(0, Decimal(0))
        for day in sorted(set(source_days) | set(target_days)):
            src, dst = source_days.get(day, empty), target_days.get(day, empty)
            if src.spans != dst.spans:
                out.append(Mismatch(f"spans {day}", str(src.spans), str(dst.spans)))
            if src.total_cost != dst.total_cost:
                out.append(Mismatch(f"total_cost {day}", str(src.total_cost),
                                    str(dst.total_cost)))
        src_total = sum(d.spans for d in source_days.values())
        dst_total = sum(d.spans for d in target_days.values())
        if src_total != dst_total:
            out.append(Mismatch("spans total", str(src_total), str(dst_total)))
    if source_rows is not None and target_rows is not None:
        for name in sorted(set(source_rows) | set(target_rows)):
            if source_rows.get(name, 0) != target_rows.get(name, 0):
                out.append(Mismatch(f"table {name}", str(source_rows.get(name, 0)),
                                    str(target_rows.get(name, 0))))
    return out
