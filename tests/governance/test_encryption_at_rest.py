"""Encryption at rest: the embedded span store's files and the control store's secrets.

Every "not on disk" check has its positive control: the same data written without a key
is found by the same scan (``disk_scan.find_values`` sees through column compression).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from disk_scan import find_values
from sqlalchemy import create_engine, text

from mentatlab.errors import ConfigError, StoreError
from mentatlab.governance.encryption import (
    SECRET_PREFIX,
    EncryptionKeys,
    SecretCipher,
    generate_key,
    parse_keys,
)
from mentatlab.model.schema import spans_to_arrow
from mentatlab.model.span import CanonicalSpan, SpanStatus
from mentatlab.settings import load_settings
from mentatlab.storage.chdb_store import ChdbSpanStore
from mentatlab.storage.control import ControlStore, migrate_control_store
from mentatlab.storage.control.alerts import AlertRuleSpec, NewAlert
from mentatlab.storage.encrypted_disk import MARKER_FILE

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
PAYLOAD = "alice.liddell.7731@example.org asked about order QX-88123-ZETA"
TOKEN = "xoxb-T0KEN-9f8e7d6c5b4a"


def _span_table(num: int = 20) -> object:
    spans = [CanonicalSpan(
        trace_id=f"{i // 5:032x}", span_id=f"{i:016x}", parent_span_id="", name="chat",
        kind="client", start_time=T0 + timedelta(seconds=i),
        end_time=T0 + timedelta(seconds=i, milliseconds=5), duration_ms=5.0,
        status=SpanStatus.OK, org_id="org1", project_id="proj1", request_model="gpt-4o",
        input_tokens=10, output_tokens=5, token_cost=Decimal("0.001"),
        total_cost=Decimal("0.001"), user_id="user-secret-4242",
        attributes=json.dumps({"gen_ai.input.messages": f"[{{\"content\": \"{PAYLOAD}\"}}]"}))
        for i in range(num)]
    return spans_to_arrow(spans)


def _key_encodings(key_text: str, keys: EncryptionKeys) -> list[str]:
    raw = base64.urlsafe_b64decode(key_text)
    disk = keys.disk_keys_hex()[0]
    return [key_text, raw.hex(), raw.hex().upper(), base64.b64encode(raw).decode(),
            disk, disk.upper(), base64.b64encode(bytes.fromhex(disk)).decode()]


def _raw_bytes_found(root: Path, needles: list[bytes]) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()
            and any(n in p.read_bytes() for n in needles)]


def _write_store(folder: Path, keys: EncryptionKeys | None) -> None:
    with ChdbSpanStore(folder, encryption_keys=keys) as store:
        store.migrate()
        store.append_batch(_span_table())  # type: ignore[arg-type]


def _read_payloads(folder: Path, keys: EncryptionKeys | None) -> list[str]:
    with ChdbSpanStore(folder, encryption_keys=keys) as store:
        rows = store.query_arrow("SELECT attributes, user_id FROM spans FINAL").to_pylist()
    return [r["attributes"] + r["user_id"] for r in rows]


def test_encrypted_chdb_store_holds_no_plaintext_and_no_key(tmp_path: Path) -> None:
    key_text = generate_key()
    keys = parse_keys(key_text)
    assert keys is not None
    plain, encrypted = tmp_path / "plain", tmp_path / "encrypted"
    _write_store(plain, None)
    _write_store(encrypted, keys)
    values = [PAYLOAD, "alice.liddell.7731@example.org", "user-secret-4242"]
    # positive control: the scan sees the values through the column compression
    assert set(find_values(plain, values)) == set(values)
    assert find_values(encrypted, values) == {}
    assert find_values(tmp_path, _key_encodings(key_text, keys)) == {}
    raw = base64.urlsafe_b64decode(key_text)
    assert _raw_bytes_found(tmp_path, [raw, bytes.fromhex(keys.disk_keys_hex()[0])]) == []
    assert not (encrypted / "_ingest").exists() or not any((encrypted / "_ingest").iterdir())
    marker = json.loads((encrypted / MARKER_FILE).read_text())
    assert marker["key_ids"] == [keys.current_key_id]
    # the table metadata is the same as an unencrypted store's: no disk, no key in it
    sql = "".join(p.read_text() for p in encrypted.rglob("*.sql"))
    assert "encrypted" not in sql.lower() and "key" not in sql.split("ORDER BY")[0].lower()
    # reopens and reads back with the key
    assert all(PAYLOAD in row for row in _read_payloads(encrypted, keys))
    assert len(_read_payloads(encrypted, keys)) == 20


def test_encrypted_store_refuses_missing_or_wrong_key(tmp_path: Path) -> None:
    keys = parse_keys(generate_key())
    folder = tmp_path / "encrypted"
    _write_store(folder, keys)
    with pytest.raises(ConfigError, match="is encrypted: set MENTATLAB_ENCRYPTION_KEY"):
        ChdbSpanStore(folder)
    with pytest.raises(ConfigError, match="wrong key"):
        ChdbSpanStore(folder, encryption_keys=parse_keys(generate_key()))
    plain = tmp_path / "plain"
    _write_store(plain, None)
    with pytest.raises(ConfigError, match="created without encryption"):
        ChdbSpanStore(plain, encryption_keys=keys)
    assert len(_read_payloads(folder, keys)) == 20  # none of that harmed the store


def test_disk_key_rotation_keeps_old_parts_readable(tmp_path: Path) -> None:
    old_text, new_text = generate_key(), generate_key()
    old = parse_keys(old_text)
    both = parse_keys(f"{new_text},{old_text}")
    assert old is not None and both is not None
    folder = tmp_path / "s"
    _write_store(folder, old)
    with ChdbSpanStore(folder, encryption_keys=both) as store:
        assert store.query_arrow("SELECT count() AS n FROM spans FINAL").column("n")[0].as_py() \
            == 20
        store.append_batch(_span_table(30))  # type: ignore[arg-type]
        assert store.query_arrow("SELECT count() AS n FROM spans FINAL").column("n")[0].as_py() \
            == 30
    marker = json.loads((folder / MARKER_FILE).read_text())
    assert marker["key_ids"] == [old.current_key_id, both.current_key_id]


# --- control store secrets ---------------------------------------------------------------


def _store(url: str, keys: EncryptionKeys | None) -> ControlStore:
    migrate_control_store(url)
    return ControlStore(url, secrets=SecretCipher(keys))


def _add_rule_with_delivery(control: ControlStore) -> str:
    spec = AlertRuleSpec(name="errors", kind="threshold", metric="error_rate", op=">",
                         threshold=Decimal("0.2"),
                         channels=(f"slack:https://hooks.slack.example/services/{TOKEN}",))
    rule = control.alerts.create_rule(spec)
    control.alerts.record_evaluation(rule.id, value=Decimal("0.5"), evaluated_at=T0, alerts=[
        NewAlert(fingerprint="fp1", state="firing", metric="error_rate", value=Decimal("0.5"),
                 threshold=Decimal("0.2"), window_start=T0 - timedelta(minutes=5),
                 window_end=T0, message="error rate 50 %")])
    return rule.id


def _raw_channels(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rules = [r[0] for r in conn.execute(text("SELECT channels FROM alert_rules"))]
            deliveries = [r[0] for r in conn.execute(text("SELECT channel FROM alert_deliveries"))]
    finally:
        engine.dispose()
    return rules + deliveries


def test_control_store_secrets_encrypted_at_rest(control_store_url: str, tmp_path: Path) -> None:
    keys = parse_keys(generate_key())
    control = _store(control_store_url, keys)
    try:
        rule_id = _add_rule_with_delivery(control)
        raw = _raw_channels(control_store_url)
        assert len(raw) == 2 and all(v.startswith(SECRET_PREFIX) and TOKEN not in v for v in raw)
        # round trip: readers get the plaintext
        assert control.alerts.get_rule(rule_id).spec.channels[0].endswith(TOKEN)  # type: ignore[union-attr]
        due = control.alerts.claim_due_deliveries(T0 + timedelta(seconds=1))
        assert [d.channel for d in due] == [f"slack:https://hooks.slack.example/services/{TOKEN}"]
        counts = control.alerts.count_secrets()
        assert (counts.num_secrets, counts.num_encrypted, counts.num_current_key) == (2, 2, 2)
    finally:
        control.close()
    if control_store_url.startswith("sqlite"):
        folder = Path(control_store_url.removeprefix("sqlite:///")).parent
        plain_url = f"sqlite:///{tmp_path / 'plain' / 'control.db'}"
        plain = _store(plain_url, None)
        try:
            _add_rule_with_delivery(plain)
        finally:
            plain.close()
        assert TOKEN in find_values(tmp_path / "plain", [TOKEN])  # positive control
        assert find_values(folder, [TOKEN]) == {}


def test_secret_errors_missing_and_wrong_key(control_store_url: str) -> None:
    keys = parse_keys(generate_key())
    control = _store(control_store_url, keys)
    try:
        rule_id = _add_rule_with_delivery(control)
    finally:
        control.close()
    for other, message in ((None, "no encryption key is configured"),
                           (parse_keys(generate_key()), "None of the configured encryption keys")):
        reader = ControlStore(control_store_url, secrets=SecretCipher(other))
        try:
            with pytest.raises(ConfigError, match=message):
                reader.alerts.get_rule(rule_id)
            with pytest.raises(ConfigError, match=message):
                reader.alerts.check_secrets()
        finally:
            reader.close()


def test_secret_rotation_and_plaintext_upgrade(control_store_url: str) -> None:
    first, second = generate_key(), generate_key()
    plain = _store(control_store_url, None)
    try:
        rule_id = _add_rule_with_delivery(plain)
        assert TOKEN in "".join(_raw_channels(control_store_url))
    finally:
        plain.close()
    # a key configured later: plaintext still reads; rotate-secrets encrypts it
    keyed = ControlStore(control_store_url, secrets=SecretCipher(parse_keys(first)))
    try:
        assert keyed.alerts.get_rule(rule_id).spec.channels[0].endswith(TOKEN)  # type: ignore[union-attr]
        assert keyed.alerts.count_secrets().num_encrypted == 0
        assert keyed.alerts.reencrypt_secrets().num_current_key == 2
    finally:
        keyed.close()
    assert TOKEN not in "".join(_raw_channels(control_store_url))
    # rotation: the new key first, the old one still decrypts; re-encrypt; drop the old one
    rotated = ControlStore(control_store_url,
                           secrets=SecretCipher(parse_keys(f"{second},{first}")))
    try:
        before = _raw_channels(control_store_url)
        assert rotated.alerts.count_secrets().num_current_key == 0
        assert rotated.alerts.reencrypt_secrets().num_current_key == 2
        assert _raw_channels(control_store_url) != before
    finally:
        rotated.close()
    for keys, ok in ((second, True), (first, False)):
        reader = ControlStore(control_store_url, secrets=SecretCipher(parse_keys(keys)))
        try:
            if ok:
                reader.alerts.check_secrets()
                assert reader.alerts.get_rule(rule_id) is not None
            else:
                with pytest.raises(ConfigError):
                    reader.alerts.check_secrets()
        finally:
            reader.close()


def test_malformed_keys_are_refused_without_echoing_them() -> None:
    with pytest.raises(ConfigError, match="#2 to be 32 bytes") as info:
        parse_keys(f"{generate_key()},not-a-real-key-but-secret")
    assert "not-a-real-key" not in str(info.value)
    key = generate_key()
    with pytest.raises(ConfigError, match="twice"):
        parse_keys(f"{key},{key}")
    assert parse_keys(" \n# comment\n") is None
    assert "EncryptionKeys(ids=" in repr(parse_keys(key))
    assert key not in repr(parse_keys(key))


# --- the commands an operator runs ----------------------------------------------------------


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mentatlab.cli.main", *args],
                          env={**os.environ, "COLUMNS": "200", **env}, capture_output=True,
                          text=True, timeout=300)


def test_copy_store_encrypts_an_existing_store(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    _write_store(data_dir / "spans", None)
    key_file = tmp_path / "key"
    made = _cli({}, "governance", "keygen", "--file", str(key_file))
    assert made.returncode == 0, made.stderr
    assert key_file.stat().st_mode & 0o777 == 0o600
    keys = parse_keys(key_file.read_text())
    assert keys is not None and keys.current_key_id in made.stdout
    env = {"MENTATLAB_DATA_DIR": str(data_dir), "MENTATLAB_ENCRYPTION_KEY_FILE": str(key_file)}
    refused = _cli(env, "serve", "--help")  # settings load fine with a key file
    assert refused.returncode == 0
    target = tmp_path / "spans-encrypted"
    copied = _cli(env, "governance", "copy-store", "--to", str(target), "--batch-rows", "7")
    assert copied.returncode == 0, copied.stdout + copied.stderr
    assert "Copied 20 spans" in copied.stdout and "counts and costs per day match" in copied.stdout
    assert find_values(target, [PAYLOAD, "user-secret-4242"]) == {}
    assert set(find_values(data_dir / "spans", [PAYLOAD])) == {PAYLOAD}  # positive control
    rows = _read_payloads(target, keys)
    assert len(rows) == 20 and all(PAYLOAD in r for r in rows)
    status = _cli({**env, "MENTATLAB_SPAN_STORE": f"chdb://{target}"},
                  "governance", "encryption-status")
    assert status.returncode == 0, status.stderr
    assert "Span store: encrypted (AES_256_CTR)" in status.stdout
    assert keys.current_key_id in status.stdout
    plain_status = _cli({**env}, "governance", "encryption-status")
    assert "Span store: not encrypted" in plain_status.stdout
    again = _cli({"MENTATLAB_DATA_DIR": str(data_dir)}, "governance", "copy-store", "--to",
                 str(tmp_path / "x"))
    assert again.returncode == 2 and "MENTATLAB_ENCRYPTION_KEY" in again.stderr


def test_copy_store_replays_a_log_left_by_a_crash_first(tmp_path: Path) -> None:
    """A server killed with spans only in its write-ahead log (on by default): the copy
    holds them too, because copy-store replays the log into the source before reading."""
    import pyarrow as pa

    from mentatlab.storage.wal import WriteAheadLog

    data_dir = tmp_path / "data"
    _write_store(data_dir / "spans", None)  # spans 0..19 inserted
    logged = _span_table(40).slice(20)  # type: ignore[attr-defined]
    stamp = time.time_ns()
    column = logged.schema.get_field_index("ingested_at_ns")
    logged = logged.set_column(column, logged.schema.field(column),
                               pa.array([stamp] * 20, pa.int64()))
    wal = WriteAheadLog(data_dir / "spans" / "_wal")
    wal.append(stamp, logged)
    wal.close()
    key_text = generate_key()
    keys = parse_keys(key_text)
    assert keys is not None
    target = tmp_path / "spans-encrypted"
    copied = _cli({"MENTATLAB_DATA_DIR": str(data_dir), "MENTATLAB_ENCRYPTION_KEY": key_text},
                  "governance", "copy-store", "--to", str(target))
    assert copied.returncode == 0, copied.stdout + copied.stderr
    assert "Copied 40 spans" in copied.stdout
    assert not list((data_dir / "spans" / "_wal").glob("wal-*.log"))
    assert len(_read_payloads(target, keys)) == 40
    assert len(_read_payloads(data_dir / "spans", None)) == 40


def test_rotate_secrets_command(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    url = f"sqlite:///{data_dir / 'control.db'}"
    plain = _store(url, None)
    try:
        _add_rule_with_delivery(plain)
    finally:
        plain.close()
    first, second = generate_key(), generate_key()
    env = {"MENTATLAB_DATA_DIR": str(data_dir), "MENTATLAB_ENCRYPTION_KEY": first}
    done = _cli(env, "governance", "rotate-secrets")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Re-encrypted 2 of 2 secrets" in done.stdout
    assert TOKEN not in "".join(_raw_channels(url))
    status = _cli({**env, "MENTATLAB_ENCRYPTION_KEY": f"{second},{first}"},
                  "governance", "encryption-status")
    assert "2 of 2 encrypted, 0 with the newest key" in status.stdout, status.stderr
    missing = _cli({"MENTATLAB_DATA_DIR": str(data_dir)}, "governance", "encryption-status")
    assert missing.returncode == 2 and "no encryption key is configured" in missing.stderr
    assert "Traceback" not in missing.stderr
    control = ControlStore(url)
    try:
        assert control.audit.entries(all_orgs=True, limit=1)[0].action == \
            "governance.secrets_reencrypted"
    finally:
        control.close()


def test_the_key_is_refused_in_mentatlab_toml(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "mentatlab.toml").write_text(f'[server]\nencryption_key = "{generate_key()}"\n')
    with pytest.raises(ConfigError, match="not in .*mentatlab.toml"):
        load_settings(data_dir=data_dir)


def _otlp_body(value: str) -> dict[str, object]:
    now_ns = int(datetime.now(UTC).timestamp() * 1e9)
    return {"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "agent"}}]},
        "scopeSpans": [{"spans": [{
            "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
            "name": "chat gpt-4o", "kind": 3, "startTimeUnixNano": str(now_ns - 1_000_000),
            "endTimeUnixNano": str(now_ns),
            "attributes": [{"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
                           {"key": "gen_ai.prompt", "value": {"stringValue": value}}]}]}]}]}


@pytest.mark.parametrize("with_key", [True, False])
def test_server_with_a_key_stores_ingested_spans_encrypted(tmp_path: Path, with_key: bool
                                                           ) -> None:
    import httpx
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
    from serverkit import make_settings, run_live_server

    key = generate_key()
    data_dir = tmp_path / "data"
    # redaction off: this is about the disk, and the positive control needs the raw value
    settings = make_settings(data_dir, encryption_key=key if with_key else "", pii_mode="off")
    for server in run_live_server(settings):
        answer = httpx.post(server.url + "/v1/traces", json=_otlp_body(PAYLOAD), timeout=30)
        assert answer.status_code == 200, answer.text
        rows = server.stored().query_arrow(
            "SELECT attributes FROM spans FINAL").column("attributes").to_pylist()
        assert len(rows) == 1 and PAYLOAD in rows[0]
    found = find_values(data_dir / "spans", [PAYLOAD])
    if with_key:
        assert found == {}
        keys = parse_keys(key)
        assert keys is not None
        assert find_values(tmp_path, _key_encodings(key, keys)) == {}
        assert (data_dir / "spans" / MARKER_FILE).exists()
    else:  # the positive control: the same ingest without a key is found on disk
        assert set(found) == {PAYLOAD}


def test_migrate_reads_an_encrypted_embedded_store(tmp_path: Path,
                                                   clickhouse_server: dict[str, object]) -> None:
    import uuid

    from backends import server_args
    from mentatlab.storage.clickhouse_store import ClickHouseSpanStore

    key = generate_key()
    data_dir = tmp_path / "data"
    _write_store(data_dir / "spans", parse_keys(key))
    database = f"mentat_enc_{uuid.uuid4().hex[:10]}"
    args = server_args(clickhouse_server)
    auth = f"{args['username']}:{args['password']}@" if args.get("username") else ""
    url = f"clickhouse://{auth}{args['host']}:{args['port']}/{database}?compress=false"
    env = {"MENTATLAB_DATA_DIR": str(data_dir)}
    unkeyed = _cli(env, "migrate", "--to", url)
    assert unkeyed.returncode == 2 and "is encrypted" in unkeyed.stderr
    done = _cli({**env, "MENTATLAB_ENCRYPTION_KEY": key}, "migrate", "--to", url)
    assert done.returncode == 0, done.stdout + done.stderr
    target = ClickHouseSpanStore(database=database, query_timeout_s=0, **args)
    try:
        rows = target.query_arrow("SELECT attributes FROM spans FINAL").column(
            "attributes").to_pylist()
        assert len(rows) == 20 and all(PAYLOAD in r for r in rows)
    finally:
        target.execute(f"DROP DATABASE IF EXISTS `{database}`")
        target.close()


def test_audit_verify_needs_no_encryption_key_but_the_server_does(tmp_path: Path) -> None:
    from mentatlab.server.components import open_control_store

    data_dir = tmp_path / "data"
    url = f"sqlite:///{data_dir / 'control.db'}"
    control = _store(url, parse_keys(generate_key()))
    try:
        _add_rule_with_delivery(control)
        control.audit.record("cli", "key.created", target="k1")
    finally:
        control.close()
    checked = _cli({"MENTATLAB_DATA_DIR": str(data_dir)}, "audit", "verify")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    with pytest.raises(ConfigError, match="no encryption key is configured"):
        open_control_store(load_settings(data_dir=data_dir))


def test_settings_never_print_the_key(tmp_path: Path) -> None:
    key = generate_key()
    settings = load_settings(data_dir=tmp_path, encryption_key=key)
    assert key not in repr(settings) and key not in str(settings)
    assert settings.encryption_keys() is not None


def test_child_reader_opens_an_encrypted_source_with_the_keys_it_is_given(
        tmp_path: Path) -> None:
    from mentatlab.storage.span_reader_process import ChildSpanReader

    key = generate_key()
    keys = parse_keys(key)
    assert keys is not None and keys.export_text() == key
    folder = tmp_path / "s"
    _write_store(folder, keys)
    with ChildSpanReader(folder, keys) as reader:
        table = reader.query_arrow("SELECT count() AS n FROM spans WHERE start_time >= {t:"
                                   "DateTime64(9, 'UTC')}", {"t": T0})
        assert table.column("n")[0].as_py() == 20
        with pytest.raises(StoreError, match="UNKNOWN_TABLE|Unknown table|doesn't exist"):
            reader.query_arrow("SELECT * FROM no_such_table")
        with pytest.raises(StoreError, match="read-only"):
            reader.execute("DROP TABLE spans")
    with pytest.raises(StoreError, match="is encrypted"):
        ChildSpanReader(folder)


def test_copy_store_rotates_the_disk_key(tmp_path: Path) -> None:
    old, new = generate_key(), generate_key()
    old_keys, new_keys = parse_keys(old), parse_keys(new)
    assert old_keys is not None and new_keys is not None
    data_dir = tmp_path / "data"
    _write_store(data_dir / "spans", old_keys)
    target = tmp_path / "rotated"
    env = {"MENTATLAB_DATA_DIR": str(data_dir), "MENTATLAB_ENCRYPTION_KEY": f"{new},{old}"}
    copied = _cli(env, "governance", "copy-store", "--to", str(target))
    assert copied.returncode == 0, copied.stdout + copied.stderr
    source_marker = json.loads((data_dir / "spans" / MARKER_FILE).read_text())
    assert source_marker["key_ids"] == [old_keys.current_key_id]  # the source was only read
    assert json.loads((target / MARKER_FILE).read_text())["key_ids"] == \
        [new_keys.current_key_id]
    assert len(_read_payloads(target, new_keys)) == 20  # the old key is no longer needed
    with pytest.raises(ConfigError, match="wrong key"):
        ChdbSpanStore(target, encryption_keys=old_keys)
