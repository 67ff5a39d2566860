"""Fixtures of the dashboard tests: the server tests' in-process app and live server, and
Debian's headless Chromium (browserkit.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

from browserkit import browser  # noqa: E402
from serverkit import (  # noqa: E402
    LiveServer,
    app_client,
    live_server,
    make_settings,
    run_live_server,
    settings,
)

__all__ = ["app_client", "auth_server", "browser", "live_server", "settings"]


@pytest.fixture
def auth_server(_isolated_data_dir: Path) -> Iterator[LiveServer]:
    """A live server with ``auth_required`` on."""
    yield from run_live_server(make_settings(_isolated_data_dir, auth_required=True))
