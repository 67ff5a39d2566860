"""The control store, run on SQLite and on PostgreSQL (ids ``[sqlite]``, ``[postgresql]``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC

import pytest
from sqlalchemy import MetaData, create_engine, inspect, select

from mentatlab.errors import ValidationError
from mentatlab.settings import load_settings
from mentatlab.storage.control import ControlStore, hash_api_key, migrate_control_store


@pytest.fixture
def control(control_store_url: str) -> Iterator[ControlStore]:
    migrate_control_store(control_store_url)
    migrate_control_store(control_store_url)  # idempotent
    store = ControlStore(control_store_url)
    yield store
    store.close()


def _table_names(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_migrations_create_every_table(control_store_url: str) -> None:
    migrate_control_store(control_store_url)
    assert {"orgs", "projects", "api_keys", "pricing_documents", "pricing_overrides",
            "reprice_jobs", "alert_rules", "alerts", "alert_deliveries",
            "alembic_version"} <= _table_names(control_store_url)


def test_the_migrations_build_exactly_the_models(control_store_url: str) -> None:
    """Alembic's autogenerate finds nothing to change: models and migrations agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from mentatlab.storage.control.models import Base

    migrate_control_store(control_store_url)
    engine = create_engine(control_store_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": False})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_the_store_runs_on_the_backend_its_url_names(control: ControlStore,
                                                    control_store_url: str) -> None:
    assert control.engine.dialect.name == control_store_url.split(":")[0].split("+")[0]


def test_the_default_url_is_a_sqlite_file_in_the_data_dir() -> None:
    url = load_settings().control_store_url
    assert url.startswith("sqlite:///") and os.environ["MENTATLAB_DATA_DIR"] in url
    migrate_control_store(url)
    assert "orgs" in _table_names(url)


def _dump(url: str) -> str:
    """Every value of every table, as text."""
    engine = create_engine(url)
    try:
        metadata = MetaData()
        metadata.reflect(engine)
        with engine.connect() as connection:
            return "\n".join(repr(tuple(row)) for table in metadata.sorted_tables
                             for row in connection.execute(select(table)))
    finally:
        engine.dispose()


def test_orgs_projects_and_scoped_keys(control: ControlStore) -> None:
    org = control.create_org("Acme", org_id="acme")
    other = control.create_org("Globex")
    proj = control.create_project(org.id, "checkout")
    assert org.created_at.tzinfo == UTC
    assert [o.name for o in control.list_orgs()] == ["Acme", "Globex"]
    assert [p.name for p in control.list_projects("acme")] == ["checkout"]
    assert control.list_projects(other.id) == []

    issued = control.create_api_key(org.id, proj.id, "ci", role="admin")
    org_wide = control.create_api_key(org.id, None, "admin", role="admin")
    assert issued.key.startswith(issued.info.prefix) and len(issued.key) > 40
    scope = control.resolve_api_key(issued.key)
    assert scope is not None and (scope.org_id, scope.project_id) == ("acme", proj.id)
    assert control.resolve_api_key(org_wide.key) is not None
    assert control.resolve_api_key(org_wide.key).project_id is None  # type: ignore[union-attr]
    assert control.resolve_api_key(issued.key + "x") is None
    assert control.resolve_api_key("nonsense") is None

    assert control.revoke_api_key(issued.info.id)
    assert control.resolve_api_key(issued.key) is None
    assert not control.revoke_api_key("missing")
    listed = {k.id: k for k in control.list_api_keys("acme")}
    assert listed[issued.info.id].revoked_at is not None


def test_only_the_hash_is_stored(control: ControlStore) -> None:
    org = control.create_org("Acme")
    issued = control.create_api_key(org.id, None, "k", role="admin")
    dump = _dump(control.url)
    assert issued.info.prefix in dump  # the dump does hold the key's row
    assert issued.key not in dump
    assert hash_api_key(issued.key) in dump


def test_bad_references_and_duplicates_are_refused(control: ControlStore) -> None:
    a = control.create_org("A")
    b = control.create_org("B")
    pb = control.create_project(b.id, "p")
    with pytest.raises(ValidationError):
        control.create_org("A")
    with pytest.raises(ValidationError):
        control.create_project("missing", "p")
    with pytest.raises(ValidationError):
        control.create_project(b.id, "p")
    with pytest.raises(ValidationError, match="project"):
        control.create_api_key(a.id, pb.id, "cross-org", role="admin")


def test_pricing_document_round_trip(control: ControlStore) -> None:
    assert control.load_pricing_document() is None
    control.save_pricing_document('[models."x"]\ninput_per_mtok = "1.5"\n')
    control.save_pricing_document('[models."y"]\n')
    loaded = control.load_pricing_document()
    assert loaded is not None and loaded[0] == '[models."y"]\n'
