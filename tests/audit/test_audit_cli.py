"""``mentatctl audit ...`` as an operator runs it, in a child process, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import make_url, text

from backends import fresh_postgres_database, libpq_url
from mentatlab.storage.chdb_store import ChdbSpanStore
from mentatlab.storage.control import ControlStore


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mentatlab.cli.main", *args],
                          env={**os.environ, "COLUMNS": "200", **env}, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture
def env(control_store_url: str, tmp_path: Path) -> dict[str, str]:
    return {"MENTATLAB_CONTROL_STORE": control_store_url,
            "MENTATLAB_DATA_DIR": str(tmp_path / "data")}


def test_bootstrap_is_recorded_and_verify_names_tampering(env: dict[str, str],
                                                          control_store_url: str) -> None:
    for org in ("acme", "globex"):
        done = _cli(env, "keys", "create", "--bootstrap", "--org", org)
        assert done.returncode == 0, done.stderr
    intact = _cli(env, "audit", "verify")
    assert intact.returncode == 0, intact.stdout + intact.stderr
    assert "Audit log intact" in intact.stdout and "4 entries" in intact.stdout
    assert "signatures were not checked" in intact.stderr
    control = ControlStore(control_store_url)
    try:
        entries = control.audit.entries(all_orgs=True)
        assert [(e.actor, e.action, e.org_id) for e in reversed(entries)] == [
            ("cli", "org.created", "acme"), ("cli", "key.created", "acme"),
            ("cli", "org.created", "globex"), ("cli", "key.created", "globex")]
        with control.engine.begin() as conn:
            conn.execute(text("UPDATE audit_log SET org_id = 'globex' WHERE seq = 2"))
            conn.execute(text("DELETE FROM audit_log WHERE seq = 3"))
    finally:
        control.close()
    broken = _cli(env, "audit", "verify")
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert "edited: entry 2 (key.created by cli) does not match its hash" in broken.stdout
    assert "removed: entry 3 missing" in broken.stdout
    assert "NOT intact: 2 problem(s)" in broken.stdout


def test_keygen_signs_checkpoints_that_verify_checks(env: dict[str, str],
                                                     tmp_path: Path) -> None:
    key_file = tmp_path / "keys" / "audit.pem"
    made = _cli(env, "audit", "keygen", str(key_file))
    assert made.returncode == 0, made.stderr
    assert key_file.stat().st_mode & 0o777 == 0o600
    again = _cli(env, "audit", "keygen", str(key_file))
    assert again.returncode == 2 and "exists already" in again.stderr
    signed = {**env, "MENTATLAB_AUDIT_SIGNING_KEY_FILE": str(key_file)}
    assert _cli(signed, "keys", "create", "--bootstrap").returncode == 0
    point = _cli(signed, "audit", "checkpoint")
    assert point.returncode == 0 and "seq 1 hash" in point.stdout and "signed by" in point.stdout
    checked = _cli(signed, "audit", "verify")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "1 checkpoints (1 with a valid signature)" in checked.stdout
    other = tmp_path / "other.pem"
    assert _cli(env, "audit", "keygen", str(other)).returncode == 0
    wrong = _cli({**env, "MENTATLAB_AUDIT_SIGNING_KEY_FILE": str(other)}, "audit", "verify")
    assert wrong.returncode == 1 and "signature: checkpoint at seq 1 is signed by key" in \
        wrong.stdout


def test_a_bad_signing_key_file_is_refused_with_exit_2(env: dict[str, str],
                                                       tmp_path: Path) -> None:
    (tmp_path / "bad.pem").write_text("nope")
    done = _cli({**env, "MENTATLAB_AUDIT_SIGNING_KEY_FILE": str(tmp_path / "bad.pem")},
                "audit", "verify")
    assert done.returncode == 2 and "audit_signing_key_file" in done.stderr
    assert "Traceback" not in done.stderr


def test_migrate_is_recorded_and_the_copied_chain_verifies(
        tmp_path: Path, postgres_cluster: tuple[str, Path | None]) -> None:
    data_dir = tmp_path / "embedded"
    store = ChdbSpanStore(data_dir / "spans")
    store.migrate()
    store.close()
    env = {"MENTATLAB_DATA_DIR": str(data_dir), "MENTATLAB_CONTROL_STORE": ""}
    assert _cli(env, "keys", "create", "--bootstrap", "--org", "acme").returncode == 0
    with fresh_postgres_database(postgres_cluster[0]) as target:
        for _ in range(2):  # a rerun verifies too: the entry is copied with the chain
            done = _cli(env, "migrate", "--control-to", libpq_url(target))
            assert done.returncode == 0, done.stdout + done.stderr
        control = ControlStore(target)
        try:
            entries = control.audit.entries(all_orgs=True)
            assert [e.action for e in reversed(entries)] == [
                "org.created", "key.created", "migration", "migration"]
            assert entries[0].details["control_store"].startswith("postgresql")
            password = make_url(target).password
            assert password and password not in str(entries[0].details)  # masked
            assert control.audit.verify().ok
        finally:
            control.close()
    assert _cli(env, "audit", "verify").returncode == 0
