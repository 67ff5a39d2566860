"""Policies in the control store on SQLite and PostgreSQL: every change a new version,
old versions kept, deletes marked, built-ins created once, break-glass grants by time;
and the snapshot the server builds from them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from mentatlab.errors import ValidationError
from mentatlab.governance.policy_rules import BUILTIN_POLICIES, check_spec, snapshot_of
from mentatlab.storage.control import ControlStore, migrate_control_store
from mentatlab.storage.control.models import utc_now
from mentatlab.storage.control.policies import PolicySpec, list_policies


@pytest.fixture
def control(control_store_url: str) -> Iterator[ControlStore]:
    migrate_control_store(control_store_url)
    store = ControlStore(control_store_url)
    store.create_org("Acme", "acme")
    store.create_org("Globex", "globex")
    try:
        yield store
    finally:
        store.close()


def _spec(**fields: object) -> PolicySpec:
    base: dict[str, object] = {"name": "p", "condition": 'span.name == "x"', "action": "log",
                               "org_id": "acme"}
    return check_spec(PolicySpec(**{**base, **fields}))  # type: ignore[arg-type]


def test_versions_are_kept_and_deletes_marked(control: ControlStore) -> None:
    made = control.policies.create(_spec(compliance_tags=("hipaa", "EU AI Act")), actor="user:1")
    assert (made.version, made.current_version) == (1, 1)
    assert made.spec.compliance_tags == ("EU AI Act", "HIPAA")
    changed = control.policies.update(made.id, _spec(action="block", org_id="globex"),
                                      actor="user:2")
    assert changed is not None and changed.version == 2
    assert changed.spec.org_id == "acme", "the owner never changes"
    gone = control.policies.delete(made.id, actor="user:3")
    assert gone is not None and gone.version == 3 and gone.deleted
    assert control.policies.update(made.id, _spec(), actor="user:4") is None
    versions = control.policies.versions(made.id)
    assert [(v.version, v.spec.action, v.created_by) for v in versions] == [
        (1, "log", "user:1"), (2, "block", "user:2"), (3, "block", "user:3")]
    assert all(v.deleted and not v.enforced for v in versions), "the policy is deleted"
    assert control.policies.get(made.id, 1).spec.action == "log"  # type: ignore[union-attr]
    assert list_policies(control, "acme") == []
    assert [p.id for p in control.policies.current("acme", include_deleted=True)] == [made.id]


def test_scope_of_lists_and_the_enforced_snapshot(control: ControlStore) -> None:
    created = control.policies.ensure(BUILTIN_POLICIES)
    assert sorted(created) == sorted(i for i, _ in BUILTIN_POLICIES)
    assert control.policies.ensure(BUILTIN_POLICIES) == [], "created once"
    acme = control.policies.create(_spec(name="acme rule"), actor="cli")
    control.policies.create(_spec(name="globex rule", org_id="globex"), actor="cli")
    control.policies.create(_spec(name="draft", draft=True), actor="cli")
    names = [p.spec.name for p in list_policies(control, "acme")]
    assert "acme rule" in names and "globex rule" not in names and "draft" in names
    assert len([n for n in names if n.startswith(("Unauthorized", "Excessive", "PII",
                                                  "Prompt", "Secrets"))]) == 5
    snapshot = snapshot_of(control.policies.enforced())
    ids = {r.id for r in snapshot.rules}
    assert acme.id in ids and "builtin.tool_allowlist" not in ids, "disabled by default"
    assert "draft" not in {r.name for r in snapshot.rules}
    assert len(ids) == 4 + 2
    again = snapshot_of(control.policies.enforced())
    assert again.digest == snapshot.digest
    control.policies.update(acme.id, _spec(name="acme rule", condition='span.name == "y"'),
                            actor="cli")
    assert snapshot_of(control.policies.enforced()).digest != snapshot.digest


def test_break_glass_grants_expire(control: ControlStore) -> None:
    made = control.policies.create(_spec(action="block"), actor="cli")
    now = utc_now()
    grant = control.policies.grant_override(
        made.id, org_id="acme", scope="agent", scope_value="planner",
        reason="incident 7 needs it", granted_by="user:1", expires_at=now + timedelta(hours=1))
    assert grant.active(now + timedelta(minutes=59)) and not grant.active(now + timedelta(hours=2))
    assert [g.id for g in control.policies.overrides(active_at=utc_now())] == [grant.id]
    assert control.policies.overrides(active_at=now + timedelta(hours=2)) == []
    with pytest.raises(ValidationError):
        control.policies.grant_override("nope", org_id="", scope="global", scope_value="",
                                        reason="x" * 20, granted_by="cli",
                                        expires_at=now + timedelta(hours=1))
