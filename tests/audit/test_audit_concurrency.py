"""Concurrent appends from several threads and from two processes keep one valid chain.

The appenders share nothing but the database: the chain is serialized there (a database
lock, unique seq/prev_hash/hash), as with several server nodes.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator

import pytest

from mentatlab.storage.control import ControlStore, migrate_control_store

THREADS = 6
PER_THREAD = 25
PROCESS_APPENDS = 60

_APPENDER = textwrap.dedent("""
    import sys
    from mentatlab.storage.control import ControlStore
    store = ControlStore(sys.argv[1])
    store.audit.configure(checkpoint_every=7)
    print("ready", flush=True)
    sys.stdin.readline()  # start together
    for i in range(int(sys.argv[3])):
        store.audit.record("system", "test.append", org_id="acme", target=f"{sys.argv[2]}-{i}")
    store.close()
""")


@pytest.fixture
def control(control_store_url: str) -> Iterator[ControlStore]:
    migrate_control_store(control_store_url)
    store = ControlStore(control_store_url)
    store.audit.configure(checkpoint_every=7)
    yield store
    store.close()


def _assert_one_chain(control: ControlStore, expected: int, targets: set[str]) -> None:
    report = control.audit.verify()
    assert report.ok, [str(p) for p in report.problems]
    assert (report.entries, report.head_seq) == (expected, expected)
    entries = control.audit.entries(org_id="acme", limit=expected + 1)
    assert {e.target for e in entries} == targets
    assert [c.seq for c in control.audit.checkpoints()] == list(range(7, expected + 1, 7))


def test_threads_appending_at_once_keep_one_chain(control: ControlStore) -> None:
    start = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def append(name: str) -> None:
        start.wait()
        try:
            for i in range(PER_THREAD):
                control.audit.record("system", "test.append", org_id="acme",
                                     target=f"{name}-{i}")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=append, args=(f"t{n}",)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    _assert_one_chain(control, THREADS * PER_THREAD,
                      {f"t{n}-{i}" for n in range(THREADS) for i in range(PER_THREAD)})


def test_two_processes_appending_at_once_keep_one_chain(control: ControlStore,
                                                        control_store_url: str) -> None:
    procs = [subprocess.Popen(
        [sys.executable, "-c", _APPENDER, control_store_url, name, str(PROCESS_APPENDS)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name in ("p1", "p2")]
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        for proc in procs:  # both start appending now
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        for proc in procs:
            _, err = proc.communicate(timeout=180)
            assert proc.returncode == 0, err
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    _assert_one_chain(control, 2 * PROCESS_APPENDS,
                      {f"{p}-{i}" for p in ("p1", "p2") for i in range(PROCESS_APPENDS)})
