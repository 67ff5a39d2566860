"""Hourly rollups on the ClickHouse-server backend: the same exactness scenario as chDB."""

from __future__ import annotations

import sys
from pathlib import Path

from mentatlab.storage.clickhouse_store import ClickHouseSpanStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "analytics"))

from rollup_scenario import run  # noqa: E402


def test_rollup_answers_equal_raw_on_the_server(clickhouse_store: ClickHouseSpanStore) -> None:
    run(clickhouse_store)
