"""What happened next: the observable outcome a forecast of the mid is scored against and fitted to,
the sign of the mid's move over a horizon from points of a regular grid (`forward_targets`).

The belief is read on a regular grid (`every_s`, `GRID_S` by default): at each grid time the state after
the last event at or before it, and the mid then; the target is whether the mid at t + horizon
(after the last event at or before it) is below the mid at t. Ties (no move) are dropped, as are grid
times whose horizon runs past the session's end or across a recording gap (`max_gap_s`: no event for
longer than that inside the window). A grid rather than every event because events come in bursts (a
sweep writes hundreds of book updates in a millisecond): per event, one busy second would outweigh
minutes; per grid point each second counts the same, as for a quote cycle.

One grid (`GRID_S` = 0.25 s) for everything fitted to and scored against these outcomes: the book
model, the peer, tune, selection and every score. Why not 1 s: on a five-minute session a 1 s grid
leaves the 1 s horizon a few hundred points at most once ties are dropped, so the standard error of a
mean log score, and the ECE an exactly calibrated forecast shows by chance
(`calibration.score.ece_by_chance`), are as large as the differences the scores are read for. A
finer grid uses the data the recording already has; points closer than the horizon overlap, so they
are not independent (the book model weights them for it), but every mean stays unbiased.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

GRID_S = 0.25
"""The spacing of the points outcomes are read at, s (module docstring)."""


class Targets(NamedTuple):
    """Where a belief trajectory is scored: `rows` (event index whose belief is read), `down` (1 if
    the mid fell over the horizon), `t_s` (grid time), per horizon in a dict keyed by the horizon."""

    rows: np.ndarray
    down: np.ndarray
    t_s: np.ndarray


def forward_moves(t_s: np.ndarray, mid: np.ndarray, valid: np.ndarray, horizon_s: float, every_s: float = GRID_S,
                  max_gap_s: float = 60.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(event index read at each grid point, the mid's move over the horizon in bps (0: no move),
    grid time) at the grid points whose window has a known mid at its start and spans no recording
    gap (ties included: `forward_targets` drops them)."""
    t_s, mid, valid = np.asarray(t_s, float), np.asarray(mid, float), np.asarray(valid) > 0
    if not valid.any():
        return np.zeros(0, int), np.zeros(0), np.zeros(0)
    start = t_s[np.argmax(valid)]
    grid = np.arange(start + every_s, t_s[-1] - horizon_s + 1e-9, every_s)
    now = np.searchsorted(t_s, grid, side="right") - 1
    later = np.searchsorted(t_s, grid + horizon_s, side="right") - 1
    # the longest silence inside each window: no statistic spans a recording gap
    gaps = np.diff(t_s, prepend=t_s[0])
    big = np.flatnonzero(gaps > max_gap_s)
    spans_gap = np.zeros(len(grid), bool)
    for g in big:  # a window (grid, grid + h] containing event g's gap start t_s[g-1] .. t_s[g]
        spans_gap |= (t_s[g] > grid) & (t_s[g - 1] < grid + horizon_s)
    keep = valid[now] & ~spans_gap
    now, later, grid = now[keep], later[keep], grid[keep]
    return now, (mid[later] / mid[now] - 1.0) * 1e4, grid


def forward_targets(t_s: np.ndarray, mid: np.ndarray, valid: np.ndarray, horizon_s: float, every_s: float = GRID_S,
                    max_gap_s: float = 60.0) -> Targets:
    """Grid points and their observable outcome (module docstring). `t_s`, `mid`, `valid` per event
    (`events.EventArrays`)."""
    now, move, grid = forward_moves(t_s, mid, valid, horizon_s, every_s, max_gap_s)
    keep = move != 0
    return Targets(now[keep], (move[keep] < 0).astype(float), grid[keep])
