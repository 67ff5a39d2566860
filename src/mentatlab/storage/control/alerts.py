"""Alert rules, alerts and their deliveries in the control store.

The alerting stage (``mentatlab.alerting``) decides *what* fires; this module only keeps
it: rules as the user wrote them, the state the evaluator carries between runs, and an
outbox of deliveries that a notifier drains. Recording an alert and its deliveries is one
transaction, and an alert's ``fingerprint`` is unique, so an alert is recorded (and so
notified) once even if two evaluators ever overlapped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

import orjson
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from mentatlab.errors import ConfigError
from mentatlab.governance.encryption import SecretCipher, is_encrypted_secret
from mentatlab.storage.control.models import Alert, AlertDelivery, AlertRule, new_id, utc_now

__all__ = [
    "AlertDeliveryInfo",
    "AlertInfo",
    "AlertRecords",
    "AlertRuleInfo",
    "AlertRuleSpec",
    "DueDelivery",
    "NewAlert",
    "SecretCounts",
]


@dataclass(frozen=True, slots=True)
class AlertRuleSpec:
    """An alert rule as written by a user (checked by ``mentatlab.alerting.rules``).

    Money (``threshold`` of a cost metric, ``limit_amount``) is in the spans' currency
    (USD by default); ``window_s`` in seconds.
    """

    name: str
    kind: str
    """``budget``, ``threshold`` or ``security_signal``."""
    metric: str
    org_id: str = ""
    op: str = ">="
    threshold: Decimal | None = None
    window_s: int = 300
    period: str = ""
    limit_amount: Decimal | None = None
    thresholds: tuple[Decimal, ...] = ()
    """Budget fractions that notify, e.g. ``(0.5, 0.8, 1)``."""
    filters: dict[str, str] = field(default_factory=dict)
    channels: tuple[str, ...] = ()
    """``kind:target`` strings (``webhook:https://…``, ``slack:…``, ``email:a@x.org``)."""
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class AlertRuleInfo:
    """A stored rule with the state the evaluator keeps."""

    id: str
    spec: AlertRuleSpec
    state: str
    state_since: datetime | None
    last_value: Decimal | None
    last_evaluated_at: datetime | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class NewAlert:
    """An alert the evaluator wants recorded (and delivered to the rule's channels)."""

    fingerprint: str
    state: str
    metric: str
    value: Decimal
    threshold: Decimal
    window_start: datetime
    window_end: datetime
    message: str
    notify: bool = True
    """False records the alert without deliveries (a lower budget threshold crossed in the
    same run as a higher one)."""


@dataclass(frozen=True, slots=True)
class AlertDeliveryInfo:
    """Where an alert was (or is being) delivered."""

    channel: str
    status: str
    attempts: int
    last_error: str
    sent_at: datetime | None


@dataclass(frozen=True, slots=True)
class AlertInfo:
    """A recorded alert, with its rule's name and scope and its deliveries."""

    id: str
    rule_id: str
    rule_name: str
    rule_kind: str
    org_id: str
    filters: dict[str, str]
    state: str
    metric: str
    value: Decimal
    threshold: Decimal
    window_start: datetime
    window_end: datetime
    message: str
    created_at: datetime
    deliveries: tuple[AlertDeliveryInfo, ...] = ()


@dataclass(frozen=True, slots=True)
class DueDelivery:
    """A delivery whose next attempt is due."""

    id: int
    channel: str
    attempts: int
    alert: AlertInfo


_RULE_SECRET = "an alert rule's channel list"
_DELIVERY_SECRET = "an alert delivery's channel"


@dataclass(frozen=True, slots=True)
class SecretCounts:
    """Secrets in the control store: all, encrypted, and encrypted with the newest key."""

    num_secrets: int
    num_encrypted: int
    num_current_key: int


def _spec(row: AlertRule, cipher: SecretCipher) -> AlertRuleSpec:
    return AlertRuleSpec(
        name=row.name, kind=row.kind, metric=row.metric, org_id=row.org_id, op=row.op,
        threshold=row.threshold, window_s=row.window_s, period=row.period,
        limit_amount=row.limit_amount,
        thresholds=tuple(Decimal(t) for t in row.thresholds.split(",") if t),
        filters=dict(orjson.loads(row.filters)),
        channels=tuple(orjson.loads(cipher.decrypt(row.channels, _RULE_SECRET))),
        enabled=row.enabled)


def _rule_info(row: AlertRule, cipher: SecretCipher) -> AlertRuleInfo:
    return AlertRuleInfo(row.id, _spec(row, cipher), row.state, row.state_since, row.last_value,
                         row.last_evaluated_at, row.created_at)


def _alert_info(row: Alert, rule: AlertRule, cipher: SecretCipher,
                deliveries: Sequence[AlertDelivery] = ()) -> AlertInfo:
    return AlertInfo(
        id=row.id, rule_id=row.rule_id, rule_name=rule.name, rule_kind=rule.kind,
        org_id=row.org_id, filters=dict(orjson.loads(rule.filters)), state=row.state,
        metric=row.metric, value=row.value, threshold=row.threshold,
        window_start=row.window_start, window_end=row.window_end, message=row.message,
        created_at=row.created_at,
        deliveries=tuple(AlertDeliveryInfo(
            cipher.decrypt(d.channel, _DELIVERY_SECRET), d.status, d.attempts, d.last_error,
            d.sent_at) for d in deliveries))


class AlertRecords:
    """The alerting tables of a control store (``ControlStore.alerts``).

    Args:
        session: opens one transaction (commit on exit, rollback on error) that maps
            database errors to :class:`~mentatlab.errors.StoreError`.

    Raises (every method):
        StoreError: the control store failed.
    """

    def __init__(self, session: Callable[[], AbstractContextManager[Session]],
                 secrets: SecretCipher | None = None) -> None:
        self._session = session
        self._secrets = secrets or SecretCipher(None)

    # --- secrets at rest (docs/governance.md "Encryption at rest") -----------------------

    def check_secrets(self) -> None:
        """Check that every rule's channels decrypt with the configured keys.

        Raises:
            ConfigError: a rule's channels are encrypted and no key, or no right key, is set.
            StoreError: the control store failed.
        """
        with self._session() as session:
            for stored in session.scalars(select(AlertRule.channels)):
                self._secrets.decrypt(stored, _RULE_SECRET)

    def count_secrets(self) -> SecretCounts:
        """How many stored secrets (rules' channel lists, deliveries' channels) are encrypted.

        Raises:
            StoreError: the control store failed.
        """
        with self._session() as session:
            values = [*session.scalars(select(AlertRule.channels)),
                      *session.scalars(select(AlertDelivery.channel))]
        encrypted = [v for v in values if is_encrypted_secret(v)]
        current = sum(1 for v in encrypted if self._secrets.is_current(v))
        return SecretCounts(len(values), len(encrypted), current)

    def reencrypt_secrets(self) -> SecretCounts:
        """Re-encrypt every stored secret with the newest key (plaintext ones too).

        One transaction; returns the counts after it.

        Raises:
            ConfigError: no key is configured, or a value no configured key decrypts (nothing
                is changed then).
            StoreError: the control store failed.
        """
        if not self._secrets.enabled:
            raise ConfigError("Expected MENTATLAB_ENCRYPTION_KEY to re-encrypt with, got none")
        with self._session() as session:
            for rule in session.scalars(select(AlertRule)):
                rule.channels = self._secrets.reencrypt(rule.channels)
            for delivery in session.scalars(select(AlertDelivery)):
                delivery.channel = self._secrets.reencrypt(delivery.channel)
        return self.count_secrets()

    def create_rule(self, spec: AlertRuleSpec) -> AlertRuleInfo:
        """Store a new rule (check it with ``alerting.rules.check_rule`` first).

        Raises:
            ValidationError: an org already has a rule of that name (field ``control_store``).
        """
        now = utc_now()
        with self._session() as session:
            row = AlertRule(
                id=new_id(), org_id=spec.org_id, name=spec.name, kind=spec.kind,
                metric=spec.metric, op=spec.op, threshold=spec.threshold,
                window_s=spec.window_s, period=spec.period, limit_amount=spec.limit_amount,
                thresholds=",".join(format(t, "f") for t in spec.thresholds),
                filters=orjson.dumps(spec.filters, option=orjson.OPT_SORT_KEYS).decode(),
                channels=self._secrets.encrypt(orjson.dumps(list(spec.channels)).decode()),
                enabled=spec.enabled,
                state="ok", state_since=now, created_at=now)
            session.add(row)
            session.flush()
            return _rule_info(row, self._secrets)

    def list_rules(self, org_id: str | None = None, *,
                         enabled_only: bool = False) -> list[AlertRuleInfo]:
        """Rules of ``org_id`` (every org's and the global ones when None), by org and name."""
        with self._session() as session:
            query = select(AlertRule).order_by(AlertRule.org_id, AlertRule.name)
            if org_id is not None:
                query = query.where(AlertRule.org_id == org_id)
            if enabled_only:
                query = query.where(AlertRule.enabled.is_(True))
            return [_rule_info(r, self._secrets) for r in session.scalars(query).all()]

    def get_rule(self, rule_id: str) -> AlertRuleInfo | None:
        """One rule, or None."""
        with self._session() as session:
            row = session.get(AlertRule, rule_id)
            return None if row is None else _rule_info(row, self._secrets)

    def set_enabled(self, rule_id: str, enabled: bool
                               ) -> AlertRuleInfo | None:
        """Enable or disable a rule; None when there is no such rule.

        Re-enabling starts the rule from ``ok``: what happened while it was off is not
        replayed as a resolution.
        """
        with self._session() as session:
            row = session.get(AlertRule, rule_id)
            if row is None:
                return None
            if row.enabled != enabled:
                row.enabled = enabled
                row.state, row.state_since = "ok", utc_now()
            return _rule_info(row, self._secrets)

    def update_rule(self, rule_id: str, spec: AlertRuleSpec) -> AlertRuleInfo | None:
        """Replace a rule's definition (its id, org and kind stay); None when there is none.

        The rule starts again from ``ok`` (its alerts so far stay in the history): a
        changed limit or condition is a new rule for the evaluator. Check ``spec`` with
        ``alerting.alert_rule.check_rule`` first.

        Raises:
            ValidationError: another rule of the org has that name (field ``control_store``).
        """
        with self._session() as session:
            row = session.get(AlertRule, rule_id)
            if row is None:
                return None
            row.name, row.metric, row.op = spec.name, spec.metric, spec.op
            row.threshold, row.window_s, row.period = spec.threshold, spec.window_s, spec.period
            row.limit_amount = spec.limit_amount
            row.thresholds = ",".join(format(t, "f") for t in spec.thresholds)
            row.filters = orjson.dumps(spec.filters, option=orjson.OPT_SORT_KEYS).decode()
            row.channels = self._secrets.encrypt(orjson.dumps(list(spec.channels)).decode())
            row.enabled = spec.enabled
            row.state, row.state_since = "ok", utc_now()
            session.flush()
            return _rule_info(row, self._secrets)

    def delete_rule(self, rule_id: str) -> bool:
        """Delete a rule with its alerts and deliveries; False when there is no such rule."""
        with self._session() as session:
            row = session.get(AlertRule, rule_id)
            if row is None:
                return False
            alert_ids = select(Alert.id).where(Alert.rule_id == rule_id)
            # explicit: SQLite enforces ON DELETE CASCADE only with foreign_keys=ON
            session.execute(delete(AlertDelivery).where(AlertDelivery.alert_id.in_(alert_ids)))
            session.execute(delete(Alert).where(Alert.rule_id == rule_id))
            session.delete(row)
            return True

    def record_evaluation(self, rule_id: str, *, value: Decimal,
                          evaluated_at: datetime, state: str | None = None,
                          alerts: Sequence[NewAlert] = (), expected_state: str | None = None
                          ) -> list[AlertInfo]:
        """Save one evaluation of a rule, and the alerts it raised, in one transaction.

        Args:
            rule_id: the rule evaluated.
            value: the measured value (its metric's unit).
            evaluated_at: when (UTC).
            state: the rule's new state, or None to keep it.
            alerts: alerts to record, each (when ``notify``) with one pending delivery per
                channel of the rule; one whose fingerprint is already recorded fired before
                and is skipped.
            expected_state: compare-and-set: when the rule's state is no longer this (another
                evaluator moved it), only the value is saved.

        Returns:
            The alerts recorded now (none when the rule is gone or moved on).
        """
        with self._session() as session:
            # the row lock (PostgreSQL) makes the fingerprint check and the inserts atomic
            rule = session.get(AlertRule, rule_id, with_for_update=True)
            if rule is None:
                return []
            rule.last_value, rule.last_evaluated_at = value, evaluated_at
            if expected_state is not None and rule.state != expected_state:
                return []
            if state is not None and state != rule.state:
                rule.state, rule.state_since = state, evaluated_at
            fired = set(session.scalars(select(Alert.fingerprint).where(
                Alert.fingerprint.in_([a.fingerprint for a in alerts]))))
            channels = orjson.loads(self._secrets.decrypt(rule.channels, _RULE_SECRET))
            recorded: list[AlertInfo] = []
            for alert in alerts:
                if alert.fingerprint in fired:
                    continue
                row = Alert(id=new_id(), rule_id=rule_id, org_id=rule.org_id,
                            fingerprint=alert.fingerprint, state=alert.state,
                            metric=alert.metric, value=alert.value, threshold=alert.threshold,
                            window_start=alert.window_start, window_end=alert.window_end,
                            message=alert.message, created_at=evaluated_at)
                deliveries = [AlertDelivery(alert_id=row.id, channel=self._secrets.encrypt(channel),
                                            status="pending",
                                            attempts=0, next_attempt_at=evaluated_at,
                                            last_error="")
                              for channel in (channels if alert.notify else ())]
                session.add(row)
                session.add_all(deliveries)
                recorded.append(_alert_info(row, rule, self._secrets, deliveries))
            session.flush()
            return recorded

    def claim_due_deliveries(self, now: datetime, *, lease_s: float = 60.0,
                             limit: int = 100) -> list[DueDelivery]:
        """Claim the pending deliveries due at ``now`` (oldest first) for one sender.

        A claimed delivery's next attempt moves ``lease_s`` seconds on (a compare-and-set,
        so of two concurrent claimers only one wins a row); :meth:`finish_delivery` then
        records the outcome. A sender that dies holding a claim leaves the delivery to be
        retried after the lease (at least once).
        """
        with self._session() as session:
            rows = session.execute(
                select(AlertDelivery, Alert, AlertRule)
                .join(Alert, AlertDelivery.alert_id == Alert.id)
                .join(AlertRule, Alert.rule_id == AlertRule.id)
                .where(AlertDelivery.status == "pending", AlertDelivery.next_attempt_at <= now)
                .order_by(AlertDelivery.next_attempt_at, AlertDelivery.id).limit(limit)).all()
            lease_end = now + timedelta(seconds=lease_s)
            claimed: list[DueDelivery] = []
            for delivery, alert, rule in rows:
                # compare-and-set: a concurrent claimer that read the same row loses here
                moved = session.execute(
                    update(AlertDelivery)
                    .where(AlertDelivery.id == delivery.id, AlertDelivery.status == "pending",
                           AlertDelivery.next_attempt_at == delivery.next_attempt_at)
                    .values(next_attempt_at=lease_end)
                    .execution_options(synchronize_session=False))
                if getattr(moved, "rowcount", 0) == 1:
                    claimed.append(DueDelivery(
                        delivery.id, self._secrets.decrypt(delivery.channel, _DELIVERY_SECRET),
                        delivery.attempts, _alert_info(alert, rule, self._secrets)))
            return claimed

    def finish_delivery(self, delivery_id: int, *, sent_at: datetime | None,
                        error: str = "", retry_at: datetime | None = None) -> None:
        """Record an attempt: sent (``sent_at``), to retry at ``retry_at``, or given up.

        Args:
            delivery_id: the delivery.
            sent_at: when it was delivered; None when the attempt failed.
            error: why it failed.
            retry_at: when to try again; None with ``sent_at`` None gives up (``failed``).
        """
        with self._session() as session:
            row = session.get(AlertDelivery, delivery_id)
            if row is None:
                return
            row.attempts += 1
            row.last_error = error
            if sent_at is not None:
                row.status, row.sent_at = "sent", sent_at
            elif retry_at is not None:
                row.next_attempt_at = retry_at
            else:
                row.status = "failed"

    def list_alerts(self, org_id: str | None = None, *, rule_id: str | None = None,
                    state: str | None = None, limit: int = 100) -> list[AlertInfo]:
        """Recorded alerts, newest first, with their deliveries."""
        with self._session() as session:
            query = (select(Alert, AlertRule).join(AlertRule, Alert.rule_id == AlertRule.id)
                     .order_by(Alert.created_at.desc(), Alert.id).limit(limit))
            if org_id is not None:
                query = query.where(Alert.org_id == org_id)
            if rule_id is not None:
                query = query.where(Alert.rule_id == rule_id)
            if state is not None:
                query = query.where(Alert.state == state)
            pairs = session.execute(query).all()
            by_alert: dict[str, list[AlertDelivery]] = {a.id: [] for a, _ in pairs}
            for delivery in session.scalars(select(AlertDelivery).where(
                    AlertDelivery.alert_id.in_(list(by_alert))).order_by(AlertDelivery.id)):
                by_alert[delivery.alert_id].append(delivery)
            return [_alert_info(a, r, self._secrets, by_alert[a.id]) for a, r in pairs]
