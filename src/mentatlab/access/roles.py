"""Permissions, the roles of API keys and of people, and what each role holds.

This table is the permission matrix as data; docs/security.md prints the same table and
``tests/access/test_matrix_doc.py`` checks the two agree. Which route needs which
permission is in :mod:`mentatlab.access.routes`.

Key roles (machines):

* ``ingest`` — send spans and events (OTLP/HTTP, OTLP/gRPC, the event API), nothing else;
* ``read`` — queries, the live stream, exports, alert rules and alerts (read only);
* ``admin`` — everything of its scope: keys, members, budgets and alert rules, reprice,
  settings, the audit log; an installation-wide admin key also creates orgs.

User roles (people, per org): ``owner``, ``admin``, ``member``, ``viewer``, ``billing``.
``billing`` reads cost and usage aggregates and budgets, never span payloads or prompts.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

__all__ = [
    "KEY_ROLES",
    "ORG_LEVEL",
    "ROLE_PERMISSIONS",
    "USER_ROLES",
    "Permission",
    "key_role",
    "permissions_of",
    "user_role",
]


class Permission(StrEnum):
    """One thing a caller may do; every route needs exactly one (or none when public)."""

    INGEST = "ingest"
    """Send spans and events."""
    READ_USAGE = "read_usage"
    """Cost and usage aggregates: overview, cost, unpriced models, prices."""
    READ_SPANS = "read_spans"
    """Span payloads: trace lists, trace trees, the span feed, the live stream."""
    READ_ALERTS = "read_alerts"
    """Alert rules, budgets and recorded alerts."""
    MANAGE_ALERTS = "manage_alerts"
    """Create, change and delete alert rules and budgets."""
    MANAGE_KEYS = "manage_keys"
    """Create, list, revoke and rotate API keys (never wider or stronger than one's own)."""
    MANAGE_MEMBERS = "manage_members"
    """Add people to an org, change their roles, remove them."""
    MANAGE_SETTINGS = "manage_settings"
    """Settings of a scope: quotas and the like."""
    REPRICE = "reprice"
    """Recompute stored spans' costs."""
    READ_AUDIT = "read_audit"
    """The audit log."""
    MANAGE_ORGS = "manage_orgs"
    """Create and list organizations (installation-wide admin keys only)."""
    MANAGE_VERSIONS = "manage_versions"
    """Register prompt and workflow versions with their content hash (issue 17)."""


_READ = frozenset({Permission.READ_USAGE, Permission.READ_SPANS, Permission.READ_ALERTS})
_ORG_ADMIN = frozenset(Permission) - {Permission.MANAGE_ORGS}

KEY_ROLES = ("ingest", "read", "admin")
"""API key roles, weakest first."""
USER_ROLES = ("owner", "admin", "member", "viewer", "billing")
"""Roles of a person in an org."""

ROLE_PERMISSIONS: Mapping[str, frozenset[Permission]] = {
    "key:ingest": frozenset({Permission.INGEST}),
    "key:read": _READ,
    "key:admin": _ORG_ADMIN,
    "owner": _ORG_ADMIN,
    "admin": _ORG_ADMIN,
    "member": _READ | {Permission.INGEST, Permission.MANAGE_ALERTS, Permission.MANAGE_VERSIONS},
    "viewer": _READ,
    "billing": frozenset({Permission.READ_USAGE, Permission.READ_ALERTS}),
}
"""What each role holds in its scope (``key:<role>`` for API keys, bare names for people).

``MANAGE_ORGS`` is held only by an ``admin`` key with installation scope (no org), which
only ``mentatctl keys create --bootstrap`` on the server's machine can issue; a key scoped
to one project never holds the org-level permissions (:data:`ORG_LEVEL`).
"""


def key_role(role: str) -> str:
    """The matrix name of API key role ``role`` (``read`` → ``key:read``).

    Raises:
        ValueError: not a key role.
    """
    if role not in KEY_ROLES:
        raise ValueError(f"Expected a key role in {KEY_ROLES}, got {role!r}")
    return f"key:{role}"


def user_role(role: str) -> str:
    """The matrix name of user role ``role`` (unchanged, checked).

    Raises:
        ValueError: not a user role.
    """
    if role not in USER_ROLES:
        raise ValueError(f"Expected a user role in {USER_ROLES}, got {role!r}")
    return role


ORG_LEVEL = frozenset({Permission.MANAGE_MEMBERS, Permission.MANAGE_SETTINGS})
"""Permissions that act on a whole org (its people, its quotas): a project-scoped key never
holds them."""


def permissions_of(role: str, *, installation: bool = False, project: bool = False
                   ) -> frozenset[Permission]:
    """The permissions of matrix role ``role`` in a scope.

    Args:
        role: a matrix role (``key:admin``, ``owner``...).
        installation: the caller is installation-wide: adds ``MANAGE_ORGS`` to an admin key.
        project: the caller is limited to one project: removes :data:`ORG_LEVEL`.

    Raises:
        KeyError: an unknown role.
    """
    held = ROLE_PERMISSIONS[role]
    if installation and role == "key:admin":
        return held | {Permission.MANAGE_ORGS}
    if project:
        return held - ORG_LEVEL
    return held
