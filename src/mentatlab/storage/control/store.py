"""ControlStore: orgs, projects, API keys, people, pricing and alerting over SQLAlchemy.

API keys look like ``mtl_<8 hex>_<43 url-safe chars>`` (256 random bits). Only the
SHA-256 of the whole key is stored, with its first 12 characters (``mtl_<8 hex>``) kept
as a display prefix: a leaked database does not leak usable keys. A salted slow hash is
unnecessary for random 256-bit secrets (no dictionary to guess from) and would make
every authenticated request pay for it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, create_engine, event, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from mentatlab.access.roles import KEY_ROLES
from mentatlab.errors import StoreError, ValidationError
from mentatlab.governance.encryption import SecretCipher
from mentatlab.storage.control.alerts import AlertRecords
from mentatlab.storage.control.audit import AuditLog
from mentatlab.storage.control.identity import Identities
from mentatlab.storage.control.models import (
    ApiKey,
    Org,
    PricingDocument,
    Project,
    utc_now,
)
from mentatlab.storage.control.models import (
    Session as SessionRow,
)
from mentatlab.storage.control.policies import PolicyRecords
from mentatlab.storage.control.quotas import QuotaOverrides
from mentatlab.storage.control.retention import RetentionOverrides
from mentatlab.storage.control.versions import VersionRegistry
from mentatlab.storage.control.watermarks import NodeWatermarks

__all__ = ["ApiKeyInfo", "ApiKeyScope", "ControlStore", "IssuedApiKey", "OrgInfo", "ProjectInfo",
           "hash_api_key"]

_KEY_SCHEME = "mtl"
_PREFIX_CHARS = 12


@dataclass(frozen=True, slots=True)
class OrgInfo:
    """An organization."""

    id: str
    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ProjectInfo:
    """A project of an org."""

    id: str
    org_id: str
    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ApiKeyScope:
    """What a valid API key grants: its role, and the tenancy fixed on what it sends and reads.

    ``org_id`` None is an installation-wide key.
    """

    key_id: str
    org_id: str | None
    project_id: str | None
    name: str
    role: str = "admin"


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    """An API key as listed (never the key itself)."""

    id: str
    org_id: str | None
    project_id: str | None
    name: str
    role: str
    prefix: str
    created_by: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None
    first_used_at: datetime | None = None
    """The key's first authenticated use (None: never used)."""


@dataclass(frozen=True, slots=True)
class IssuedApiKey:
    """A new API key: ``key`` is the plaintext, shown once and never stored."""

    key: str
    info: ApiKeyInfo


def hash_api_key(key: str) -> str:
    """Hex SHA-256 of an API key (what the store keeps)."""
    return hashlib.sha256(key.encode()).hexdigest()


def _key_info(row: ApiKey) -> ApiKeyInfo:
    return ApiKeyInfo(row.id, row.org_id, row.project_id, row.name, row.role, row.prefix,
                      row.created_by, row.created_at, row.last_used_at, row.expires_at,
                      row.revoked_at, row.first_used_at)


def new_api_key() -> str:
    """A fresh plaintext key: ``mtl_<8 hex>_<43 url-safe chars>`` (256 random bits)."""
    return f"{_KEY_SCHEME}_{secrets.token_hex(4)}_{secrets.token_urlsafe(32)}"


class ControlStore:
    """The relational control store (SQLite by default, PostgreSQL in scale-out).

    Args:
        url: SQLAlchemy URL, e.g. ``sqlite:////var/lib/mentatlab/control.db`` or
            ``postgresql+psycopg://user@host/db``. Run :func:`migrate_control_store` first.
        secrets: encrypts secrets at rest (alert channel targets); default none: written
            in plaintext, and encrypted ones refused (docs/governance.md).
    """

    def __init__(self, url: str, *, secrets: SecretCipher | None = None) -> None:
        self.url = url
        self.engine: Engine = create_engine(url)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.secrets = secrets or SecretCipher(None)
        """The cipher of secrets at rest."""
        self.alerts = AlertRecords(self._session, self.secrets)
        """Alert rules, alerts and their deliveries."""
        self.identities = Identities(self._session)
        """People, their roles in orgs, and dashboard sessions."""
        self.watermarks = NodeWatermarks(self._session)
        """Node watermarks for the attribution resolver on a shared span store."""
        self.quotas = QuotaOverrides(self._session)
        """Per-org replacements of the ``quota_*`` settings."""
        self.policies = PolicyRecords(self._session)
        """Guardrail policies, their versions and break-glass overrides."""
        self.retention = RetentionOverrides(self._session)
        """Per-org replacements of the retention settings (issue 17)."""
        self.audit = AuditLog(self._session, self.engine)
        """The tamper-evident audit log of sensitive actions."""
        self.versions = VersionRegistry(self._session)
        """Registered prompt and workflow versions (issue 17, oversight signals)."""

    @contextmanager
    def _session(self) -> Iterator[Session]:
        try:
            with self._sessions.begin() as session:
                yield session
        except IntegrityError as exc:
            raise ValidationError("control_store", f"conflicts with existing data: {exc.orig}"
                                  ) from exc
        except SQLAlchemyError as exc:
            raise StoreError(f"Control store operation failed: {exc}") from exc

    # --- orgs and projects -----------------------------------------------------------

    def create_org(self, name: str, org_id: str | None = None) -> OrgInfo:
        """Create an org named ``name`` (unique) with an optional chosen id.

        Raises:
            ValidationError: the name or id is taken, or empty.
        """
        if not name:
            raise ValidationError("name", "Expected a non-empty org name")
        with self._session() as session:
            org = Org(name=name, created_at=utc_now())
            if org_id:
                org.id = org_id
            session.add(org)
            session.flush()
            return OrgInfo(org.id, org.name, org.created_at)

    def list_orgs(self) -> list[OrgInfo]:
        """Every org, by name."""
        with self._session() as session:
            rows = session.scalars(select(Org).order_by(Org.name)).all()
            return [OrgInfo(o.id, o.name, o.created_at) for o in rows]

    def create_project(self, org_id: str, name: str, project_id: str | None = None
                       ) -> ProjectInfo:
        """Create project ``name`` (unique within the org).

        Raises:
            ValidationError: the org does not exist, or the name/id is taken.
        """
        if not name:
            raise ValidationError("name", "Expected a non-empty project name")
        with self._session() as session:
            if session.get(Org, org_id) is None:
                raise ValidationError("org_id", f"Expected an existing org, got {org_id!r}")
            project = Project(org_id=org_id, name=name, created_at=utc_now())
            if project_id:
                project.id = project_id
            session.add(project)
            session.flush()
            return ProjectInfo(project.id, project.org_id, project.name, project.created_at)

    def list_projects(self, org_id: str | None = None) -> list[ProjectInfo]:
        """Projects of ``org_id`` (all orgs when None), by name."""
        with self._session() as session:
            query = select(Project).order_by(Project.org_id, Project.name)
            if org_id is not None:
                query = query.where(Project.org_id == org_id)
            return [ProjectInfo(p.id, p.org_id, p.name, p.created_at)
                    for p in session.scalars(query).all()]

    # --- API keys --------------------------------------------------------------------

    def create_api_key(self, org_id: str | None, project_id: str | None, name: str, *,
                       role: str, created_by: str = "") -> IssuedApiKey:
        """Issue a key; returns the plaintext once.

        Args:
            org_id: the org it belongs to; None for an installation-wide key.
            project_id: limit it to one project of the org; None for the whole org.
            name: a label.
            role: ``ingest``, ``read`` or ``admin``.
            created_by: who issued it (``key:<id>``, ``user:<id>``, ``cli``), for listings.

        Raises:
            ValidationError: an unknown role, a missing org or project, a project of
                another org, or a project without an org.
        """
        if role not in KEY_ROLES:
            raise ValidationError("role", f"Expected one of {list(KEY_ROLES)}, got {role!r}")
        key = new_api_key()
        with self._session() as session:
            _check_key_scope(session, org_id, project_id)
            row = ApiKey(org_id=org_id, project_id=project_id, name=name, role=role,
                         prefix=key[:_PREFIX_CHARS], key_hash=hash_api_key(key),
                         created_by=created_by, created_at=utc_now())
            session.add(row)
            session.flush()
            return IssuedApiKey(key, _key_info(row))

    def resolve_api_key(self, key: str, touch_after_s: float = 60.0) -> ApiKeyScope | None:
        """The scope of a valid key; None for an unknown, revoked or expired one.

        Records ``last_used_at`` when it is older than ``touch_after_s`` (so at most one
        write per key per minute, however many requests use it), and ``first_used_at`` on
        the key's first use.
        """
        if not key.startswith(f"{_KEY_SCHEME}_") or len(key) > 200:
            return None
        now = utc_now()
        digest = hash_api_key(key)
        with self._session() as session:
            row = session.scalars(select(ApiKey).where(ApiKey.key_hash == digest)).one_or_none()
            # The index lookup compares hashes, which an attacker cannot steer byte by byte;
            # the final comparison is constant-time all the same.
            if row is None or not hmac.compare_digest(row.key_hash, digest) or \
                    not _key_usable(row, now):
                return None
            if row.last_used_at is None or \
                    (now - row.last_used_at).total_seconds() >= touch_after_s:
                row.last_used_at = now
            if row.first_used_at is None:
                row.first_used_at = now
            return ApiKeyScope(row.id, row.org_id, row.project_id, row.name, row.role)

    def get_api_key(self, key_id: str) -> ApiKeyInfo | None:
        """One key (without its secret) by id, or None."""
        with self._session() as session:
            row = session.get(ApiKey, key_id)
            return None if row is None else _key_info(row)

    def api_key_scope(self, key_id: str) -> ApiKeyScope | None:
        """The scope of key ``key_id`` if it is still usable (a session kept in a cookie)."""
        with self._session() as session:
            row = session.get(ApiKey, key_id)
            if row is None or not _key_usable(row, utc_now()):
                return None
            return ApiKeyScope(row.id, row.org_id, row.project_id, row.name, row.role)

    def list_api_keys(self, org_id: str | None = None, project_id: str | None = None,
                      include_revoked: bool = True) -> list[ApiKeyInfo]:
        """Keys (without secrets), newest first.

        Args:
            org_id: only this org's (None: every org's and installation keys).
            project_id: only this project's.
            include_revoked: list revoked and expired keys too.
        """
        with self._session() as session:
            query = select(ApiKey).order_by(ApiKey.created_at.desc())
            if org_id is not None:
                query = query.where(ApiKey.org_id == org_id)
            if project_id is not None:
                query = query.where(ApiKey.project_id == project_id)
            if not include_revoked:
                query = query.where(ApiKey.revoked_at.is_(None))
            return [_key_info(r) for r in session.scalars(query).all()]

    def revoke_api_key(self, key_id: str) -> bool:
        """Revoke a key by id (and its dashboard sessions); False when there is no such key."""
        with self._session() as session:
            row = session.get(ApiKey, key_id)
            if row is None:
                return False
            now = utc_now()
            if row.revoked_at is None:
                row.revoked_at = now
            session.execute(update(SessionRow).where(SessionRow.key_id == key_id,
                                                     SessionRow.revoked_at.is_(None))
                            .values(revoked_at=now))
            return True

    def rotate_api_key(self, key_id: str, grace_s: int = 0, created_by: str = ""
                       ) -> IssuedApiKey | None:
        """Issue a new key with the same name, role and scope, and retire the old one.

        Args:
            key_id: the key to replace.
            grace_s: seconds the old key keeps working (0: revoked now).
            created_by: who rotated it.

        Returns:
            The new key (plaintext once), or None when ``key_id`` is unknown or revoked.
        """
        key = new_api_key()
        now = utc_now()
        with self._session() as session:
            old = session.get(ApiKey, key_id)
            if old is None or not _key_usable(old, now):
                return None
            if grace_s > 0:
                ends = now + timedelta(seconds=grace_s)
                old.expires_at = ends if old.expires_at is None else min(old.expires_at, ends)
            else:
                old.revoked_at = now
            row = ApiKey(org_id=old.org_id, project_id=old.project_id, name=old.name,
                         role=old.role, prefix=key[:_PREFIX_CHARS], key_hash=hash_api_key(key),
                         created_by=created_by, created_at=now)
            session.add(row)
            session.flush()
            return IssuedApiKey(key, _key_info(row))

    # --- pricing ---------------------------------------------------------------------

    def save_pricing_document(self, toml_text: str, org_id: str = "") -> datetime:
        """Store the raw ``pricing.toml`` text of an org (``""`` = global); returns updated_at."""
        now = utc_now()
        with self._session() as session:
            doc = session.get(PricingDocument, org_id)
            if doc is None:
                session.add(PricingDocument(org_id=org_id, toml_text=toml_text, updated_at=now))
            else:
                doc.toml_text = toml_text
                doc.updated_at = now
        return now

    def load_pricing_document(self, org_id: str = "") -> tuple[str, datetime] | None:
        """The stored ``(toml_text, updated_at)`` of an org, or None."""
        with self._session() as session:
            doc = session.get(PricingDocument, org_id)
            return None if doc is None else (doc.toml_text, doc.updated_at)

    def close(self) -> None:
        """Dispose of the connection pool."""
        self.engine.dispose()


def _key_usable(row: ApiKey, now: datetime) -> bool:
    return row.revoked_at is None and (row.expires_at is None or row.expires_at > now)


def _check_key_scope(session: Session, org_id: str | None, project_id: str | None) -> None:
    if org_id is None:
        if project_id is not None:
            raise ValidationError("project_id", "Expected an org_id with a project_id")
        return
    if session.get(Org, org_id) is None:
        raise ValidationError("org_id", f"Expected an existing org, got {org_id!r}")
    if project_id is not None:
        project = session.get(Project, project_id)
        if project is None or project.org_id != org_id:
            raise ValidationError(
                "project_id", f"Expected a project of org {org_id!r}, got {project_id!r}")


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    # Foreign keys are off by default in SQLite; WAL lets readers run beside the writer.
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()
