"""Leader election for background jobs: one node at a time runs each named job.

Several ``mentatctl serve`` nodes (or ``--workers`` processes) share one control store.
Jobs that must not run twice at once (the hourly-rollup build and the alert evaluator;
retention when it exists) take a named lock there first:

* **PostgreSQL**: a session-level advisory lock (``pg_try_advisory_lock``) held on one
  dedicated connection for as long as the node leads. PostgreSQL releases it when that
  session ends, so a node that dies or loses its connection hands leadership over
  without any lease or clock (https://www.postgresql.org/docs/current/explicit-locking.html#ADVISORY-LOCKS).
  Before each run the leader checks its session still answers; if not, it has lost the
  lock and stops running the job until it wins it again.
* **SQLite** (one machine): an exclusive ``flock`` on ``<database>.<job>.leader`` beside
  the database file, released by the kernel when the process exits.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import make_url

from mentatlab.errors import ConfigError

__all__ = ["LeaderLock", "advisory_key", "run_periodic"]

_log = logging.getLogger(__name__)

ACQUIRE_PERIOD_MAX_S = 5.0
"""A follower tries to win the lock at least this often (s): the failover delay."""


def advisory_key(name: str) -> int:
    """The signed 64-bit PostgreSQL advisory-lock key of job ``name`` (SHA-256 prefix)."""
    digest = hashlib.sha256(f"mentatlab.leader.{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class LeaderLock:
    """Leadership of one named job among the processes sharing a control store.

    Not thread-safe: use it from one task or thread.

    Args:
        url: SQLAlchemy URL of the control store (``sqlite:///…`` or ``postgresql…``).
        name: the job's name (``rollup``...); each name is an independent lock.

    Raises:
        ConfigError: a database that has neither advisory locks nor a local file.
    """

    def __init__(self, url: str, name: str) -> None:
        self.name = name
        self.key = advisory_key(name)
        parsed = make_url(url)
        self._engine: Any = None
        self._conn: Connection | None = None
        self._file: IO[bytes] | None = None
        self._path: Path | None = None
        self._always = False
        backend = parsed.get_backend_name()
        if backend == "postgresql":
            self._engine = create_engine(url, pool_size=1, max_overflow=0,
                                         pool_pre_ping=True)
        elif backend == "sqlite":
            database = parsed.database or ""
            if database in ("", ":memory:"):
                self._always = True  # a private in-memory store has one process
            else:
                self._path = Path(database).expanduser().with_name(
                    f"{Path(database).name}.{name}.leader")
        else:
            raise ConfigError(f"Leader election needs PostgreSQL or SQLite, got {backend!r}")

    @property
    def held(self) -> bool:
        """Whether this process holds the lock (as of the last acquire or check)."""
        return self._always or self._conn is not None or self._file is not None

    def try_acquire(self) -> bool:
        """Take the lock if free, or confirm it is still held; never waits.

        Returns:
            True when this process leads now.
        """
        if self._always:
            return True
        if self._path is not None:
            return self._try_flock()
        return self._try_advisory()

    def release(self) -> None:
        """Give up leadership (idempotent)."""
        if self._file is not None:
            file, self._file = self._file, None
            fcntl.flock(file, fcntl.LOCK_UN)
            file.close()
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
            except Exception:  # noqa: BLE001 — a dead session has released it already
                _log.debug("advisory unlock of %s failed", self.name, exc_info=True)
            finally:
                conn.invalidate()
                conn.close()

    def close(self) -> None:
        """Release and drop the connection pool."""
        self.release()
        if self._engine is not None:
            self._engine.dispose()

    def _try_flock(self) -> bool:
        if self._file is not None:
            return True
        assert self._path is not None
        self._path.parent.mkdir(parents=True, exist_ok=True)
        file = open(self._path, "ab")  # noqa: SIM115 — held open while leading
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.close()
            return False
        self._file = file
        return True

    def _try_advisory(self) -> bool:
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT 1"))
                return True
            except Exception:  # noqa: BLE001 — the session is gone, and with it the lock
                _log.warning("lost the control-store session of job %s; leadership lost",
                             self.name)
                conn, self._conn = self._conn, None
                conn.invalidate()
                conn.close()
        try:
            conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        except Exception:  # noqa: BLE001 — control store down: not the leader, retried later
            _log.warning("control store unreachable; job %s not run", self.name, exc_info=True)
            return False
        try:
            won = bool(conn.execute(text("SELECT pg_try_advisory_lock(:key)"),
                                    {"key": self.key}).scalar())
        except Exception:  # noqa: BLE001
            _log.warning("advisory lock of job %s failed", self.name, exc_info=True)
            won = False
        if not won:
            conn.close()
            return False
        self._conn = conn
        return True

    def __enter__(self) -> LeaderLock:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


async def run_periodic(job: Callable[[], object], interval_s: float, *, name: str,
                       leader: LeaderLock | None = None,
                       on_leadership: Callable[[bool], None] | None = None) -> None:
    """Run ``job`` in a worker thread now and every ``interval_s`` s, until cancelled.

    With ``leader``, each run first takes or confirms the lock, and a follower retries
    every ``min(interval_s, ACQUIRE_PERIOD_MAX_S)`` s, so a dead leader is replaced within
    about that long. A failed run is logged and redone by the next one. ``interval_s <= 0``
    returns at once. The lock is released when the task is cancelled.

    Args:
        job: the work of one run (blocking; runs in a thread).
        interval_s: seconds between runs.
        name: the job's name, for logs.
        leader: the job's lock; None runs unconditionally.
        on_leadership: called with True/False when this process gains/loses the lock.
    """
    if interval_s <= 0:
        return
    leading = False
    try:
        while True:
            if leader is not None:
                now_leading = await asyncio.to_thread(leader.try_acquire)
                if now_leading != leading:
                    leading = now_leading
                    _log.info("%s job: %s (pid %s)", name,
                              "this node leads" if leading else "another node leads",
                              os.getpid())
                    if on_leadership is not None:
                        on_leadership(leading)
                if not leading:
                    await asyncio.sleep(min(interval_s, ACQUIRE_PERIOD_MAX_S))
                    continue
            try:
                await asyncio.to_thread(job)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - keep the job alive; the next run redoes the work
                _log.exception("%s run failed; retrying in %s s", name, interval_s)
            await asyncio.sleep(interval_s)
    finally:
        if leader is not None:
            leader.release()
