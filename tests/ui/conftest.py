"""Fixtures of the dashboard tests: the server tests' in-process app and live server, and
Debian's headless Chromium (browserkit.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

from browserkit import browser  # noqa: E402
from serverkit import app_client, live_server, settings  # noqa: E402

__all__ = ["app_client", "browser", "live_server", "settings"]
