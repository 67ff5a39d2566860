"""Guardrail policies, their versions and break-glass overrides in the control store.

Migration ``0007_policies``. A policy is a row of ``policies`` (id, owner org, current
version, deleted mark) and one row of ``policy_versions`` per change: every create, update
or delete writes a new version and no version is ever changed or removed, so the decision
``(policy_id, version)`` recorded on a span always names the exact rule that matched. A
delete marks the policy deleted (its versions are kept). ``policy_overrides`` holds the
break-glass grants: one policy, one scope, a reason, an expiry.

Checking a spec (CEL, names, values) is :func:`mentatlab.governance.policy_rules.check_spec`;
this module only keeps what it is given. The audit entries are the callers' (the API
routes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import datetime

import orjson
from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from mentatlab.errors import ValidationError
from mentatlab.storage.control.models import Base, UtcDateTime, new_id, utc_now

__all__ = [
    "OverrideInfo",
    "Policy",
    "PolicyInfo",
    "PolicyOverride",
    "PolicyRecords",
    "PolicySpec",
    "PolicyVersion",
    "list_policies",
]


class Policy(Base):
    """One guardrail policy: its owner and which version is current."""

    __tablename__ = "policies"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(64), default="", index=True)
    """The owning org; ``""`` for an installation-wide policy."""
    current_version: Mapped[int] = mapped_column(Integer, default=1)
    builtin: Mapped[bool] = mapped_column(Boolean, default=False)
    alert_rule_id: Mapped[str] = mapped_column(String(64), default="")
    """The alert rule (kind ``policy``) that carries this policy's alerts, once one fired."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utc_now)
    deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class PolicyVersion(Base):
    """One version of a policy, never changed once written."""

    __tablename__ = "policy_versions"
    policy_id: Mapped[str] = mapped_column(ForeignKey("policies.id", ondelete="CASCADE"),
                                           primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    condition: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(String(16))
    scope_value: Mapped[str] = mapped_column(String(200), default="")
    action: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str] = mapped_column(String(16))
    compliance_tags: Mapped[str] = mapped_column(Text, default="[]")
    """JSON array of tags."""
    params: Mapped[str] = mapped_column(Text, default="{}")
    """JSON object: the condition's ``params``."""
    channels: Mapped[str] = mapped_column(Text, default="[]")
    """JSON array of ``kind:target`` alert channels (action ``alert``)."""
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    draft: Mapped[bool] = mapped_column(Boolean, default=False)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utc_now)


class PolicyOverride(Base):
    """A break-glass grant: one policy passes for one scope until ``expires_at``."""

    __tablename__ = "policy_overrides"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    policy_id: Mapped[str] = mapped_column(ForeignKey("policies.id", ondelete="CASCADE"),
                                           index=True)
    org_id: Mapped[str] = mapped_column(String(64), default="")
    scope: Mapped[str] = mapped_column(String(16))
    scope_value: Mapped[str] = mapped_column(String(200), default="")
    reason: Mapped[str] = mapped_column(Text)
    granted_by: Mapped[str] = mapped_column(String(200))
    granted_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)


@dataclass(frozen=True, slots=True)
class PolicySpec:
    """A policy as written by a user (checked by ``governance.policy_rules.check_spec``)."""

    name: str
    condition: str
    """CEL over the canonical span (docs/governance.md, "Guardrail policies")."""
    action: str
    """``block``, ``alert``, ``redact`` or ``log``."""
    scope: str = "global"
    """``global``, ``org``, ``project``, ``agent`` or ``tool``."""
    scope_value: str = ""
    org_id: str = ""
    """Owner org; ``""`` = installation-wide."""
    severity: str = "medium"
    compliance_tags: tuple[str, ...] = ()
    params: dict[str, object] = field(default_factory=dict)
    channels: tuple[str, ...] = ()
    description: str = ""
    enabled: bool = True
    draft: bool = False
    """A draft is kept and can be simulated but is never enforced."""


@dataclass(frozen=True, slots=True)
class PolicyInfo:
    """One stored version of a policy."""

    id: str
    version: int
    current_version: int
    spec: PolicySpec
    builtin: bool
    created_by: str
    created_at: datetime
    """When this version was written (UTC)."""
    deleted: bool
    """The policy is deleted (whatever version this is)."""
    alert_rule_id: str = ""

    @property
    def enforced(self) -> bool:
        """Whether ingest and the check API apply this version."""
        return self.spec.enabled and not self.spec.draft and not self.deleted


@dataclass(frozen=True, slots=True)
class OverrideInfo:
    """A break-glass grant."""

    id: str
    policy_id: str
    org_id: str
    scope: str
    scope_value: str
    reason: str
    granted_by: str
    granted_at: datetime
    expires_at: datetime

    def active(self, now: datetime) -> bool:
        """Whether the grant is in force at ``now``."""
        return self.granted_at <= now < self.expires_at


def _info(policy: Policy, row: PolicyVersion) -> PolicyInfo:
    spec = PolicySpec(
        name=row.name, condition=row.condition, action=row.action, scope=row.scope,
        scope_value=row.scope_value, org_id=policy.org_id, severity=row.severity,
        compliance_tags=tuple(orjson.loads(row.compliance_tags)),
        params=dict(orjson.loads(row.params)), channels=tuple(orjson.loads(row.channels)),
        description=row.description, enabled=row.enabled, draft=row.draft)
    return PolicyInfo(policy.id, row.version, policy.current_version, spec, policy.builtin,
                      row.created_by, row.created_at, row.deleted or policy.deleted_at is not None,
                      policy.alert_rule_id)


def _version_row(policy_id: str, version: int, spec: PolicySpec, actor: str,
                 *, deleted: bool = False) -> PolicyVersion:
    return PolicyVersion(
        policy_id=policy_id, version=version, name=spec.name, description=spec.description,
        condition=spec.condition, scope=spec.scope, scope_value=spec.scope_value,
        action=spec.action, severity=spec.severity,
        compliance_tags=orjson.dumps(list(spec.compliance_tags)).decode(),
        params=orjson.dumps(spec.params).decode(),
        channels=orjson.dumps(list(spec.channels)).decode(), enabled=spec.enabled,
        draft=spec.draft, deleted=deleted, created_by=actor, created_at=utc_now())


def _override_info(row: PolicyOverride) -> OverrideInfo:
    return OverrideInfo(row.id, row.policy_id, row.org_id, row.scope, row.scope_value,
                        row.reason, row.granted_by, row.granted_at, row.expires_at)


class PolicyRecords:
    """Read and change policies (through :attr:`ControlStore.policies`)."""

    def __init__(self, session: Callable[[], AbstractContextManager[Session]]) -> None:
        self._session = session

    def create(self, spec: PolicySpec, *, actor: str, policy_id: str | None = None,
               builtin: bool = False) -> PolicyInfo:
        """Store a new policy at version 1.

        Raises:
            ValidationError: (field ``id``) the id is taken.
            StoreError: the control store failed.
        """
        with self._session() as session:
            pid = policy_id or new_id()
            if session.get(Policy, pid) is not None:
                raise ValidationError("id", f"A policy {pid!r} exists already")
            policy = Policy(id=pid, org_id=spec.org_id, current_version=1, builtin=builtin,
                            alert_rule_id="", created_at=utc_now(), deleted_at=None)
            session.add(policy)
            session.flush()
            row = _version_row(pid, 1, spec, actor)
            session.add(row)
            session.flush()
            return _info(policy, row)

    def update(self, policy_id: str, spec: PolicySpec, *, actor: str) -> PolicyInfo | None:
        """Write ``spec`` as the policy's next version.

        Write ``spec`` as the policy's next version; None when there is no such policy
        (or it is deleted). The owner org never changes.

        Raises:
            StoreError: the control store failed.
        """
        with self._session() as session:
            policy = session.get(Policy, policy_id, with_for_update=True)
            if policy is None or policy.deleted_at is not None:
                return None
            policy.current_version += 1
            row = _version_row(policy_id, policy.current_version,
                               replace(spec, org_id=policy.org_id), actor)
            session.add(row)
            session.flush()
            return _info(policy, row)

    def delete(self, policy_id: str, *, actor: str) -> PolicyInfo | None:
        """Mark the policy deleted with a last version.

        Mark the policy deleted with a last version (a copy marked deleted); None when
        there is no such policy or it is deleted already.

        Raises:
            StoreError: the control store failed.
        """
        with self._session() as session:
            policy = session.get(Policy, policy_id, with_for_update=True)
            if policy is None or policy.deleted_at is not None:
                return None
            current = session.get(PolicyVersion, (policy_id, policy.current_version))
            assert current is not None
            spec = _info(policy, current).spec
            policy.current_version += 1
            policy.deleted_at = utc_now()
            row = _version_row(policy_id, policy.current_version, spec, actor, deleted=True)
            session.add(row)
            session.flush()
            return _info(policy, row)

    def get(self, policy_id: str, version: int | None = None) -> PolicyInfo | None:
        """The current (or the given) version of a policy, deleted ones included."""
        with self._session() as session:
            policy = session.get(Policy, policy_id)
            if policy is None:
                return None
            row = session.get(PolicyVersion, (policy_id, version or policy.current_version))
            return None if row is None else _info(policy, row)

    def versions(self, policy_id: str) -> list[PolicyInfo]:
        """Every version of a policy, oldest first (empty when there is none)."""
        with self._session() as session:
            policy = session.get(Policy, policy_id)
            if policy is None:
                return []
            rows = session.scalars(select(PolicyVersion).where(
                PolicyVersion.policy_id == policy_id).order_by(PolicyVersion.version))
            return [_info(policy, row) for row in rows]

    def current(self, org_id: str | None = None, *, include_deleted: bool = False
                ) -> list[PolicyInfo]:
        """Current versions, by name.

        Current versions: of every policy (``org_id`` None), or those that apply to an
        org (its own and the installation-wide ones); by name.
        """
        with self._session() as session:
            query = select(Policy, PolicyVersion).join(PolicyVersion, (
                PolicyVersion.policy_id == Policy.id)
                & (PolicyVersion.version == Policy.current_version))
            if org_id is not None:
                query = query.where(Policy.org_id.in_(["", org_id]))
            if not include_deleted:
                query = query.where(Policy.deleted_at.is_(None))
            out = [_info(p, v) for p, v in session.execute(query)]
        return sorted(out, key=lambda i: (i.spec.name, i.id))

    def enforced(self) -> list[PolicyInfo]:
        """Current versions that ingest and the check API apply.

        Current versions that ingest and the check API apply (enabled, not draft, not
        deleted), of every org.
        """
        return [info for info in self.current() if info.enforced]

    def set_alert_rule(self, policy_id: str, rule_id: str) -> None:
        """Remember the alert rule that carries the policy's alerts."""
        with self._session() as session:
            policy = session.get(Policy, policy_id)
            if policy is not None:
                policy.alert_rule_id = rule_id

    def ensure(self, policies: Iterable[tuple[str, PolicySpec]], *, actor: str = "system"
               ) -> list[str]:
        """Create each ``(id, spec)`` that does not exist yet, as a built-in.

        Create each ``(id, spec)`` that does not exist yet (never one deleted by a user,
        never changing one that exists) as a built-in; returns the ids created.
        """
        created: list[str] = []
        for policy_id, spec in policies:
            with self._session() as session:
                if session.get(Policy, policy_id) is not None:
                    continue
            try:
                self.create(spec, actor=actor, policy_id=policy_id, builtin=True)
            except ValidationError:  # another node created it at the same moment
                continue
            created.append(policy_id)
        return created

    # --- break-glass overrides ----------------------------------------------------------

    def grant_override(self, policy_id: str, *, org_id: str, scope: str, scope_value: str,
                       reason: str, granted_by: str, expires_at: datetime) -> OverrideInfo:
        """Record a break-glass grant.

        Raises:
            ValidationError: (field ``policy_id``) no such policy.
            StoreError: the control store failed.
        """
        with self._session() as session:
            if session.get(Policy, policy_id) is None:
                raise ValidationError("policy_id", f"No policy {policy_id!r}")
            row = PolicyOverride(id=new_id(), policy_id=policy_id, org_id=org_id, scope=scope,
                                 scope_value=scope_value, reason=reason,
                                 granted_by=granted_by, granted_at=utc_now(),
                                 expires_at=expires_at)
            session.add(row)
            session.flush()
            return _override_info(row)

    def overrides(self, *, policy_id: str | None = None, active_at: datetime | None = None
                  ) -> list[OverrideInfo]:
        """Break-glass grants, newest first.

        Grants (of one policy, or all), only those in force at ``active_at`` when given;
        newest first.
        """
        with self._session() as session:
            query = select(PolicyOverride)
            if policy_id is not None:
                query = query.where(PolicyOverride.policy_id == policy_id)
            if active_at is not None:
                query = query.where(PolicyOverride.expires_at > active_at,
                                    PolicyOverride.granted_at <= active_at)
            rows = session.scalars(query.order_by(PolicyOverride.granted_at.desc()))
            return [_override_info(r) for r in rows]


def list_policies(control: object, org_id: str | None) -> Sequence[PolicyInfo]:
    """The policies of ``org_id``: the read the compliance report uses.

    The policies in force or kept for ``org_id`` (its own and installation-wide ones;
    every org's when None; current versions, deleted ones left out).

    ``control`` is a :class:`~mentatlab.storage.control.ControlStore`.
    """
    records: PolicyRecords = control.policies  # type: ignore[attr-defined]
    return records.current(org_id)
