"""Latency of the cost views (token waterfall, attribution tree, unit economics, provider
× model) over N spans.

Builds a fresh chDB store of N synthetic spans (bench/_synthetic.py: traces of ~8 spans
over 30 days, 6 models, 3 orgs), with the per-kind token costs filled (input and output
parts of the synthetic token cost), inserted in 500,000-span batches like the writer does,
resolves it once (the aggregates the waterfall and the tree read), then times each view
over the last 1, 7 and 30 days: median of 3 after one warm-up.

Usage: .venv/bin/python bench/cost_views.py [--spans 1000000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _synthetic import _scaled_decimal, synthetic_table  # noqa: E402

from mentatlab.analytics.cost_views import (  # noqa: E402
    attribution_tree,
    provider_models,
    token_waterfall,
    unit_economics,
)
from mentatlab.analytics.query import QueryParams, TimeRange  # noqa: E402
from mentatlab.model.schema import MONEY_ARROW  # noqa: E402
from mentatlab.pipeline.price import Price  # noqa: E402
from mentatlab.resolver.resolver import Resolver  # noqa: E402
from mentatlab.storage.chdb_store import ChdbSpanStore  # noqa: E402

LEVELS = ("org_id", "project_id", "agent_id", "model")


def _with_kind_costs(table: pa.Table) -> pa.Table:
    """The synthetic token cost (150e-9 USD an input token, 600e-9 an output token, in
    1e-12 USD units as bench/_synthetic.py computes it) split into ``input_cost`` and
    ``output_cost``, so the kind columns are not all zero."""
    for name, tokens, units in (("input_cost", "input_tokens", 150_000),
                                ("output_cost", "output_tokens", 600_000)):
        counts = table[tokens].fill_null(0).to_numpy().astype(np.int64)
        index = table.schema.get_field_index(name)
        table = table.set_column(index, table.schema.field(index),
                                 _scaled_decimal(counts * units, MONEY_ARROW))
    return table


def _time(func: Callable[[], Any]) -> tuple[float, Any]:
    times = []
    result = None
    for _ in range(4):
        t0 = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:]) * 1000, result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spans", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        store = ChdbSpanStore(Path(folder) / "spans")
        store.migrate()
        end_ns = time.time_ns()
        table = _with_kind_costs(synthetic_table(args.spans, end_ns=end_ns))
        for i in range(0, args.spans, 500_000):
            store.append_batch(table.slice(i, 500_000))
        t0 = time.perf_counter()
        Resolver(store, Price()).run_pass(time.time_ns())
        print(f"{args.spans:,} spans; resolver backfill {time.perf_counter() - t0:.1f} s; "
              f"load average {os.getloadavg()[0]:.2f}", flush=True)
        end = datetime.fromtimestamp(end_ns / 1e9, UTC) + timedelta(minutes=1)
        print("| range | tokens (ms) | attribution org→project→agent→model (ms) |"
              " unit economics (ms) | provider × model (ms) |")
        print("|---|---|---|---|---|")
        for days in (1, 7, 30):
            params = QueryParams(TimeRange(end - timedelta(days=days), end))
            tokens_ms, waterfall = _time(lambda p=params: token_waterfall(store, p))
            tree_ms, tree = _time(lambda p=params: attribution_tree(store, p, LEVELS))
            units_ms, _ = _time(lambda p=params: unit_economics(store, p))
            pm_ms, _ = _time(lambda p=params: provider_models(store, p))
            assert tree.root.total_cost >= waterfall.token_cost
            print(f"| {days} d | {tokens_ms:.0f} | {tree_ms:.0f} ({tree.num_leaves} leaves) |"
                  f" {units_ms:.0f} | {pm_ms:.0f} |", flush=True)
        print(f"load average after: {os.getloadavg()[0]:.2f}")
        store.close()


if __name__ == "__main__":
    main()
