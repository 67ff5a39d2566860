"""Run the control-store Alembic migrations from inside the package (no alembic.ini)."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, inspect, text

from mentatlab.errors import StoreError

__all__ = ["SCRIPT_LOCATION", "alembic_config", "migrate_control_store"]

_log = logging.getLogger(__name__)

SCRIPT_LOCATION = Path(__file__).resolve().parent.parent / "migrations" / "control"
"""Folder of the control-store Alembic environment and its ``versions/``."""


def alembic_config(url: str) -> Config:
    """An Alembic config for ``url`` pointing at the packaged migration scripts."""
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


MIGRATION_LOCK_KEY = 0x6D656E7461746C62
"""PostgreSQL advisory-lock key held while migrating (ASCII ``mentatlb``)."""


def migrate_control_store(url: str, revision: str = "heads") -> None:
    """Upgrade the control store at SQLAlchemy ``url`` to ``revision`` (idempotent).

    Creates the SQLite file's folder when needed.

    Raises:
        StoreError: a migration failed.
    """
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # Several nodes may start at once: the first to take this transaction-scoped
                # lock migrates; the others wait, then find the schema at head.
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                   {"key": MIGRATION_LOCK_KEY})
            config = alembic_config(url)
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
            tables = sorted(inspect(connection).get_table_names())
        _log.info("control store at %s migrated to %s: %s", engine.url, revision, tables)
    except Exception as exc:
        raise StoreError(f"Control store migration of {engine.url!r} failed: {exc}") from exc
    finally:
        engine.dispose()
