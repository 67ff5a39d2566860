"""People, their roles in orgs, and dashboard sessions (control-store records).

A session token is 256 random bits, given to the browser once in an HttpOnly cookie; only
its SHA-256 is stored (as for API keys: a fast hash is right for random secrets).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, select, update
from sqlalchemy.orm import Session

from mentatlab.access.roles import USER_ROLES
from mentatlab.errors import ValidationError
from mentatlab.storage.control.models import (
    ApiKey,
    Membership,
    Org,
    User,
    utc_now,
)
from mentatlab.storage.control.models import (
    Session as SessionRow,
)

__all__ = ["Identities", "MemberInfo", "SessionInfo", "UserInfo"]

SessionFactory = Callable[[], AbstractContextManager[Session]]
_TOKEN_PREFIX = "mts_"


@dataclass(frozen=True, slots=True)
class UserInfo:
    """A person."""

    id: str
    email: str
    name: str
    oidc_issuer: str | None
    oidc_subject: str | None
    created_at: datetime
    last_login_at: datetime | None
    disabled_at: datetime | None


@dataclass(frozen=True, slots=True)
class MemberInfo:
    """A person's role in an org."""

    user_id: str
    org_id: str
    email: str
    name: str
    role: str
    source: str
    """``manual`` or ``oidc``."""
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """What a valid session token stands for: a person in an org, or an API key."""

    id_hash: str
    user_id: str | None
    key_id: str | None
    org_id: str | None
    expires_at: datetime


def hash_token(token: str) -> str:
    """Hex SHA-256 of a session token (what the store keeps)."""
    return hashlib.sha256(token.encode()).hexdigest()


def _user_info(row: User) -> UserInfo:
    return UserInfo(row.id, row.email, row.name, row.oidc_issuer, row.oidc_subject,
                    row.created_at, row.last_login_at, row.disabled_at)


def _check_role(role: str) -> None:
    if role not in USER_ROLES:
        raise ValidationError("role", f"Expected one of {list(USER_ROLES)}, got {role!r}")


class Identities:
    """Users, memberships and sessions in the control store (``ControlStore.identities``)."""

    def __init__(self, session: SessionFactory) -> None:
        self._session = session

    # --- users -------------------------------------------------------------------------

    def ensure_user(self, email: str, name: str = "") -> UserInfo:
        """The user with ``email`` (case-insensitive), created when new.

        Raises:
            ValidationError: not an email address.
        """
        email = _check_email(email)
        with self._session() as session:
            row = session.scalars(select(User).where(User.email == email)).one_or_none()
            if row is None:
                row = User(email=email, name=name, created_at=utc_now())
                session.add(row)
                session.flush()
            return _user_info(row)

    def sign_in_oidc(self, issuer: str, subject: str, email: str, name: str) -> UserInfo:
        """Find or create the person behind an OIDC identity and record the sign-in.

        Matched by (issuer, subject); a person invited by email before their first sign-in
        is linked on it. ``email``/``name`` are refreshed from the token.

        Raises:
            ValidationError: ``email`` is not an address, or belongs to another OIDC identity.
        """
        email = _check_email(email)
        now = utc_now()
        with self._session() as session:
            row = session.scalars(select(User).where(
                User.oidc_issuer == issuer, User.oidc_subject == subject)).one_or_none()
            if row is None:
                row = session.scalars(select(User).where(User.email == email)).one_or_none()
                if row is not None and row.oidc_subject is not None:
                    raise ValidationError("email", "Expected an email not linked to another "
                                          "sign-in identity")
                if row is None:
                    row = User(email=email, name=name, created_at=now)
                    session.add(row)
                row.oidc_issuer, row.oidc_subject = issuer, subject
            row.email, row.name, row.last_login_at = email, name or row.name, now
            session.flush()
            return _user_info(row)

    def get_user(self, user_id: str) -> UserInfo | None:
        """A person by id, or None."""
        with self._session() as session:
            row = session.get(User, user_id)
            return None if row is None else _user_info(row)

    # --- memberships -------------------------------------------------------------------

    def set_role(self, user_id: str, org_id: str, role: str, source: str = "manual"
                 ) -> MemberInfo:
        """Give ``user_id`` role ``role`` in ``org_id`` (adding the membership when new).

        Raises:
            ValidationError: unknown role, user or org.
        """
        _check_role(role)
        now = utc_now()
        with self._session() as session:
            user = session.get(User, user_id)
            if user is None:
                raise ValidationError("user_id", f"Expected an existing user, got {user_id!r}")
            if session.get(Org, org_id) is None:
                raise ValidationError("org_id", f"Expected an existing org, got {org_id!r}")
            row = session.get(Membership, (user_id, org_id))
            if row is None:
                row = Membership(user_id=user_id, org_id=org_id, role=role, source=source,
                                 created_at=now, updated_at=now)
                session.add(row)
            else:
                row.role, row.source, row.updated_at = role, source, now
            session.flush()
            return MemberInfo(user_id, org_id, user.email, user.name, role, source, now)

    def remove_member(self, user_id: str, org_id: str) -> bool:
        """Remove a person from an org and end their sessions there; False if not a member."""
        with self._session() as session:
            row = session.get(Membership, (user_id, org_id))
            if row is None:
                return False
            session.delete(row)
            session.execute(update(SessionRow).where(
                SessionRow.user_id == user_id, SessionRow.org_id == org_id,
                SessionRow.revoked_at.is_(None)).values(revoked_at=utc_now()))
            return True

    def role_of(self, user_id: str, org_id: str) -> str | None:
        """The person's role in the org, or None (not a member, or disabled)."""
        with self._session() as session:
            row = session.get(Membership, (user_id, org_id))
            user = session.get(User, user_id)
            if row is None or user is None or user.disabled_at is not None:
                return None
            return row.role

    def memberships_of(self, user_id: str) -> list[MemberInfo]:
        """Every org the person belongs to, by org id."""
        return self._members(Membership.user_id == user_id)

    def members(self, org_id: str) -> list[MemberInfo]:
        """Every person in the org, by email."""
        return self._members(Membership.org_id == org_id)

    def _members(self, condition: ColumnElement[bool]) -> list[MemberInfo]:
        with self._session() as session:
            rows = session.execute(
                select(Membership, User).join(User, User.id == Membership.user_id)
                .where(condition).order_by(User.email, Membership.org_id)).all()
            return [MemberInfo(m.user_id, m.org_id, u.email, u.name, m.role, m.source,
                               m.updated_at) for m, u in rows]

    def count_owners(self, org_id: str) -> int:
        """Owners of the org."""
        return sum(1 for m in self.members(org_id) if m.role == "owner")

    # --- sessions ----------------------------------------------------------------------

    def create_session(self, *, user_id: str | None = None, key_id: str | None = None,
                       org_id: str | None = None, ttl_s: int) -> tuple[str, SessionInfo]:
        """Open a session for a person in an org, or for an API key; returns (token, info).

        The token is shown once (set as a cookie); only its hash is stored.

        Raises:
            ValidationError: neither or both of ``user_id`` and ``key_id``; a person's
                session without ``org_id``; an unknown key.
        """
        if (user_id is None) == (key_id is None):
            raise ValidationError("session", "Expected exactly one of user_id and key_id")
        if user_id is not None and org_id is None:
            raise ValidationError("org_id", "Expected the org a person's session acts in")
        token = _TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = utc_now()
        info = SessionInfo(hash_token(token), user_id, key_id, org_id,
                           now + timedelta(seconds=ttl_s))
        with self._session() as session:
            if key_id is not None and session.get(ApiKey, key_id) is None:
                raise ValidationError("key_id", f"Expected an existing key, got {key_id!r}")
            session.add(SessionRow(id_hash=info.id_hash, user_id=user_id, key_id=key_id,
                                   org_id=org_id, created_at=now, expires_at=info.expires_at))
        return token, info

    def resolve_session(self, token: str) -> SessionInfo | None:
        """What a session token stands for; None when unknown, revoked or expired."""
        if not token.startswith(_TOKEN_PREFIX) or len(token) > 200:
            return None
        with self._session() as session:
            row = session.get(SessionRow, hash_token(token))
            if row is None or row.revoked_at is not None or row.expires_at <= utc_now():
                return None
            return SessionInfo(row.id_hash, row.user_id, row.key_id, row.org_id,
                               row.expires_at)

    def end_session(self, token: str) -> bool:
        """Revoke a session (sign out); False when the token is unknown."""
        with self._session() as session:
            done = session.execute(update(SessionRow).where(
                SessionRow.id_hash == hash_token(token), SessionRow.revoked_at.is_(None))
                .values(revoked_at=utc_now()))
            return bool(getattr(done, "rowcount", 0))

    def purge_sessions(self, older_than: datetime) -> int:
        """Delete sessions that expired or were revoked before ``older_than``; returns count."""
        with self._session() as session:
            done = session.execute(delete(SessionRow).where(
                SessionRow.expires_at < older_than))
            return int(getattr(done, "rowcount", 0) or 0)


def _check_email(email: str) -> str:
    email = email.strip().lower()
    local, at, domain = email.partition("@")
    if not at or not local or "." not in domain or len(email) > 320 or " " in email:
        raise ValidationError("email", f"Expected an email address, got {email!r}")
    return email
