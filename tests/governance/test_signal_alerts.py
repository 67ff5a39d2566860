"""``security_signal`` alert rules: findings notify a real webhook receiver and a real SMTP
server on loopback, once each; a stricter rule notifies less."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import pytest
from signal_spans import add_policy_columns, append, make_span, set_decisions

from mentatlab.alerting.alert_rule import check_rule
from mentatlab.alerting.evaluator import AlertEvaluator
from mentatlab.alerting.notifiers import NotifierConfig
from mentatlab.errors import ValidationError
from mentatlab.storage.chdb_store import ChdbSpanStore
from mentatlab.storage.control import AlertRuleSpec, ControlStore, migrate_control_store
from mentatlab.storage.control.models import utc_now
from receivers import SmtpReceiver, WebhookReceiver

M = timedelta(minutes=1)


@pytest.fixture
def control(control_store_url: str) -> Iterator[ControlStore]:
    migrate_control_store(control_store_url)
    opened = ControlStore(control_store_url)
    opened.create_org("Acme", "acme")
    yield opened
    opened.close()


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    with SmtpReceiver() as receiver:
        yield receiver


def _rule(control: ControlStore, name: str, channels: tuple[str, ...], **fields: object) -> str:
    spec = check_rule(AlertRuleSpec(**{  # type: ignore[arg-type]
        "name": name, "kind": "security_signal", "metric": "any", "org_id": "acme",
        "window_s": 900, "channels": channels, **fields}))
    return control.alerts.create_rule(spec).id


def test_findings_notify_a_webhook_and_email_once(
        chdb_store: ChdbSpanStore, control: ControlStore, hook: WebhookReceiver,
        smtp: SmtpReceiver) -> None:
    now = utc_now()
    add_policy_columns(chdb_store)
    burst = [make_span(now - i * M, agent="a") for i in (4, 3, 2)]
    append(chdb_store, [
        *burst,
        make_span(now - 3 * 24 * 60 * M, agent="a", tool="search"),
        make_span(now - 5 * M, agent="a", tool="shell"),  # new for a known agent: medium
        make_span(now - 5 * M, agent="fresh", tool="search"),  # a new agent: low
    ])
    set_decisions(chdb_store, {s.span_id: [("builtin.prompt_injection", "alert")]
                               for s in burst})
    audited = control.create_api_key("acme", None, "ci", role="admin")
    control.audit.record("cli", "key.created", org_id="acme", target=audited.info.id)
    stray = control.create_api_key("acme", None, "stray", role="ingest")  # never audited
    assert control.resolve_api_key(audited.key) and control.resolve_api_key(stray.key)

    _rule(control, "security", (f"webhook:{hook.url}", "email:sec@acme.example"))
    strict = _rule(control, "keys-high", (f"webhook:{hook.url}",), metric="new_key",
                   threshold=Decimal(3))
    notifier = NotifierConfig(smtp_host=smtp.host, smtp_port=smtp.port,
                              smtp_from="MentatLab <alerts@mentat.example>", timeout_s=5.0)
    evaluator = AlertEvaluator(chdb_store, control, notifier, max_attempts=3)
    report = evaluator.run_once(now + timedelta(seconds=1))
    assert report.num_failed_rules == 0
    got = sorted((a.rule_name, a.metric) for a in report.alerts)
    assert got == [("keys-high", "new_key"), ("security", "new_key"), ("security", "new_key"),
                   ("security", "new_tool"), ("security", "prompt_injection_burst")]
    bodies = [r.json() for r in hook.wait_for(5, 10)]
    assert all(b["rule_kind"] == "security_signal" for b in bodies)
    burst_body = next(b for b in bodies if b["metric"] == "prompt_injection_burst")
    assert burst_body["value"] == "3" and "[medium]" in burst_body["message"]
    assert f"{burst[0].trace_id}:{burst[0].span_id}" in burst_body["message"]
    strict_bodies = [b for b in bodies if b["rule_id"] == strict]
    assert len(strict_bodies) == 1 and "stray" in strict_bodies[0]["message"]
    assert "[high]" in strict_bodies[0]["message"]
    mails = smtp.wait_for(4, 10)
    assert len(mails) == 4 and all("sec@acme.example" in str(m["To"]) for m in mails)
    assert any("shell" in m.get_body().get_content() for m in mails)  # type: ignore[union-attr]
    assert not any("fresh" in str(b["message"]) for b in bodies)  # low: below medium

    again = evaluator.run_once(now + timedelta(seconds=30))
    assert again.alerts == () and len(hook.requests) == 5 and len(smtp.messages) == 4

    # a burst that comes back after the window notifies again, once
    later = [make_span(now + i * M, agent="a") for i in (18, 19, 20)]
    append(chdb_store, later)
    set_decisions(chdb_store, {s.span_id: [("builtin.prompt_injection", "alert")]
                               for s in later})
    report = evaluator.run_once(now + 21 * M)
    assert [(a.rule_name, a.metric, a.value) for a in report.alerts] == [
        ("security", "prompt_injection_burst", Decimal(3))]
    assert evaluator.run_once(now + 22 * M).alerts == ()
    assert len(hook.wait_for(6, 10)) == 6


def test_nothing_to_report_notifies_nobody(
        chdb_store: ChdbSpanStore, control: ControlStore, hook: WebhookReceiver) -> None:
    now = utc_now()
    append(chdb_store, [make_span(now - 10 * 24 * 60 * M, agent="a", tool="search"),
                        make_span(now - 2 * M, agent="a", tool="search")])
    rule_id = _rule(control, "security", (f"webhook:{hook.url}",))
    report = AlertEvaluator(chdb_store, control, NotifierConfig(timeout_s=5)).run_once(now)
    assert report.alerts == () and report.num_failed_rules == 0 and hook.requests == []
    rule = control.alerts.get_rule(rule_id)
    assert rule is not None and rule.state == "ok" and rule.last_value == 0


@pytest.mark.parametrize(("fields", "field"), [
    ({"metric": "everything"}, "metric"), ({"threshold": Decimal("2.5")}, "threshold"),
    ({"threshold": Decimal(4)}, "threshold"), ({"window_s": 10}, "window_s")])
def test_bad_security_signal_rules_name_the_field(fields: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        check_rule(AlertRuleSpec(**{  # type: ignore[arg-type]
            "name": "x", "kind": "security_signal", "metric": "any",
            "channels": ("webhook:http://127.0.0.1:9/x",), **fields}))
    assert caught.value.field == field


def test_a_rule_defaults_to_medium_and_any() -> None:
    spec = check_rule(AlertRuleSpec(name="x", kind="security_signal", metric="",
                                    channels=("webhook:http://127.0.0.1:9/x",)))
    assert (spec.metric, spec.threshold, spec.op) == ("any", Decimal(2), ">=")
