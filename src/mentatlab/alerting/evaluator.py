"""The alert evaluator: measure rules through analytics, record alerts, deliver them.

One run (:meth:`AlertEvaluator.run_once`) does, for each enabled rule:

1. measure it: a budget's spend over its calendar period with :func:`~mentatlab.analytics.
   cost.cost_by`, a threshold rule's metric over its window with :func:`~mentatlab.
   analytics.overview.get_overview` (the same numbers the API shows), a security-signal
   rule's findings over its window with :func:`~mentatlab.analytics.security_signals.
   find_signals` (what ``GET /api/v1/governance/signals`` shows);
2. decide: a budget records one alert per newly crossed threshold and period (only the
   highest crossed one is delivered); a threshold rule records ``firing`` on the move
   ``ok → firing`` and ``resolved`` on ``firing → ok``; a security-signal rule records one
   ``firing`` alert per finding, once per subject and rule window (the fingerprint holds
   the kind, a hash of the subject and ``first_seen // window_s``);
3. save the value, the state and the alert with its deliveries in one control-store
   transaction (:meth:`~mentatlab.storage.control.AlertRecords.record_evaluation`).

Then it drains the delivery outbox: each due delivery is sent once; a retryable failure is
retried with exponential backoff (``2^attempts`` s, capped at ``MAX_BACKOFF_S``, or the
receiver's ``Retry-After``) until ``max_attempts``. Delivery is at least once: a node that
dies after sending but before recording it sends again from the next leader, so webhook
receivers get an ``Idempotency-Key`` (the alert id) to drop a repeat.

With several nodes, only the leader of the ``alerts`` job runs it
(:class:`~mentatlab.storage.control.leader.LeaderLock`); the unique alert fingerprint and
the compare-and-set on the rule's state keep an overlap from notifying twice.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from mentatlab.alerting.alert_rule import OPS, min_severity_of
from mentatlab.alerting.budget import crossed_thresholds, period_range
from mentatlab.alerting.notifiers import (
    DeliveryError,
    Notification,
    NotifierConfig,
    deliver,
    parse_channel,
    redact_channel,
)
from mentatlab.analytics.cost import cost_by
from mentatlab.analytics.overview import Overview, get_overview
from mentatlab.analytics.query import QueryParams, TimeRange
from mentatlab.analytics.security_signals import SIGNAL_KINDS, Finding, find_signals
from mentatlab.errors import ValidationError
from mentatlab.storage.base import SpanStore
from mentatlab.storage.control import AlertInfo, AlertRuleInfo, ControlStore, NewAlert
from mentatlab.storage.control.models import utc_now

__all__ = ["MAX_BACKOFF_S", "AlertEvaluator", "EvaluationReport", "measure_metric"]

_log = logging.getLogger(__name__)

MAX_BACKOFF_S = 600.0
"""Longest wait between two delivery attempts, in seconds."""
_RATE_PLACES = Decimal("0.000001")


@dataclass(frozen=True, slots=True)
class EvaluationReport:
    """What one run did."""

    num_rules: int
    """Rules evaluated (enabled ones)."""
    num_failed_rules: int
    """Rules whose measurement or recording failed (logged; retried next run)."""
    alerts: tuple[AlertInfo, ...]
    """Alerts recorded by this run."""
    num_sent: int
    """Deliveries that succeeded."""
    num_retried: int
    """Deliveries that failed and will be retried."""
    num_given_up: int
    """Deliveries given up (permanent error, or ``max_attempts`` reached)."""


def measure_metric(metric: str, overview: Overview) -> Decimal:
    """The value of threshold metric ``metric`` in ``overview`` (units in ``METRICS``).

    Raises:
        ValueError: an unknown metric.
    """
    if metric == "cost":
        return overview.spend
    if metric == "requests":
        return Decimal(overview.requests)
    if metric == "spans":
        return Decimal(overview.num_spans)
    if metric == "errors":
        return Decimal(overview.error_spans)
    if metric == "error_rate":
        if not overview.num_spans:
            return Decimal(0)
        return (Decimal(overview.error_spans) / Decimal(overview.num_spans)).quantize(_RATE_PLACES)
    if metric == "tokens":
        return Decimal(overview.input_tokens + overview.output_tokens)
    if metric == "latency_p95_ms":
        return Decimal(str(round(overview.latency_p95_ms, 3)))
    if metric == "latency_p99_ms":
        return Decimal(str(round(overview.latency_p99_ms, 3)))
    raise ValueError(f"Unknown metric {metric!r}")


def _trimmed(value: Decimal) -> Decimal:
    """``value`` without trailing fractional zeros (``0.550000000000`` → ``0.55``), exact.

    Store sums carry their column's scale; notifications show the number a person would
    write. ``Decimal.normalize`` is not used: it rounds to the context precision.
    """
    text = format(value, "f")
    return Decimal(text.rstrip("0").rstrip(".") if "." in text else text)


def _finding_fingerprint(rule_id: str, finding: Finding, window_s: int) -> str:
    """Once per rule, kind, subject and rule window of ``first_seen`` (at most 100 chars)."""
    subject = hashlib.sha256(finding.subject_key.encode()).hexdigest()[:16]
    episode = int(finding.first_seen.timestamp()) // max(window_s, 1)
    return f"{rule_id}:{finding.kind}:{subject}:{episode}"


def _finding_message(rule_name: str, finding: Finding) -> str:
    """``<rule>: [severity] summary (first – last UTC; evidence: ids)``."""
    return (f"{rule_name}: [{finding.severity}] {finding.summary} "
            f"({finding.first_seen:%Y-%m-%d %H:%M:%S} – {finding.last_seen:%H:%M:%S} UTC; "
            f"{finding.count} seen; evidence: {', '.join(finding.evidence)})")


def _percent(fraction: Decimal) -> str:
    return f"{(fraction * 100).normalize():f} %"


class AlertEvaluator:
    """Evaluates the control store's alert rules against the span store and notifies.

    Args:
        store: the span store (read through analytics only).
        control: the control store holding rules, alerts and the delivery outbox.
        notifier: SMTP, webhook signing and timeout settings of the notifiers.
        max_attempts: delivery attempts before a delivery is given up.
        lease_s: seconds a claimed delivery is left to this evaluator before another may
            retry it (longer than one delivery's timeout).
    """

    def __init__(self, store: SpanStore, control: ControlStore, notifier: NotifierConfig, *,
                 max_attempts: int = 10, lease_s: float = 60.0) -> None:
        self.store = store
        self.control = control
        self.notifier = notifier
        self.max_attempts = max_attempts
        self.lease_s = max(lease_s, 2 * notifier.timeout_s)

    def run_once(self, now: datetime | None = None) -> EvaluationReport:
        """Evaluate every enabled rule at ``now``, then deliver what is due.

        ``now`` defaults to the current UTC time. Blocking: call it from a worker thread.

        Raises:
            StoreError: the control store cannot list the rules (a failing rule or
                delivery is logged and counted instead).
        """
        now = now or utc_now()
        rules = self.control.alerts.list_rules(enabled_only=True)
        alerts: list[AlertInfo] = []
        failed = 0
        for rule in rules:
            try:
                alerts.extend(self.evaluate_rule(rule, now))
            except Exception:  # noqa: BLE001 — one broken rule must not stop the others
                failed += 1
                _log.exception("evaluating alert rule %s (%s) failed", rule.id, rule.spec.name)
        sent, retried, given_up = self.deliver_due(now)
        return EvaluationReport(len(rules), failed, tuple(alerts), sent, retried, given_up)

    def evaluate_rule(self, rule: AlertRuleInfo, now: datetime) -> list[AlertInfo]:
        """Measure one rule at ``now`` and record its evaluation; returns the new alerts.

        Raises:
            QueryTimeout, StoreError: the measurement or the recording failed.
        """
        if rule.spec.kind == "budget":
            return self._evaluate_budget(rule, now)
        if rule.spec.kind == "security_signal":
            return self._evaluate_security_signal(rule, now)
        return self._evaluate_threshold(rule, now)

    def _evaluate_security_signal(self, rule: AlertRuleInfo, now: datetime) -> list[AlertInfo]:
        from mentatlab.governance.key_use import key_uses

        spec = rule.spec
        params = QueryParams(TimeRange(now - timedelta(seconds=spec.window_s), now),
                             spec.filters)
        window = params.time_range
        kinds = SIGNAL_KINDS if spec.metric == "any" else (spec.metric,)
        keys = key_uses(self.control, window.start, window.end, org_id=spec.org_id or None,
                        project_id=spec.filters.get("project_id")) if "new_key" in kinds else []
        report = find_signals(self.store, params, keys=keys, kinds=kinds,
                              min_severity=min_severity_of(spec))
        alerts = [NewAlert(
            fingerprint=_finding_fingerprint(rule.id, finding, spec.window_s), state="firing",
            metric=finding.kind, value=Decimal(finding.count),
            threshold=spec.threshold or Decimal(2), window_start=window.start,
            window_end=window.end, message=_finding_message(spec.name, finding))
            for finding in report.findings]
        return self.control.alerts.record_evaluation(
            rule.id, value=Decimal(len(report.findings)), evaluated_at=now,
            state="firing" if report.findings else "ok", alerts=alerts)

    def _evaluate_budget(self, rule: AlertRuleInfo, now: datetime) -> list[AlertInfo]:
        spec = rule.spec
        assert spec.limit_amount is not None
        period = period_range(spec.period, now)
        rows = cost_by(self.store, QueryParams(period, spec.filters))
        spend = _trimmed(sum((r.total_cost for r in rows), Decimal(0)))
        crossed = crossed_thresholds(spend, spec.limit_amount, spec.thresholds)
        state = "firing" if spend >= spec.limit_amount else "ok"
        label = f"{period.start:%Y-%m-%d}" if spec.period == "day" else f"{period.start:%Y-%m}"
        # every newly crossed threshold is recorded (so it never fires later); only the
        # highest one is delivered
        alerts = [NewAlert(
            fingerprint=f"{rule.id}:{period.start:%Y-%m-%d}:{fraction:f}", state="firing",
            metric="cost", value=spend, threshold=_trimmed(spec.limit_amount * fraction),
            window_start=period.start, window_end=period.end,
            message=(f"Budget {spec.name!r} reached {_percent(fraction)} of "
                     f"{spec.limit_amount:f} for {label}: spend {spend:f}"),
            notify=fraction == crossed[-1]) for fraction in crossed]
        return self.control.alerts.record_evaluation(
            rule.id, value=spend, evaluated_at=now, state=state, alerts=alerts)

    def _evaluate_threshold(self, rule: AlertRuleInfo, now: datetime) -> list[AlertInfo]:
        spec = rule.spec
        assert spec.threshold is not None
        window = TimeRange(now - timedelta(seconds=spec.window_s), now)
        value = _trimmed(measure_metric(spec.metric, get_overview(
            self.store, QueryParams(window, spec.filters))))
        holds = OPS[spec.op](value, spec.threshold)
        state = "firing" if holds else "ok"
        if state == rule.state:
            self.control.alerts.record_evaluation(rule.id, value=value, evaluated_at=now)
            return []
        since = rule.state_since or rule.created_at
        episode = now if holds else since  # a resolution belongs to the episode it ends
        minutes = spec.window_s / 60
        message = (f"{spec.name}: {spec.metric} = {value:f} over the last {minutes:g} min "
                   + (f"{spec.op} {spec.threshold:f}" if holds
                      else f"no longer {spec.op} {spec.threshold:f}"))
        alert = NewAlert(
            fingerprint=f"{rule.id}:{state}:{episode.isoformat()}",
            state="firing" if holds else "resolved", metric=spec.metric, value=value,
            threshold=spec.threshold, window_start=window.start, window_end=window.end,
            message=message)
        return self.control.alerts.record_evaluation(
            rule.id, value=value, evaluated_at=now, state=state, alerts=[alert],
            expected_state=rule.state)

    def deliver_due(self, now: datetime) -> tuple[int, int, int]:
        """Send every delivery due at ``now``; returns (sent, to retry, given up)."""
        sent = retried = given_up = 0
        for due in self.control.alerts.claim_due_deliveries(now, lease_s=self.lease_s):
            alert = due.alert
            notification = Notification(
                alert_id=alert.id, rule_id=alert.rule_id, rule_name=alert.rule_name,
                org_id=alert.org_id, rule_kind=alert.rule_kind, state=alert.state,
                metric=alert.metric, value=alert.value, threshold=alert.threshold,
                filters=alert.filters, window_start=alert.window_start,
                window_end=alert.window_end, message=alert.message, created_at=alert.created_at)
            try:
                deliver(parse_channel(due.channel), notification, self.notifier)
            except (DeliveryError, ValidationError) as exc:
                retryable = isinstance(exc, DeliveryError) and exc.retryable
                attempts = due.attempts + 1
                if retryable and attempts < self.max_attempts:
                    delay_s = min(MAX_BACKOFF_S, float(2 ** attempts))
                    if isinstance(exc, DeliveryError) and exc.retry_after_s is not None:
                        delay_s = min(MAX_BACKOFF_S, max(delay_s, exc.retry_after_s))
                    retry_at = now + timedelta(seconds=delay_s)
                    retried += 1
                else:
                    retry_at = None
                    given_up += 1
                # the channel's URL may carry a token: neither the log nor the stored
                # error (shown by the API) holds more than its origin
                error = redact_channel(due.channel, str(exc))
                _log.warning("alert %s to %s failed (attempt %s): %s", alert.id,
                             redact_channel(due.channel), attempts, error)
                self.control.alerts.finish_delivery(due.id, sent_at=None, error=error,
                                                    retry_at=retry_at)
                continue
            self.control.alerts.finish_delivery(due.id, sent_at=utc_now())
            sent += 1
        return sent, retried, given_up
