"""Out-of-sample scoring of p_down against what can be observed: the sign of the mid move over the
next `horizon_s` seconds.

The belief is read on a regular grid (`every_s`, 1 s by default): at each grid time the state
after the last event at or before it, and the mid then; the target is whether the mid at
t + horizon (after the last event at or before it) is below the mid at t. Ties (no move) are
dropped, as are grid times whose horizon runs past the session's end or across a recording gap
(`max_gap_s`: no event for longer than that inside the window). A grid rather than every event
because events come in bursts (a sweep writes hundreds of book updates in a millisecond): per
event, one busy second would outweigh minutes; per grid point each second counts once, as for a
quote cycle.

Scores (higher log score is better; Brier lower): mean log score ln p(outcome), against a coin
flip's ln 0.5 = -0.6931, and the Brier score against a coin flip's 0.25. Probabilities are clipped
to [1e-6, 1 - 1e-6] for the log score only, so one overconfident miss costs at most ln 1e6 = 13.8.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

HORIZONS_S = (5.0, 30.0, 60.0)
COIN_FLIP_LOG_SCORE = float(np.log(0.5))
_CLIP = 1e-6


class Targets(NamedTuple):
    """Where a belief trajectory is scored: `rows` (event index whose belief is read), `down` (1 if
    the mid fell over the horizon), `t_s` (grid time), per horizon in a dict keyed by the horizon."""

    rows: np.ndarray
    down: np.ndarray
    t_s: np.ndarray


def forward_targets(t_s: np.ndarray, mid: np.ndarray, valid: np.ndarray, horizon_s: float, every_s: float = 1.0,
                    max_gap_s: float = 60.0) -> Targets:
    """Grid points and their observable outcome (module docstring). `t_s`, `mid`, `valid` per event
    (`events.EventArrays`)."""
    t_s, mid, valid = np.asarray(t_s, float), np.asarray(mid, float), np.asarray(valid) > 0
    if not valid.any():
        return Targets(np.zeros(0, int), np.zeros(0), np.zeros(0))
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
    move = mid[later] - mid[now]
    keep = valid[now] & (move != 0) & ~spans_gap
    return Targets(now[keep], (move[keep] < 0).astype(float), grid[keep])


def log_score(p_down: np.ndarray, down: np.ndarray) -> float:
    """Mean ln p(outcome) with p clipped to [1e-6, 1 - 1e-6] (NaN when there are no points)."""
    if len(down) == 0:
        return float("nan")
    p = np.clip(np.asarray(p_down, float), _CLIP, 1 - _CLIP)
    return float(np.mean(np.where(np.asarray(down) > 0, np.log(p), np.log1p(-p))))


def brier(p_down: np.ndarray, down: np.ndarray) -> float:
    """Mean (p - outcome)^2 (NaN when there are no points)."""
    if len(down) == 0:
        return float("nan")
    return float(np.mean((np.asarray(p_down, float) - np.asarray(down, float)) ** 2))


def score_trajectory(t_s, mid, valid, p_down, horizons_s=HORIZONS_S, every_s: float = 1.0,
                     max_gap_s: float = 60.0) -> dict:
    """{horizon: {"n", "log_score", "brier", "share_down", "coin_flip_log_score"}} for one session's
    belief trajectory (p_down per event)."""
    out = {}
    for h in horizons_s:
        tg = forward_targets(t_s, mid, valid, h, every_s, max_gap_s)
        p = np.asarray(p_down)[tg.rows]
        out[f"{h:g}s"] = {"horizon_s": float(h), "n": int(len(tg.rows)), "log_score": log_score(p, tg.down),
                          "brier": brier(p, tg.down),
                          "share_down": float(np.mean(tg.down)) if len(tg.down) else float("nan"),
                          "coin_flip_log_score": COIN_FLIP_LOG_SCORE}
    return out


def score_session(session, cfg, horizons_s=HORIZONS_S, every_s: float = 1.0) -> dict:
    """Replay `cfg` on a session and score its p_down (`score_trajectory`)."""
    from calibration.replay import replay_session
    from events.features import to_arrays

    a = to_arrays(session)
    table = replay_session(session, cfg)
    return score_trajectory(a.t_s, a.mid, a.valid, table.column("p_down").to_numpy(), horizons_s, every_s)
