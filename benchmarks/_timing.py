"""Best-of-n wall time, the one timing rule every benchmark uses."""

from __future__ import annotations

import time


def best_of(fn, repeat: int = 3) -> float:
    """The fastest of `repeat` calls of fn(), in seconds (fn must block until its work is done)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best
