"""GDPR erasure (governance/erasure.py) on both span backends: every row about a user or a
customer goes from spans, the settled tables, the ledger and the per-person aggregates;
other subjects and the person-free cost totals stay; on chDB the value is gone from the
files on disk (positive control: it is found there before)."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

from disk_scan import find_values
from test_retention import _spans

from mentatlab.governance.erasure import erase_subject, subject_hash
from mentatlab.resolver.resolver import Resolver
from mentatlab.resolver.settle import Settler
from mentatlab.server.components import build_price
from mentatlab.settings import Settings
from mentatlab.storage.base import SpanStore
from mentatlab.storage.chdb_store import ChdbSpanStore

ALICE = "alice.erase-me@example.com"
BOB = "bob.keep-me@example.com"


def _fill(store: SpanStore, tmp_path: Path) -> None:
    for days, user, customer, org in ((1, ALICE, "cust-a", "acme"), (2, ALICE, "cust-a", "acme"),
                                      (1, BOB, "cust-b", "acme"), (3, ALICE, "cust-a", "globex")):
        # the user id also sits in the attributes (enduser.id), as an SDK would send it
        table = _spans(org, days, trace=hash((user, days, org)) & 0xFFFFFF, user=user,
                       customer=customer)
        store.append_batch(table)
    Resolver(store, build_price(Settings(data_dir=tmp_path))).run_pass(time.time_ns())
    Settler(store, 0.05).run_pass(10**19, now_ns=time.time_ns() + 10**12)


def _where(store: SpanStore, table: str, condition: str) -> int:
    return int(store.query_arrow(f"SELECT count() AS n FROM {table} WHERE {condition}")
               .column("n")[0].as_py())


def _total_cost(store: SpanStore, table: str) -> Decimal:
    return Decimal(store.query_arrow(f"SELECT sum(total_cost) AS c FROM {table}")
                   .column("c")[0].as_py())


def test_erasure_removes_a_user_everywhere_and_counts_it(store: SpanStore, tmp_path: Path) -> None:
    _fill(store, tmp_path)
    cost_before = _total_cost(store, "agg_cost_hour")
    assert _where(store, "spans", f"user_id = '{ALICE}'") == 12

    receipt = erase_subject(store, "user_id", ALICE, salt=b"installation-salt")

    assert receipt.counts["spans"] == 12
    assert receipt.counts["span_timing"] == 12 and receipt.counts["trace_facts"] == 3
    assert receipt.counts["agg_principal_hour"] >= 1 and receipt.counts["span_ledger"] >= 3
    assert receipt.counts["step_counts"] == 12 and receipt.counts["trace_summary"] == 3
    assert receipt.num_traces == 3 and receipt.total == sum(receipt.counts.values())
    assert receipt.subject_hash == subject_hash(b"installation-salt", "user_id", ALICE)
    assert ALICE not in str(receipt.details())
    for table in ("spans", "span_timing", "trace_facts", "span_ledger", "agg_principal_hour",
                  "agg_principal_minute"):
        assert _where(store, table, f"user_id = '{ALICE}'") == 0, table
        assert _where(store, table, f"user_id = '{BOB}'") > 0, f"{table}: Bob stays"
    assert _total_cost(store, "agg_cost_hour") == cost_before, "person-free totals stay"
    again = erase_subject(store, "user_id", ALICE, salt=b"installation-salt")
    assert again.total == 0


def test_erasure_by_customer_in_one_org(store: SpanStore, tmp_path: Path) -> None:
    _fill(store, tmp_path)
    receipt = erase_subject(store, "customer_id", "cust-a", salt=b"s", org_id="globex")
    assert receipt.counts["spans"] == 4 and receipt.org_id == "globex"
    assert _where(store, "spans", "customer_id = 'cust-a' AND org_id = 'acme'") == 8
    assert _where(store, "spans", "customer_id = 'cust-a' AND org_id = 'globex'") == 0


def test_erased_values_leave_the_disk(chdb_store: ChdbSpanStore, tmp_path: Path) -> None:
    _fill(chdb_store, tmp_path)
    chdb_store.execute("OPTIMIZE TABLE spans FINAL")  # merged parts: outdated ones stay too
    before = find_values(chdb_store.path, [ALICE, BOB])
    assert before.get(ALICE) and before.get(BOB), "positive control: both on disk before"

    receipt = erase_subject(chdb_store, "user_id", ALICE, salt=b"s")

    assert receipt.purged_parts > 0
    after = find_values(chdb_store.path, [ALICE, BOB])
    assert ALICE not in after, f"still on disk: {after.get(ALICE)}"
    assert after.get(BOB), "Bob's rows are still there to be found"
    assert _where(chdb_store, "spans", f"user_id = '{BOB}'") == 4, "the store reads fine"
