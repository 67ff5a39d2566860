"""Leader election on the control store: PostgreSQL advisory locks and SQLite flock."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from mentatlab.errors import ConfigError
from mentatlab.storage.control.leader import LeaderLock, advisory_key, run_periodic


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'control.db'}"


def test_sqlite_one_holder_per_job_until_released(sqlite_url: str) -> None:
    a, b = LeaderLock(sqlite_url, "rollup"), LeaderLock(sqlite_url, "rollup")
    other_job = LeaderLock(sqlite_url, "retention")
    try:
        assert a.try_acquire()
        assert a.try_acquire()  # confirming is idempotent
        assert not b.try_acquire()
        assert other_job.try_acquire()  # jobs are independent locks
        a.release()
        assert not a.held
        assert b.try_acquire()
        assert not a.try_acquire()
    finally:
        for lock in (a, b, other_job):
            lock.close()


def test_unsupported_control_store_is_refused() -> None:
    with pytest.raises(ConfigError, match="PostgreSQL or SQLite"):
        LeaderLock("mysql://u@h/db", "rollup")


def test_keys_differ_per_job_and_fit_bigint() -> None:
    keys = {advisory_key(name) for name in ("rollup", "retention", "alerts")}
    assert len(keys) == 3
    assert all(-(2**63) <= k < 2**63 for k in keys)


def test_postgres_advisory_lock_moves_when_the_leader_session_dies(postgres_url: str) -> None:
    job = f"job-{uuid.uuid4().hex[:8]}"
    a, b = LeaderLock(postgres_url, job), LeaderLock(postgres_url, job)
    admin = create_engine(postgres_url)
    try:
        assert a.try_acquire()
        assert not b.try_acquire()
        # The lock is a real server-side advisory lock, visible in pg_locks.
        with admin.connect() as conn:
            holders = conn.execute(text(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND ((classid::bigint << 32) | objid::bigint) = (:key)::bigint"),
                {"key": advisory_key(job)}).scalars().all()
            assert len(holders) == 1
            # The leader's session is killed (a node crash or a network cut looks the same).
            # With a timeout (ms) the call returns once the backend has exited, and with it
            # its locks; without one it only signals it (this test then raced its exit).
            ended = conn.execute(text("SELECT pg_terminate_backend(:pid, 10000)"),
                                 {"pid": holders[0]}).scalar()
            assert ended is True
        assert b.try_acquire()  # PostgreSQL released it with the session
        assert not a.try_acquire()  # the old leader notices and follows
        assert not a.held
    finally:
        a.close()
        b.close()
        admin.dispose()


async def test_only_the_leader_runs_the_job_and_a_follower_takes_over(sqlite_url: str,
                                                                   monkeypatch: pytest.MonkeyPatch
                                                                   ) -> None:
    monkeypatch.setattr("mentatlab.storage.control.leader.ACQUIRE_PERIOD_MAX_S", 0.05)
    runs = {"a": 0, "b": 0}
    changes: list[tuple[str, bool]] = []

    def task(name: str) -> asyncio.Task[None]:
        def job() -> None:
            runs[name] += 1

        return asyncio.create_task(run_periodic(
            job, 0.05, name=name, leader=LeaderLock(sqlite_url, "rollup"),
            on_leadership=lambda leads: changes.append((name, leads))))

    first = task("a")
    await asyncio.sleep(0.3)
    second = task("b")
    await asyncio.sleep(0.5)
    assert runs["a"] >= 3
    assert runs["b"] == 0
    first.cancel()  # the leader stops (released on cancel); the follower takes over
    with pytest.raises(asyncio.CancelledError):
        await first
    before = runs["a"]
    await asyncio.sleep(0.5)
    second.cancel()
    with pytest.raises(asyncio.CancelledError):
        await second
    assert runs["a"] == before
    assert runs["b"] >= 3
    assert changes == [("a", True), ("b", True)]
