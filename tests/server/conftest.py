"""Fixtures of the server tests; the helpers live in serverkit.py (a unique module name)."""

from __future__ import annotations

from serverkit import app_client, live_server, settings

__all__ = ["app_client", "live_server", "settings"]
