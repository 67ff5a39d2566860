"""Run the control-store Alembic migrations from inside the package (no alembic.ini)."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, create_engine, inspect, text

from mentatlab.errors import StoreError

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = ["SCRIPT_LOCATION", "alembic_config", "migrate_control_store"]

_log = logging.getLogger(__name__)

SCRIPT_LOCATION = Path(__file__).resolve().parent.parent / "migrations" / "control"
"""Folder of the control-store Alembic environment and its ``versions/``."""


_REVISION = re.compile(r"^revision\s*(?::[^=]*)?=\s*[\"']([^\"']+)[\"']", re.MULTILINE)
_DOWN_REVISION = re.compile(r"^down_revision\s*(?::[^=]*)?=\s*(.+)$", re.MULTILINE)


def script_heads() -> set[str] | None:
    """Head revisions of the packaged migration scripts, read from their text.

    A script's ``revision = "…"`` and ``down_revision = …`` lines (a string, a tuple of
    strings for a merge, or None); the heads are the revisions no script names as its
    ``down_revision``. None when some script does not read that way (Alembic decides).
    """
    revisions: set[str] = set()
    downs: set[str] = set()
    for path in sorted((SCRIPT_LOCATION / "versions").glob("*.py")):
        source = path.read_text(encoding="utf-8")
        revision, down = _REVISION.search(source), _DOWN_REVISION.search(source)
        if revision is None or down is None:
            return None
        revisions.add(revision.group(1))
        downs.update(re.findall(r"[\"']([^\"']+)[\"']", down.group(1)))
    return (revisions - downs) or None


def _current_revisions(connection: Connection) -> set[str]:
    """The revisions recorded in ``alembic_version`` (empty for a new database)."""
    if not inspect(connection).has_table("alembic_version"):
        return set()
    rows = connection.execute(text("SELECT version_num FROM alembic_version"))
    return {str(row[0]) for row in rows}


def alembic_config(url: str) -> Config:
    """An Alembic config for ``url`` pointing at the packaged migration scripts."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


MIGRATION_LOCK_KEY = 0x6D656E7461746C62
"""PostgreSQL advisory-lock key held while migrating (ASCII ``mentatlb``)."""


def migrate_control_store(url: str, revision: str = "heads") -> None:
    """Upgrade the control store at SQLAlchemy ``url`` to ``revision`` (idempotent).

    Creates the SQLite file's folder when needed. A store already at the scripts' head
    (``revision`` "heads") is left alone without loading Alembic (~10 MiB and ~0.1 s at
    every start-up, issue 18).

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
            heads = script_heads() if revision == "heads" else None
            if heads is not None and _current_revisions(connection) == heads:
                _log.info("control store at %s is at %s", engine.url, ", ".join(sorted(heads)))
                return
            from alembic import command

            config = alembic_config(url)
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
            tables = sorted(inspect(connection).get_table_names())
        _log.info("control store at %s migrated to %s: %s", engine.url, revision, tables)
    except Exception as exc:
        raise StoreError(f"Control store migration of {engine.url!r} failed: {exc}") from exc
    finally:
        engine.dispose()
