"""Per-org quota overrides: the control-store table (SQLite and PostgreSQL), the rules on a
fake clock, and `mentatctl quotas set` reaching a live server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from test_quota_live import assert_rest_429, serve
from typer.testing import CliRunner

from mentatlab.access.principal import Principal
from mentatlab.access.roles import Permission
from mentatlab.cli.main import app
from mentatlab.errors import RateLimited, ValidationError
from mentatlab.server.quotas import QuotaLimits, Quotas
from mentatlab.storage.control import ControlStore, migrate_control_store


@pytest.fixture
def control(control_store_url: str) -> Iterator[ControlStore]:
    migrate_control_store(control_store_url)
    store = ControlStore(control_store_url)
    store.create_org("Acme", "acme")
    yield store
    store.close()


def test_overrides_round_trip(control: ControlStore) -> None:
    assert control.quotas.all() == {}
    assert control.quotas.set("acme", {"key_queries_per_min": 5, "org_ingest_spans_per_min": 0}
                              ) == {"key_queries_per_min": 5, "org_ingest_spans_per_min": 0}
    assert control.quotas.set("acme", {"key_queries_per_min": None}) == {
        "org_ingest_spans_per_min": 0}
    assert control.quotas.all() == {"acme": {"org_ingest_spans_per_min": 0}}
    assert control.quotas.clear("acme") and not control.quotas.clear("acme")
    assert control.quotas.all() == {}


@pytest.mark.parametrize(("org", "limits", "field"), [
    ("nope", {"key_queries_per_min": 1}, "org_id"),
    ("acme", {"key_queries_per_min": -1}, "key_queries_per_min"),
    ("acme", {"queries": 1}, "queries"),
])
def test_bad_overrides_are_refused(control: ControlStore, org: str, limits: dict[str, int],
                                   field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        control.quotas.set(org, limits)
    assert refused.value.errors[0].field == field
    assert control.quotas.all() == {}


def test_an_override_replaces_the_settings_for_its_org_only() -> None:
    quotas = Quotas(QuotaLimits(key_queries_per_min=100), clock=lambda: 0.0)
    acme = Principal.for_key("a", "a", "read", "acme", None)
    globex = Principal.for_key("g", "g", "read", "globex", None)
    quotas.apply_overrides({"acme": {"key_queries_per_min": 1, "org_ingest_spans_per_min": 10}})
    quotas.admit_request(acme, Permission.READ_USAGE)
    with pytest.raises(RateLimited, match="1 queries per minute per key"):
        quotas.admit_request(acme, Permission.READ_USAGE)
    for _ in range(5):
        quotas.admit_request(globex, Permission.READ_USAGE)
    quotas.admit_spans(acme, 10)  # a limit the settings leave off, set for acme alone
    with pytest.raises(RateLimited):
        quotas.admit_spans(acme, 1)
    quotas.admit_spans(globex, 10_000)
    quotas.apply_overrides({"acme": {"key_queries_per_min": 1, "org_ingest_spans_per_min": 10}})
    with pytest.raises(RateLimited):  # the same overrides again keep the buckets
        quotas.admit_request(acme, Permission.READ_USAGE)
    quotas.apply_overrides({"acme": {"key_queries_per_min": 0}})  # 0: unlimited for acme
    for _ in range(200):
        quotas.admit_request(acme, Permission.READ_USAGE)


def test_mentatctl_quotas_set_reaches_a_running_server(_isolated_data_dir: Path) -> None:
    with serve(_isolated_data_dir, quota_refresh_s=0.1) as served:
        runner = CliRunner()
        dir_args = ["--data-dir", str(_isolated_data_dir)]
        done = runner.invoke(app, ["quotas", "set", "acme", "--key-queries-per-min", "1",
                                   *dir_args])
        assert done.exit_code == 0, done.output
        assert "key_queries_per_min=1" in done.output
        listed = runner.invoke(app, ["quotas", "list", *dir_args])
        assert "acme" in listed.output and "key_queries_per_min" in listed.output
        deadline = time.monotonic() + 10
        while "acme" not in served.server.state.quotas.overrides:
            assert time.monotonic() < deadline, "the server never read the override"
            time.sleep(0.05)
        cost = f"{served.url}/api/v1/cost"
        assert httpx.get(cost, headers=served.keys["read-a"]).status_code == 200
        assert_rest_429(httpx.get(cost, headers=served.keys["read-a"]), 60)
        assert httpx.get(cost, headers=served.keys["read-g"]).status_code == 200
        actions = [e.action for e in served.server.state.control.audit.entries(org_id="acme")]
        assert "quota.set" in actions
        cleared = runner.invoke(app, ["quotas", "clear", "acme", *dir_args])
        assert cleared.exit_code == 0 and "dropped" in cleared.output
        deadline = time.monotonic() + 10
        while "acme" in served.server.state.quotas.overrides:
            assert time.monotonic() < deadline, "the server kept a dropped override"
            time.sleep(0.05)
        assert httpx.get(cost, headers=served.keys["read-a"]).status_code == 200
