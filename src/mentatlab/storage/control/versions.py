"""Registered prompt and workflow versions: a version's name and its content hash.

A team registers each prompt or workflow version it ships (``POST
/api/v1/governance/versions``, ``mentatctl governance versions register``) with the hash of
its content; :mod:`mentatlab.analytics.versions` then flags spans that name a version
nobody registered, or a registered version with another hash (changed in place). A
version's content never changes once registered: registering it again with the same hash
is a no-op, with another hash a :class:`VersionConflict` (register a new version instead).

Table ``registered_versions`` (migration ``0009_versions``), one row per
``(org_id, kind, name, version)``. ``name`` is the prompt's name (``""`` when its spans
carry none) or the workflow id; hashes are kept as given, lowercased.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy import ForeignKey, String, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from mentatlab.errors import ValidationError
from mentatlab.storage.control.models import Base, Org, UtcDateTime, new_id, utc_now

__all__ = [
    "VERSION_KINDS",
    "RegisteredVersion",
    "VersionConflict",
    "VersionInfo",
    "VersionRegistry",
    "content_hash_of",
    "normalize_hash",
]

VERSION_KINDS: Final = ("prompt", "workflow")
"""What can be registered."""
_HASH = re.compile(r"^[a-z0-9][a-z0-9:_+/=.-]{0,199}$")


class RegisteredVersion(Base):
    """A registered prompt or workflow version and the hash of its content."""

    __tablename__ = "registered_versions"
    __table_args__ = (UniqueConstraint("org_id", "kind", "name", "version",
                                       name="uq_registered_versions"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    """``prompt`` or ``workflow``."""
    name: Mapped[str] = mapped_column(String(200))
    """The prompt name (``""``: spans carrying no prompt name) or the workflow id."""
    version: Mapped[str] = mapped_column(String(200))
    content_hash: Mapped[str] = mapped_column(String(200))
    registered_by: Mapped[str] = mapped_column(String(200), default="")
    """``key:<id>``, ``user:<id>`` or ``cli``."""
    registered_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utc_now)


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """A registered version."""

    id: str
    org_id: str
    kind: str
    name: str
    version: str
    content_hash: str
    registered_by: str
    registered_at: datetime


class VersionConflict(ValidationError):
    """The version is registered already, with another content hash (HTTP 409)."""

    def __init__(self, existing: VersionInfo) -> None:
        super().__init__("content_hash", (
            f"{existing.kind} {existing.name!r} version {existing.version!r} is registered "
            f"with hash {existing.content_hash!r}; a version's content cannot change: "
            "register a new version"))
        self.existing = existing


def content_hash_of(content: str | bytes) -> str:
    """SHA-256 of ``content`` (text as UTF-8), lowercase hex: what MentatLab registers.

    The same hash MentatLab computes from a span's prompt template
    (:data:`~mentatlab.conventions.oversight.PROMPT_TEMPLATE_KEYS`).
    """
    data = content.encode() if isinstance(content, str) else content
    return hashlib.sha256(data).hexdigest()


def normalize_hash(value: str, field: str = "content_hash") -> str:
    """``value`` stripped and lowercased, if it looks like a hash (1–200 of ``a-z0-9:_+/=.-``).

    Raises:
        ValidationError: it does not.
    """
    text = value.strip().lower()
    if not _HASH.match(text):
        raise ValidationError(field, "Expected 1 to 200 characters of a-z, 0-9 and :_+/=.- "
                                     f"(e.g. a SHA-256 hex digest), got {value[:80]!r}")
    return text


def _info(row: RegisteredVersion) -> VersionInfo:
    return VersionInfo(row.id, row.org_id, row.kind, row.name, row.version, row.content_hash,
                       row.registered_by, row.registered_at)


def _check(kind: str, name: str, version: str) -> tuple[str, str, str]:
    if kind not in VERSION_KINDS:
        raise ValidationError("kind", f"Expected one of {list(VERSION_KINDS)}, got {kind!r}")
    name, version = name.strip(), version.strip()
    if len(name) > 200:
        raise ValidationError("name", "Expected at most 200 characters")
    if kind == "workflow" and not name:
        raise ValidationError("name", "Expected the workflow id (a workflow version belongs "
                                      "to one workflow)")
    if not 1 <= len(version) <= 200:
        raise ValidationError("version", f"Expected 1 to 200 characters, got {version!r}")
    return kind, name, version


class VersionRegistry:
    """The registered versions of a control store (``ControlStore.versions``).

    Raises (every method):
        StoreError: the control store failed.
    """

    def __init__(self, session: Callable[[], AbstractContextManager[Session]]) -> None:
        self._session = session

    def register(self, org_id: str, kind: str, name: str, version: str, content_hash: str,
                 *, registered_by: str = "") -> tuple[VersionInfo, bool]:
        """Register a version; returns it and whether it is new.

        Registering a version again with the same hash returns the stored one (``False``).

        Raises:
            ValidationError: a bad kind, name, version or hash, or an unknown org.
            VersionConflict: the version is registered with another hash.
        """
        kind, name, version = _check(kind, name, version)
        digest = normalize_hash(content_hash)
        with self._session() as session:
            if session.get(Org, org_id) is None:
                raise ValidationError("org_id", f"Expected an existing org, got {org_id!r}")
            row = session.scalars(select(RegisteredVersion).where(
                RegisteredVersion.org_id == org_id, RegisteredVersion.kind == kind,
                RegisteredVersion.name == name, RegisteredVersion.version == version)
            ).one_or_none()
            if row is not None:
                if row.content_hash != digest:
                    raise VersionConflict(_info(row))
                return _info(row), False
            row = RegisteredVersion(org_id=org_id, kind=kind, name=name, version=version,
                                    content_hash=digest, registered_by=registered_by,
                                    registered_at=utc_now())
            session.add(row)
            session.flush()
            return _info(row), True

    def list(self, org_id: str | None = None, *, kind: str | None = None
             ) -> list[VersionInfo]:
        """Registered versions of ``org_id`` (every org's when None), by org, kind, name.

        Within a name, oldest registration first.
        """
        query = select(RegisteredVersion).order_by(
            RegisteredVersion.org_id, RegisteredVersion.kind, RegisteredVersion.name,
            RegisteredVersion.registered_at, RegisteredVersion.version)
        if org_id is not None:
            query = query.where(RegisteredVersion.org_id == org_id)
        if kind is not None:
            query = query.where(RegisteredVersion.kind == kind)
        with self._session() as session:
            return [_info(row) for row in session.scalars(query).all()]
