"""The server's retention job (server/retaining.py): scheduled on the elected node, it reads
the overrides, trims the span store, and trims the audit log at a checkpoint signed with a
key it generates in the data folder for the embedded default; its settings' bounds."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

from serverkit import make_settings, open_in_process  # noqa: E402
from test_retention import _span_days, _spans  # noqa: E402

from mentatlab.errors import ConfigError  # noqa: E402
from mentatlab.governance.retention import enforce_retention, retention_defaults  # noqa: E402
from mentatlab.server.retaining import (  # noqa: E402
    default_signing_key_path,
    ensure_signing_key,
    retention_job,
)
from mentatlab.settings import load_settings  # noqa: E402


async def test_the_job_trims_on_the_elected_node(_isolated_data_dir: Path) -> None:
    settings = make_settings(_isolated_data_dir, retention_interval_s=3600,
                             span_retention_days=30, audit_retention_years=1)
    async with open_in_process(settings) as env:
        for _ in range(200):
            text = (await env.client.get("/metrics")).text
            if 'mentatlab_job_leader{job="retention"} 1.0' in text:
                break
            await asyncio.sleep(0.05)
        assert 'mentatlab_job_leader{job="retention"} 1.0' in text
        state = env.state
        control = state.control
        control.create_org("Acme", "acme")
        control.retention.set("acme", {"span_days": 3})
        for days in (1, 5, 40):
            state.store.append_batch(_spans("acme", days))
            state.store.append_batch(_spans("globex", days))
        job = retention_job(settings, state.store, control, state.metrics)
        await asyncio.to_thread(job)
        assert _span_days(state.store, "acme") == [1]
        assert _span_days(state.store, "globex") == [1, 5]
        text = (await env.client.get("/metrics")).text
        assert 'mentatlab_retention_rows_deleted_total{table="spans"} 4.0' in text
        assert 'mentatlab_retention_partitions_dropped_total{table="spans"} 1.0' in text

        # The audit retention needed a key: generated in the data folder, used from now on.
        key_file = default_signing_key_path(settings)
        assert key_file.exists() and control.audit.signing_key_id
        for i in range(5):
            control.audit.record("cli", "key.created", org_id="acme", target=f"k{i}")
        later = datetime.now(UTC) + timedelta(days=2 * 365)
        run = enforce_retention(state.store, retention_defaults(settings), {},
                                now=later, audit=control.audit)
        assert run.audit_trimmed >= 4, "every entry but the head"
        report = control.audit.verify()
        assert report.ok, report.problems
        assert control.audit.entries(all_orgs=True)[0].action == "audit.checkpoint"


def test_no_key_is_generated_for_a_shared_control_store(tmp_path: Path,
                                                        control_store_url: str) -> None:
    from mentatlab.server.components import open_control_store

    settings = load_settings(data_dir=tmp_path, control_store=control_store_url)
    control = open_control_store(settings)
    try:
        assert ensure_signing_key(settings, control) is False
        assert not default_signing_key_path(settings).exists()
    finally:
        control.close()


@pytest.mark.parametrize(("overrides", "name"), [
    ({"span_retention_days": -1}, "span_retention_days"),
    ({"span_retention_days": 30, "aggregate_retention_days": 7}, "aggregate_retention_days"),
    ({"aggregate_retention_days": 30}, "aggregate_retention_days"),
    ({"audit_retention_years": -2}, "audit_retention_years"),
    ({"retention_interval_s": 5}, "retention_interval_s")])
def test_out_of_bounds_settings_are_refused(tmp_path: Path, overrides: dict[str, float],
                                            name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings(data_dir=tmp_path, **overrides)
