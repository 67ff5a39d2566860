"""The server's side of guardrail policies: the snapshot in force, and policy alerts.

:class:`PolicyService` holds the :class:`~mentatlab.governance.policies.PolicySnapshot`
of the enforced policies. It is read from the control store at start (after creating the
missing built-ins), after each change made through this server, and every
``policy_refresh_s`` (changes made through another node). The ingestor hands the current
snapshot to the ``policies`` stage with each batch, in this process or in a worker
process (an argument of the worker call; a worker compiles each digest once).

``alert`` decisions are raised here, after the batch is committed: per policy version and
minute one alert (fingerprint ``policy:<id>:<version>:<minute>``) with the number of
matches in the first batch that had any, recorded on the policy's alert rule (kind
``policy``, disabled so the evaluator never measures it, channels from the policy), so
the alert job delivers it to the channels like any other alert.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

import anyio.to_thread
import pyarrow as pa
import pyarrow.compute as pc

from mentatlab.governance.policies import PolicySnapshot
from mentatlab.governance.policy_rules import BUILTIN_POLICIES, snapshot_of
from mentatlab.storage.control import AlertRuleSpec, NewAlert
from mentatlab.storage.control.models import utc_now

if TYPE_CHECKING:
    from mentatlab.server.metrics import ServerMetrics
    from mentatlab.storage.control import ControlStore

__all__ = ["POLICY_ALERT_KIND", "PolicyService"]

_log = logging.getLogger(__name__)

POLICY_ALERT_KIND = "policy"
"""``kind`` of the alert rule that carries a policy's alerts."""


class PolicyService:
    """The enforced-policy snapshot of this server, and the raising of policy alerts.

    Args:
        control: the control store; None (tests without one) keeps an empty snapshot.
        refresh_s: seconds between two reads (0: only at start and on changes).
        builtins: create the missing built-in policies at :meth:`load`.
    """

    def __init__(self, control: ControlStore | None, refresh_s: float = 5.0, *,
                 builtins: bool = True, metrics: ServerMetrics | None = None) -> None:
        self.control = control
        self.metrics = metrics
        self.refresh_s = refresh_s
        self.builtins = builtins
        self.snapshot = PolicySnapshot()
        self.num_alerts_raised = 0

    def current(self) -> PolicySnapshot:
        """The snapshot in force now."""
        return self.snapshot

    def load(self) -> PolicySnapshot:
        """Create missing built-ins (once), then :meth:`refresh`. Blocking.

        Raises:
            StoreError: the control store failed.
        """
        if self.control is not None and self.builtins:
            created = self.control.policies.ensure(BUILTIN_POLICIES)
            for policy_id in created:
                self.control.audit.record("system", "policy.created", target=policy_id,
                                          details={"version": 1, "builtin": True})
            self.builtins = False
        return self.refresh()

    def refresh(self) -> PolicySnapshot:
        """Read the enforced policies into a new snapshot. Blocking.

        Raises:
            StoreError: the control store failed (the old snapshot stays).
        """
        if self.control is None:
            return self.snapshot
        snapshot = snapshot_of(self.control.policies.enforced())
        if snapshot.digest != self.snapshot.digest:
            _log.info("guardrail policies in force: %s (digest %s)", len(snapshot.rules),
                      snapshot.digest)
        self.snapshot = snapshot
        return snapshot

    async def run(self) -> None:
        """Refresh every ``refresh_s`` until cancelled (a failed read is logged)."""
        if self.refresh_s <= 0:
            return
        while True:
            await asyncio.sleep(self.refresh_s)
            try:
                await anyio.to_thread.run_sync(self.refresh)
            except Exception:  # noqa: BLE001 — keep the last snapshot; logged
                _log.exception("Reading the guardrail policies failed; the last set stays")

    # --- alerts --------------------------------------------------------------------------

    def raise_alerts(self, table: pa.Table, now: datetime | None = None) -> int:
        """Count a committed batch's decisions and raise its ``alert`` matches.

        One alert per policy version with ``alert`` matches in the batch (and minute).

        Blocking. Returns the alerts recorded (0 when the batch has no ``alert``
        decision, or each fired already this minute).

        Raises:
            StoreError: the control store failed.
        """
        control = self.control
        if table.num_rows == 0 or "policy_actions" not in table.schema.names:
            return 0
        flat = pc.list_flatten(table.column("policy_actions"))
        if self.metrics is not None and len(flat):
            counts = pc.value_counts(flat).to_pylist()
            for item in counts:
                self.metrics.policy_decisions.labels(item["values"]).inc(item["counts"])
        if not pc.any(pc.equal(flat, "alert")).as_py():
            return 0
        if control is None:
            return 0
        now = now or utc_now()
        minute = now.replace(second=0, microsecond=0)
        hits: dict[tuple[str, int], list[tuple[str, str]]] = defaultdict(list)
        rows = table.select(["trace_id", "span_id", "policy_ids", "policy_versions",
                             "policy_actions"]).to_pylist()
        for row in rows:
            for pid, version, action in zip(row["policy_ids"], row["policy_versions"],
                                            row["policy_actions"], strict=False):
                if action == "alert":
                    hits[(pid, int(version))].append((row["trace_id"], row["span_id"]))
        raised = 0
        for (policy_id, version), spans in hits.items():
            info = control.policies.get(policy_id, version)
            if info is None:
                continue
            rule_id = self._alert_rule(policy_id, version)
            if not rule_id:
                continue
            trace_id, span_id = spans[0]
            spec = info.spec
            message = (f"Policy {spec.name!r} ({policy_id} v{version}, {spec.severity}) "
                       f"matched {len(spans)} span(s); first trace {trace_id} span {span_id}")
            alert = NewAlert(
                fingerprint=f"policy:{policy_id}:{version}:{minute.isoformat()}",
                state="firing", metric="policy_matches", value=Decimal(len(spans)),
                threshold=Decimal(1), window_start=minute,
                window_end=minute + timedelta(minutes=1), message=message)
            recorded = control.alerts.record_evaluation(
                rule_id, value=Decimal(len(spans)), evaluated_at=now, state="firing",
                alerts=[alert])
            raised += len(recorded)
        self.num_alerts_raised += raised
        return raised

    def _alert_rule(self, policy_id: str, version: int) -> str:
        """The id of the alert rule carrying the policy's alerts.

        The id of the alert rule carrying the policy's alerts (made or updated to the
        version's channels).
        """
        control = self.control
        assert control is not None
        current = control.policies.get(policy_id)
        info = control.policies.get(policy_id, version)
        if current is None or info is None:
            return ""
        spec = AlertRuleSpec(name=f"Policy {policy_id}", kind=POLICY_ALERT_KIND,
                             metric="policy_matches", org_id=info.spec.org_id,
                             threshold=Decimal(1), channels=info.spec.channels, enabled=False)
        rule = control.alerts.get_rule(current.alert_rule_id) if current.alert_rule_id else None
        if rule is None:
            rule = control.alerts.create_rule(spec)
            control.policies.set_alert_rule(policy_id, rule.id)
        elif rule.spec.channels != spec.channels:
            control.alerts.update_rule(rule.id, spec)
        return rule.id
