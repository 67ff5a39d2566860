"""Per-org retention overrides in the control store (migration 0008_retention).

An override replaces some of the installation's retention settings
(``span_retention_days``, ``aggregate_retention_days``, ``audit_retention_years``) for one
org; a value left out (NULL) keeps the setting, 0 keeps that data forever. The retention
job (:mod:`mentatlab.governance.retention`) reads the whole table once per run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from mentatlab.errors import ValidationError
from mentatlab.storage.control.models import Base, Org, UtcDateTime, utc_now

__all__ = ["RETENTION_NAMES", "RetentionOverride", "RetentionOverrides"]

RETENTION_NAMES = ("span_days", "aggregate_days", "audit_years")
"""The values an override may set: days of spans (and of every table derived per span or
per trace), days of the cost aggregates, years of the org's audit-log entries."""


class RetentionOverride(Base):
    """Retention of one org that replaces the installation's retention settings.

    A NULL column keeps the setting; 0 = kept forever.
    """

    __tablename__ = "retention_overrides"
    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"),
                                        primary_key=True)
    span_days: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    aggregate_days: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    audit_years: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utc_now)


class RetentionOverrides:
    """Read and change per-org retention (through ``ControlStore.retention``)."""

    def __init__(self, session: Callable[[], AbstractContextManager[Session]]) -> None:
        self._session = session

    def set(self, org_id: str, values: Mapping[str, int | None]) -> dict[str, int]:
        """Set some retention values of ``org_id`` (None: back to the setting).

        Returns:
            The org's override after the change (values left to the settings omitted).

        Raises:
            ValidationError: the org does not exist, a name is not in
                :data:`RETENTION_NAMES`, or a value is negative or above 36500 days /
                100 years.
            StoreError: the control store failed.
        """
        for name, value in values.items():
            if name not in RETENTION_NAMES:
                raise ValidationError(name, f"Expected one of {list(RETENTION_NAMES)}")
            limit = 100 if name == "audit_years" else 36_500
            if value is not None and not 0 <= value <= limit:
                raise ValidationError(name, f"Expected 0 (forever) to {limit}, got {value}")
        with self._session() as session:
            if session.get(Org, org_id) is None:
                raise ValidationError("org_id", f"No org {org_id!r}")
            row = session.get(RetentionOverride, org_id)
            if row is None:
                row = RetentionOverride(org_id=org_id)
                session.add(row)
            for name, value in values.items():
                setattr(row, name, value)
            row.updated_at = utc_now()
            return _values_of(row)

    def clear(self, org_id: str) -> bool:
        """Drop the override of ``org_id``; whether there was one.

        Raises:
            StoreError: the control store failed.
        """
        with self._session() as session:
            result = session.execute(delete(RetentionOverride).where(
                RetentionOverride.org_id == org_id))
            return bool(getattr(result, "rowcount", 0))

    def get(self, org_id: str) -> dict[str, int]:
        """The override of ``org_id`` (empty when it has none).

        Raises:
            StoreError: the control store failed.
        """
        with self._session() as session:
            row = session.get(RetentionOverride, org_id)
            return {} if row is None else _values_of(row)

    def all(self) -> dict[str, dict[str, int]]:
        """Every override: org id → the values it sets.

        Raises:
            StoreError: the control store failed.
        """
        with self._session() as session:
            return {row.org_id: _values_of(row)
                    for row in session.scalars(select(RetentionOverride))}


def _values_of(row: RetentionOverride) -> dict[str, int]:
    return {name: value for name in RETENTION_NAMES
            if (value := getattr(row, name)) is not None}
