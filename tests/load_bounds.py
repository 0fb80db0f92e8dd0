"""Bounds on durations that no machine load can fail: a test times a reference operation (the
same kind of work, run now) and bounds what it checks by a fixed part plus a multiple of that,
since a loaded machine slows both alike. Plain durations are figures for bench/, not verdicts."""

from __future__ import annotations

import time
from collections.abc import Callable


def slowest_of(op: Callable[[], object], runs: int = 3) -> float:
    """The slowest of ``runs`` timings of ``op`` (seconds)."""
    took = []
    for _ in range(runs):
        t0 = time.monotonic()
        op()
        took.append(time.monotonic() - t0)
    return max(took)
