"""Hourly rollups on chDB: answers identical to the raw query through every change."""

from __future__ import annotations

from pathlib import Path

from rollup_scenario import run

from mentatlab.storage.chdb_store import ChdbSpanStore


def test_rollup_answers_equal_raw_through_resend_reprice_and_late_spans(tmp_path: Path) -> None:
    with ChdbSpanStore(tmp_path / "spans") as store:
        store.migrate()
        run(store)
