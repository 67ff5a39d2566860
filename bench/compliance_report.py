"""Time to build a compliance report (governance/report.py, decision 0020).

A new chDB store with ``--spans`` synthetic spans over 30 days (``bench/_synthetic.py``),
10 % of them carrying two PII findings, and a SQLite control store with ``--audit``
audit entries (a tenth of them ``governance.erased`` receipts). Builds the GDPR report over
the 30 days (median of 3 after a warm-up) and renders its HTML.

Usage: .venv/bin/python bench/compliance_report.py [--spans 500000] [--audit 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _synthetic import synthetic_table  # noqa: E402
from _timing import median_ms  # noqa: E402

from mentatlab.governance.report import build_report, render_html  # noqa: E402
from mentatlab.settings import load_settings  # noqa: E402
from mentatlab.storage.chdb_store import ChdbSpanStore  # noqa: E402
from mentatlab.storage.control import ControlStore, migrate_control_store  # noqa: E402

FINDINGS = json.dumps([
    {"category": "EMAIL_ADDRESS", "key": "gen_ai.input.messages", "offset": 12, "length": 17,
     "confidence": 1.0},
    {"category": "PHONE_NUMBER", "key": "gen_ai.input.messages", "offset": 40, "length": 12,
     "confidence": 0.75}])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spans", type=int, default=500_000)
    parser.add_argument("--audit", type=int, default=20_000)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        table = synthetic_table(args.spans)
        index = table.schema.get_field_index("pii_findings")
        findings = pa.array([FINDINGS if i % 10 == 0 else "" for i in range(args.spans)])
        table = table.set_column(index, table.schema.field(index), findings)
        url = f"sqlite:///{tmp}/control.db"
        migrate_control_store(url)
        control = ControlStore(url)
        started = time.perf_counter()
        for i in range(args.audit):
            if i % 10 == 0:
                control.audit.record("cli", "governance.erased", org_id="org-0",
                                     target=f"subject:{i:08x}", details={"spans": i % 97})
            else:
                control.audit.record("cli", "key.created", org_id="org-0", target=f"k{i}")
        print(f"{args.audit:,} audit entries written in {time.perf_counter() - started:.1f} s")
        with ChdbSpanStore(Path(tmp) / "spans", query_timeout_s=0) as store:
            store.migrate()
            for offset in range(0, args.spans, 100_000):
                store.append_batch(table.slice(offset, 100_000))
            settings = load_settings(data_dir=Path(tmp), span_retention_days=90)
            end = datetime.now(UTC)
            period = (end - timedelta(days=30), end)
            report = build_report("gdpr", period, settings=settings, store=store,
                                  control=control)
            build_ms = median_ms(lambda: build_report(
                "gdpr", period, settings=settings, store=store, control=control), times=4)
            org_ms = median_ms(lambda: build_report(
                "gdpr", period, settings=settings, store=store, control=control,
                org_id="org-0"), times=4)
            html_ms = median_ms(lambda: render_html(report), times=4)
        control.close()
    found = report["sections"]["decisions"]["pii_findings"]["num_spans_with_findings"]
    print(f"{args.spans:,} spans ({found:,} with findings), {args.audit:,} audit entries:")
    print(f"  build (installation) {build_ms:,.0f} ms, build (one org) {org_ms:,.0f} ms, "
          f"HTML {html_ms:,.1f} ms ({len(render_html(report)):,} bytes)")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
