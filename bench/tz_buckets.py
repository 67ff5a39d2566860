"""Cost buckets in a display time zone over 30 days of synthetic spans (issue 15).

``.venv/bin/python bench/tz_buckets.py --spans 1000000``: builds (once) an embedded chDB
store of that many spans spread over 30 days (bench/query.py's data, its own folder),
resolves it, then times ``cost_by`` day and hour buckets over the 30 days in UTC, a
whole-hour zone (Europe/Berlin) and a half-hour zone (Asia/Kolkata), from the aggregates
and from raw spans (checking both answers are equal), and the overview's month to date.
Median of 5 (raw: of 2) after a warm-up; results in bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import query as bench_query  # noqa: E402

from mentatlab.analytics.cost import cost_by  # noqa: E402
from mentatlab.analytics.overview import get_overview  # noqa: E402
from mentatlab.analytics.query import QueryParams, TimeRange  # noqa: E402
from mentatlab.analytics.zone import local_day_start, parse_zone  # noqa: E402
from mentatlab.storage.chdb_store import ChdbSpanStore  # noqa: E402

ZONES = ("UTC", "Europe/Berlin", "Asia/Kolkata")


def main() -> None:
    """Build, resolve and time (see the module docstring)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--spans", type=int, default=1_000_000)
    args = parser.parse_args()
    with ChdbSpanStore(bench_query.DATA / f"tz-{args.spans}") as store:
        store.migrate()
        bench_query.build(store, args.spans)
        print(f"resolver backfill {bench_query.resolve(store)[0]:.0f} s")
        end = datetime.now(UTC)
        window = TimeRange(end - timedelta(days=30), end)
        print("| bucket | zone | aggregates ms | raw ms |\n|---|---|---:|---:|")
        for bucket in ("day", "hour"):
            for tz in ZONES:
                params = QueryParams(window, group_by=(), bucket=bucket,
                                     time_zone=tz)
                assert cost_by(store, params) == cost_by(store, params, use_aggregates=False)
                fast = bench_query.timed(lambda p=params: cost_by(store, p))
                raw = bench_query.timed(
                    lambda p=params: cost_by(store, p, use_aggregates=False), repeat=2)
                print(f"| {bucket} | {tz} | {fast:.0f} | {raw:.0f} |")
        for tz in ("UTC", "Asia/Kolkata"):
            zone = parse_zone(tz)
            start = local_day_start(end, zone, 1 - end.astimezone(zone).day)
            params = QueryParams(TimeRange(start, end), time_zone=tz)
            print(f"month-to-date overview, {tz}: "
                  f"{bench_query.timed(lambda p=params: get_overview(store, p)):.0f} ms")


if __name__ == "__main__":
    main()
