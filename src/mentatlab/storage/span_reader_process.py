"""A read-only embedded span store in a child process, for copying one chDB store to another.

chDB opens one store folder per process, so copying an embedded store into a new embedded
store (unencrypted → encrypted, or re-encrypting under a new key) reads the source in a
child process: :class:`ChildSpanReader` is a :class:`~mentatlab.storage.base.SpanStore`
whose ``query_arrow`` runs in the child (``python -m mentatlab.storage.span_reader_process
<folder>``) and comes back as an Arrow IPC stream over a pipe; the data never touches the
disk on its way. The child opens the source with the keys it is handed (in its environment)
when the source is encrypted (its marker file), without them otherwise.

Wire format: one JSON line per request (``{"sql", "params"}``, datetimes and dates tagged),
answered by one status byte (``0`` ok, ``1`` error), an 8-byte little-endian length and the
payload (an Arrow IPC stream, or the error message in UTF-8).
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any

import pyarrow as pa

from mentatlab.errors import MentatLabError, StoreError
from mentatlab.governance.encryption import EncryptionKeys, parse_keys

__all__ = ["ChildSpanReader"]

_HEADER = struct.Struct("<BQ")
_KEY_ENV = "MENTATLAB_ENCRYPTION_KEY"
_KEY_FILE_ENV = "MENTATLAB_ENCRYPTION_KEY_FILE"


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"__datetime__": value.isoformat()}
    if isinstance(value, date):
        return {"__date__": value.isoformat()}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and "__datetime__" in value:
        return datetime.fromisoformat(value["__datetime__"])
    if isinstance(value, dict) and "__date__" in value:
        return date.fromisoformat(value["__date__"])
    return value


def _read_exact(stream: IO[bytes], size: int) -> bytes:
    data = stream.read(size)
    if data is None or len(data) != size:
        raise StoreError("The span reader process stopped answering")
    return data


class ChildSpanReader:
    """Read-only SpanStore over an embedded store opened in a child process.

    Args:
        folder: the source store folder.
        encryption_keys: the keys to open it with when it is encrypted; handed to the child
            in its environment only.

    Raises:
        StoreError: the child could not open the store (its message says why).
    """

    def __init__(self, folder: Path, encryption_keys: EncryptionKeys | None = None) -> None:
        self.folder = folder
        env = {k: v for k, v in os.environ.items() if k not in (_KEY_ENV, _KEY_FILE_ENV)}
        if encryption_keys is not None:
            env[_KEY_ENV] = encryption_keys.export_text()
        self._child = subprocess.Popen(
            [sys.executable, "-m", "mentatlab.storage.span_reader_process", str(folder)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        self.query_arrow("SELECT 1 AS ok")  # raises when the open failed

    def query_arrow(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        """Run a read query in the child; the answer as an Arrow table.

        Raises:
            StoreError: the query failed or the child is gone.
        """
        stdin, stdout = self._child.stdin, self._child.stdout
        if stdin is None or stdout is None or self._child.poll() is not None:
            raise StoreError(f"The span reader process for {self.folder} is not running")
        request = {"sql": sql, "params": {k: _encode(v) for k, v in (params or {}).items()}}
        try:
            stdin.write(json.dumps(request).encode() + b"\n")
            stdin.flush()
        except BrokenPipeError:
            raise StoreError(f"The span reader process for {self.folder} exited") from None
        status, size = _HEADER.unpack(_read_exact(stdout, _HEADER.size))
        payload = _read_exact(stdout, size)
        if status != 0:
            raise StoreError(payload.decode(errors="replace"))
        return pa.ipc.open_stream(payload).read_all()

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        """Refused: the reader is read-only.

        Raises:
            StoreError: always.
        """
        raise StoreError("The source span store is read-only")

    def append_batch(self, table: pa.Table) -> None:
        """Refused: the reader is read-only.

        Raises:
            StoreError: always.
        """
        raise StoreError("The source span store is read-only")

    def insert_table(self, name: str, table: pa.Table) -> None:
        """Refused: the reader is read-only.

        Raises:
            StoreError: always.
        """
        raise StoreError("The source span store is read-only")

    def migrate(self) -> None:
        """Nothing: the source is read as it is."""

    def close(self, wait_s: float = 30.0) -> None:
        """End the child (it closes the store) and wait up to ``wait_s`` s."""
        if self._child.stdin is not None and not self._child.stdin.closed:
            self._child.stdin.close()
        try:
            self._child.wait(wait_s)
        except subprocess.TimeoutExpired:
            self._child.kill()
            self._child.wait()
        if self._child.stdout is not None:
            self._child.stdout.close()

    def __enter__(self) -> ChildSpanReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _reply(out: IO[bytes], status: int, payload: bytes) -> None:
    out.write(_HEADER.pack(status, len(payload)))
    out.write(payload)
    out.flush()


def _serve(folder: Path) -> int:
    from mentatlab.storage.chdb_store import ChdbSpanStore
    from mentatlab.storage.encrypted_disk import is_encrypted_store

    out = sys.stdout.buffer
    try:
        keys = parse_keys(os.environ.get(_KEY_ENV, "")) if is_encrypted_store(folder) else None
        store = ChdbSpanStore(folder, query_timeout_s=0, encryption_keys=keys, read_only=True)
    except MentatLabError as exc:
        sys.stdin.buffer.readline()
        _reply(out, 1, str(exc).encode())
        return 1
    try:
        for line in sys.stdin.buffer:
            request = json.loads(line)
            try:
                table = store.query_arrow(request["sql"], {
                    k: _decode(v) for k, v in request["params"].items()} or None)
            except MentatLabError as exc:
                _reply(out, 1, str(exc).encode())
                continue
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, table.schema) as writer:
                writer.write_table(table)
            _reply(out, 0, sink.getvalue().to_pybytes())
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(_serve(Path(sys.argv[1])))
