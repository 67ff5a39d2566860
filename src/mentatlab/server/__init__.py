"""The ASGI server: app factory, routes, live tail, metrics."""

from __future__ import annotations

from mentatlab.server.app import create_app

__all__ = ["create_app"]
