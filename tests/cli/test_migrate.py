"""`mentatctl migrate`: a real embedded installation moved to ClickHouse (the chDB-backed
HTTP endpoint) and a real PostgreSQL, run as a subprocess like a user would."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from backends import fresh_postgres_database, libpq_url, server_args
from mentatlab.analytics import QueryParams, TimeRange, cost_by, get_overview
from mentatlab.model.schema import spans_to_arrow
from mentatlab.model.span import CanonicalSpan, Operation, SpanStatus
from mentatlab.resolver.resolver import read_resolver_state
from mentatlab.storage.chdb_store import ChdbSpanStore
from mentatlab.storage.clickhouse_store import ClickHouseSpanStore
from mentatlab.storage.control import ControlStore, migrate_control_store
from mentatlab.storage.control.models import PricingOverride
from serve_process import free_port, start_serve, stop, wait_ready

DAY0 = datetime(2026, 11, 2, tzinfo=UTC)
DAYS = 5
SPANS_PER_DAY = 1200
NUM_SPANS = DAYS * SPANS_PER_DAY
STAMP0 = 1_790_000_000 * 10**9  # commit stamps of the first versions (ns)
RANGE = TimeRange(DAY0 - timedelta(days=1), DAY0 + timedelta(days=DAYS + 1))


# --- servers ------------------------------------------------------------------------------


@pytest.fixture
def span_target(clickhouse_server: dict[str, Any]) -> Iterator[tuple[str, ClickHouseSpanStore]]:
    """(URL, store) of a ClickHouse database of this test's own, dropped afterwards."""
    database = f"mentat_migrate_{uuid.uuid4().hex[:10]}"
    args = server_args(clickhouse_server)
    store = ClickHouseSpanStore(database=database, query_timeout_s=0, **args)
    auth = f"{args['username']}:{args['password']}@" if args.get("username") else ""
    url = f"clickhouse://{auth}{args['host']}:{args['port']}/{database}?compress=false"
    yield url, store
    store.execute(f"DROP DATABASE IF EXISTS `{database}`")
    store.close()


@pytest.fixture
def control_target(postgres_cluster: tuple[str, Path | None]) -> Iterator[str]:
    """URL of a fresh PostgreSQL database, as a user types it (postgresql://, no driver)."""
    with fresh_postgres_database(postgres_cluster[0]) as url:
        yield libpq_url(url)


# --- the embedded installation -----------------------------------------------------------


def _span(i: int) -> CanonicalSpan:
    day, n = divmod(i, SPANS_PER_DAY)
    start = DAY0 + timedelta(days=day, seconds=n * 61 % 86_000, microseconds=i)
    model = ("gpt-4o", "claude-sonnet-4", "llama-3-70b")[i % 3]
    cost = Decimal("0.000123456789") * (i % 97 + 1)
    return CanonicalSpan(
        trace_id=f"{day:04x}{n // 6:028x}", span_id=f"{i + 1:016x}",
        parent_span_id="" if n % 6 == 0 else f"{i - n % 6 + 1:016x}", name=f"chat {model}",
        kind="client", start_time=start, end_time=start + timedelta(milliseconds=40 + i % 900),
        duration_ms=float(40 + i % 900),
        status=SpanStatus.ERROR if i % 17 == 0 else SpanStatus.OK,
        org_id=("org-acme", "org-globex")[i % 2], project_id=f"proj-{i % 3}",
        operation=Operation.CHAT, provider="openai" if i % 3 == 0 else "anthropic",
        request_model=model, input_tokens=100 + i % 50, output_tokens=10 + i % 20,
        cache_read_tokens=None if i % 5 else 7, token_cost=cost, total_cost=cost,
        attributes='{"k": "v\\n\\u00e9"}', ingested_at_ns=STAMP0 + i)


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A data dir with spans over 5 days (plus re-sent and repriced versions), orgs,
    projects, API keys, pricing documents and pricing overrides."""
    data_dir = tmp_path_factory.mktemp("embedded")
    store = ChdbSpanStore(data_dir / "spans")
    store.migrate()
    spans = [_span(i) for i in range(NUM_SPANS)]
    for day in range(DAYS):
        store.append_batch(spans_to_arrow(spans[day * SPANS_PER_DAY:(day + 1) * SPANS_PER_DAY]))
    # re-sent: identical spans committed again later
    store.append_batch(spans_to_arrow([replace(s, ingested_at_ns=STAMP0 + 10**12 + k)
                                       for k, s in enumerate(spans[::20])]))
    # repriced: new versions with another cost, newest stamp wins
    store.append_batch(spans_to_arrow([
        replace(s, token_cost=s.total_cost * 3, total_cost=s.total_cost * 3,
                price_source="pricing.toml", ingested_at_ns=STAMP0 + 2 * 10**12 + k)
        for k, s in enumerate(spans[::12])]))
    assert store.query_arrow("SELECT count() AS n FROM spans").column("n")[0].as_py() == (
        NUM_SPANS + len(spans[::20]) + len(spans[::12]))
    store.close()

    control_url = f"sqlite:///{data_dir / 'control.db'}"
    migrate_control_store(control_url)
    control = ControlStore(control_url)
    control.create_org("Acme", org_id="org-acme")
    control.create_org("Globex", org_id="org-globex")
    for p in range(3):
        control.create_project("org-acme", f"Project {p}", project_id=f"proj-{p}")
    key = control.create_api_key("org-acme", "proj-1", "ci", role="admin").key
    control.create_api_key("org-globex", None, "ops", role="admin")
    revoked = control.create_api_key("org-globex", None, "old", role="admin")
    control.revoke_api_key(revoked.info.id)
    control.save_pricing_document('[models."acme/ft"]\ninput_per_mtok = "1.5"\n', "org-acme")
    control.save_pricing_document("# global\n")
    with Session(control.engine) as session, session.begin():
        for n in range(4):
            session.add(PricingOverride(org_id="org-acme", provider="acme", model=f"ft-{n}",
                                        input_per_mtok=Decimal("1.500000000001"),
                                        output_per_mtok=Decimal(n)))
    control.close()
    return {"data_dir": data_dir, "key": key, "revoked": revoked.key,
            "control_url": control_url}


def _mentatctl(*args: str, timeout_s: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mentatlab.cli.main", *args],
                          capture_output=True, text=True, timeout=timeout_s,
                          env={**os.environ, "COLUMNS": "400"})


def _migrate_args(installation: dict[str, Any], *extra: str) -> list[str]:
    return ["migrate", "--data-dir", str(installation["data_dir"]), *extra]


def _final_counts(store: Any) -> dict[str, int]:
    table = store.query_arrow("SELECT toString(toDate(start_time)) AS d, count() AS n"
                              " FROM spans FINAL GROUP BY d ORDER BY d")
    return {r["d"]: r["n"] for r in table.to_pylist()}


def _analytics(store: Any) -> tuple[Any, ...]:
    by_model = QueryParams(RANGE, group_by=["model"], bucket="day")
    by_org = QueryParams(RANGE, filters={"org_id": "org-acme"}, group_by=["project_id"])
    return (cost_by(store, by_model), cost_by(store, by_org),
            get_overview(store, QueryParams(RANGE)),
            get_overview(store, QueryParams(RANGE, filters={"org_id": "org-globex"})))


# --- tests --------------------------------------------------------------------------------


def test_migrate_copies_spans_and_control_data_exactly(
        installation: dict[str, Any], span_target: tuple[str, ClickHouseSpanStore],
        control_target: str) -> None:
    url, target = span_target
    done = _mentatctl(*_migrate_args(installation, "--to", url, "--control-to", control_target,
                                     "--batch-rows", "2500"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Copying {NUM_SPANS:,} spans ({DAYS} days" in done.stdout
    assert "Verified" in done.stdout
    assert f"Copied {NUM_SPANS:,} spans" in done.stdout
    assert "Aggregates built on the target: " in done.stdout

    expected = {(DAY0 + timedelta(days=d)).date().isoformat(): SPANS_PER_DAY
                for d in range(DAYS)}
    assert _final_counts(target) == expected
    # every version kept its stamp: the repriced ones are the newest versions
    stamps = target.query_arrow("SELECT countIf(ingested_at_ns >= {s:Int64}) AS repriced,"
                                " min(ingested_at_ns) AS lo FROM spans FINAL",
                                {"s": STAMP0 + 2 * 10**12}).to_pylist()[0]
    # span 0 was re-sent and repriced; span 1 keeps its first stamp
    assert stamps == {"repriced": len(range(0, NUM_SPANS, 12)), "lo": STAMP0 + 1}
    source = ChdbSpanStore(installation["data_dir"] / "spans")
    try:
        source_answers = _analytics(source)
    finally:
        source.close()
    target_answers = _analytics(target)
    assert target_answers == source_answers
    overview = target_answers[2]
    assert overview.num_spans == NUM_SPANS
    repriced = set(range(0, NUM_SPANS, 12))
    assert overview.spend == sum((_span(i).total_cost * (3 if i in repriced else 1)
                                  for i in range(NUM_SPANS)), Decimal(0))
    # the answers came from the aggregates built on the target
    state = read_resolver_state(target)
    assert state is not None and state.complete
    ledger = target.query_arrow("SELECT sum(num_spans) AS n FROM span_ledger")
    assert ledger.column("n")[0].as_py() == NUM_SPANS

    control = ControlStore(control_target.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        scope = control.resolve_api_key(installation["key"])
        assert scope is not None and (scope.org_id, scope.project_id, scope.name) == (
            "org-acme", "proj-1", "ci")
        assert control.resolve_api_key(installation["revoked"]) is None
        assert [o.id for o in control.list_orgs()] == ["org-acme", "org-globex"]
        assert len(control.list_projects()) == 3
        assert len(control.list_api_keys()) == 3
        doc = control.load_pricing_document("org-acme")
        assert doc is not None and doc[0].startswith('[models."acme/ft"]')
        with Session(control.engine) as session:
            rows = session.scalars(select(PricingOverride).order_by(PricingOverride.id)).all()
            assert [(r.id, r.input_per_mtok) for r in rows] == [
                (n, Decimal("1.500000000001")) for n in range(1, 5)]
            # the sequence moved past the copied ids
            added = PricingOverride(org_id="org-acme", provider="acme", model="ft-new")
            session.add(added)
            session.flush()
            assert added.id == 5
            session.rollback()
    finally:
        control.close()

    again = _mentatctl(*_migrate_args(installation, "--to", url, "--control-to",
                                      control_target))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "orgs 0 copied (2 already there)" in again.stdout
    assert "Copied 0 spans" in again.stdout
    assert _final_counts(target) == expected


def test_a_killed_migration_resumes_from_its_checkpoint(
        installation: dict[str, Any], span_target: tuple[str, ClickHouseSpanStore]) -> None:
    url, target = span_target
    args = [sys.executable, "-m", "mentatlab.cli.main",
            *_migrate_args(installation, "--to", url, "--batch-rows", "100")]
    checkpoints_before = set(installation["data_dir"].glob("migrate-*.json"))
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "COLUMNS": "400"})
    state: dict[str, Any] = {}
    deadline = time.monotonic() + 300
    try:
        while not state or state["spans_copied"] < 1500:
            assert proc.poll() is None, "migrate ended before it could be killed"
            assert time.monotonic() < deadline
            new = set(installation["data_dir"].glob("migrate-*.json")) - checkpoints_before
            if new:
                try:
                    state = json.loads(next(iter(new)).read_text())
                except (ValueError, FileNotFoundError):
                    pass
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    partial = sum(_final_counts(target).values())
    assert 1500 <= partial < NUM_SPANS

    resumed = _mentatctl(*_migrate_args(installation, "--to", url, "--batch-rows", "100"))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    match = re.search(r"Resuming from \S+: ([\d,]+) of ([\d,]+) spans already copied",
                      resumed.stdout)
    assert match, resumed.stdout
    already = int(match.group(1).replace(",", ""))
    assert match.group(2) == f"{NUM_SPANS:,}"
    # the checkpoint is written after the insert: at most the killed page is copied again
    assert partial - 100 <= already <= partial
    copied = re.search(r"Copied ([\d,]+) spans", resumed.stdout)
    assert copied and int(copied.group(1).replace(",", "")) == NUM_SPANS - already
    assert sum(_final_counts(target).values()) == NUM_SPANS
    assert "Verified" in resumed.stdout

    restarted = _mentatctl(*_migrate_args(installation, "--to", url, "--restart"))
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    assert "Resuming" not in restarted.stdout
    assert f"Copied {NUM_SPANS:,} spans" in restarted.stdout
    assert sum(_final_counts(target).values()) == NUM_SPANS


def test_verification_reports_a_difference_with_exit_1(
        installation: dict[str, Any], span_target: tuple[str, ClickHouseSpanStore]) -> None:
    url, target = span_target
    first = _mentatctl(*_migrate_args(installation, "--to", url))
    assert first.returncode == 0, first.stdout + first.stderr
    stray = replace(_span(0), span_id="ffffffffffffffff", start_time=DAY0 + timedelta(hours=3))
    target.append_batch(spans_to_arrow([stray]))
    again = _mentatctl(*_migrate_args(installation, "--to", url))
    assert again.returncode == 1
    day = DAY0.date().isoformat()
    assert f"spans {day}: source {SPANS_PER_DAY}, target {SPANS_PER_DAY + 1}" in again.stderr
    assert f"spans total: source {NUM_SPANS}, target {NUM_SPANS + 1}" in again.stderr


def test_dry_run_prints_the_plan_and_writes_nothing(
        installation: dict[str, Any], span_target: tuple[str, ClickHouseSpanStore],
        control_target: str, clickhouse_server: dict[str, Any]) -> None:
    url, target = span_target
    checkpoints_before = set(installation["data_dir"].glob("migrate-*.json"))
    done = _mentatctl(*_migrate_args(installation, "--to", url, "--control-to", control_target,
                                     "--dry-run"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Would copy {NUM_SPANS:,} spans ({DAYS} days, 2026-11-02 to 2026-11-06)" in (
        done.stdout)
    plan = next(line for line in done.stdout.splitlines() if "Would copy control rows" in line)
    for item in ("orgs 2", "projects 3", "api_keys 3", "pricing_documents 2",
                 "pricing_overrides 4", "reprice_jobs 0"):
        assert item in plan
    assert "Dry run: nothing written." in done.stdout
    assert set(installation["data_dir"].glob("migrate-*.json")) == checkpoints_before
    with ClickHouseSpanStore(database="default", **server_args(clickhouse_server)) as server:
        exists = server.query_arrow("SELECT count() AS n FROM system.databases"
                                    " WHERE name = {d:String}", {"d": target.database})
    assert exists.column("n")[0].as_py() == 0
    with psycopg.connect(control_target) as conn:
        tables = conn.execute("SELECT count(*) FROM information_schema.tables"
                              " WHERE table_schema = 'public'").fetchone()
    assert tables == (0,)


@pytest.mark.parametrize(("args", "message"), [
    (["--to", "mysql://h/db"], "Expected a clickhouse:// span store URL"),
    (["--to", "clickhouse://h:8123/db?bogus=1"], "Unknown span store URL options ['bogus']"),
    (["--control-to", "not a url"], "Expected a SQLAlchemy URL"),
    (["--control-to", "nosuchdb://x/y"], "Expected a database SQLAlchemy knows"),
    ([], "Expected --to (span store) and/or --control-to"),
])
def test_a_bad_target_is_exit_2_with_a_clear_message(installation: dict[str, Any],
                                                      args: list[str], message: str) -> None:
    done = _mentatctl(*_migrate_args(installation, *args))
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr


def test_a_data_dir_without_an_installation_is_exit_2(tmp_path: Path) -> None:
    done = _mentatctl("migrate", "--data-dir", str(tmp_path / "nothing"), "--to",
                      "clickhouse://127.0.0.1:1/db")
    assert done.returncode == 2
    assert "No embedded span store at" in done.stderr


def test_an_unreachable_target_fails_and_says_rerun(installation: dict[str, Any]) -> None:
    port = free_port()
    done = _mentatctl(*_migrate_args(installation, "--to",
                                     f"clickhouse://127.0.0.1:{port}/db?connect_timeout_s=2"))
    assert done.returncode == 1
    assert f"127.0.0.1:{port}" in done.stderr
    assert "rerun the same command" in done.stderr


def test_a_source_held_by_a_running_server_is_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "served"
    port = free_port()
    log = tmp_path / "serve.log"
    proc = start_serve(data_dir, port, log=log)
    try:
        wait_ready(proc, f"http://127.0.0.1:{port}", log)
        done = _mentatctl("migrate", "--data-dir", str(data_dir), "--to",
                          "clickhouse://127.0.0.1:1/db")
    finally:
        stop(proc)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "is in use by another process: stop `mentatctl serve`" in done.stderr


def test_control_to_alone_copies_only_the_control_store(installation: dict[str, Any],
                                                        control_target: str) -> None:
    done = _mentatctl(*_migrate_args(installation, "--control-to", control_target))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Copying spans" not in done.stdout and "spans total" not in done.stdout
    assert "api_keys 3 copied" in done.stdout
    assert "Verified" in done.stdout
    control = ControlStore(control_target.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        assert control.resolve_api_key(installation["key"]) is not None
    finally:
        control.close()


def test_an_unreadable_checkpoint_is_exit_2(installation: dict[str, Any]) -> None:
    from mentatlab.storage.transfer import checkpoint_path

    url = "clickhouse://127.0.0.1:1/broken_checkpoint"
    path = checkpoint_path(installation["data_dir"], url, None)
    path.write_text("{not json")
    try:
        done = _mentatctl(*_migrate_args(installation, "--to", url))
        assert done.returncode == 2
        assert "Cannot read the migration checkpoint" in done.stderr
        assert "--restart" in done.stderr
    finally:
        path.unlink()


def test_a_log_left_by_a_killed_server_is_replayed_before_the_copy(
        tmp_path: Path, span_target: tuple[str, ClickHouseSpanStore],
        control_target: str) -> None:
    """The log is on by default: spans acknowledged just before a kill -9 are only in
    ``spans/_wal``; migrate replays it into the source first, so the plan counts them."""
    data_dir = tmp_path / "crashed"
    port = free_port()
    log = tmp_path / "serve.log"
    proc = start_serve(data_dir, port, log=log,
                       env={"MENTATLAB_WAL_INSERT_INTERVAL_S": "1.5"})
    try:
        wait_ready(proc, f"http://127.0.0.1:{port}", log)
        trace = uuid.uuid4().hex
        now_ns = time.time_ns()
        spans = [{"traceId": trace, "spanId": f"{i + 1:016x}", "name": "chat gpt-4o",
                  "kind": 3, "startTimeUnixNano": str(now_ns - 10**8),
                  "endTimeUnixNano": str(now_ns), "attributes": [
                      {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                      {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}}]}
                 for i in range(30)]
        answer = httpx.post(f"http://127.0.0.1:{port}/v1/traces", timeout=30, json={
            "resourceSpans": [{"scopeSpans": [{"scope": {"name": "tests"}, "spans": spans}]}]})
        proc.kill()  # at once: the insert waits up to 1.5 s behind the log
        assert answer.status_code == 200, answer.text
    finally:
        proc.kill()
        proc.wait(30)
    assert list((data_dir / "spans" / "_wal").glob("wal-*.log"))

    url, _target = span_target
    done = _mentatctl("migrate", "--data-dir", str(data_dir), "--to", url, "--control-to",
                      control_target, "--dry-run")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "write-ahead log replayed" in done.stderr
    assert re.search(r"Would copy 30 spans \(1 days?,", done.stdout), done.stdout
    assert not list((data_dir / "spans" / "_wal").glob("wal-*.log"))
    with ChdbSpanStore(data_dir / "spans") as store:
        rows = store.query_arrow("SELECT count() AS n FROM spans WHERE trace_id = {t:String}",
                                 {"t": trace})
    assert rows.column("n")[0].as_py() == 30


def test_a_log_of_another_schema_is_refused_naming_its_folder(tmp_path: Path) -> None:
    """A log that cannot be replayed (written by another version) stops the copy, exit 1,
    and says where the log is; nothing is deleted."""
    import pyarrow as pa

    from mentatlab.storage.wal import WriteAheadLog

    data_dir = tmp_path / "other-version"
    with ChdbSpanStore(data_dir / "spans") as store:
        store.migrate()
    wal_dir = data_dir / "spans" / "_wal"
    wal = WriteAheadLog(wal_dir)
    wal.append(STAMP0 + 5 * 10**12, pa.table({"trace_id": ["ab" * 16], "span_id": ["cd" * 8]}))
    wal.close()
    done = _mentatctl("migrate", "--data-dir", str(data_dir), "--to",
                      "clickhouse://127.0.0.1:1/db", "--dry-run")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "has a write-ahead log left by a server that did not stop cleanly" in done.stderr
    assert str(wal_dir) in done.stderr.replace("\n", "")
    assert "another span schema" in done.stderr.replace("\n", "")
    assert list(wal_dir.glob("wal-*.log"))
