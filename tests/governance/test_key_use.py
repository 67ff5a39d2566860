"""The first use of API keys and whether their creation is audited (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import create_engine, text

from mentatlab.governance.key_use import key_uses
from mentatlab.storage.control import ControlStore, migrate_control_store
from mentatlab.storage.control.models import utc_now


def test_first_use_is_kept_and_creations_are_matched_in_the_audit_log(
        control_store_url: str) -> None:
    migrate_control_store(control_store_url)
    control = ControlStore(control_store_url)
    try:
        control.create_org("Acme", "acme")
        created = control.create_api_key("acme", None, "ci", role="read")
        control.audit.record("cli", "key.created", org_id="acme", target=created.info.id)
        rotated = control.rotate_api_key(created.info.id)
        assert rotated is not None
        control.audit.record("cli", "key.rotated", org_id="acme", target=created.info.id,
                             details={"new_key_id": rotated.info.id})
        stray = control.create_api_key("acme", None, "stray", role="read")
        unused = control.create_api_key("acme", None, "unused", role="read")
        start = utc_now() - timedelta(seconds=1)
        assert control.resolve_api_key(rotated.key) and control.resolve_api_key(stray.key)
        first = control.get_api_key(stray.info.id)
        assert first is not None and first.first_used_at is not None
        assert control.resolve_api_key(stray.key, touch_after_s=0)
        again = control.get_api_key(stray.info.id)
        assert again is not None and again.first_used_at == first.first_used_at
        assert again.last_used_at is not None and again.last_used_at >= first.first_used_at

        uses = {u.name: u for u in key_uses(control, start, utc_now() + timedelta(seconds=1),
                                            org_id="acme")}
        assert set(uses) == {"ci", "stray"} and "unused" not in uses
        assert uses["ci"].key_id == rotated.info.id and uses["ci"].creation_audited
        assert not uses["stray"].creation_audited
        assert key_uses(control, start, utc_now(), org_id="other") == []
        assert unused.info.first_used_at is None
    finally:
        control.close()


def test_the_upgrade_dates_keys_in_use_from_their_creation(control_store_url: str) -> None:
    migrate_control_store(control_store_url, "0006_quotas")
    engine = create_engine(control_store_url)
    now = utc_now()
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO orgs (id, name, created_at) VALUES ('acme', 'Acme', :t)"),
                     {"t": now})
        for key_id, used in (("used", now), ("idle", None)):
            conn.execute(text(
                "INSERT INTO api_keys (id, org_id, name, role, prefix, key_hash, created_by,"
                " created_at, last_used_at) VALUES (:id, 'acme', :id, 'read', 'mtl_x', :id,"
                " '', :created, :used)"),
                {"id": key_id, "created": now - timedelta(days=3), "used": used})
    engine.dispose()
    migrate_control_store(control_store_url)
    control = ControlStore(control_store_url)
    try:
        used, idle = control.get_api_key("used"), control.get_api_key("idle")
        assert used is not None and used.first_used_at == used.created_at
        assert idle is not None and idle.first_used_at is None
        assert key_uses(control, now - timedelta(hours=1), utc_now(), org_id="acme") == []
    finally:
        control.close()
