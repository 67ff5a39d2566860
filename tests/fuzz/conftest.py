"""Fixtures of the fuzzing suite (marker ``fuzz``); reports how many cases ran."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
