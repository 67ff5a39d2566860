"""Per-org quota overrides in the control store (migration 0006_quotas).

An override replaces some of the ``quota_*`` settings for one org and for each of its
keys; a limit left out keeps the setting, 0 means unlimited. Servers read the whole table
every ``quota_refresh_s`` (:func:`mentatlab.server.quotas.refresh_overrides`), never per
request.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from mentatlab.errors import ValidationError
from mentatlab.storage.control.models import Org, QuotaOverride, utc_now

__all__ = ["LIMIT_NAMES", "QuotaOverrides"]

LIMIT_NAMES = ("key_ingest_requests_per_s", "org_ingest_requests_per_s",
               "key_ingest_spans_per_min", "org_ingest_spans_per_min",
               "key_queries_per_min", "org_queries_per_min")
"""The limits an override may set (the ``quota_*`` settings without the prefix)."""


class QuotaOverrides:
    """Read and change per-org overrides (through :attr:`ControlStore.quotas`)."""

    def __init__(self, session: Callable[[], AbstractContextManager[Session]]) -> None:
        self._session = session

    def set(self, org_id: str, limits: Mapping[str, int | None]) -> dict[str, int]:
        """Set some limits of ``org_id`` (None: back to the setting); returns its override.

        Raises:
            ValidationError: the org does not exist, a name is not in :data:`LIMIT_NAMES`,
                or a limit is negative.
            StoreError: the control store failed.
        """
        for name, value in limits.items():
            if name not in LIMIT_NAMES:
                raise ValidationError(name, f"Expected one of {list(LIMIT_NAMES)}")
            if value is not None and value < 0:
                raise ValidationError(name, f"Expected >= 0 (0 = unlimited), got {value}")
        with self._session() as session:
            if session.get(Org, org_id) is None:
                raise ValidationError("org_id", f"No org {org_id!r}")
            row = session.get(QuotaOverride, org_id)
            if row is None:
                row = QuotaOverride(org_id=org_id)
                session.add(row)
            for name, value in limits.items():
                setattr(row, name, value)
            row.updated_at = utc_now()
            return _limits_of(row)

    def clear(self, org_id: str) -> bool:
        """Drop the override of ``org_id``; whether there was one.

        Raises:
            StoreError: the control store failed.
        """
        with self._session() as session:
            result = session.execute(delete(QuotaOverride).where(
                QuotaOverride.org_id == org_id))
            return bool(getattr(result, "rowcount", 0))

    def all(self) -> dict[str, dict[str, int]]:
        """Every override: org id → the limits it sets (limits left to the settings omitted).

        Raises:
            StoreError: the control store failed.
        """
        with self._session() as session:
            return {row.org_id: _limits_of(row)
                    for row in session.scalars(select(QuotaOverride))}


def _limits_of(row: QuotaOverride) -> dict[str, int]:
    return {name: value for name in LIMIT_NAMES
            if (value := getattr(row, name)) is not None}
