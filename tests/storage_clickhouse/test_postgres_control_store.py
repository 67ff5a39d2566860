"""PostgreSQL specifics of the control store: the migration lock and scripts/postgres.sh.

The control-store suite itself (tests/storage/test_control_store.py) runs on SQLite and
PostgreSQL.
"""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from backends import SCRIPTS, fresh_postgres_database, libpq_url
from mentatlab.storage.control.migrate import migrate_control_store

pytestmark = pytest.mark.slow  # initdb takes ~10-25 s on the shared build machine


def test_nodes_migrating_at_once_serialize_on_an_advisory_lock(postgres_url: str) -> None:
    with fresh_postgres_database(postgres_url) as fresh_url:
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(lambda _: migrate_control_store(fresh_url), range(4)))  # raises
        with psycopg.connect(libpq_url(fresh_url)) as conn:
            versions = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    assert len(versions) == 1


def test_postgres_script_is_idempotent_and_listens_on_loopback(postgres_url: str) -> None:
    with psycopg.connect(libpq_url(postgres_url)) as connection:
        listen = connection.execute("SHOW listen_addresses").fetchone()
        assert listen == ("127.0.0.1",)
        port = connection.execute("SHOW port").fetchone()
    assert port is not None and f":{port[0]}/" in postgres_url


def test_postgres_script_run_again_prints_the_same_url(
        postgres_cluster: tuple[str, Path | None]) -> None:
    url, folder = postgres_cluster
    if folder is None:
        pytest.fail("MENTATLAB_TEST_POSTGRES_URL is set: this test checks scripts/postgres.sh")
    again = subprocess.run([str(SCRIPTS / "postgres.sh"), str(folder)], check=True,
                           capture_output=True, text=True, timeout=120)
    assert again.stdout.strip() == url
