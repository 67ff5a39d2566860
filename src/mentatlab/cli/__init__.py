"""``mentatctl``, the command line (entry point :data:`mentatlab.cli.main.app`)."""

from __future__ import annotations

__all__: list[str] = []
