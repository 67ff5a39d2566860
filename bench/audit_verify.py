"""How long ``verify`` takes over a long audit chain, and how fast single appends are.

Builds a valid chain of ``--entries`` entries straight into a fresh control store (the
same formula as ``AuditLog.record``, inserted in batches so building takes seconds, with a
checkpoint every 1,000 entries signed with a throwaway Ed25519 key), then times
``AuditLog.verify`` ``--rounds`` times (the walk plus the checkpoint signatures; what
``mentatctl audit verify`` runs). Then times ``--appends`` single ``record`` calls (each its
own locked transaction, as a route does). SQLite in a temporary folder by default;
``--url`` for another control store (a PostgreSQL database that is empty or disposable:
the audit tables are cleared first).

Usage: .venv/bin/python bench/audit_verify.py [--entries 100000] [--rounds 3]
       [--appends 2000] [--url postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import delete, insert

from mentatlab.storage.control import ControlStore, migrate_control_store
from mentatlab.storage.control.audit import GENESIS_HASH, canonical_json, entry_hash
from mentatlab.storage.control.models import AuditCheckpoint, AuditEntry

_ACTIONS = ("key.created", "key.revoked", "member.role_changed", "budget.updated", "export")


def build_chain(control: ControlStore, entries: int, key: Ed25519PrivateKey) -> float:
    """Insert a valid chain of ``entries`` entries; returns the seconds it took."""
    started = time.perf_counter()
    control.audit.configure(checkpoint_every=1000, signing_key=key)
    with control.engine.begin() as conn:
        conn.execute(delete(AuditCheckpoint))
        conn.execute(delete(AuditEntry))
    prev = GENESIS_HASH
    at0 = datetime(2026, 12, 1, tzinfo=UTC)
    rows: list[dict[str, object]] = []
    for seq in range(1, entries + 1):
        at = at0 + timedelta(milliseconds=seq)
        org = f"org{seq % 7}"
        details = {"role": "read", "name": f"key {seq}", "n": seq}
        action = _ACTIONS[seq % len(_ACTIONS)]
        digest = entry_hash(prev, seq, at, f"key:{seq % 13:032x}", action, org, None,
                            f"target-{seq}", details)
        rows.append({"seq": seq, "at": at, "actor": f"key:{seq % 13:032x}", "action": action,
                     "org_id": org, "project_id": None, "target": f"target-{seq}",
                     "details": canonical_json(details).decode(), "prev_hash": prev,
                     "hash": digest})
        prev = digest
        if len(rows) == 1000 or seq == entries:
            with control.engine.begin() as conn:
                conn.execute(insert(AuditEntry), rows)
            rows = []
            if seq % 1000 == 0:  # the signed checkpoint record() takes every 1,000 entries
                control.audit.checkpoint()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--appends", type=int, default=2000)
    parser.add_argument("--url", default="")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = args.url or f"sqlite:///{folder}/control.db"
        migrate_control_store(url)
        control = ControlStore(url)
        try:
            key = Ed25519PrivateKey.generate()
            built_s = build_chain(control, args.entries, key)
            print(f"{control.engine.dialect.name}: built {args.entries:,} entries in "
                  f"{built_s:.1f} s; load average {os.getloadavg()}")
            times = []
            for _ in range(args.rounds):
                report = control.audit.verify()
                assert report.ok, report.problems[:5]
                times.append(report.seconds)
                print(f"verify: {report.entries:,} entries, {report.checkpoints} checkpoints "
                      f"({report.signed_checkpoints} signed) in {report.seconds:.2f} s")
            print(f"verify median {statistics.median(times):.2f} s "
                  f"({args.entries / statistics.median(times):,.0f} entries/s)")
            started = time.perf_counter()
            for i in range(args.appends):
                control.audit.record("system", "bench.append", org_id="org0", target=str(i))
            append_s = time.perf_counter() - started
            print(f"record: {args.appends:,} appends in {append_s:.2f} s "
                  f"({append_s / args.appends * 1000:.2f} ms each); "
                  f"load average {os.getloadavg()}")
            assert control.audit.verify().ok
        finally:
            control.close()


if __name__ == "__main__":
    main()
