"""Write-ahead log of processed span batches (embedded store; issue 18, decision 0022).

The writer appends every group commit here, after the pipeline (redacted, priced Arrow
tables with their ``ingested_at_ns`` stamp, never raw request bytes), and acknowledges the
requests once the append reached the operating system; a background thread inserts into
chDB behind it. On start, :func:`replay_into` inserts what the log holds that the store
lacks, then deletes the segment files.

File format: segment files ``<dir>/wal-<first stamp, 20 digits>.log``, each a sequence of
frames::

    magic  b"MWAL"          4 bytes
    length of the payload   4 bytes, little-endian unsigned
    crc32                   4 bytes, little-endian unsigned, zlib.crc32 of stamp + payload
    stamp                   8 bytes, little-endian signed (the batch's ingested_at_ns)
    payload                 an Arrow IPC stream holding one table with ``SPAN_SCHEMA``

A frame whose header or payload is cut short, or whose CRC does not match, ends the
segment: only the last, unacknowledged append can be torn by a crash (an append is
acknowledged after it was written whole), so what follows it is never acknowledged data.

Durability: ``write`` returns once the bytes are in the OS page cache, which survives
``kill -9`` of the process; with ``fsync=True`` every append is also ``fsync``'ed (one per
group commit), which survives a power cut at the cost of a disk flush per commit.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from mentatlab.errors import StoreError
from mentatlab.storage.base import SpanStore

__all__ = ["WAL_FOLDER", "ReplayReport", "WalRecord", "WriteAheadLog", "leftover_segments",
           "read_segment", "replay_into", "replay_leftover"]

_log = logging.getLogger(__name__)

MAGIC = b"MWAL"
_HEADER = struct.Struct("<4sIIq")
"""magic, payload length, crc32 of stamp + payload, stamp."""
_STAMP = struct.Struct("<q")
WAL_FOLDER = "_wal"
"""The log's folder inside an embedded store's folder (``<store>/_wal``)."""


@dataclass(frozen=True, slots=True)
class WalRecord:
    """One group commit read back from the log."""

    stamp_ns: int
    """The ``ingested_at_ns`` of every row of the batch."""
    table: pa.Table


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """What :func:`replay_into` did."""

    spans_inserted: int
    spans_already_stored: int
    """Logged spans the store held already (inserted before the crash, not yet trimmed)."""
    last_stamp_ns: int
    """The newest stamp in the log (0 when empty): later commits must be stamped above it."""


@dataclass(slots=True)
class _Segment:
    path: Path
    last_stamp_ns: int
    num_bytes: int


def _segment_name(first_stamp_ns: int) -> str:
    return f"wal-{first_stamp_ns:020d}.log"


def encode_frame(stamp_ns: int, table: pa.Table) -> list[bytes | pa.Buffer]:
    """The frame of one batch, as the header and the payload buffer (not joined)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    payload = sink.getvalue()
    crc = zlib.crc32(payload, zlib.crc32(_STAMP.pack(stamp_ns)))
    return [_HEADER.pack(MAGIC, payload.size, crc, stamp_ns), payload]


def read_segment(path: Path) -> tuple[list[WalRecord], bool]:
    """The whole frames of one segment file, in order, and whether its tail was torn.

    A torn tail (a header or payload cut short, a wrong magic or CRC) ends the segment;
    the frames before it are returned.

    Raises:
        OSError: the file cannot be read.
    """
    data = memoryview(path.read_bytes())
    records: list[WalRecord] = []
    offset = 0
    while offset < len(data):
        if len(data) - offset < _HEADER.size:
            return records, True
        magic, length, crc, stamp = _HEADER.unpack_from(data, offset)
        start = offset + _HEADER.size
        payload = data[start:start + length]
        if magic != MAGIC or len(payload) < length:
            return records, True
        if zlib.crc32(payload, zlib.crc32(_STAMP.pack(stamp))) != crc:
            return records, True
        try:
            table = pa.ipc.open_stream(pa.py_buffer(payload)).read_all()
        except pa.ArrowInvalid:  # a CRC collision on garbage: treat as torn
            return records, True
        records.append(WalRecord(stamp, table))
        offset = start + length
    return records, False


def _write_all(fd: int, parts: list[bytes | pa.Buffer]) -> int:
    total = 0
    for part in parts:
        view = memoryview(part)
        while view:
            written = os.write(fd, view)
            view = view[written:]
            total += written
    return total


class WriteAheadLog:
    """Append-only log of stamped span batches in segment files under ``directory``.

    Appends come from one thread (the span writer); :meth:`trim` may be called from
    another (the inserter). Segments roll at ``segment_bytes``; a segment is deleted by
    :meth:`trim` once every batch in it has been inserted into the store.

    Args:
        directory: the log's folder (created if missing).
        segment_bytes: a segment is closed and a new one started past this size (bytes).
        fsync: ``fsync`` every append (and the folder when a segment is created).

    Raises:
        StoreError: the folder cannot be created.
    """

    def __init__(self, directory: Path, *, segment_bytes: int = 64 * 1024 * 1024,
                 fsync: bool = False) -> None:
        self.directory = Path(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"Cannot create the write-ahead log folder {directory}: {exc}") \
                from exc
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        self._lock = threading.Lock()
        self._closed: list[_Segment] = []
        self._active: _Segment | None = None
        self._fd: int | None = None
        self._disk_bytes = sum(p.stat().st_size for p in self.segment_paths())

    def segment_paths(self) -> list[Path]:
        """The segment files on disk, oldest first."""
        return sorted(self.directory.glob("wal-*.log"))

    @property
    def disk_bytes(self) -> int:
        """Bytes of every segment file of this log on disk (replayed ones included)."""
        return self._disk_bytes

    def append(self, stamp_ns: int, table: pa.Table) -> int:
        """Append one batch stamped ``stamp_ns`` (greater than every earlier stamp).

        Returns once the frame was written to the OS (and ``fsync``'ed when configured).

        Returns:
            Bytes appended.

        Raises:
            StoreError: the write failed (disk full, I/O error); the segment is closed,
                so a partial frame stays a torn tail and the next append starts a new one.
        """
        parts = encode_frame(stamp_ns, table)
        with self._lock:
            try:
                if self._active is None or self._active.num_bytes >= self.segment_bytes:
                    self._roll(stamp_ns)
                assert self._active is not None and self._fd is not None
                written = _write_all(self._fd, parts)
                if self.fsync:
                    os.fsync(self._fd)
            except OSError as exc:
                self._close_active()
                raise StoreError(f"Write-ahead log append failed in {self.directory}: "
                                 f"{exc}") from exc
            self._active.num_bytes += written
            self._active.last_stamp_ns = stamp_ns
            self._disk_bytes += written
            return written

    def _roll(self, first_stamp_ns: int) -> None:
        self._close_active()
        path = self.directory / _segment_name(first_stamp_ns)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        self._active = _Segment(path, first_stamp_ns, 0)
        if self.fsync:
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    def _close_active(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._active is not None:
            self._closed.append(self._active)
            self._active = None

    def trim(self, inserted_through_ns: int) -> int:
        """Delete the segments whose every batch is stamped at or below the watermark.

        The active segment is closed and deleted too when it is wholly inserted (the next
        append starts a new one), so an idle log holds no file.

        Returns:
            Segment files deleted.
        """
        with self._lock:
            if self._active is not None and self._active.last_stamp_ns <= inserted_through_ns:
                self._close_active()
            keep: list[_Segment] = []
            removed = 0
            for segment in self._closed:
                if segment.last_stamp_ns <= inserted_through_ns:
                    segment.path.unlink(missing_ok=True)
                    self._disk_bytes -= segment.num_bytes
                    removed += 1
                else:
                    keep.append(segment)
            self._closed = keep
            return removed

    def forget_replayed(self, paths: list[Path]) -> None:
        """Delete segment files left by an earlier run, once their batches are stored."""
        with self._lock:
            for path in paths:
                try:
                    size = path.stat().st_size
                except FileNotFoundError:
                    continue
                path.unlink()
                self._disk_bytes -= size

    def close(self) -> None:
        """Close the active segment's file (the files stay until trimmed)."""
        with self._lock:
            self._close_active()


def _stored_keys(store: SpanStore, low_ns: int, high_ns: int) -> set[tuple[int, str, str]]:
    """(stamp, trace_id, span_id) of the rows stamped in [low, high] (raw rows, no FINAL)."""
    table = store.query_arrow(
        "SELECT ingested_at_ns, trace_id, span_id FROM spans"
        " WHERE ingested_at_ns >= {lo:Int64} AND ingested_at_ns <= {hi:Int64}",
        {"lo": low_ns, "hi": high_ns})
    return set(zip(table.column("ingested_at_ns").to_pylist(),
                   table.column("trace_id").to_pylist(),
                   table.column("span_id").to_pylist(), strict=True))


def _missing_rows(record: WalRecord, stored: set[tuple[int, str, str]]) -> pa.Table:
    if not stored:
        return record.table
    mask = [(record.stamp_ns, t, s) not in stored for t, s in
            zip(record.table.column("trace_id").to_pylist(),
                record.table.column("span_id").to_pylist(), strict=True)]
    return record.table if all(mask) else record.table.filter(pa.array(mask, pa.bool_()))


def iter_records(wal: WriteAheadLog) -> Iterator[tuple[Path, list[WalRecord]]]:
    """Each segment file on disk with its whole frames (torn tails logged and skipped)."""
    for path in wal.segment_paths():
        records, torn = read_segment(path)
        if torn:
            _log.warning("write-ahead log segment %s ends in a torn frame (a write cut by "
                         "a crash, never acknowledged); %s whole batches before it are kept",
                         path.name, len(records))
        yield path, records


def replay_into(store: SpanStore, wal: WriteAheadLog, schema: pa.Schema,
                insert_bytes: int = 64 * 1024 * 1024) -> ReplayReport:
    """Insert into ``store`` the logged rows it lacks, then delete the replayed segments.

    Idempotent: a row is skipped when the store already holds a row with the same stamp
    (``ingested_at_ns``) and ``(trace_id, span_id)`` — a batch inserted before the crash
    but not yet trimmed, wholly or in part. Segments are replayed one at a time (one in
    memory) and each is deleted once every insert of its rows returned; a kill during
    replay leaves the rest, and the next start skips what this one inserted.

    Args:
        store: the span store (``append_batch``, ``query_arrow``).
        wal: the log, before its first append.
        schema: the schema every logged table must have (``SPAN_SCHEMA``).
        insert_bytes: rows are inserted in batches of about this many bytes.

    Returns:
        Rows inserted, rows found already stored, and the newest stamp.

    Raises:
        StoreError: a logged table has another schema (an upgrade across a schema change:
            stop the old version with SIGTERM, which empties the log, first), or an
            insert failed (the segments stay for the next start).
    """
    paths = wal.segment_paths()
    if paths:
        _log.warning("replaying the write-ahead log left by an unclean stop: %s segment "
                     "files, %s bytes", len(paths), sum(p.stat().st_size for p in paths))
    inserted = already = last_ns = 0
    for path, records in iter_records(wal):  # one segment in memory at a time
        for record in records:
            if not record.table.schema.equals(schema):
                raise StoreError(
                    f"The write-ahead log in {wal.directory} holds batches of another span "
                    "schema (written by another version); start that version once to "
                    "replay it, or move the folder away to discard them")
        if records:
            done = _replay_segment(store, records, insert_bytes)
            inserted += done
            already += sum(r.table.num_rows for r in records) - done
            last_ns = max(last_ns, *(r.stamp_ns for r in records))
        # Every insert of this segment returned: its rows are stored, the file can go.
        wal.forget_replayed([path])
    if paths:
        _log.warning("write-ahead log replayed: %s spans inserted, %s were already stored",
                     inserted, already)
    return ReplayReport(inserted, already, last_ns)


def _replay_segment(store: SpanStore, records: list[WalRecord], insert_bytes: int) -> int:
    """Insert the rows of ``records`` the store lacks; how many were inserted."""
    stored = _stored_keys(store, min(r.stamp_ns for r in records),
                          max(r.stamp_ns for r in records))
    inserted = 0
    pending: list[pa.Table] = []
    pending_bytes = 0
    for record in records:
        missing = _missing_rows(record, stored)
        if missing.num_rows:
            pending.append(missing)
            pending_bytes += missing.nbytes
        if pending and pending_bytes >= insert_bytes:
            batch = pa.concat_tables(pending).combine_chunks()
            store.append_batch(batch)
            inserted += batch.num_rows
            pending, pending_bytes = [], 0
    if pending:
        batch = pa.concat_tables(pending).combine_chunks()
        store.append_batch(batch)
        inserted += batch.num_rows
    return inserted


def leftover_segments(store_folder: Path) -> list[Path]:
    """Segment files in the log of the embedded store at ``store_folder``, oldest first.

    Non-empty only after an unclean stop of a server with the log on (a clean stop inserts
    everything and deletes the files): acknowledged spans that the store may lack.
    """
    return sorted((Path(store_folder) / WAL_FOLDER).glob("wal-*.log"))


def replay_leftover(store: SpanStore, store_folder: Path,
                    insert_bytes: int = 64 * 1024 * 1024) -> ReplayReport:
    """Replay the log a crash left in ``<store_folder>/_wal`` into ``store``, if any.

    For every path that opens an embedded store's folder itself rather than through
    ``mentatctl serve`` (``mentatctl migrate``, ``governance copy-store``): what the
    server would replay at its next start is inserted first, so a copy or a read of the
    folder holds every acknowledged span. Idempotent, like :func:`replay_into`.

    Args:
        store: the store opened on ``store_folder``, writable (not read-only).
        store_folder: the embedded store's folder.
        insert_bytes: rows are inserted in batches of about this many bytes.

    Returns:
        What was replayed (all zero without a log).

    Raises:
        StoreError: a logged batch has another schema, or an insert failed (the log stays).
    """
    if not leftover_segments(store_folder):
        return ReplayReport(0, 0, 0)
    from mentatlab.model.schema import SPAN_SCHEMA

    return replay_into(store, WriteAheadLog(Path(store_folder) / WAL_FOLDER), SPAN_SCHEMA,
                       insert_bytes=insert_bytes)
