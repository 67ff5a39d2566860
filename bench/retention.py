"""Retention deletes on chDB: lightweight ``DELETE`` vs ``ALTER … DELETE``, ``DROP
PARTITION``, and one GDPR erasure (governance/retention.py, governance/erasure.py;
decision 0019).

Builds a store of ``--spans`` synthetic spans over 30 days (bench/_synthetic.py), resolved
so the ledger and aggregates hold them and merged to one part per day, then on it, in turn:

* ``lightweight``: ``DELETE FROM spans WHERE org_id = <A> AND start_time < now - 15 days``
  (what the retention job runs for an org with a shorter retention), then a ``count()``;
* ``mutation``: the same for org ``<B>`` (the next largest) as ``ALTER TABLE spans DELETE
  … SETTINGS mutations_sync = 2`` (a rewrite of every part it touches);
* ``drop``: ``DROP PARTITION`` of the oldest day;
* ``erasure``: :func:`erase_subject` of the most frequent ``user_id`` (every table, disk
  purge included).

Usage: .venv/bin/python bench/retention.py [--spans 500000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _synthetic import synthetic_table  # noqa: E402

from mentatlab.governance.erasure import erase_subject  # noqa: E402
from mentatlab.resolver.resolver import Resolver  # noqa: E402
from mentatlab.server.components import build_price  # noqa: E402
from mentatlab.settings import Settings  # noqa: E402
from mentatlab.storage.chdb_store import ChdbSpanStore  # noqa: E402

_CUT = "start_time < now64(9) - toIntervalDay(15)"


def _build(folder: Path, num_spans: int) -> tuple[str, str, str]:
    store = ChdbSpanStore(folder)
    store.migrate()
    table = synthetic_table(num_spans, days=30, analytics=True)
    for start in range(0, table.num_rows, 100_000):
        store.append_batch(table.slice(start, 100_000))
    Resolver(store, build_price(Settings(data_dir=folder.parent))).run_pass(time.time_ns())
    store.execute("OPTIMIZE TABLE spans FINAL")
    orgs = store.query_arrow("SELECT org_id, count() AS n FROM spans GROUP BY org_id"
                             " ORDER BY n DESC LIMIT 2").column("org_id").to_pylist()
    user = store.query_arrow("SELECT user_id, count() AS n FROM spans WHERE user_id != ''"
                             " GROUP BY user_id ORDER BY n DESC LIMIT 1").to_pylist()
    store.close()
    return str(orgs[0]), str(orgs[-1]), str(user[0]["user_id"]) if user else ""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spans", type=int, default=500_000)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="mentat-retention-"))
    try:
        folder = root / "spans"
        org_a, org_b, user = _build(folder, args.spans)
        store = ChdbSpanStore(folder)

        def rows(where: str) -> int:
            return int(store.query_arrow(f"SELECT count() AS n FROM spans WHERE {where}")
                       .column("n")[0].as_py())

        def lightweight() -> str:
            where = f"org_id = '{org_a}' AND {_CUT}"
            num = rows(where)
            store.execute(f"DELETE FROM spans WHERE {where}")
            return f"{num:,} rows; {rows('1'):,} spans left"

        def mutation() -> str:
            where = f"org_id = '{org_b}' AND {_CUT}"
            num = rows(where)
            store.execute(f"ALTER TABLE spans DELETE WHERE {where} SETTINGS mutations_sync = 2")
            return f"{num:,} rows; {rows('1'):,} spans left"

        def drop() -> str:
            pid = store.query_arrow("SELECT min(partition_id) AS p FROM system.parts WHERE"
                                    " database = currentDatabase() AND table = 'spans'"
                                    " AND active").column("p")[0].as_py()
            num = rows(f"_partition_id = '{pid}'")
            store.execute(f"ALTER TABLE spans DROP PARTITION ID '{pid}'")
            return f"{num:,} rows"

        def erasure() -> str:
            receipt = erase_subject(store, "user_id", user, salt=b"bench")
            return (f"{receipt.total:,} rows in {len(receipt.counts)} tables, "
                    f"{receipt.purged_parts} parts purged")

        print(f"{args.spans:,} spans over 30 days; orgs {org_a}, {org_b}, user {user!r}; "
              f"load average {os.getloadavg()}")
        try:
            for name, run in (("lightweight", lightweight), ("mutation", mutation),
                              ("drop", drop), ("erasure", erasure)):
                started = time.perf_counter()
                note = run()
                print(f"{name:12s} {(time.perf_counter() - started) * 1000:9.0f} ms  {note}")
        finally:
            store.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
