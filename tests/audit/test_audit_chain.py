"""The audit log's hash chain: tampering done straight in the database is named precisely.

Every test runs on a SQLite and a PostgreSQL control store (``control_store_url``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import text

from mentatlab.errors import ConfigError, ValidationError
from mentatlab.storage.control import ControlStore, migrate_control_store
from mentatlab.storage.control.audit import (
    GENESIS_HASH,
    AuditReport,
    entry_hash,
    generate_signing_key,
    load_signing_key,
)


@pytest.fixture
def control(control_store_url: str) -> Iterator[ControlStore]:
    migrate_control_store(control_store_url)
    store = ControlStore(control_store_url)
    yield store
    store.close()


def fill(control: ControlStore, n: int = 10) -> None:
    for i in range(1, n + 1):
        control.audit.record(f"key:k{i % 3}", "key.created", org_id="acme", target=f"t{i}",
                             details={"n": i, "name": "clé"})


def sql(control: ControlStore, statement: str, **params: object) -> None:
    with control.engine.begin() as conn:
        conn.execute(text(statement), params)


def problems(report: AuditReport) -> list[tuple[str, int | None]]:
    return [(p.kind, p.seq) for p in report.problems]


def test_an_intact_chain_verifies_and_links_from_genesis(control: ControlStore) -> None:
    fill(control, 10)
    report = control.audit.verify()
    assert report.ok, report.problems
    assert (report.entries, report.head_seq) == (10, 10)
    first = control.audit.entries(org_id="acme", limit=100)[-1]
    assert first.seq == 1 and first.prev_hash == GENESIS_HASH
    assert first.hash == entry_hash(GENESIS_HASH, 1, first.at, first.actor, first.action,
                                    "acme", None, "t1", {"n": 1, "name": "clé"})
    assert any("signatures were not checked" in n for n in report.notes)


def test_an_edited_entry_is_named(control: ControlStore) -> None:
    fill(control)
    sql(control, "UPDATE audit_log SET target = 'forged' WHERE seq = 4")
    report = control.audit.verify()
    assert problems(report) == [("edited", 4)]
    assert "entry 4" in report.problems[0].message


def test_an_edited_details_object_is_named(control: ControlStore) -> None:
    fill(control)
    sql(control, "UPDATE audit_log SET details = :d WHERE seq = 7",
        d=json.dumps({"n": 7, "name": "clé", "role": "admin"}))
    assert problems(control.audit.verify()) == [("edited", 7)]


def test_an_entry_edited_and_rehashed_is_named_by_the_broken_link(control: ControlStore
                                                                  ) -> None:
    fill(control)
    row = control.audit.entries(org_id="acme", limit=100)[::-1][4]  # seq 5
    forged = entry_hash(row.prev_hash, 5, row.at, "cli", row.action, "acme", None, row.target,
                        dict(row.details))
    sql(control, "UPDATE audit_log SET actor = 'cli', hash = :h WHERE seq = 5", h=forged)
    report = control.audit.verify()
    assert problems(report) == [("edited", 5)]
    assert "re-hashed" in report.problems[0].message


def test_a_removed_entry_is_named(control: ControlStore) -> None:
    fill(control)
    sql(control, "DELETE FROM audit_log WHERE seq = 6")
    report = control.audit.verify()
    assert problems(report) == [("removed", 6)]
    assert "entry 6 missing" in report.problems[0].message


def test_removed_entries_at_the_start_and_a_run_are_named(control: ControlStore) -> None:
    fill(control)
    sql(control, "DELETE FROM audit_log WHERE seq IN (1, 2, 5, 6, 7)")
    report = control.audit.verify()
    assert problems(report) == [("removed", 1), ("removed", 5)]
    assert "entries 5–7 missing" in report.problems[1].message


def test_an_inserted_entry_is_named(control: ControlStore) -> None:
    fill(control)
    # Make room at seq 5 (last first, so seq stays unique), then insert a forged entry
    # with a well-formed hash of its own.
    for seq in range(10, 4, -1):
        sql(control, "UPDATE audit_log SET seq = :new WHERE seq = :old", new=seq + 1, old=seq)
    at = control.audit.entries(org_id="acme", limit=1)[0].at
    fake_prev = "ab" * 32
    digest = entry_hash(fake_prev, 5, at, "cli", "key.created", "acme", None, "evil", {})
    sql(control, "INSERT INTO audit_log (seq, at, actor, action, org_id, target, details, "
        "prev_hash, hash) VALUES (5, :at, 'cli', 'key.created', 'acme', 'evil', '{}', :p, :h)",
        at=at.replace(tzinfo=None), p=fake_prev, h=digest)
    report = control.audit.verify()
    assert problems(report) == [("inserted", 5), ("reordered", 6)]
    assert "entry 5 (key.created by cli) is not part of the chain" in report.problems[0].message
    assert "written as seq 5–10 are stored at seq 6–11 (renumbered by +1)" in \
        report.problems[1].message


def test_an_entry_appended_outside_the_chain_is_named(control: ControlStore) -> None:
    fill(control)
    at = control.audit.entries(org_id="acme", limit=1)[0].at
    digest = entry_hash("cd" * 32, 11, at, "cli", "export", None, None, "", {})
    sql(control, "INSERT INTO audit_log (seq, at, actor, action, org_id, target, details, "
        "prev_hash, hash) VALUES (11, :at, 'cli', 'export', NULL, '', '{}', :p, :h)",
        at=at.replace(tzinfo=None), p="cd" * 32, h=digest)
    assert problems(control.audit.verify()) == [("inserted", 11)]


def test_reordered_entries_are_named(control: ControlStore) -> None:
    fill(control)
    sql(control, "UPDATE audit_log SET seq = -1 WHERE seq = 3")
    sql(control, "UPDATE audit_log SET seq = 3 WHERE seq = 4")
    sql(control, "UPDATE audit_log SET seq = 4 WHERE seq = -1")
    report = control.audit.verify()
    assert problems(report) == [("reordered", 3), ("reordered", 4)]
    assert "written as seq 4 is stored at seq 3" in report.problems[0].message
    assert "written as seq 3 is stored at seq 4" in report.problems[1].message


def test_a_removal_hidden_by_renumbering_is_named(control: ControlStore) -> None:
    fill(control)
    sql(control, "DELETE FROM audit_log WHERE seq = 4")
    for seq in range(5, 11):
        sql(control, "UPDATE audit_log SET seq = :new WHERE seq = :old", new=seq - 1, old=seq)
    report = control.audit.verify()
    assert problems(report) == [("reordered", 4), ("removed", 4)]
    assert "renumbered by -1" in report.problems[0].message
    assert "entry written as seq 4 is missing" in report.problems[1].message


def test_a_truncated_tail_behind_a_checkpoint_is_named(control: ControlStore) -> None:
    fill(control, 8)
    assert control.audit.checkpoint() is not None  # at seq 8
    sql(control, "DELETE FROM audit_log WHERE seq > 5")
    report = control.audit.verify()
    assert problems(report) == [("truncated", 8)]
    assert "entries 6–8" in report.problems[0].message


def test_checkpoints_every_n_entries_are_signed_and_checked(control: ControlStore,
                                                            tmp_path: Path) -> None:
    key_file = tmp_path / "audit.pem"
    fingerprint = generate_signing_key(key_file)
    assert key_file.stat().st_mode & 0o777 == 0o600
    control.audit.configure(checkpoint_every=4, signing_key=load_signing_key(key_file))
    fill(control, 10)
    checkpoints = control.audit.checkpoints()
    assert [c.seq for c in checkpoints] == [4, 8]
    assert all(c.key_id == fingerprint and len(c.signature) == 128 for c in checkpoints)
    report = control.audit.verify()
    assert report.ok and report.signed_checkpoints == 2 and report.notes == ()


def test_a_tampered_signature_or_checkpoint_is_named(control: ControlStore,
                                                     tmp_path: Path) -> None:
    generate_signing_key(tmp_path / "audit.pem")
    control.audit.configure(checkpoint_every=4,
                            signing_key=load_signing_key(tmp_path / "audit.pem"))
    fill(control, 10)
    sig = control.audit.checkpoints()[0].signature
    flipped = ("1" if sig[0] == "0" else "0") + sig[1:]
    sql(control, "UPDATE audit_checkpoints SET signature = :s WHERE seq = 4", s=flipped)
    sql(control, "UPDATE audit_checkpoints SET hash = :h WHERE seq = 8", h="ee" * 32)
    report = control.audit.verify()
    assert problems(report) == [("signature", 4), ("checkpoint", 8), ("signature", 8)]
    assert "bad signature" in report.problems[0].message


def test_a_whole_rewrite_is_caught_by_the_signed_checkpoint(control: ControlStore,
                                                            tmp_path: Path) -> None:
    generate_signing_key(tmp_path / "audit.pem")
    control.audit.configure(checkpoint_every=5,
                            signing_key=load_signing_key(tmp_path / "audit.pem"))
    fill(control, 6)
    # Rewrite every entry consistently from seq 1 (as someone without the key would).
    rows = control.audit.entries(org_id="acme", limit=100)[::-1]
    prev = GENESIS_HASH
    for row in rows:
        digest = entry_hash(prev, row.seq, row.at, row.actor, row.action, "acme", None,
                            "rewritten",
                            dict(row.details))
        sql(control, "UPDATE audit_log SET target = 'rewritten', prev_hash = :p, hash = :h "
            "WHERE seq = :s", p=prev, h=digest, s=row.seq)
        prev = digest
    report = control.audit.verify()
    assert problems(report) == [("checkpoint", 5)]


def test_a_checkpoint_signed_by_another_key_is_named(control: ControlStore,
                                                     tmp_path: Path) -> None:
    generate_signing_key(tmp_path / "a.pem")
    generate_signing_key(tmp_path / "b.pem")
    control.audit.configure(checkpoint_every=2, signing_key=load_signing_key(tmp_path / "a.pem"))
    fill(control, 2)
    other = load_signing_key(tmp_path / "b.pem").public_key()
    report = control.audit.verify(public_key=other)
    assert problems(report) == [("signature", 2)]
    assert "not the configured key" in report.problems[0].message


def test_details_become_json_and_bad_input_is_refused(control: ControlStore) -> None:
    entry = control.audit.record("cli", "export", details={"amount": Decimal("1.50"),
                                                           "at": datetime(2026, 1, 1, tzinfo=UTC)})
    assert entry.details == {"amount": "1.50", "at": "2026-01-01 00:00:00+00:00"}
    with pytest.raises(ValidationError, match="details"):
        control.audit.record("cli", "export", details={"x": float("nan")})
    with pytest.raises(ValidationError, match="action"):
        control.audit.record("cli", "")
    assert control.audit.verify().ok and control.audit.verify().entries == 1


def test_a_bad_signing_key_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "bad.pem").write_text("not a key")
    with pytest.raises(ConfigError, match="audit_signing_key_file"):
        load_signing_key(tmp_path / "bad.pem")
    generate_signing_key(tmp_path / "k.pem")
    with pytest.raises(ConfigError, match="exists already"):
        generate_signing_key(tmp_path / "k.pem")
