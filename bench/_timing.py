"""Timing helper shared by the in-process benchmarks."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

__all__ = ["median_ms"]


def median_ms(run: Callable[[], Any], times: int = 4) -> float:
    """Median wall time of ``run()`` in ms over ``times`` calls after the first (a warm-up)."""
    took = []
    for _ in range(times):
        t0 = time.perf_counter()
        run()
        took.append(time.perf_counter() - t0)
    return statistics.median(took[1:]) * 1000
