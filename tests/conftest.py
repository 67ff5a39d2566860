"""Shared test configuration. Area fixtures live in tests/<area>/conftest.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The span-store and control-store fixtures every suite shares (tests/backends.py).
pytest_plugins = ["backends"]

CONFORMANCE_DIR = Path(
    os.environ.get(
        "MENTATLAB_CONFORMANCE_DIR", Path(__file__).resolve().parents[2] / "shared" / "conformance"
    )
)


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own data directory; nothing touches the user's."""
    data_dir = tmp_path / "mentatlab-data"
    monkeypatch.setenv("MENTATLAB_DATA_DIR", str(data_dir))
    # Tests check that an answer holds every acknowledged span. On a loaded CI machine a
    # resolver pass can outlast the 2 s read barrier, and the read then answers from the
    # aggregates as they stand (a documented latency trade-off, not what tests check).
    monkeypatch.setenv("MENTATLAB_RESOLVE_WAIT_S", "60")
    return data_dir
