"""Cost of encryption at rest on the embedded span store (decision 0020).

Writes the same synthetic spans (``bench/_synthetic.py``, each with a ~600-byte prompt in
``attributes`` so the payload is realistic) into a new chDB store, once without a key and
once with one (AES-256-CTR encrypted disk, batches staged in memfds), each in its own
process (chDB opens one store folder per process), and reports:

* insert throughput (spans/s) over ``--batches`` batches of ``--batch-rows`` spans;
* a 30-day ``GROUP BY`` over ``spans FINAL`` and a payload scan (``countIf(attributes LIKE
  …)``): median of 3 after a warm-up;
* the store's size on disk.

Usage: .venv/bin/python bench/encryption_at_rest.py [--batches 10] [--batch-rows 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _synthetic import synthetic_table  # noqa: E402
from _timing import median_ms  # noqa: E402

PROMPT = ("You are a support agent. The customer writes: I ordered the blue kettle last week "
          "and it still has not arrived; my order number is QX-{i}. Please check the courier "
          "status, tell me when it will arrive and whether I can get a refund of the "
          "shipping fee. ") * 2


def _with_payload(table: pa.Table, offset: int) -> pa.Table:
    n = table.num_rows
    texts = pa.array([json.dumps({"gen_ai.prompt": PROMPT.format(i=offset + i)})
                      for i in range(n)])
    index = table.schema.get_field_index("attributes")
    return table.set_column(index, table.schema.field(index), texts)


def run_variant(folder: Path, encrypted: bool, batches: int, batch_rows: int) -> dict[str, float]:
    from mentatlab.governance.encryption import generate_key, parse_keys
    from mentatlab.storage.chdb_store import ChdbSpanStore

    keys = parse_keys(generate_key()) if encrypted else None
    tables = [_with_payload(synthetic_table(batch_rows, seed=b), b * batch_rows)
              for b in range(batches)]
    with ChdbSpanStore(folder, query_timeout_s=0, encryption_keys=keys) as store:
        store.migrate()
        started = time.perf_counter()
        for table in tables:
            store.append_batch(table)
        insert_s = time.perf_counter() - started
        group_ms = median_ms(lambda: store.query_arrow(
            "SELECT org_id, count() AS n, sum(total_cost) AS c FROM spans FINAL "
            "GROUP BY org_id"))
        scan_ms = median_ms(lambda: store.query_arrow(
            "SELECT countIf(attributes LIKE '%refund%') AS n FROM spans FINAL"))
        count = store.query_arrow("SELECT count() AS n FROM spans").column("n")[0].as_py()
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert count == batches * batch_rows, count
    assert pc.sum(pa.array([t.num_rows for t in tables])).as_py() == count
    return {"spans_per_s": count / insert_s, "group_by_ms": group_ms, "payload_scan_ms": scan_ms,
            "size_mb": size / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--batch-rows", type=int, default=20_000)
    parser.add_argument("--variant", choices=["plain", "encrypted"])
    parser.add_argument("--folder")
    args = parser.parse_args()
    if args.variant:
        result = run_variant(Path(args.folder), args.variant == "encrypted", args.batches,
                             args.batch_rows)
        print(json.dumps(result))
        return
    print(f"load average before: {os.getloadavg()}")
    for variant in ("plain", "encrypted", "plain", "encrypted"):
        with tempfile.TemporaryDirectory() as tmp:
            done = subprocess.run(
                [sys.executable, __file__, "--variant", variant, "--folder", f"{tmp}/spans",
                 "--batches", str(args.batches), "--batch-rows", str(args.batch_rows)],
                capture_output=True, text=True, check=True)
            result = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"{variant:9} {result['spans_per_s']:>10,.0f} spans/s  group-by "
                  f"{result['group_by_ms']:7.1f} ms  payload scan {result['payload_scan_ms']:7.1f}"
                  f" ms  {result['size_mb']:7.1f} MB")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
