"""Fixtures of the storage tests: a migrated chDB store on disk."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mentatlab.storage.chdb_store import ChdbSpanStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ChdbSpanStore]:
    s = ChdbSpanStore(tmp_path / "spans")
    s.migrate()
    yield s
    s.close()
