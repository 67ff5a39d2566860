"""FINAL reads before and after one compaction pass (storage/compaction.py, decision 0016).

Copies the 1M-span analytics store (``bench/data/analytics-1000000/spans``, built by
bench/analytics.py; never modified) into a temporary folder, then over the 30 days that
end at its newest span times (median of 3 after one warm-up):

* a raw 30-day ``GROUP BY`` of ``spans FINAL`` without the partition-by-partition setting
  (``do_not_merge_across_partitions_select_final = 0``, the reads before 0016), with it
  (the store's own setting now), and without ``FINAL``;
* ``latency_by`` (model), ``get_reliability`` and ``list_recommendations``;

once as copied, and again after one :func:`compact_closed_partitions` pass (no bound on
partitions), whose duration and part counts it prints.

The source store is already compacted (one part per day). To read it as a running store
is between merges, the copy first gets new versions of ``--resend`` percent of its spans
(same keys, ``ingested_at_ns`` + 1, as the resolver or a reprice writes them), and of
another ``--resend`` percent, in two inserts with merges stopped: every day then holds three parts, and ``FINAL`` has versions to
fold. The copy is migrated first (the
store may predate columns the analytics read).

Usage: .venv/bin/python bench/compaction.py [--source bench/data/analytics-1000000]
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import median_ms  # noqa: E402

from mentatlab.analytics.latency import latency_by  # noqa: E402
from mentatlab.analytics.query import QueryParams, TimeRange  # noqa: E402
from mentatlab.analytics.recommendations import list_recommendations  # noqa: E402
from mentatlab.analytics.reliability import get_reliability  # noqa: E402
from mentatlab.pipeline.price import Price  # noqa: E402
from mentatlab.storage.chdb_store import ChdbSpanStore  # noqa: E402
from mentatlab.storage.compaction import compact_closed_partitions  # noqa: E402

DEFAULT_SOURCE = Path(__file__).parent / "data" / "analytics-1000000"
_GROUP_BY = ("SELECT request_model, count() AS n, sum(total_cost) AS cost FROM spans {final}"
             " WHERE start_time >= {{a:DateTime64(9, 'UTC')}} AND start_time < {{b:DateTime64(9,"
             " 'UTC')}} GROUP BY request_model {settings}")


def _parts(store: ChdbSpanStore) -> tuple[int, int]:
    row = store.query_arrow(
        "SELECT toUInt64(count()) AS parts, toUInt64(uniqExact(partition_id)) AS partitions"
        " FROM system.parts WHERE database = currentDatabase() AND table = 'spans'"
        " AND active").to_pylist()[0]
    return int(row["parts"]), int(row["partitions"])


def _measure(store: ChdbSpanStore, params: QueryParams) -> dict[str, float]:
    binds = {"a": params.time_range.start, "b": params.time_range.end}

    def raw(final: str, settings: str) -> None:
        store.query_arrow(_GROUP_BY.format(final=final, settings=settings), binds)

    price = Price()
    return {
        "GROUP BY, FINAL, setting 0": median_ms(functools.partial(
            raw, "FINAL", "SETTINGS do_not_merge_across_partitions_select_final = 0")),
        "GROUP BY, FINAL, setting 1": median_ms(functools.partial(raw, "FINAL", "")),
        "GROUP BY, no FINAL": median_ms(functools.partial(raw, "", "")),
        "latency_by model": median_ms(functools.partial(latency_by, store, params, "model")),
        "get_reliability": median_ms(functools.partial(get_reliability, store, params)),
        "list_recommendations": median_ms(functools.partial(
            list_recommendations, store, params, price)),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--resend", type=int, default=10,
                        help="percent of spans re-written as new versions (twice)")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as folder:
        shutil.copytree(args.source / "spans", Path(folder) / "spans", symlinks=True)
        with ChdbSpanStore(Path(folder) / "spans", query_timeout_s=0) as store:
            store.migrate()  # the copy gains the columns added since it was built
            newest = store.query_arrow("SELECT max(start_time) AS t, toUInt64(count()) AS n"
                                       " FROM spans").to_pylist()[0]
            end = newest["t"].replace(tzinfo=UTC) + timedelta(minutes=1)
            params = QueryParams(TimeRange(end - timedelta(days=30), end))
            print(f"{newest['n']:,} stored span versions; window {params.time_range.start:%F %T}"
                  f" to {end:%F %T} UTC; today (UTC) {datetime.now(UTC):%F}")
            store.execute("SYSTEM STOP MERGES spans")
            for first in (0, args.resend):  # two disjoint samples, one part per day each
                store.execute(
                    "INSERT INTO spans SELECT * REPLACE (ingested_at_ns + 1 AS ingested_at_ns)"
                    f" FROM spans WHERE cityHash64(span_id) % 100 >= {first}"
                    f" AND cityHash64(span_id) % 100 < {first + args.resend}")
            parts, partitions = _parts(store)
            print(f"before: {parts} active parts in {partitions} partitions")
            before = _measure(store, params)
            store.execute("SYSTEM START MERGES spans")
            done = compact_closed_partitions(store, max_partitions=10_000, budget_s=3600)
            parts, partitions = _parts(store)
            print(f"compaction pass: {len(done.merged)} partitions merged in "
                  f"{done.seconds:.1f} s; after: {parts} active parts in {partitions} "
                  "partitions")
            after = _measure(store, params)
            print("| read (30 days) | before | after one pass |\n|---|---|---|")
            for name, ms in before.items():
                print(f"| {name} | {ms:.0f} ms | {after[name]:.0f} ms |")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
