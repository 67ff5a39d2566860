"""An insert that returned survives kill -9 of the process that made it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from mentatlab.storage.chdb_store import ChdbSpanStore

_CHILD = textwrap.dedent("""
    import sys
    from pathlib import Path
    sys.path.insert(0, {here!r})
    from mentatlab.storage.chdb_store import ChdbSpanStore
    from spanfactory import make_table

    store = ChdbSpanStore(Path({path!r}))
    store.migrate()
    batch = 0
    while True:
        store.append_batch(make_table(range(batch * 200, batch * 200 + 200)))
        batch += 1
        print(batch * 200, flush=True)  # rows committed so far
""")


def test_committed_rows_survive_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "spans"
    code = _CHILD.format(here=str(Path(__file__).parent), path=str(path))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    reported = 0
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    try:
        while reported < 2000 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            reported = int(line)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    assert reported >= 2000, "the child stopped reporting commits"
    with ChdbSpanStore(path) as store:
        store.migrate()
        table = store.query_arrow("SELECT count() AS n FROM spans FINAL")
        found = int(table.column("n")[0].as_py())
    # Every reported row is there (the child may be a few batches ahead of what we read),
    # and no batch is half there.
    assert found >= reported
    assert found % 200 == 0
