"""Compliance evidence reports: content follows real state, the chain head matches the audit
log, JSON and HTML, through the API and ``mentatctl governance report``; and the builder on
both span stores (with and without the policy-decision columns of span migration 9).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

from serverkit import LiveServer, make_settings, run_live_server  # noqa: E402

from mentatlab.errors import ValidationError  # noqa: E402
from mentatlab.governance.encryption import SecretCipher, generate_key, parse_keys  # noqa: E402
from mentatlab.governance.report import (  # noqa: E402
    build_report,
    parse_period,
    render_html,
    report_digest,
    verify_report,
)
from mentatlab.model.schema import spans_to_arrow  # noqa: E402
from mentatlab.model.span import CanonicalSpan, SpanStatus  # noqa: E402
from mentatlab.settings import load_settings  # noqa: E402
from mentatlab.storage.base import SpanStore  # noqa: E402
from mentatlab.storage.control import ControlStore, migrate_control_store  # noqa: E402
from mentatlab.storage.control.alerts import AlertRuleSpec  # noqa: E402

NOW = datetime.now(UTC).replace(microsecond=0)
PERIOD = f"{(NOW - timedelta(days=2)).isoformat()}..{(NOW + timedelta(days=1)).isoformat()}"


@dataclass
class Site:
    server: LiveServer
    control: ControlStore
    root: str
    url: str

    def report(self, key: str | None = None, **params: Any) -> httpx.Response:
        return httpx.get(self.server.url + "/api/v1/governance/report",
                         headers={"x-api-key": key or self.root}, params=params, timeout=60)


@pytest.fixture
def site(_isolated_data_dir: Path, control_store_url: str) -> Iterator[Site]:
    settings = make_settings(_isolated_data_dir, auth_required=True,
                             control_store=control_store_url, span_retention_days=90)
    for server in run_live_server(settings):
        control: ControlStore = server.state.control
        issued = control.create_api_key(None, None, "root", role="admin", created_by="test")
        control.create_org("Acme", "acme")
        yield Site(server, control, issued.key, control_store_url)


def _head(control: ControlStore) -> tuple[int, str]:
    entries = control.audit.entries(all_orgs=True, limit=1)
    return entries[0].seq, entries[0].hash


def test_report_follows_state_and_names_the_chain_head(site: Site) -> None:
    site.control.audit.record("cli", "key.created", org_id="acme", target="k1")
    first = site.report(framework="gdpr", period=PERIOD)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["ok"] is True and body["framework"] == "gdpr"
    verified = site.control.audit.verify()
    assert verified.ok
    assert (body["audit_chain"]["head_seq"], body["audit_chain"]["head_hash"]) == \
        _head(site.control)
    assert body["audit_chain"]["head_seq"] == verified.head_seq
    assert body["digest"] == report_digest(body)
    sections = body["sections"]
    assert sections["retention"]["span_retention_days"] == 90
    assert sections["access"]["auth_required"] is True
    assert sections["access"]["active_keys_by_role"] == {"admin": 1}
    assert sections["erasure"]["num_receipts"] == 0
    status = {c["id"]: c["status"] for c in body["controls"]}
    assert status["storage-limitation"] == "in_force"
    assert status["records-of-processing"] == "in_force"
    refs = {c["id"]: c["references"] for c in body["controls"]}
    assert "Art. 17" in refs["erasure"] and "Art. 32(1)(a)" in refs["security-of-processing"]

    # state changes show: an erasure receipt, a member, a new key; the head moves
    site.control.audit.record("cli", "governance.erased", target="5f2a", details={
        "field": "user_id", "subject_hash": "5f2a", "counts": {"spans": 12, "agg_principal_day": 3},
        "total": 15})
    user = site.control.identities.ensure_user("ana@acme.test")
    site.control.identities.set_role(user.id, "acme", "viewer")
    site.control.create_api_key("acme", None, "ingest", role="ingest", created_by="test")
    second = site.report(framework="gdpr", period=PERIOD).json()
    assert second["audit_chain"]["head_seq"] > body["audit_chain"]["head_seq"]
    assert (second["audit_chain"]["head_seq"], second["audit_chain"]["head_hash"]) == \
        _head(site.control)
    erasure = second["sections"]["erasure"]
    assert erasure["num_receipts"] == 1
    assert erasure["receipts"][0]["counts"] == {"spans": 12, "agg_principal_day": 3}
    assert erasure["receipts"][0]["total"] == 15
    assert second["sections"]["access"]["members_by_role"] == {"viewer": 1}
    assert second["sections"]["access"]["active_keys_by_role"] == {"admin": 1, "ingest": 1}
    assert second["digest"] != body["digest"]

    # one org's report sees that org's receipts only
    acme = site.report(framework="soc2", period=PERIOD, org_id="acme").json()
    assert acme["org_id"] == "acme" and acme["sections"]["erasure"]["num_receipts"] == 0
    assert acme["sections"]["audit"]["entries_in_period_by_action"] == {"key.created": 1}


def test_report_html_is_one_printable_page(site: Site) -> None:
    site.control.audit.record("cli", "key.created", target="k1")
    answer = site.report(framework="eu-ai-act", period=PERIOD, format="html")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    page = answer.text
    seq, hash_ = _head(site.control)
    assert "EU AI Act" in page and f"seq {seq}, hash {hash_}" in page
    assert "Art. 12" in page and "Art. 14" in page and "Art. 26(6)" in page
    nonce = answer.headers["content-security-policy"].split("'nonce-")[1].split("'")[0]
    assert f'<style nonce="{nonce}">' in page
    assert "<script" not in page and "src=" not in page and "http://" not in page
    assert "@media print" in page


def test_report_errors_are_clear(site: Site) -> None:
    bad = site.report(framework="hipaa", period=PERIOD)
    assert bad.status_code in (400, 422)
    assert bad.json()["errors"][0]["field"].endswith("framework")
    assert "gdpr" in bad.json()["errors"][0]["reason"]
    for period, reason in (("2026-02-01", "<start>..<end>"), ("2026-03-01..2026-02-01",
                                                              "start before end"),
                           ("yesterday..today", "ISO-8601")):
        answer = site.report(framework="gdpr", period=period)
        assert answer.status_code in (400, 422), answer.text
        assert answer.json()["errors"][0]["field"].endswith("period")
        assert reason in answer.json()["errors"][0]["reason"]
    reader = site.control.create_api_key("acme", None, "read", role="read", created_by="test")
    assert site.report(reader.key, framework="gdpr").status_code == 403
    admin = site.control.create_api_key("acme", None, "adm", role="admin", created_by="test")
    other = site.report(admin.key, framework="gdpr", org_id="globex")
    assert other.status_code == 403


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mentatlab.cli.main", *args],
                          env={**os.environ, "COLUMNS": "200", **env}, capture_output=True,
                          text=True, timeout=120)


def test_cli_report_and_verify(site: Site, tmp_path: Path, _isolated_data_dir: Path) -> None:
    site.control.audit.record("cli", "governance.erased", target="subject:77",
                              details={"spans": 2})
    env = {"MENTATLAB_CONTROL_STORE": site.url, "MENTATLAB_DATA_DIR": str(_isolated_data_dir)}
    out = tmp_path / "reports"
    made = _cli(env, "governance", "report", "--framework", "soc2", "--period", PERIOD,
                "--out", str(out), "--url", site.server.url, "--api-key", site.root)
    assert made.returncode == 0, made.stdout + made.stderr
    [json_file] = out.glob("*.json")
    [html_file] = out.glob("*.html")
    report = json.loads(json_file.read_text())
    seq, hash_ = _head(site.control)
    assert (report["audit_chain"]["head_seq"], report["audit_chain"]["head_hash"]) == (seq, hash_)
    assert f"seq {seq} hash {hash_}" in made.stdout and "CC6.1" in made.stdout
    assert hash_ in html_file.read_text() and "SOC 2" in html_file.read_text()
    audit = _cli(env, "audit", "verify")
    assert f"head seq {seq})" in audit.stdout, audit.stdout + audit.stderr

    ok = _cli(env, "governance", "report", "verify", str(json_file))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "Report verified" in ok.stdout
    # an edited report fails on its digest
    edited = tmp_path / "edited.json"
    report["sections"]["erasure"]["num_receipts"] = 0
    edited.write_text(json.dumps(report))
    bad = _cli(env, "governance", "report", "verify", str(edited))
    assert bad.returncode == 1 and "digest" in bad.stdout
    # a rewritten chain fails on the head's hash
    with site.control.engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET hash = :h WHERE seq = :s"),
                     {"h": "0" * 64, "s": seq})
    rewritten = _cli(env, "governance", "report", "verify", str(json_file))
    assert rewritten.returncode == 1, rewritten.stdout + rewritten.stderr
    assert f"entry {seq} has hash {'0' * 64}" in rewritten.stdout
    unreadable = _cli(env, "governance", "report", "verify", str(tmp_path / "missing.json"))
    assert unreadable.returncode == 2 and "Cannot read" in unreadable.stderr
    wrong = _cli(env, "governance", "report", "--framework", "iso", "--url", site.server.url)
    assert wrong.returncode == 2 and "--framework" in wrong.stderr


# --- the builder over both span stores -------------------------------------------------


def _spans(findings: list[str]) -> Any:
    start = NOW - timedelta(hours=1)
    return spans_to_arrow([CanonicalSpan(
        trace_id=f"{i:032x}", span_id=f"{i:016x}", parent_span_id="", name="chat", kind="client",
        start_time=start + timedelta(seconds=i),
        end_time=start + timedelta(seconds=i, milliseconds=3),
        duration_ms=3.0, status=SpanStatus.OK, org_id="acme", project_id="p1",
        total_cost=Decimal("0"), pii_findings=f) for i, f in enumerate(findings)])


def _finding(category: str) -> str:
    return json.dumps([{"category": category, "key": "gen_ai.input.messages", "offset": 3,
                        "length": 9, "confidence": 0.9}])


def test_builder_counts_findings_and_decisions_on_both_stores(
        store: SpanStore, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c' / 'control.db'}"
    migrate_control_store(url)
    control = ControlStore(url)
    try:
        store.append_batch(_spans([_finding("EMAIL_ADDRESS"), _finding("EMAIL_ADDRESS"),
                                   _finding("CREDIT_CARD"), "", "[]"]))
        period = parse_period(PERIOD)
        settings = load_settings(data_dir=tmp_path)
        report = build_report("eu-ai-act", period, settings=settings, store=store,
                              control=control, org_id="acme")
        decisions = report["sections"]["decisions"]
        assert decisions["pii_findings"]["by_category"] == {"CREDIT_CARD": 1, "EMAIL_ADDRESS": 2}
        assert decisions["pii_findings"]["num_spans_with_findings"] == 3
        assert report["sections"]["retention"]["in_force"] is False
        # the policy-decision columns of span migration 9 are read
        at = (NOW - timedelta(minutes=5)).strftime("%Y-%m-%d %H:%M:%S")
        store.execute(
            "INSERT INTO spans (trace_id, span_id, org_id, project_id, start_time, end_time, "
            "policy_ids, policy_versions, policy_actions) VALUES "
            f"('{'a' * 32}', '{'1' * 16}', 'acme', 'p1', '{at}', '{at}', "
            "['builtin.tool_allowlist', 'builtin.pii_in_output'], [1, 2], ['block', 'alert']),"
            f"('{'b' * 32}', '{'2' * 16}', 'acme', 'p1', '{at}', '{at}', "
            "['builtin.pii_in_output'], [2], ['alert'])")
        later = build_report("eu-ai-act", period, settings=load_settings(
            data_dir=tmp_path, span_retention_days=180), store=store, control=control,
            org_id="acme")
        policy = later["sections"]["decisions"]["policy_decisions"]
        assert policy["by_action"] == {"alert": 2, "block": 1}
        assert policy["by_policy"] == {"builtin.pii_in_output": 2, "builtin.tool_allowlist": 1}
        assert policy["num_spans_blocked"] == 1
        status = {c["id"]: c["status"] for c in later["controls"]}
        assert status["log-retention"] == "in_force"  # the setting changed: 180 days
        assert {c["id"]: c["status"] for c in report["controls"]}["log-retention"] == \
            "not_in_force"
        other_org = build_report("gdpr", period, settings=settings, store=store,
                                 control=control, org_id="globex")
        assert other_org["sections"]["decisions"]["pii_findings"]["by_category"] == {}
        html = render_html(later)
        assert "block 1" in html and "EMAIL_ADDRESS 2" in html
        assert verify_report(later, control).ok
    finally:
        control.close()


def test_encryption_section_reflects_keys_and_secrets(store: SpanStore, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c' / 'control.db'}"
    migrate_control_store(url)
    key = generate_key()
    control = ControlStore(url, secrets=SecretCipher(parse_keys(key)))
    try:
        control.alerts.create_rule(AlertRuleSpec(
            name="r", kind="threshold", metric="error_rate", threshold=Decimal("0.1"),
            channels=("webhook:https://hooks.example/secret-path",)))
        period = parse_period(PERIOD)
        settings = load_settings(data_dir=tmp_path, encryption_key=key)
        section = build_report("gdpr", period, settings=settings, store=store,
                               control=control)["sections"]["encryption"]
        assert section["key_configured"] is True
        assert section["key_ids"] == list(parse_keys(key).key_ids())  # type: ignore[union-attr]
        assert section["control_secrets"] == {"num_secrets": 1, "num_encrypted": 1,
                                              "num_current_key": 1}
        if hasattr(store, "encrypted"):
            assert section["span_store"] == {"backend": "chdb", "encrypted": False,
                                             "algorithm": None}
        else:
            assert section["span_store"]["encrypted"] is None
        with pytest.raises(ValidationError, match="framework"):
            build_report("pci", period, settings=settings, store=store, control=control)
    finally:
        control.close()


def test_parse_period() -> None:
    start, end = parse_period("2026-01-01..2026-03-31")
    assert start == datetime(2026, 1, 1, tzinfo=UTC)
    assert end == datetime(2026, 4, 1, tzinfo=UTC)  # a date-only end includes that day
    start, end = parse_period("2026-01-01T10:00:00+02:00..2026-01-01T12:00:00Z")
    assert start == datetime(2026, 1, 1, 8, tzinfo=UTC) and end.hour == 12
