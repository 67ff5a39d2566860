"""Time the live stats read (``WS /api/v1/live/stats``) on an embedded chDB store.

    .venv/bin/python bench/live_stats.py [--spans 2000000]
    .venv/bin/python bench/live_stats.py --fanout 50


Half the spans spread over 30 days, half over the last hour (committed as they end, so
the last 5 minutes hold about 1/24 of them: a few hundred spans a second). Times the
backfill a new subscriber group costs (60 intervals of 5 s) and one tick (the newest
interval and the 6 earlier ones late spans may revise: what each distinct filter costs
per interval, whatever the number of subscribers), also with a project filter; the median
of 5 runs after a warm-up.

``--fanout N`` instead opens N WebSocket clients with one filter on a live server (empty
store, ``interval_s=1``) for 10 s and counts the store reads and the messages delivered.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests" / "server"))

from _synthetic import synthetic_table  # noqa: E402

from mentatlab.analytics.live_stats import list_interval_stats  # noqa: E402
from mentatlab.storage.chdb_store import ChdbSpanStore  # noqa: E402

_NS = 1_000_000_000
CHUNK_ROWS = 500_000


def timed_ms(fn: Callable[[], object], repeat: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def _drain(client: Any, received: list[int], i: int, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            client.recv(timeout=0.5)
            received[i] += 1
        except TimeoutError:
            pass


def fanout(num_clients: int, seconds: float = 10.0) -> None:
    from serverkit import make_settings, run_live_server
    from websockets.sync.client import connect

    with tempfile.TemporaryDirectory() as folder:
        for server in run_live_server(make_settings(Path(folder))):
            url = (server.url.replace("http://", "ws://")
                   + "/api/v1/live/stats?interval_s=1&filter=project=acme")
            with contextlib.ExitStack() as stack:
                clients = [stack.enter_context(connect(url, open_timeout=30))
                           for _ in range(num_clients)]
                _run_fanout(server, clients, seconds)


def _run_fanout(server: Any, clients: list[Any], seconds: float) -> None:
    """Count the store reads and the messages of ``clients`` over ``seconds``."""
    for client in clients:
        json.loads(client.recv(timeout=30))
    hub = server.state.live_stats
    reads_before = hub.num_queries
    received = [0] * len(clients)
    threads = [threading.Thread(target=_drain, args=(c, received, i, seconds))
               for i, c in enumerate(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(f"{len(clients)} clients, {seconds:.0f} s at interval_s=1: "
          f"{hub.num_queries - reads_before} store reads, {sum(received)} messages")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spans", type=int, default=2_000_000)
    parser.add_argument("--fanout", type=int, default=0, help="WebSocket clients")
    args = parser.parse_args()
    if args.fanout:
        fanout(args.fanout)
        return
    with tempfile.TemporaryDirectory() as folder, ChdbSpanStore(Path(folder)) as store:
        store.migrate()
        end_ns = time.time_ns()
        t0 = time.monotonic()
        for i, start in enumerate(range(0, args.spans, CHUNK_ROWS)):
            rows = min(CHUNK_ROWS, args.spans - start)
            days = 30 if i % 2 == 0 else 1 / 24
            store.append_batch(synthetic_table(rows, days=days, seed=start, end_ns=end_ns))
        print(f"{args.spans:,} spans inserted in {time.monotonic() - t0:.0f} s")
        step_ns = 5 * _NS
        last_ns = end_ns // step_ns * step_ns
        backfill_start = last_ns - 60 * step_ns
        in_window = sum(s.num_spans for s in list_interval_stats(
            store, {}, 5, backfill_start, 60))
        print(f"spans in the last 60 intervals of 5 s: {in_window:,}")
        cases = {
            "backfill, 60 intervals of 5 s": lambda: list_interval_stats(
                store, {}, 5, backfill_start, 60),
            "one tick: 7 intervals of 5 s": lambda: list_interval_stats(
                store, {}, 5, last_ns - 7 * step_ns, 7),
            "one tick, project filter": lambda: list_interval_stats(
                store, {"project_id": "proj-3"}, 5, last_ns - 7 * step_ns, 7),
        }
        for name, fn in cases.items():
            print(f"{name}: {timed_ms(fn):.1f} ms (median of 5)")


if __name__ == "__main__":
    main()
