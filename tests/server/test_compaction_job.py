"""The server's compaction job (server/compacting.py): scheduled on the elected node every
``compact_interval_s``, off at 0, counted in /metrics; its settings' bounds."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from serverkit import InProcess, make_settings, open_in_process

from mentatlab.errors import ConfigError
from mentatlab.model.schema import spans_to_arrow
from mentatlab.model.span import CanonicalSpan, SpanStatus
from mentatlab.server.compacting import compaction_job
from mentatlab.settings import load_settings
from mentatlab.storage.base import SpanStore

T0 = (2026, 11, 1)


def _metric(text: str, name: str) -> float:
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert found, f"{name} not in /metrics"
    return float(found.group(1))


def _spans(n: int, day: int, ingested_at_ns: int, cost: str) -> pa.Table:
    """Spans 0..n-1 of one trace on day ``day`` after 2026-11-01, at ``cost`` USD each."""
    start0 = datetime(*T0, 12, tzinfo=UTC) + timedelta(days=day)
    return spans_to_arrow([CanonicalSpan(
        trace_id=f"{1:032x}", span_id=f"{i:016x}", parent_span_id="", name="s", kind="client",
        start_time=start0 + timedelta(seconds=i),
        end_time=start0 + timedelta(seconds=i, milliseconds=5), duration_ms=5.0,
        status=SpanStatus.OK, org_id="org1", project_id="proj1", total_cost=Decimal(cost),
        ingested_at_ns=ingested_at_ns) for i in range(n)])


def _parts(store: SpanStore) -> list[tuple[str, int]]:
    rows = store.query_arrow(
        "SELECT partition_id, toUInt64(count()) AS n FROM system.parts WHERE database ="
        " currentDatabase() AND table = 'spans' AND active GROUP BY partition_id"
        " ORDER BY partition_id").to_pylist()
    return [(r["partition_id"], r["n"]) for r in rows]


async def _metrics(env: InProcess) -> str:
    return (await env.client.get("/metrics")).text


async def test_the_job_runs_at_startup_on_the_elected_node(_isolated_data_dir: Path) -> None:
    settings = make_settings(_isolated_data_dir, compact_interval_s=10)
    async with open_in_process(settings) as env:
        for _ in range(100):  # run_periodic runs the first pass at once (in a thread)
            text = await _metrics(env)
            if _metric(text, "mentatlab_compaction_passes_total") >= 1:
                break
            await asyncio.sleep(0.05)
        assert _metric(text, "mentatlab_compaction_passes_total") == 1
        assert 'mentatlab_job_leader{job="compaction"} 1.0' in text
        assert _metric(text, "mentatlab_compaction_partitions_total") == 0  # empty store


async def test_a_pass_merges_closed_days_and_counts_them(_isolated_data_dir: Path) -> None:
    settings = make_settings(_isolated_data_dir, compact_interval_s=0)
    async with open_in_process(settings) as env:
        await asyncio.sleep(0.3)
        text = await _metrics(env)
        assert _metric(text, "mentatlab_compaction_passes_total") == 0  # 0: off
        assert 'mentatlab_job_leader{job="compaction"} 0.0' in text
        store = env.state.store
        store.execute("SYSTEM STOP MERGES spans")
        for day in (0, 1):  # two closed days (before today, 2026-12 or later), 2 parts each
            store.append_batch(_spans(4, day, 1, "0.001"))
            store.append_batch(_spans(2, day, 2, "0.5"))  # spans 0-1 re-sent
        assert _parts(store) == [("20261101", 2), ("20261102", 2)]
        store.execute("SYSTEM START MERGES spans")
        compaction_job(settings, store, env.state.metrics)()
        assert _parts(store) == [("20261101", 1), ("20261102", 1)]
        # One version per span left: per day 2 x 0.001 + 2 x 0.5 = 1.002 USD over 4 rows.
        raw = store.query_arrow("SELECT toUInt64(count()) AS n, sum(total_cost) AS c"
                                " FROM spans").to_pylist()
        assert raw[0]["n"] == 8 and Decimal(raw[0]["c"]) == Decimal("2.004")
        text = await _metrics(env)
        assert _metric(text, "mentatlab_compaction_passes_total") == 1
        assert _metric(text, "mentatlab_compaction_partitions_total") == 2
        assert _metric(text, "mentatlab_compaction_pending_partitions") == 0


@pytest.mark.parametrize(("name", "value"), [
    ("compact_interval_s", -1), ("compact_interval_s", 5), ("compact_interval_s", 86401),
    ("compact_max_partitions", 0), ("compact_max_partitions", 1001)])
def test_out_of_bounds_settings_are_refused(tmp_path: Path, name: str, value: float) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings(data_dir=tmp_path, **{name: value})


def test_bounds_accept_off_and_the_limits(tmp_path: Path) -> None:
    assert load_settings(data_dir=tmp_path, compact_interval_s=0).compact_interval_s == 0
    got = load_settings(data_dir=tmp_path, compact_interval_s=86400, compact_max_partitions=1)
    assert (got.compact_interval_s, got.compact_max_partitions) == (86400, 1)
