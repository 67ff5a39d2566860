"""Query latency of the named analytics queries over 1M and 10M stored spans.

Builds a chDB store per size under bench/data/ (reused when present), spread over 30
days, then resolves it as the server's attribution resolver does on an upgraded store
(one backfill pass: inherited attribution and the aggregates, timed) and times
`cost_by(group_by=[model], bucket=day)` and `get_overview` over the whole range (median
of 5 after one warm-up), through the aggregates and raw (`use_aggregates=False`); with
``--traces`` also `get_trace` (5 trace ids picked across the range, no time range, as
`GET /api/v1/traces/{id}` calls it) and `list_traces` (newest 50 of the last 24 h, and of
the whole 31 days).

``--recent`` is the busy-day case instead: a fresh store of spans over the last 90
minutes (so most of them in the current hour), rebuilt every run, resolved, then the
overview of the last hour and of the last day, cost by model and day over the last day,
and the newest 50 error traces of the last hour, each through the aggregates and raw.
Spans are inserted in batches like the writer does, so the table has the parts a live
server would have; `--optimize` first merges closed partitions as the background
compaction job does.

``--backend clickhouse`` runs the same queries through `ClickHouseSpanStore`
(clickhouse-connect over HTTP) against the ClickHouse test endpoint
(tests/clickhouse_endpoint.py, chDB in a child process). Its data is not re-ingested: the
closed chDB store of that size is copied once into the endpoint's folder
(bench/data/endpoint-<n>/chdb, database `default`), so both backends query the same
parts on the same engine and differ only by the HTTP hop, the client and the endpoint.

Usage: .venv/bin/python bench/query.py [--sizes 1000000,10000000] [--optimize] [--no-raw]
       [--traces] [--backend chdb|clickhouse] [--recent]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))

from _synthetic import synthetic_table  # noqa: E402

from mentatlab.analytics.cost import cost_by  # noqa: E402
from mentatlab.analytics.overview import get_overview  # noqa: E402
from mentatlab.analytics.query import QueryParams, TimeRange  # noqa: E402
from mentatlab.analytics.traces import get_trace, list_traces  # noqa: E402
from mentatlab.pipeline.price import Price  # noqa: E402
from mentatlab.resolver.resolver import PassReport, Resolver  # noqa: E402
from mentatlab.storage.chdb_store import ChdbSpanStore  # noqa: E402
from mentatlab.storage.clickhouse_store import ClickHouseSpanStore  # noqa: E402

DATA = Path(__file__).parent / "data"
CHUNK_ROWS = 500_000


def build(store: ChdbSpanStore | ClickHouseSpanStore, n: int, days: float = 30) -> None:
    have = store.query_arrow("SELECT count() AS n FROM spans").column("n")[0].as_py()
    if have >= n:
        return
    end_ns = time.time_ns()
    t0 = time.monotonic()
    for start in range(have, n, CHUNK_ROWS):
        rows = min(CHUNK_ROWS, n - start)
        table = synthetic_table(rows, days=days, seed=start, end_ns=end_ns)
        index = table.schema.get_field_index("ingested_at_ns")  # commit stamps, as a writer's
        store.append_batch(table.set_column(index, table.schema.field(index), pa.repeat(
            pa.scalar(time.time_ns(), pa.int64()), table.num_rows)))
        print(f"  inserted {start + rows:,} rows ({time.monotonic() - t0:.0f} s)", flush=True)


def resolve(store: ChdbSpanStore | ClickHouseSpanStore) -> tuple[float, PassReport]:
    """One resolver pass over everything committed (a backfill on a new store), timed."""
    t0 = time.perf_counter()
    report = Resolver(store, Price()).run_pass(time.time_ns())
    return time.perf_counter() - t0, report


def timed(fn, repeat: int = 5) -> float:  # type: ignore[no-untyped-def]
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def _chdb_store_path(n: int) -> Path:
    return DATA / f"spans-v2-{n}"


@contextlib.contextmanager
def open_store(backend: str, n: int) -> Iterator[ChdbSpanStore | ClickHouseSpanStore]:
    """The store of ``n`` spans on ``backend`` (built if missing), migrated."""
    if backend == "chdb":
        with ChdbSpanStore(_chdb_store_path(n)) as store:
            store.migrate()
            build(store, n)
            yield store
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from clickhouse_endpoint import EndpointProcess

    folder = DATA / f"endpoint-{n}"
    if not (folder / "chdb").exists():
        with ChdbSpanStore(_chdb_store_path(n)) as chdb_store:  # build it if missing
            chdb_store.migrate()
            build(chdb_store, n)
        t0 = time.monotonic()
        folder.mkdir(parents=True, exist_ok=True)
        # data/<db>/<table> are relative symlinks into store/: copy them as links
        shutil.copytree(_chdb_store_path(n), folder / "chdb.tmp", symlinks=True,
                        ignore=shutil.ignore_patterns("_ingest"))
        (folder / "chdb.tmp").rename(folder / "chdb")
        print(f"  copied the chDB store into {folder / 'chdb'} ({time.monotonic() - t0:.0f} s)",
              flush=True)
    with EndpointProcess(folder) as endpoint, ClickHouseSpanStore(
            endpoint.host, endpoint.port, database="default", compress=False) as store:
        store.migrate()
        build(store, n)
        yield store


def _trace_ids(store: ChdbSpanStore | ClickHouseSpanStore, n: int, k: int = 5) -> list[str]:
    """``k`` stored trace ids spread over the table (same ones on both backends)."""
    ids = []
    for i in range(k):
        table = store.query_arrow(
            f"SELECT trace_id FROM spans ORDER BY trace_id LIMIT 1 OFFSET {(i * n) // k}")
        ids.append(str(table.column("trace_id")[0].as_py()))
    return ids


def recent(args: argparse.Namespace) -> None:
    """The busy-day case: spans over the last 90 minutes, most in the current hour."""
    now = datetime.now(UTC)
    hour = TimeRange(now - timedelta(hours=1), now + timedelta(minutes=1))
    day = TimeRange(now - timedelta(days=1), now + timedelta(minutes=1))
    cases = {
        "overview, last hour": lambda s, agg: get_overview(s, QueryParams(hour),
                                                           use_aggregates=agg),
        "overview, last day": lambda s, agg: get_overview(s, QueryParams(day),
                                                          use_aggregates=agg),
        "cost by model by day, last day": lambda s, agg: cost_by(
            s, QueryParams(day, group_by=["model"], bucket="day"), use_aggregates=agg),
        "error traces (newest 50), last hour": lambda s, agg: list_traces(
            s, QueryParams(hour), status="error", limit=50, use_aggregates=agg),
    }
    print(f"recent data, backend {args.backend}, load average before {os.getloadavg()}")
    for n in (int(s) for s in args.sizes.split(",")):
        folder = DATA / f"recent-{n}"
        shutil.rmtree(folder, ignore_errors=True)
        with ChdbSpanStore(folder) as store:
            store.migrate()
            t0 = time.monotonic()
            build(store, n, days=1.5 / 24)
            print(f"  built in {time.monotonic() - t0:.0f} s", flush=True)
            build_s, report = resolve(store)
            print(f"  resolver backfill: {build_s:.1f} s, {report.num_traces:,} traces", flush=True)
            print("| query | aggregates (ms) | raw (ms) | load avg |")
            print("|---|---|---|---|")
            for name, run in cases.items():
                fast = timed(lambda: run(store, True))  # noqa: B023
                assert run(store, True) == run(store, False), name  # the same answer
                slow = float("nan") if args.no_raw else timed(lambda: run(store, False))  # noqa: B023
                load = os.getloadavg()
                print(f"| {name} ({n:,} spans) | {fast:.0f} | {slow:.0f} |"
                      f" {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000000,10000000")
    ap.add_argument("--optimize", action="store_true")
    ap.add_argument("--no-raw", action="store_true", help="skip the raw-path timings")
    ap.add_argument("--traces", action="store_true", help="also time get_trace and list_traces")
    ap.add_argument("--backend", choices=("chdb", "clickhouse"), default="chdb")
    ap.add_argument("--recent", action="store_true",
                    help="the busy-day case: spans over the last 90 minutes")
    args = ap.parse_args()
    if args.recent:
        recent(args)
        return
    now = datetime.now(UTC)
    params_model_day = QueryParams(
        TimeRange(now - timedelta(days=31), now + timedelta(hours=1)),
        group_by=["model"],
        bucket="day",
    )
    params_all = QueryParams(TimeRange(now - timedelta(days=31), now + timedelta(hours=1)))
    params_day = QueryParams(TimeRange(now - timedelta(days=1), now + timedelta(hours=1)))
    trace_cols = " get_trace (ms) | list_traces 24 h (ms) | list_traces 31 d (ms) |" \
        if args.traces else ""
    print(f"backend {args.backend}, load average before {os.getloadavg()}")
    print("| spans | resolver backfill (s) | cost by model by day (ms) | overview (ms) |"
          " raw cost by model by day (ms) | raw overview (ms) |" + trace_cols
          + " parts | load avg |")
    print("|---|---|---|---|---|---|" + "---|" * (3 if args.traces else 0) + "---|---|")
    for n in (int(s) for s in args.sizes.split(",")):
        with open_store(args.backend, n) as store:
            if args.optimize:
                store.execute("OPTIMIZE TABLE spans FINAL")
            build_s, report = resolve(store)
            parts = (
                store.query_arrow(
                    "SELECT count() AS n FROM system.parts"
                    " WHERE database = currentDatabase() AND table = 'spans' AND active"
                )
                .column("n")[0]
                .as_py()
            )
            a = timed(lambda: cost_by(store, params_model_day))  # noqa: B023
            b = timed(lambda: get_overview(store, params_all))  # noqa: B023
            raw_a = raw_b = float("nan")
            if not args.no_raw:
                raw_a = timed(lambda: cost_by(store, params_model_day, use_aggregates=False))  # noqa: B023
                raw_b = timed(lambda: get_overview(store, params_all, use_aggregates=False))  # noqa: B023
            traces = ""
            if args.traces:
                ids = _trace_ids(store, n)
                found = [get_trace(store, tid) for tid in ids]
                assert all(found), "a picked trace id was not found"
                one = timed(lambda: [get_trace(store, tid) for tid in ids]) / len(ids)  # noqa: B023
                day = timed(lambda: list_traces(store, params_day, limit=50))  # noqa: B023
                month = timed(lambda: list_traces(store, params_all, limit=50))  # noqa: B023
                traces = f" {one:.0f} | {day:.0f} | {month:.0f} |"
            load = os.getloadavg()
            print(f"| {n:,} | {build_s:.1f} ({report.num_traces:,} traces) | {a:.0f} | {b:.0f} |"
                  f" {raw_a:.0f} | {raw_b:.0f} |{traces} {parts} |"
                  f" {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
