"""Who is calling: an API key, a person signed in, or nobody — and what they may touch.

A :class:`Principal` carries a role's permissions and a scope: the whole installation
(``org_id`` None), one org, or one project of an org. :meth:`Principal.scope_filters` is
the one place a caller's scope is applied to span filters: every read, the live stream,
exports and reprices go through it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from mentatlab.access.roles import ROLE_PERMISSIONS, Permission, permissions_of
from mentatlab.errors import Forbidden

__all__ = ["OPEN_INSTALLATION", "Principal", "Scope"]

PrincipalKind = Literal["key", "user", "anonymous"]


@dataclass(frozen=True, slots=True)
class Scope:
    """A part of the installation: everything (``org_id`` None), an org, or a project."""

    org_id: str | None = None
    project_id: str | None = None

    def __post_init__(self) -> None:
        if self.project_id is not None and self.org_id is None:
            raise ValueError("A project scope needs its org_id")

    def covers(self, other: Scope) -> bool:
        """Whether ``other`` lies inside this scope (a scope covers itself)."""
        if self.org_id is None:
            return True
        if other.org_id != self.org_id:
            return False
        return self.project_id is None or other.project_id == self.project_id

    def label(self) -> str:
        """``installation``, ``org acme`` or ``project acme/web``."""
        if self.org_id is None:
            return "installation"
        if self.project_id is None:
            return f"org {self.org_id}"
        return f"project {self.org_id}/{self.project_id}"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller (or the anonymous one when auth is off).

    Attributes:
        kind: ``key``, ``user`` or ``anonymous``.
        id: the key id or user id (empty for anonymous).
        name: the key's label or the person's email, for logs and the audit log.
        role: the matrix role (``key:read``, ``owner``...; ``anonymous``).
        scope: what the caller may see and act on.
        permissions: what the caller may do there.
        session_id: the dashboard session the caller came through, if any.
    """

    kind: PrincipalKind
    id: str
    name: str
    role: str
    scope: Scope
    permissions: frozenset[Permission]
    session_id: str | None = None

    @classmethod
    def for_key(cls, key_id: str, name: str, role: str, org_id: str | None,
                project_id: str | None, session_id: str | None = None) -> Principal:
        """The principal of an API key with bare role ``role`` (``ingest|read|admin``)."""
        matrix_role = f"key:{role}"
        held = permissions_of(matrix_role, installation=org_id is None,
                              project=project_id is not None)
        return cls("key", key_id, name, matrix_role, Scope(org_id, project_id), held,
                   session_id)

    @classmethod
    def for_user(cls, user_id: str, email: str, role: str, org_id: str,
                 session_id: str | None = None) -> Principal:
        """The principal of a person with ``role`` in ``org_id``."""
        return cls("user", user_id, email, role, Scope(org_id),
                   ROLE_PERMISSIONS[role], session_id)

    @property
    def org_id(self) -> str | None:
        """The org the caller is bound to (None: installation-wide)."""
        return self.scope.org_id

    @property
    def project_id(self) -> str | None:
        """The project the caller is bound to, if any."""
        return self.scope.project_id

    @property
    def tenancy(self) -> dict[str, str]:
        """The scope as span tenancy fields (``org_id``, ``project_id``) it fixes."""
        out: dict[str, str] = {}
        if self.scope.org_id is not None:
            out["org_id"] = self.scope.org_id
        if self.scope.project_id is not None:
            out["project_id"] = self.scope.project_id
        return out

    def can(self, permission: Permission) -> bool:
        """Whether the caller holds ``permission``."""
        return permission in self.permissions

    def require(self, permission: Permission) -> None:
        """Check that the caller holds ``permission``.

        Raises:
            Forbidden: it does not (field ``authorization``).
        """
        if permission not in self.permissions:
            raise Forbidden("authorization", f"Role {self.role!r} does not grant "
                            f"{permission.value!r}")

    def require_scope(self, scope: Scope, field: str = "org_id") -> None:
        """Check that ``scope`` lies inside the caller's.

        Raises:
            Forbidden: it does not; ``field`` names the request field that asked.
        """
        if not self.scope.covers(scope):
            raise Forbidden(field, f"This caller is limited to {self.scope.label()}, "
                            f"not {scope.label()}")

    def scope_filters(self, filters: Mapping[str, str], prefix: str = "filter.") -> dict[str, str]:
        """``filters`` with the caller's org/project fixed in them.

        A filter naming the caller's own org/project is kept; naming another is refused,
        never silently replaced.

        Args:
            filters: canonical field name → value (short names already resolved).
            prefix: prefix of the field named in an error.

        Raises:
            Forbidden: a filter names an org or project outside the caller's scope.
        """
        out = dict(filters)
        for name, value in self.tenancy.items():
            asked = out.get(name)
            if asked is not None and asked != value:
                raise Forbidden(f"{prefix}{name}", f"This caller is limited to "
                                f"{self.scope.label()}; {name}={asked!r} is outside it")
            out[name] = value
        return out


OPEN_INSTALLATION = Principal("anonymous", "", "anonymous", "anonymous", Scope(),
                              frozenset(Permission))
"""The caller when auth is off and no credential was sent: everything, everywhere."""
