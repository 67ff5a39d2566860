"""Latency of the oversight and security reads (issue 17, decision 0021) over N spans.

Builds a fresh chDB store of N synthetic spans (bench/_synthetic.py with the analytics
shape: 30 days, 40 projects, prompt versions on every span) whose ``attributes`` are
~600-byte chat payloads (8 templates with a random id each, so they do not compress to
nothing), one span in 1,000 an approval (about half decided by the span itself, the rest
pending); the policy decision columns are added (as migration 9 would) and 1 span in
1,000 carries a ``builtin.prompt_injection`` or a ``block`` decision.

Times, median of 3 after one warm-up: ``approval_metrics`` over 1 and 7 days (horizon 7
days), ``seen_versions`` over 7 days, ``find_signals`` (all span kinds) over 1 hour,
1 day and 7 days (new-tool baseline 30 days).

Usage: .venv/bin/python bench/governance_signals.py [--spans 1000000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _synthetic import synthetic_table  # noqa: E402
from _timing import median_ms  # noqa: E402

from mentatlab.analytics.approvals import approval_metrics  # noqa: E402
from mentatlab.analytics.query import QueryParams, TimeRange  # noqa: E402
from mentatlab.analytics.security_signals import find_signals  # noqa: E402
from mentatlab.analytics.versions import seen_versions  # noqa: E402
from mentatlab.storage.chdb_store import ChdbSpanStore  # noqa: E402

_WORDS = ("refund order shipping invoice account password reset billing plan upgrade "
          "cancel subscription delivery address warranty").split()


def _attributes(table: pa.Table, rng: np.random.Generator) -> pa.Array:
    n = table.num_rows
    templates = [orjson.dumps({
        "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.input.messages": [
            {"role": "system", "parts": [{"type": "text", "content": " ".join(
                rng.choice(_WORDS, 30))}]},
            {"role": "user", "parts": [{"type": "text", "content": " ".join(
                rng.choice(_WORDS, 40)) + " ticket {id}"}]}]}).decode() for _ in range(8)]
    pick = rng.integers(0, 8, n)
    ids = rng.integers(0, 2**62, n)
    out = [templates[p].replace("{id}", f"{i:x}") for p, i in zip(pick, ids, strict=True)]
    for row in np.flatnonzero(rng.random(n) < 0.001):
        approval = {"mentat.approval.id": f"a{row}"}
        if rng.random() < 0.9 and row % 2:
            approval["mentat.approval.state"] = "approved"
        else:
            approval["mentat.approval.state"] = "requested"
        out[row] = orjson.dumps(approval).decode()
    return pa.array(out, pa.string())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spans", type=int, default=1_000_000)
    args = parser.parse_args()
    rng = np.random.default_rng(17)
    with tempfile.TemporaryDirectory() as folder:
        store = ChdbSpanStore(Path(folder) / "spans")
        store.migrate()
        end_ns = time.time_ns()
        table = synthetic_table(args.spans, end_ns=end_ns, analytics=True)
        index = table.schema.get_field_index("attributes")
        table = table.set_column(index, table.schema.field(index), _attributes(table, rng))
        for i in range(0, args.spans, 500_000):
            store.append_batch(table.slice(i, 500_000))
        for name, kind in (("policy_ids", "Array(LowCardinality(String))"),
                           ("policy_versions", "Array(UInt32)"),
                           ("policy_actions", "Array(LowCardinality(String))")):
            store.execute(f"ALTER TABLE spans ADD COLUMN IF NOT EXISTS {name} {kind}")
        store.execute(
            "INSERT INTO spans SELECT * REPLACE ("
            " [if(cityHash64(span_id) % 2 = 0, 'builtin.prompt_injection',"
            " 'builtin.tool_allowlist')] AS policy_ids, [1] AS policy_versions,"
            " [if(cityHash64(span_id) % 2 = 0, 'alert', 'block')] AS policy_actions,"
            " ingested_at_ns + 1 AS ingested_at_ns)"
            " FROM spans WHERE cityHash64(span_id) % 2000 < 2")
        store.execute("OPTIMIZE TABLE spans FINAL")
        end = datetime.fromtimestamp(end_ns / 1e9, UTC) + timedelta(minutes=1)
        print(f"{args.spans:,} spans; load average {os.getloadavg()[0]:.2f}")
        for days in (1, 7):
            params = QueryParams(TimeRange(end - timedelta(days=days), end))
            ms = median_ms(lambda p=params: approval_metrics(store, p, group_by="agent_id"))
            print(f"approval_metrics {days} d (+7 d horizon): {ms:.0f} ms")
        params = QueryParams(TimeRange(end - timedelta(days=7), end))
        print(f"seen_versions 7 d: {median_ms(lambda: seen_versions(store, params)):.0f} ms")
        for label, span in (("1 h", timedelta(hours=1)), ("1 d", timedelta(days=1)),
                            ("7 d", timedelta(days=7))):
            params = QueryParams(TimeRange(end - span, end))
            report = find_signals(store, params)
            ms = median_ms(lambda p=params: find_signals(store, p))
            print(f"find_signals {label}: {ms:.0f} ms ({len(report.findings)} findings)")
        print(f"load average {os.getloadavg()[0]:.2f}")
        store.close()


if __name__ == "__main__":
    main()
