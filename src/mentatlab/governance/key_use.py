"""The API keys the ``new_key`` security signal judges, read from the control store.

A key's first use is ``api_keys.first_used_at``; whether its creation is audited is
whether the audit log names it as the target of ``key.created`` or as the
``new_key_id`` of ``key.rotated`` (the API and ``mentatctl keys create`` record both).
Only ids are read from the audit log, never details beyond ``new_key_id``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from mentatlab.analytics.security_signals import KeyUse
from mentatlab.storage.control import ControlStore

__all__ = ["key_uses"]

_AUDIT_PAGE = 1000


def _audited_key_ids(control: ControlStore, since: datetime) -> set[str]:
    """Ids of keys whose creation the audit log records at or after ``since``."""
    found: set[str] = set()
    before: int | None = None
    while True:
        page = control.audit.entries(all_orgs=True, action="key.*", since=since,
                                     before_seq=before, limit=_AUDIT_PAGE)
        for entry in page:
            if entry.action == "key.created":
                found.add(entry.target)
            elif entry.action == "key.rotated":
                new_id = entry.details.get("new_key_id")
                if isinstance(new_id, str):
                    found.add(new_id)
        if len(page) < _AUDIT_PAGE:
            return found
        before = page[-1].seq


def key_uses(control: ControlStore, start: datetime, end: datetime, *,
             org_id: str | None = None, project_id: str | None = None) -> list[KeyUse]:
    """Keys of the scope first used in ``[start, end)``, with their audited creation.

    Args:
        control: the control store.
        start: window start (UTC).
        end: window end (UTC), exclusive.
        org_id: only this org's keys; None: every key (installation-wide callers).
        project_id: only this project's keys.

    Raises:
        StoreError: the control store failed.
    """
    fresh = [k for k in control.list_api_keys(org_id, project_id)
             if k.first_used_at is not None and start <= k.first_used_at < end]
    if not fresh:
        return []
    audited = _audited_key_ids(control, min(k.created_at for k in fresh) - timedelta(seconds=1))
    return [KeyUse(k.id, k.org_id, k.project_id, k.name, k.prefix, k.role, k.created_at,
                   k.first_used_at, k.id in audited) for k in fresh]
