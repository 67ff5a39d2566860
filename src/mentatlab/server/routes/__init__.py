"""One router per resource: otlp, events, analytics, reprice, admin, health."""

from __future__ import annotations

__all__: list[str] = []
