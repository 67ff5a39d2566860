"""The alert evaluator on a real chDB span store and a real control store (SQLite and
PostgreSQL), notifying a real webhook receiver on loopback."""

from __future__ import annotations

import logging
import socket
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from mentatlab.alerting.alert_rule import check_rule
from mentatlab.alerting.evaluator import AlertEvaluator
from mentatlab.alerting.notifiers import NotifierConfig
from mentatlab.errors import StoreError
from mentatlab.model.schema import spans_to_arrow
from mentatlab.model.span import CanonicalSpan, SpanStatus
from mentatlab.storage.chdb_store import ChdbSpanStore
from mentatlab.storage.control import AlertRuleSpec, ControlStore, migrate_control_store
from receivers import WebhookReceiver

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def control(control_store_url: str) -> Iterator[ControlStore]:
    migrate_control_store(control_store_url)
    store = ControlStore(control_store_url)
    yield store
    store.close()


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


def evaluator(chdb_store: ChdbSpanStore, control: ControlStore) -> AlertEvaluator:
    return AlertEvaluator(chdb_store, control, NotifierConfig(timeout_s=5), max_attempts=3)


def add_spans(store: ChdbSpanStore, cost: str, *, count: int = 1, at: datetime = NOW,
              project: str = "proj1", errors: int = 0) -> None:
    """``count`` spans of ``cost`` USD each (the first ``errors`` failed) starting at ``at``."""
    trace = uuid.uuid4().hex
    spans = [CanonicalSpan(
        trace_id=trace, span_id=uuid.uuid4().hex[:16], parent_span_id="", name="chat",
        kind="client", start_time=at + timedelta(milliseconds=i),
        end_time=at + timedelta(milliseconds=i + 20), duration_ms=20.0,
        status=SpanStatus.ERROR if i < errors else SpanStatus.OK, org_id="org1",
        project_id=project, request_model="gpt-4o", input_tokens=100, output_tokens=10,
        token_cost=Decimal(cost), total_cost=Decimal(cost)) for i in range(count)]
    store.append_batch(spans_to_arrow(spans))


def budget(control: ControlStore, url: str, **fields: Any) -> str:
    spec = check_rule(AlertRuleSpec(**{
        "name": "monthly", "kind": "budget", "metric": "cost", "period": "month",
        "limit_amount": Decimal("1.00"), "filters": {"project_id": "proj1"},
        "channels": (f"webhook:{url}",), **fields}))
    return control.alerts.create_rule(spec).id


def test_a_budget_notifies_each_threshold_once_per_period(
        chdb_store: ChdbSpanStore, control: ControlStore, hook: WebhookReceiver) -> None:
    rule_id = budget(control, hook.url)
    ev = evaluator(chdb_store, control)
    add_spans(chdb_store, "0.40", at=NOW - timedelta(days=3))
    add_spans(chdb_store, "0.99", project="other")  # another project: out of scope
    add_spans(chdb_store, "5.00", at=datetime(2026, 10, 31, 23, 59, tzinfo=UTC))  # last month
    report = ev.run_once(NOW)
    assert report.alerts == () and report.num_rules == 1 and report.num_failed_rules == 0
    rule = control.alerts.get_rule(rule_id)
    assert rule is not None and rule.last_value == Decimal("0.40") and rule.state == "ok"

    add_spans(chdb_store, "0.15")  # 0.55: past 50 %
    report = ev.run_once(NOW + timedelta(minutes=1))
    assert [(a.state, a.threshold) for a in report.alerts] == [("firing", Decimal("0.500"))]
    assert report.num_sent == 1
    body = hook.wait_for(1, 10)[0].json()
    assert body["rule_name"] == "monthly" and body["value"] == "0.55"
    assert body["filters"] == {"project_id": "proj1"}
    assert body["window_start"].startswith("2026-11-01T00:00:00")

    assert ev.run_once(NOW + timedelta(minutes=2)).alerts == ()  # no repeat

    add_spans(chdb_store, "0.50")  # 1.05: past 80 % and 100 % in one run
    report = ev.run_once(NOW + timedelta(minutes=3))
    assert sorted(a.threshold for a in report.alerts) == [Decimal("0.800"), Decimal("1.00")]
    assert report.num_sent == 1  # only the highest one is delivered
    assert len(hook.requests) == 2 and hook.requests[1].json()["threshold"] == "1"
    rule = control.alerts.get_rule(rule_id)
    assert rule is not None and rule.state == "firing" and rule.last_value == Decimal("1.05")

    # December is a new period: the spend starts again from zero
    december = datetime(2026, 12, 1, 0, 5, tzinfo=UTC)
    assert ev.run_once(december).alerts == ()
    rule = control.alerts.get_rule(rule_id)
    assert rule is not None and rule.state == "ok" and rule.last_value == 0
    add_spans(chdb_store, "0.60", at=december)
    assert [a.threshold for a in ev.run_once(december + timedelta(minutes=1)).alerts] == [
        Decimal("0.500")]
    history = control.alerts.list_alerts(rule_id=rule_id)
    assert len(history) == 4
    assert sum(len(a.deliveries) for a in history) == 3
    assert all(d.status == "sent" and d.attempts == 1 for a in history for d in a.deliveries)


def test_a_threshold_rule_fires_then_resolves(
        chdb_store: ChdbSpanStore, control: ControlStore, hook: WebhookReceiver) -> None:
    spec = check_rule(AlertRuleSpec(
        name="errors", kind="threshold", metric="error_rate", op=">", threshold=Decimal("0.2"),
        window_s=300, channels=(f"webhook:{hook.url}",)))
    rule_id = control.alerts.create_rule(spec).id
    ev = evaluator(chdb_store, control)
    add_spans(chdb_store, "0.01", count=10, errors=1, at=NOW - timedelta(seconds=60))
    assert ev.run_once(NOW).alerts == ()  # 10 %
    add_spans(chdb_store, "0.01", count=10, errors=5, at=NOW - timedelta(seconds=30))
    fired = ev.run_once(NOW)  # 6 errors of 20 spans
    assert [(a.state, a.value) for a in fired.alerts] == [("firing", Decimal("0.3"))]
    assert ev.run_once(NOW + timedelta(seconds=30)).alerts == ()  # still firing: no repeat
    later = NOW + timedelta(minutes=10)  # the window has no spans any more: 0 %
    resolved = ev.run_once(later)
    assert [a.state for a in resolved.alerts] == ["resolved"]
    states = [r.json()["state"] for r in hook.wait_for(2, 10)]
    assert states == ["firing", "resolved"]
    rule = control.alerts.get_rule(rule_id)
    assert rule is not None and rule.state == "ok" and rule.state_since == later


def test_deliveries_are_retried_with_backoff_then_given_up(
        chdb_store: ChdbSpanStore, control: ControlStore, hook: WebhookReceiver) -> None:
    budget(control, hook.url, name="retried")
    budget(control, hook.url + "?refused", name="refused", thresholds=(Decimal("0.1"),))
    add_spans(chdb_store, "0.70")
    ev = evaluator(chdb_store, control)
    hook.fail_next(2, 503, retry_after="30")
    first = ev.run_once(NOW)
    assert (first.num_sent, first.num_retried, first.num_given_up) == (0, 2, 0)
    assert ev.run_once(NOW + timedelta(seconds=5)).num_retried == 0  # not due yet: Retry-After
    hook.fail_next(1, 400)
    second = ev.deliver_due(NOW + timedelta(minutes=1))
    assert second == (1, 0, 1)  # one 400 (given up), then a 200
    history = {a.rule_name: a for a in control.alerts.list_alerts()}
    statuses = sorted(d.status for a in history.values() for d in a.deliveries)
    assert statuses == ["failed", "sent"]
    failed = next(d for a in history.values() for d in a.deliveries if d.status == "failed")
    assert failed.attempts == 2 and "400" in failed.last_error
    assert len(hook.requests) == 4
    assert ev.deliver_due(NOW + timedelta(hours=1)) == (0, 0, 0)


def test_two_evaluators_at_once_notify_once(
        chdb_store: ChdbSpanStore, control: ControlStore, hook: WebhookReceiver) -> None:
    """Leader election keeps one evaluator running; should two ever overlap (a paused
    leader waking up), the alert fingerprint and the delivery claim still notify once."""
    budget(control, hook.url)
    add_spans(chdb_store, "0.90")
    evaluators = [evaluator(chdb_store, control) for _ in range(2)]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def run(ev: AlertEvaluator) -> None:
        barrier.wait()
        try:
            ev.run_once(NOW)
        except BaseException as exc:  # noqa: BLE001 — reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(ev,)) for ev in evaluators]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    # a control store that refuses the loser's transaction (SQLite) is an error of that run
    assert all(isinstance(e, StoreError) for e in errors), errors
    for ev in evaluators:
        ev.run_once(NOW + timedelta(seconds=1))  # whatever one of them could not write
    alerts = control.alerts.list_alerts()
    assert sorted(a.threshold for a in alerts) == [Decimal("0.500"), Decimal("0.800")]
    assert len(hook.wait_for(1, 10)) == 1
    assert sum(d.status == "sent" for a in alerts for d in a.deliveries) == 1


def test_a_disabled_or_deleted_rule_is_not_evaluated(
        chdb_store: ChdbSpanStore, control: ControlStore, hook: WebhookReceiver) -> None:
    rule_id = budget(control, hook.url)
    add_spans(chdb_store, "2.00")
    control.alerts.set_enabled(rule_id, False)
    ev = evaluator(chdb_store, control)
    assert ev.run_once(NOW).num_rules == 0
    control.alerts.set_enabled(rule_id, True)
    assert len(ev.run_once(NOW).alerts) == 3
    assert control.alerts.delete_rule(rule_id) is True
    assert control.alerts.list_alerts() == [] and control.alerts.get_rule(rule_id) is None
    assert control.alerts.delete_rule(rule_id) is False


SECRET = "T0KEN-5ecret-abc123"


@pytest.mark.parametrize("answer", ["http-500", "closed-port"])
def test_a_failing_delivery_never_logs_the_channel_secret(
        chdb_store: ChdbSpanStore, control: ControlStore, hook: WebhookReceiver,
        caplog: pytest.LogCaptureFixture, answer: str) -> None:
    """Webhook and Slack URLs carry their token in the path or query: a failed delivery is
    logged (every logger, every level) and stored with the URL cut to its origin."""
    if answer == "closed-port":
        with socket.socket() as probe:  # bound, never listening: connections are refused
            probe.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{probe.getsockname()[1]}/hooks/{SECRET}?token={SECRET}"
            evaluated = _fail_once(chdb_store, control, caplog, url)
    else:
        hook.fail_next(1, 500)
        evaluated = _fail_once(chdb_store, control, caplog, f"{hook.url}/{SECRET}?token={SECRET}")
        assert len(hook.requests) == 1 and SECRET in hook.requests[0].path
    assert evaluated.num_retried == 1
    logged = "\n".join(f"{r.name} {r.levelname} {r.getMessage()} {r.exc_text or ''}"
                       for r in caplog.records)
    assert "failed (attempt 1)" in logged and "127.0.0.1" in logged
    assert SECRET not in logged
    (delivery,) = [d for a in control.alerts.list_alerts() for d in a.deliveries]
    assert delivery.last_error and SECRET not in delivery.last_error
    assert "127.0.0.1" in delivery.last_error


def _fail_once(chdb_store: ChdbSpanStore, control: ControlStore,
               caplog: pytest.LogCaptureFixture, url: str) -> Any:
    budget(control, url)
    add_spans(chdb_store, "0.70")
    with caplog.at_level(logging.DEBUG):
        return evaluator(chdb_store, control).run_once(NOW)
