"""``/api/v1/governance/retention`` and ``/erasures`` on a live server with auth on, over
both control backends: the installation sets retention freely, an org's admin may only
shorten; bad input is 422 naming the field; changes and erasures are audited with ids and
hashes only; the retention job runs on the server; a reprice of an expired period is 409;
and ``mentatctl governance`` drives it all."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

from serverkit import LiveServer, make_settings, run_live_server  # noqa: E402
from test_retention import _spans  # noqa: E402

from mentatlab.governance.erasure import erasure_receipts, subject_hash  # noqa: E402
from mentatlab.governance.retention import (  # noqa: E402
    enforce_retention,
    retention_defaults,
    retention_for,
)


@dataclass
class Installation:
    server: LiveServer
    keys: dict[str, dict[str, str]]

    def call(self, method: str, key: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, f"{self.server.url}/api/v1/{path}", timeout=60,
                             headers=self.keys[key], **kwargs)


@pytest.fixture
def installation(_isolated_data_dir: Path, control_store_url: str) -> Iterator[Installation]:
    settings = make_settings(_isolated_data_dir, auth_required=True,
                             control_store=control_store_url, span_retention_days=30,
                             retention_interval_s=0)
    for server in run_live_server(settings):
        control = server.state.control
        control.create_org("Acme", "acme")
        control.create_org("Globex", "globex")
        keys = {}
        for name, role, org in (("installation", "admin", None), ("admin", "admin", "acme"),
                                ("read", "read", "acme")):
            issued = control.create_api_key(org, None, name, role=role, created_by="test")
            keys[name] = {"x-api-key": issued.key}
        yield Installation(server, keys)


def _field(response: httpx.Response) -> str:
    body = response.json()
    assert body["ok"] is False and body["status"] == response.status_code, body
    return str(body["errors"][0]["field"])


def test_retention_is_set_read_and_audited(installation: Installation) -> None:
    put = installation.call("PUT", "installation", "governance/retention", json={
        "org_id": "acme", "retention": {"span_days": 60, "aggregate_days": 400,
                                        "audit_years": 7}})
    assert put.status_code == 200, put.text
    assert put.json()["retention"] == {"span_days": 60, "aggregate_days": 400, "audit_years": 7}
    listed = installation.call("GET", "installation", "governance/retention").json()
    assert listed["defaults"] == {"span_days": 30, "aggregate_days": 0, "audit_years": 0}
    assert [o["org_id"] for o in listed["orgs"]] == ["acme"]
    own = installation.call("GET", "admin", "governance/retention").json()
    assert own["orgs"][0]["overrides"] == {"span_days": 60, "aggregate_days": 400,
                                           "audit_years": 7}
    state = installation.server.state
    assert retention_for(state.control, state.settings, "acme").span_days == 60
    assert retention_for(state.control, state.settings, "globex").span_days == 30

    # The org's admin may shorten, not lengthen, and never touches the audit retention.
    shorter = installation.call("PUT", "admin", "governance/retention",
                                json={"retention": {"span_days": 14}})
    assert shorter.status_code == 200, shorter.text
    longer = installation.call("PUT", "admin", "governance/retention",
                               json={"retention": {"span_days": 90}})
    assert longer.status_code == 403 and _field(longer) == "retention.span_days"
    audit_change = installation.call("PUT", "admin", "governance/retention",
                                     json={"retention": {"audit_years": 1}})
    assert audit_change.status_code == 403 and _field(audit_change) == "retention.audit_years"
    other_org = installation.call("PUT", "admin", "governance/retention",
                                  json={"org_id": "globex", "retention": {"span_days": 1}})
    assert other_org.status_code == 403
    reader = installation.call("GET", "read", "governance/retention")
    assert reader.status_code == 403

    for body, field in (({"retention": {"aggregate_days": 7}}, "retention.aggregate_days"),
                        ({"retention": {"span_days": -1}}, "retention.span_days"),
                        ({"retention": {}}, "retention"),
                        ({"retention": {"span_days": 1}, "extra": 1}, "extra")):
        bad = installation.call("PUT", "installation", "governance/retention",
                                json={"org_id": "acme", **body})
        assert bad.status_code == 422, (body, bad.text)
        assert _field(bad).endswith(field), (body, bad.json())

    entries = state.control.audit.entries(org_id="acme", action="governance.retention_set")
    assert [e.details for e in reversed(entries)] == [
        {"span_days": 60, "aggregate_days": 400, "audit_years": 7}, {"span_days": 14}]


def test_erasure_answers_counts_and_leaves_a_receipt(installation: Installation) -> None:
    store = installation.server.state.store
    store.append_batch(_spans("acme", 1, user="dana@example.com"))
    store.append_batch(_spans("globex", 1, user="dana@example.com"))
    answer = installation.call("POST", "admin", "governance/erasures",
                               json={"user_id": "dana@example.com"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["receipt"]["counts"]["spans"] == 4, "the admin's own org only"
    assert body["removed"] >= 4 and body["receipt"]["org_id"] == "acme"
    assert "dana@example.com" not in answer.text
    state = installation.server.state
    receipts = erasure_receipts(state.control, org_id="acme")
    salt = (state.settings.data_dir / "erasure-salt").read_text().strip().encode()
    assert receipts[0]["subject_hash"] == subject_hash(salt, "user_id", "dana@example.com")
    assert receipts[0]["counts"]["spans"] == 4
    every = state.control.audit.entries(all_orgs=True, limit=1000)
    assert not any("dana@example.com" in str(e.details) + e.target for e in every)

    for body_, field in (({}, "user_id"), ({"user_id": "a", "customer_id": "b"}, "user_id"),
                         ({"user_id": ""}, "user_id")):
        bad = installation.call("POST", "admin", "governance/erasures", json=body_)
        assert bad.status_code == 422 and _field(bad).endswith(field), bad.text
    everywhere = installation.call("POST", "installation", "governance/erasures",
                                   json={"user_id": "dana@example.com"})
    assert everywhere.json()["receipt"]["counts"]["spans"] == 4, "globex's rows"


def test_a_reprice_of_an_expired_period_is_refused(installation: Installation) -> None:
    state = installation.server.state
    store = state.store
    store.append_batch(_spans("acme", 10))  # inside the 30-day table TTL: no race with it
    enforce_retention(store, retention_defaults(state.settings), {"acme": {"span_days": 5}})
    now = datetime.now(UTC)

    def reprice(key: str, days_ago: int) -> httpx.Response:
        return installation.call("POST", key, "reprice",
                                 params={"since": (now - timedelta(days=days_ago)).isoformat()})

    expired = reprice("admin", 8)
    assert expired.status_code == 409, expired.text
    assert _field(expired) == "since" and "retention" in expired.json()["errors"][0]["reason"]
    assert reprice("admin", 3).status_code == 200
    assert reprice("installation", 8).status_code == 409, "the highest floor of any org"
    assert reprice("installation", 3).status_code == 200


def test_the_cli_shows_sets_and_erases(installation: Installation) -> None:
    env = {**os.environ, "COLUMNS": "200", "MENTATLAB_URL": installation.server.url,
           "MENTATLAB_API_KEY": installation.keys["installation"]["x-api-key"]}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "mentatlab.cli.main", "governance", *args],
                              env=env, capture_output=True, text=True, timeout=120)

    done = cli("retention", "set", "--org", "globex", "--span-days", "10",
               "--aggregate-days", "90")
    assert done.returncode == 0, done.stderr
    assert "spans 10 days, aggregates 90 days" in done.stdout
    shown = cli("retention", "show")
    assert "globex" in shown.stdout and "(installation default)" in shown.stdout
    refused = cli("retention", "set", "--org", "globex", "--aggregate-days", "3")
    assert refused.returncode == 1 and "aggregate_days" in refused.stderr
    installation.server.state.store.append_batch(_spans("globex", 2, customer="cust-9"))
    erased = cli("erase", "--customer-id", "cust-9")
    assert erased.returncode == 0, erased.stderr
    assert "Erased" in erased.stdout and "spans" in erased.stdout
    assert cli("erase").returncode == 2
    time.sleep(0)  # the server keeps serving after the CLI calls
    assert installation.call("GET", "installation", "governance/retention").status_code == 200


def test_audit_details_hold_no_personal_values(installation: Installation) -> None:
    """A CSV export filtered by a person is audited with the filter's hash, not the value."""
    exported = installation.call("GET", "admin", "cost", params={
        "group_by": "user_id", "format": "csv", "filter": "user_id=erin@example.com"})
    assert exported.status_code == 200, exported.text
    entries = installation.server.state.control.audit.entries(org_id="acme", action="export")
    assert entries and entries[0].details["filter_sha256"] == hashlib.sha256(
        b"user_id=erin@example.com").hexdigest()
    assert "erin@example.com" not in str(entries[0].details)
