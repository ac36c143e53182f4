r"""What the public tape says about the market a quoter faces: how often takers reach a given depth
(the fill intensity A e^{-kappa delta} of the GLFT quoter), and what a maker loses to them (the
adverse selection a resting order suffers), so that the quoter's market parameters are the
instrument's and not the spec's HYPE defaults.

**Fill intensity.** Each print's depth is its distance from the mid just before it, bps: a taker
that reached depth delta would have filled a resting order there. The rate of prints reaching depth
>= delta, lambda(delta) = #{prints with depth >= delta} / duration, is fitted as A e^{-kappa delta}
by least squares of ln lambda on delta over a grid from 0 to the 99th percentile of the depths,
where at least `MIN_PRINTS` prints reach (the measurement of the trading intensity in hftbacktest's
GLFT market-making example; written from the idea). The tail is what matters: the quotes rest
beyond the touch, where most prints never reach, so the exponential's maximum-likelihood fit to all
depths (1 / mean depth) would weigh the mass of prints at the touch instead.

**Adverse selection.** A print's AS at horizon h is the mid's move over h in the taker's direction,
side x (mid(t + h) - mid(t)) / mid(t) x 1e4 bps: what the maker it filled lost. Its mean over the
tape is the prior of the belief's expected AS (`toxicity.as_prior_bps`) when no own fills exist.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from bayesmm.events.features import EventArrays
from bayesmm.events.kinds import TRADE_PRINT

MIN_PRINTS = 10
"""A depth counts in the intensity fit when at least this many prints reached it (fewer: the log
of a count of a few is mostly noise)."""
GRID_POINTS = 40


class Intensity(NamedTuple):
    """The fitted fill intensity: fill_intensity_per_s (A), kappa_per_bps, and what it was fitted on:
    prints, the grid's depths (bps) and rates (per s), and the points used."""

    fill_intensity_per_s: float
    kappa_per_bps: float
    prints: int
    depth_bps: np.ndarray
    rate_per_s: np.ndarray
    used: np.ndarray


def print_depths_bps(a: EventArrays) -> tuple[np.ndarray, np.ndarray]:
    """(index, depth in bps) of each valid print: its distance from the mid of the event before it."""
    i = np.flatnonzero((a.kind == TRADE_PRINT) & (a.valid > 0) & np.isfinite(a.price))
    i = i[i > 0]
    mid = a.mid[i - 1]
    ok = np.isfinite(mid) & (mid > 0)
    i, mid = i[ok], mid[ok]
    return i, np.abs(a.price[i] - mid) / mid * 1e4


def fit_intensity(arrays: list[EventArrays]) -> Intensity:
    """A and kappa of lambda(delta) = A e^{-kappa delta} on the sessions' prints (module docstring).
    Raises ValueError when fewer than three depths are reached by MIN_PRINTS prints."""
    depths = np.concatenate([print_depths_bps(a)[1] for a in arrays]) if arrays else np.zeros(0)
    duration_s = sum(float(a.t_s[-1] - a.t_s[0]) for a in arrays if len(a.t_s))
    if not len(depths) or duration_s <= 0:
        raise ValueError("no trade prints to fit the fill intensity to")
    grid = np.linspace(0.0, float(np.quantile(depths, 0.99)), GRID_POINTS)
    counts = (depths[None, :] >= grid[:, None]).sum(axis=1)
    used = counts >= MIN_PRINTS
    if used.sum() < 3:
        raise ValueError(f"too few prints reach beyond the touch to fit the fill intensity ({len(depths)} prints)")
    slope, intercept = np.polyfit(grid[used], np.log(counts[used] / duration_s), 1)
    return Intensity(float(np.exp(intercept)), float(max(-slope, 1e-6)), int(len(depths)), grid,
                     counts / duration_s, used)


def print_adverse_selection_bps(arrays: list[EventArrays], horizon_s: float) -> np.ndarray:
    """Each print's AS at `horizon_s` (module docstring), prints whose horizon runs past their session's
    end left out."""
    out = []
    for a in arrays:
        i, _ = print_depths_bps(a)
        later = np.searchsorted(a.t_s, a.t_s[i] + horizon_s, side="right") - 1
        ok = a.t_s[i] + horizon_s <= a.t_s[-1]
        i, later = i[ok], later[ok]
        out.append(a.side[i] * (a.mid[later] / a.mid[i] - 1.0) * 1e4)
    return np.concatenate(out) if out else np.zeros(0)
