"""The control store on PostgreSQL (psycopg 3), started by scripts/postgres.sh."""

from __future__ import annotations

import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
from chkit import SCRIPTS

from mentatlab.errors import ValidationError
from mentatlab.storage.control.migrate import migrate_control_store
from mentatlab.storage.control.store import ControlStore

pytestmark = pytest.mark.slow  # initdb takes ~10-25 s on the shared build machine


def test_control_store_migrates_and_works_on_postgres(postgres_url: str) -> None:
    migrate_control_store(postgres_url)
    migrate_control_store(postgres_url)  # idempotent
    store = ControlStore(postgres_url)
    try:
        assert store.engine.dialect.name == "postgresql"
        org = store.create_org("Acme")
        project = store.create_project(org.id, "agents")
        issued = store.create_api_key(org.id, project.id, "ci")
        scope = store.resolve_api_key(issued.key)
        assert scope is not None
        assert (scope.org_id, scope.project_id) == (org.id, project.id)
        with pytest.raises(ValidationError):
            store.create_org("Acme")  # unique name, enforced by PostgreSQL
        assert store.revoke_api_key(scope.key_id)
        assert store.resolve_api_key(issued.key) is None
    finally:
        store.close()


def test_nodes_migrating_at_once_serialize_on_an_advisory_lock(postgres_url: str) -> None:
    libpq_url = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    fresh = f"concurrent_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(libpq_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{fresh}"')
    fresh_url = postgres_url.rsplit("/", 1)[0] + f"/{fresh}"
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda _: migrate_control_store(fresh_url), range(4)))  # raises on error
    with psycopg.connect(libpq_url.rsplit("/", 1)[0] + f"/{fresh}") as conn:
        versions = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    assert len(versions) == 1


def test_postgres_script_is_idempotent_and_listens_on_loopback(postgres_url: str) -> None:
    libpq_url = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(libpq_url) as connection:
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
