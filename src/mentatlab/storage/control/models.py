"""Control-store tables (SQLAlchemy 2.0 typed models).

Orgs, projects, API keys, users, memberships, sessions, pricing, alert rules, alerts and
their deliveries.

Portable across SQLite and PostgreSQL: no dialect-specific types; money is exact decimal
text (SQLite has no decimal type, and a float would round); times are timezone-aware UTC.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

__all__ = [
    "Alert",
    "AlertDelivery",
    "AlertRule",
    "ApiKey",
    "AuditCheckpoint",
    "AuditEntry",
    "Base",
    "DecimalText",
    "Membership",
    "NodeWatermark",
    "Org",
    "PricingDocument",
    "PricingOverride",
    "Project",
    "QuotaOverride",
    "RepriceJob",
    "Session",
    "User",
    "UtcDateTime",
    "new_id",
    "utc_now",
]


def new_id() -> str:
    """A new random id: 32 lowercase hex digits."""
    return uuid.uuid4().hex


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Store the UTC instant; a naive datetime is refused (ValueError)."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"Expected a timezone-aware datetime, got {value!r}")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Give the value back timezone-aware (UTC)."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value


class DecimalText(TypeDecorator[Decimal]):
    """An exact Decimal stored as text (the same on SQLite and PostgreSQL)."""

    impl = String(64)
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> str | None:
        """Write every digit, no exponent."""
        return None if value is None else format(Decimal(value), "f")

    def process_result_value(self, value: str | None, dialect: Dialect) -> Decimal | None:
        """Read the exact Decimal back."""
        return None if value is None else Decimal(value)


class Base(DeclarativeBase):
    """Declarative base of every control-store table."""


class Org(Base):
    """An organization: the top tenant."""

    __tablename__ = "orgs"
    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utc_now)


class Project(Base):
    """A project inside an org."""

    __tablename__ = "projects"
    __table_args__ = (UniqueConstraint("org_id", "name", name="uq_projects_org_name"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utc_now)


class ApiKey(Base):
    """An API key: only its SHA-256 is stored; ``prefix`` is shown to identify it.

    ``org_id`` None is an installation-wide key (only ``mentatctl keys create --bootstrap``
    issues one). ``role`` is ``ingest``, ``read`` or ``admin``.
    """

    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    org_id: Mapped[str | None] = mapped_column(
        ForeignKey("orgs.id", ondelete="CASCADE"), index=True, nullable=True)
    project_id: Mapped[str | None] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), nullable=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16), default="admin")
    prefix: Mapped[str] = mapped_column(String(32))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by: Mapped[str] = mapped_column(String(200), default="")
    """Who issued it: ``key:<id>``, ``user:<id>`` or ``cli``."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utc_now)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    """Updated at most once a minute."""
    first_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    """The first authenticated use (migration 0009_versions; keys used before it: their
    ``created_at``). The security signal ``new_key`` reads it."""
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    """When a rotated key stops working (its grace period), or None."""
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class User(Base):
    """A person; signs in with OIDC (``oidc_issuer`` + ``oidc_subject``) or is invited by email."""

    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("oidc_issuer", "oidc_subject", name="uq_users_oidc"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    oidc_issuer: Mapped[str | None] = mapped_column(String(500), nullable=True)
    oidc_subject: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utc_now)
    last_login_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    disabled_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class Membership(Base):
    """A person's role in an org: ``owner``, ``admin``, ``member``, ``viewer`` or ``billing``.

    ``source`` is ``manual`` (assigned in MentatLab) or ``oidc`` (mapped from a claim at
    sign-in; re-mapped at every sign-in).
    """

    __tablename__ = "memberships"
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"),
                                        primary_key=True, index=True)
    role: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16), default="manual")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utc_now)


class Session(Base):
    """A dashboard session: a signed-in person (``user_id``) or an API key kept in a cookie.

    Only the SHA-256 of the session token is stored. A session of a key dies with the key;
    a person's session dies with the membership.
    """

    __tablename__ = "sessions"
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=True, index=True)
    key_id: Mapped[str | None] = mapped_column(
        ForeignKey("api_keys.id", ondelete="CASCADE"), nullable=True)
    org_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """The org a person's session acts in (a person may belong to several)."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utc_now)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class PricingDocument(Base):
    """The raw ``pricing.toml`` text as last saved (one row per org; org ``""`` = global)."""

    __tablename__ = "pricing_documents"
    org_id: Mapped[str] = mapped_column(String(64), primary_key=True, default="")
    toml_text: Mapped[str] = mapped_column(Text())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utc_now)


class PricingOverride(Base):
    """One model price row parsed from the pricing document (USD or ``currency`` per 1M tokens)."""

    __tablename__ = "pricing_overrides"
    __table_args__ = (
        UniqueConstraint("org_id", "provider", "model", name="uq_pricing_overrides_model"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    org_id: Mapped[str] = mapped_column(String(64), default="")
    provider: Mapped[str] = mapped_column(String(200))
    model: Mapped[str] = mapped_column(String(200))
    input_per_mtok: Mapped[Decimal | None] = mapped_column(DecimalText(), nullable=True)
    output_per_mtok: Mapped[Decimal | None] = mapped_column(DecimalText(), nullable=True)
    cache_read_per_mtok: Mapped[Decimal | None] = mapped_column(DecimalText(), nullable=True)
    cache_write_per_mtok: Mapped[Decimal | None] = mapped_column(DecimalText(), nullable=True)
    currency: Mapped[str] = mapped_column(String(8), default="USD")
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utc_now)


class RepriceJob(Base):
    """A request to recompute the cost of spans in a time range (``reprice``)."""

    __tablename__ = "reprice_jobs"
    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(String(64), default="")
    start_time: Mapped[datetime] = mapped_column(UtcDateTime())
    end_time: Mapped[datetime] = mapped_column(UtcDateTime())
    status: Mapped[str] = mapped_column(String(16), default="pending")
    """``pending``, ``running``, ``done`` or ``failed``."""
    num_spans_repriced: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str] = mapped_column(Text(), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utc_now)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class AlertRule(Base):
    """An alert rule: a budget over a calendar period, or a metric threshold over a window.

    ``filters`` (a JSON object of canonical column → value), ``channels`` (a JSON list of
    ``kind:target`` strings) and ``thresholds`` (comma-separated budget fractions) are text
    so the table is the same on every backend. The evaluator keeps ``state``,
    ``state_since``, ``last_value`` and ``last_evaluated_at`` current.
    """

    __tablename__ = "alert_rules"
    __table_args__ = (UniqueConstraint("org_id", "name", name="uq_alert_rules_org_name"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(String(64), default="", index=True)
    """The org the rule belongs to and is limited to; ``""`` = every org (a global rule)."""
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    """``budget`` or ``threshold``."""
    metric: Mapped[str] = mapped_column(String(32))
    op: Mapped[str] = mapped_column(String(2), default=">=")
    threshold: Mapped[Decimal | None] = mapped_column(DecimalText(), nullable=True)
    window_s: Mapped[int] = mapped_column(Integer, default=300)
    period: Mapped[str] = mapped_column(String(16), default="")
    """Budget period: ``day`` or ``month`` (calendar, UTC); ``""`` for a threshold rule."""
    limit_amount: Mapped[Decimal | None] = mapped_column(DecimalText(), nullable=True)
    """Budget limit in the spans' currency (USD by default)."""
    thresholds: Mapped[str] = mapped_column(String(200), default="")
    filters: Mapped[str] = mapped_column(Text(), default="{}")
    channels: Mapped[str] = mapped_column(Text(), default="[]")
    enabled: Mapped[bool] = mapped_column(Boolean(), default=True)
    state: Mapped[str] = mapped_column(String(16), default="ok")
    """``ok`` or ``firing`` (threshold rules); budgets stay ``ok`` until a threshold is hit."""
    state_since: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    last_value: Mapped[Decimal | None] = mapped_column(DecimalText(), nullable=True)
    last_evaluated_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utc_now)


class Alert(Base):
    """One notification-worthy event of a rule: a budget threshold hit, firing or resolved.

    ``fingerprint`` is unique: a budget threshold fires once per period, a threshold rule
    once per firing episode, even if two evaluators ever ran at once.
    """

    __tablename__ = "alerts"
    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    rule_id: Mapped[str] = mapped_column(ForeignKey("alert_rules.id", ondelete="CASCADE"),
                                         index=True)
    org_id: Mapped[str] = mapped_column(String(64), default="", index=True)
    fingerprint: Mapped[str] = mapped_column(String(200), unique=True)
    state: Mapped[str] = mapped_column(String(16))
    """``firing`` or ``resolved``."""
    metric: Mapped[str] = mapped_column(String(32))
    value: Mapped[Decimal] = mapped_column(DecimalText())
    threshold: Mapped[Decimal] = mapped_column(DecimalText())
    window_start: Mapped[datetime] = mapped_column(UtcDateTime())
    window_end: Mapped[datetime] = mapped_column(UtcDateTime())
    message: Mapped[str] = mapped_column(Text(), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utc_now, index=True)


class AlertDelivery(Base):
    """The delivery of one alert to one channel (an outbox row, retried until sent)."""

    __tablename__ = "alert_deliveries"
    __table_args__ = (UniqueConstraint("alert_id", "channel", name="uq_alert_deliveries"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"),
                                          index=True)
    channel: Mapped[str] = mapped_column(Text())
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    """``pending``, ``sent`` or ``failed`` (given up)."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utc_now)
    last_error: Mapped[str] = mapped_column(Text(), default="")
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class NodeWatermark(Base):
    """How far one server process's span commits are visible (the resolver's watermark)."""

    __tablename__ = "node_watermarks"
    node_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    committed_through_ns: Mapped[int] = mapped_column(BigInteger)
    """Every commit of this node stamped at or below it is visible in the span store."""
    heartbeat_at: Mapped[datetime] = mapped_column(UtcDateTime())


class AuditEntry(Base):
    """One entry of the tamper-evident audit log (append-only; see ``storage/control/audit.py``).

    ``seq`` runs 1, 2, 3... without gaps; ``hash`` is SHA-256 over ``prev_hash`` and the
    canonical JSON of the entry; ``prev_hash`` is the previous entry's ``hash`` (64 zeros
    for the first). Both are unique, so two nodes appending at once cannot fork the chain.
    """

    __tablename__ = "audit_log"
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    actor: Mapped[str] = mapped_column(String(200), index=True)
    """``key:<id>``, ``user:<id>``, ``cli``, ``system`` or ``anonymous``."""
    action: Mapped[str] = mapped_column(String(64), index=True)
    org_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    project_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """The project acted in, when the action concerns one project (a project key)."""
    target: Mapped[str] = mapped_column(String(500), default="")
    details: Mapped[str] = mapped_column(Text(), default="{}")
    """Canonical JSON object text."""
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditCheckpoint(Base):
    """A checkpoint of the audit log: the chain's hash at ``seq``, Ed25519-signed when a key is set.

    ``signature`` (hex) signs ``mentatlab-audit-checkpoint:v1:<seq>:<hash>:<at ISO>``;
    ``key_id`` is the SHA-256 fingerprint (hex) of the raw public key; both ``""`` when unsigned.
    """

    __tablename__ = "audit_checkpoints"
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(128), default="")
    key_id: Mapped[str] = mapped_column(String(64), default="")
    at: Mapped[datetime] = mapped_column(UtcDateTime())


class QuotaOverride(Base):
    """Limits of one org (and of each of its keys) that replace the ``quota_*`` settings.

    A NULL column keeps the setting; 0 = unlimited (migration 0006_quotas).
    """

    __tablename__ = "quota_overrides"
    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"),
                                        primary_key=True)
    key_ingest_requests_per_s: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    org_ingest_requests_per_s: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    key_ingest_spans_per_min: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    org_ingest_spans_per_min: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    key_queries_per_min: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    org_queries_per_min: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utc_now)
