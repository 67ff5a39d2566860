"""Control-store tables (SQLAlchemy 2.0 typed models): orgs, projects, API keys, pricing.

Portable across SQLite and PostgreSQL: no dialect-specific types; money is exact decimal
text (SQLite has no decimal type, and a float would round); times are timezone-aware UTC.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

__all__ = [
    "ApiKey",
    "Base",
    "DecimalText",
    "Org",
    "PricingDocument",
    "PricingOverride",
    "Project",
    "RepriceJob",
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
    """An API key: only its SHA-256 is stored; ``prefix`` is shown to identify it."""

    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[str | None] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), nullable=True)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(32))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utc_now)
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
