"""Out-of-sample scoring of p_down against what can be observed: the sign of the mid move over the
next `horizon_s` seconds, from points of a regular grid (`events.targets.forward_targets` says which).
Each horizon is scored with the belief's forecast for it (`p_down_<h>s`, `online.book`).

Scores (higher log score is better; Brier lower): mean log score ln p(outcome), against a coin
flip's ln 0.5 = -0.6931, and the Brier score against a coin flip's 0.25. Probabilities are clipped
to [1e-6, 1 - 1e-6] for the log score only, so one overconfident miss costs at most ln 1e6 = 13.8.
"""

from __future__ import annotations

import numpy as np

from bayesmm.events.targets import GRID_S, Targets, forward_targets  # noqa: F401  (re-exported: the scores' targets)
from bayesmm.online.params import HORIZONS_S  # noqa: F401  (the horizons scored: the belief's)

COIN_FLIP_LOG_SCORE = float(np.log(0.5))
FLAT_SD = 0.02  # a forecast whose sd over a session is below this has not moved: the report says so in red
_CLIP = 1e-6


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


def horizon_column(h: float) -> int:
    """The index in `HORIZONS_S` of the belief's forecast that scores horizon h (the nearest)."""
    return int(np.argmin(np.abs(np.asarray(HORIZONS_S) - float(h))))


def forecasts(p_down_h: np.ndarray, horizons_s) -> dict:
    """{h: P(fall over h) per event} from a replay's `p_down_h` (num_events, NUM_HORIZONS), or from
    a single p_down per event (num_events,) used for every horizon."""
    p = np.asarray(p_down_h, float)
    return {h: (p[:, horizon_column(h)] if p.ndim == 2 else p) for h in horizons_s}


def replay_forecasts(cfg, arrays, horizons_s) -> dict:
    """{h: P(fall over h) per event} of a config replayed on a session's arrays (float64, static)."""
    from bayesmm.online.replay import as_events, run

    return forecasts(np.asarray(run(as_events(arrays, np.float64), cfg).p_down_h), horizons_s)


def table_forecasts(table, horizons_s) -> dict:
    """{h: P(fall over h) per event} from a beliefs table (`bayesmm replay`'s Parquet): its
    `p_down_<h>s` columns where it has them, else its `p_down`."""
    names = set(table.column_names)
    out = {}
    for h in horizons_s:
        col = f"p_down_{HORIZONS_S[horizon_column(h)]:g}s"
        out[h] = table.column(col if col in names else "p_down").to_numpy()
    return out


def scores_of(predict, arrays, horizons_s, t_ranges=None, reliability_bins: int = 0) -> dict:
    """{horizon: {n, log_score, brier}} of a forecaster pooled over sessions: `predict(arrays)` gives
    {h: P(fall over h) per event}; points restricted to `t_ranges` (one (start, end) s per session)
    when given; with `reliability_bins`, also the reliability curve (mean p_down, frequency of a
    fall, count per bin)."""
    from bayesmm.sim.scoring import reliability

    pts = {f"{h:g}s": ([], []) for h in horizons_s}
    for i, a in enumerate(arrays):
        p = predict(a)
        lo, hi = (t_ranges[i] if t_ranges else (-np.inf, np.inf))
        for h in horizons_s:
            tg = forward_targets(a.t_s, a.mid, a.valid, h)
            keep = (tg.t_s >= lo) & (tg.t_s + h <= hi)
            pts[f"{h:g}s"][0].append(np.asarray(p[h])[tg.rows[keep]])
            pts[f"{h:g}s"][1].append(tg.down[keep])
    out = {}
    for k, (ps, ys) in pts.items():
        p, y = np.concatenate(ps), np.concatenate(ys)
        out[k] = {"n": len(y), "log_score": log_score(p, y), "brier": brier(p, y)}
        if reliability_bins and len(y):
            mean_p, freq, count = reliability(p, y, reliability_bins)
            out[k]["reliability"] = {"mean_p_down": mean_p.tolist(), "share_down": freq.tolist(),
                                     "count": count.tolist()}
    return out


def score_trajectory(t_s, mid, valid, p_down, horizons_s=HORIZONS_S, every_s: float = GRID_S,
                     max_gap_s: float = 60.0) -> dict:
    """{horizon: {"n", "log_score", "brier", "ece" (10 bins), "ece_by_chance" (`ece_by_chance`),
    "sd_p_down" (over the scored points), "share_down", "coin_flip_log_score"}} for one session's belief
    trajectory: `p_down` one P(fall) per event for every horizon, or {h: P(fall over h) per event}
    (`forecasts`, `table_forecasts`)."""
    from bayesmm.sim.scoring import ece

    out = {}
    for h in horizons_s:
        tg = forward_targets(t_s, mid, valid, h, every_s, max_gap_s)
        p = np.asarray(p_down[h] if isinstance(p_down, dict) else p_down)[tg.rows]
        out[f"{h:g}s"] = {"horizon_s": float(h), "n": int(len(tg.rows)), "log_score": log_score(p, tg.down),
                          "brier": brier(p, tg.down), "ece": ece(p, tg.down) if len(p) else float("nan"),
                          "ece_by_chance": ece_by_chance(p),
                          "sd_p_down": float(np.std(p)) if len(p) else float("nan"),
                          "share_down": float(np.mean(tg.down)) if len(tg.down) else float("nan"),
                          "coin_flip_log_score": COIN_FLIP_LOG_SCORE}
    return out


def ece_by_chance(p_down: np.ndarray, draws: int = 200, seed: int = 0) -> float:
    """The mean ECE (10 bins) of a forecast that is exactly calibrated, on these points: outcomes drawn
    from p_down itself. A few hundred points leave a perfectly calibrated forecast an ECE of several
    hundredths: the bar an observed ECE is read against. NaN without points."""
    from bayesmm.sim.scoring import ece

    if len(p_down) == 0:
        return float("nan")
    rng = np.random.default_rng(seed)
    return float(np.mean([ece(p_down, (rng.random(len(p_down)) < p_down).astype(float)) for _ in range(draws)]))


def score_session(session, cfg, horizons_s=HORIZONS_S, every_s: float = GRID_S) -> dict:
    """Replay `cfg` on a session and score each horizon's forecast (`score_trajectory`)."""
    from bayesmm.calibration.replay import replay_session
    from bayesmm.events.features import to_arrays

    a = to_arrays(session)
    table = replay_session(session, cfg)
    return score_trajectory(a.t_s, a.mid, a.valid, table_forecasts(table, horizons_s), horizons_s, every_s)
