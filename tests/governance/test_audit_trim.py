"""Audit-log trimming at a signed checkpoint (storage/control/audit.py), on SQLite and
PostgreSQL: verify accepts the signed checkpoint as the chain's new start and refuses a
forged or altered one; trimming needs a key; and ``mentatctl audit verify`` says so."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text

from mentatlab.errors import ConfigError
from mentatlab.storage.control import ControlStore, migrate_control_store
from mentatlab.storage.control.audit import (
    _signed_text,
    generate_signing_key,
    load_public_key,
    load_signing_key,
)
from mentatlab.storage.control.models import utc_now


@pytest.fixture
def control(control_store_url: str) -> ControlStore:
    migrate_control_store(control_store_url)
    store = ControlStore(control_store_url)
    yield store  # type: ignore[misc]
    store.close()


def _fill(control: ControlStore, n: int) -> None:
    for i in range(n):
        control.audit.record("cli", "key.created", org_id="acme", target=f"k{i}",
                             details={"role": "read"})


def test_trim_keeps_a_verifiable_chain(control: ControlStore) -> None:
    key = Ed25519PrivateKey.generate()
    control.audit.configure(checkpoint_every=4, signing_key=key)
    _fill(control, 10)
    assert control.audit.verify().ok

    removed = control.audit.trim(through_seq=6)

    assert removed == 6
    entries = control.audit.entries(all_orgs=True, limit=1000)
    assert [e.seq for e in reversed(entries)] == [7, 8, 9, 10, 11]
    receipt = entries[0]
    assert receipt.action == "audit.checkpoint" and receipt.details["seq"] == 6
    assert receipt.details["trimmed_entries"] == 6 and receipt.details["key_id"]
    assert [c.seq for c in control.audit.checkpoints()] == [6, 8]
    report = control.audit.verify()
    assert report.ok, report.problems
    assert any("starts after the signed checkpoint at seq 6" in n for n in report.notes)
    assert report.entries == 5 and report.head_seq == 11

    # Appending goes on from the head; a second trim moves the start again.
    _fill(control, 3)
    assert control.audit.trim(before=utc_now() + timedelta(seconds=1)) == 7
    assert control.audit.verify().ok
    assert control.audit.trim(through_seq=3) == 0, "nothing before the start"


def test_a_forged_or_altered_checkpoint_is_not_a_start(control: ControlStore,
                                                       control_store_url: str) -> None:
    key = Ed25519PrivateKey.generate()
    control.audit.configure(checkpoint_every=1000, signing_key=key)
    _fill(control, 8)
    control.audit.trim(through_seq=5)
    assert control.audit.verify().ok

    # Someone deletes two more entries and writes a checkpoint signed with their own key.
    forger = Ed25519PrivateKey.generate()
    with control.engine.begin() as conn:
        row = conn.execute(text("SELECT hash FROM audit_log WHERE seq = 7")).one()
        conn.execute(text("DELETE FROM audit_log WHERE seq <= 7"))
        at = utc_now()
        conn.execute(text("INSERT INTO audit_checkpoints (seq, hash, signature, key_id, at)"
                          " VALUES (7, :h, :s, :k, :at)"),
                     {"h": row.hash, "s": forger.sign(_signed_text(7, row.hash, at)).hex(),
                      "k": "f" * 64, "at": at})
    report = control.audit.verify()
    assert not report.ok
    kinds = {p.kind for p in report.problems}
    assert "removed" in kinds and "signature" in kinds, report.problems

    # The real checkpoint at 5, with its hash altered (signature no longer matches).
    with control.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_checkpoints WHERE seq = 7"))
    report = control.audit.verify()
    assert not report.ok and any(p.kind == "removed" for p in report.problems)


def test_an_altered_anchor_hash_fails(control: ControlStore) -> None:
    control.audit.configure(checkpoint_every=1000, signing_key=Ed25519PrivateKey.generate())
    _fill(control, 6)
    control.audit.trim(through_seq=3)
    with control.engine.begin() as conn:
        conn.execute(text("UPDATE audit_checkpoints SET hash = :h WHERE seq = 3"),
                     {"h": "0" * 64})
    report = control.audit.verify()
    assert not report.ok
    assert {p.kind for p in report.problems} >= {"removed"}


def test_trimming_needs_a_signing_key(control: ControlStore) -> None:
    _fill(control, 3)
    with pytest.raises(ConfigError, match="signing key"):
        control.audit.trim(through_seq=2)
    assert len(control.audit.entries(all_orgs=True)) == 3


def test_verify_cli_accepts_a_trimmed_chain_and_rejects_without_the_key(
        control_store_url: str, tmp_path: Path) -> None:
    key_file = tmp_path / "audit.pem"
    generate_signing_key(key_file)
    migrate_control_store(control_store_url)
    control = ControlStore(control_store_url)
    try:
        control.audit.configure(checkpoint_every=1000, signing_key=load_signing_key(key_file))
        _fill(control, 5)
        control.audit.trim(through_seq=3)
    finally:
        control.close()
    env = {**os.environ, "COLUMNS": "200", "MENTATLAB_CONTROL_STORE": control_store_url,
           "MENTATLAB_DATA_DIR": str(tmp_path / "data")}

    def verify(**extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "mentatlab.cli.main", "audit", "verify"],
                              env={**env, **extra}, capture_output=True, text=True, timeout=120)

    good = verify(MENTATLAB_AUDIT_SIGNING_KEY_FILE=str(key_file))
    assert good.returncode == 0, good.stdout + good.stderr
    assert "intact" in good.stdout and "signed checkpoint at seq 3" in good.stderr
    other = tmp_path / "other.pem"
    generate_signing_key(other)
    bad = verify(MENTATLAB_AUDIT_SIGNING_KEY_FILE=str(other))
    assert bad.returncode == 1 and "entries 1–3 missing" in bad.stdout, bad.stdout
    unkeyed = verify()
    assert unkeyed.returncode == 1, "without the key the trimmed start cannot be trusted"


def test_after_a_key_rotation_the_retired_key_still_verifies(control: ControlStore,
                                                            tmp_path: Path) -> None:
    old_file, new_file = tmp_path / "old.pem", tmp_path / "new.pem"
    generate_signing_key(old_file)
    generate_signing_key(new_file)
    control.audit.configure(checkpoint_every=1000, signing_key=load_signing_key(old_file))
    _fill(control, 6)
    control.audit.trim(through_seq=3)
    control.audit.checkpoint()

    control.audit.configure(checkpoint_every=1000, signing_key=load_signing_key(new_file))
    _fill(control, 2)
    control.audit.checkpoint()
    unaware = control.audit.verify()
    assert not unaware.ok and {p.kind for p in unaware.problems} >= {"removed", "signature"}

    control.audit.configure(checkpoint_every=1000, signing_key=load_signing_key(new_file),
                            retired_keys=(load_public_key(old_file),))
    report = control.audit.verify()
    assert report.ok, report.problems
    assert report.signed_checkpoints == 3
