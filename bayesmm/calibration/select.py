r"""Selection: how much of each source of evidence to believe, per horizon, judged on held-out data.

The exported forecast for horizon h (`online.book`) is

    z_h = (s_belief,h L + s_book,h m_h . x) / sqrt(1 + pi/8 s_book,h^2 (t_h + v_h . x^2))

the book model's new-session predictive (weights m, variances v and t, `models.book`) scaled by
s_book,h, beside the drift belief's log-odds L scaled by s_belief,h, with the book's features either
all four or the touch imbalance alone (`FEATURE_SETS`). Each is chosen per horizon, on the held-out
blocks of the training sessions (each block scored with everything refitted without it,
`calibration.calibrate`), as the combination with the best pooled held-out log score; ties go to the
smaller scales; and the best is kept only where its gain over a coin flip exceeds one standard error
(`choose`), else the horizon says 1/2. s = 0 for both is a coin flip, so no horizon's choice is worse
than a coin flip on those blocks. This replaces one shrink factor for all evidence and horizons: on a recording whose
book predicts the next second but whose drift belief says nothing, the book is kept at 1 s, and the
drift belief is not dragged along.

A route (`calibration.calibrate.route_configs`: the drift belief tuned, derived or read from the
regime HMM) is chosen by its mean held-out gain over the horizons, each at its best combination.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from bayesmm.calibration.score import COIN_FLIP_LOG_SCORE, GRID_S, forward_targets
from bayesmm.models.book import book_features
from bayesmm.online import book as book_mod
from bayesmm.online.params import BOOK_FEATURES, BOOK_VARS, BOOK_WEIGHTS, HORIZONS_S, NUM_HORIZONS, Config, replace
from bayesmm.online.replay import as_events, run

SCALES = (0.0, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0)
"""The scales tried for the book's forecast and for the drift belief, each per horizon."""
FEATURE_SETS = {"all": BOOK_FEATURES, "imbalance": ("imbalance",)}
"""The book features a horizon may keep: all, or the touch imbalance alone (the best-established)."""


class Points(NamedTuple):
    """Held-out points of one horizon: the drift belief's log-odds per route, the book's features,
    and the outcome."""

    drift_log_odds: dict
    x: np.ndarray
    down: np.ndarray


class Choice(NamedTuple):
    """One horizon's choice: the feature set, the two scales, its held-out log score and Brier score,
    and the number of points."""

    features: str
    book_scale: float
    belief_scale: float
    log_score: float
    brier: float
    n: int


def held_out_points(route_cfgs: dict[str, Config], arrays, t_range, flow_window_s: float,
                    horizons_s=HORIZONS_S) -> list[Points]:
    """Per horizon, the points of one session whose window lies in `t_range` = (start, end) s, with
    each route's drift log-odds there (its config replayed on the whole session: the filter is
    causal) and the book's features."""
    lo, hi = t_range
    logs = {r: np.asarray(run(as_events(arrays, np.float64), c, adapt=False).drift_log_odds)  # no forecast needed
            for r, c in route_cfgs.items()}
    feats = book_features(arrays, flow_window_s)
    out = []
    for h in horizons_s:
        tg = forward_targets(arrays.t_s, arrays.mid, arrays.valid, h)
        keep = (tg.t_s >= lo) & (tg.t_s + h <= hi)
        rows = tg.rows[keep]
        out.append(Points({r: v[rows] for r, v in logs.items()}, feats[rows], tg.down[keep]))
    return out


def pool(parts: list[list[Points]]) -> list[Points]:
    """Several sessions' or folds' points of each horizon, concatenated."""
    out = []
    for per_h in zip(*parts, strict=True):  # per horizon
        routes = per_h[0].drift_log_odds
        out.append(Points({r: np.concatenate([p.drift_log_odds[r] for p in per_h]) for r in routes},
                          np.concatenate([p.x for p in per_h]).reshape(-1, len(BOOK_FEATURES)),
                          np.concatenate([p.down for p in per_h])))
    return out


def scaled_book(cfg: Config, book_scale, belief_scale, features: str = "all") -> Config:
    """`cfg` with its book forecast scaled (weights x s, variances x s^2), the features outside the
    set dropped, and the drift belief's weight set; scales per horizon (or one for all)."""
    sb = np.broadcast_to(np.asarray(book_scale, float), (NUM_HORIZONS,))
    keep = {k: (k in FEATURE_SETS[features]) for k in BOOK_FEATURES}
    b = cfg.book
    fields = {f"{k}_weight": np.asarray(getattr(b, f"{k}_weight")) * sb * keep[k] for k in BOOK_FEATURES}
    fields |= {f"{k}_var": np.asarray(getattr(b, f"{k}_var")) * sb**2 * keep[k] for k in BOOK_FEATURES}
    fields["trend_var"] = np.asarray(b.trend_var) * sb**2
    fields["adapt_trend_var"] = np.asarray(b.adapt_trend_var) * sb**2
    fields["belief_weight"] = np.broadcast_to(np.asarray(belief_scale, float), (NUM_HORIZONS,)).copy()
    return replace(cfg, book=fields)


def _point_scores(points: Points, route: str, book_cfg: Config, column: int) -> dict:
    """{(features, s_book, s_belief): (per-point ln p(outcome), per-point squared error)} of every
    combination on one horizon's points, read from the forecast of the belief's horizon `column`."""
    out = {}
    y = np.asarray(points.down, float)
    for features in FEATURE_SETS:
        for sb in SCALES:
            for sl in SCALES:
                cfg = scaled_book(book_cfg, sb, sl, features)
                z = book_mod.horizon_log_odds(jnp.asarray(points.drift_log_odds[route]), jnp.asarray(points.x), cfg)
                p = np.clip(1.0 / (1.0 + np.exp(-np.asarray(z)[:, column])), 1e-6, 1 - 1e-6)
                out[(features, sb, sl)] = (np.where(y > 0, np.log(p), np.log1p(-p)), (p - y) ** 2)
    return out


MODEL = ("all", 1.0, 0.0)
"""The book model's own forecast (its new-session predictive, every feature, the drift belief not
read): what a horizon exports unless the held-out blocks say clearly otherwise."""


def choose(points_by_fold: list[list[Points]], book_cfgs: list[Config], route: str, columns,
           horizons_s=None) -> list[Choice]:
    """Per horizon (its points, and the column of the belief's forecast it reads), the combination
    exported, judged on the held-out points of every fold, each scored with its fold's book forecast,
    pooled: the best combination where it beats the book model's own forecast (`MODEL`) by at least
    one standard error of their per-point difference, else the model's forecast; and that only if its
    gain over a coin flip is at least one standard error, else 1/2. Standard errors count the
    non-overlapping windows (one per horizon-long stretch of the scoring grid's points,
    `events.targets.GRID_S`, `horizons_s`): at 30 s five minutes hold a dozen independent windows.
    The best of 98 combinations on few windows is partly luck (the winner's curse); the model's
    forecast is what the data and the prior already say, and the selection departs from it, or drops
    it, only on evidence."""
    choices = []
    for k, column in enumerate(columns):
        per: dict = {}
        for pts, cfg in zip(points_by_fold, book_cfgs, strict=True):
            if len(pts[k].down) == 0:
                continue
            for key, (ll, se) in _point_scores(pts[k], route, cfg, column).items():
                per.setdefault(key, ([], []))
                per[key][0].append(ll)
                per[key][1].append(se)
        if not per:
            choices.append(Choice("all", 0.0, 0.0, COIN_FLIP_LOG_SCORE, 0.25, 0))
            continue
        ll = {c: np.concatenate(v[0]) for c, v in per.items()}
        n = len(next(iter(ll.values())))
        windows = max(1.0, n * GRID_S / max(GRID_S, float(horizons_s[k])) if horizons_s is not None else n)
        best = max(ll, key=lambda c: (round(float(ll[c].mean()), 12), -c[1] - c[2], c[0] == "imbalance"))
        diff = ll[best] - ll[MODEL]
        if diff.mean() < diff.std() / np.sqrt(windows):  # not clearly better than the model's own forecast
            best = MODEL
        gain = ll[best] - COIN_FLIP_LOG_SCORE
        if gain.mean() < gain.std() / np.sqrt(windows):  # no clear gain over a coin flip
            best = ("all", 0.0, 0.0)
        choices.append(Choice(best[0], best[1], best[2], float(ll[best].mean()),
                              float(np.concatenate(per[best][1]).mean()), n))
    return choices


def mean_gain(choices: list[Choice]) -> float:
    """The mean over horizons with points of (held-out log score - ln 0.5)."""
    gains = [c.log_score - COIN_FLIP_LOG_SCORE for c in choices if c.n > 0]
    return float(np.mean(gains)) if gains else 0.0


def fair_value_horizon_s(choices, columns, default_s: float) -> float:
    """The horizon whose forecast gives the fair value and the quoter's p_down: the one with the
    largest held-out gain over a coin flip among those that did not choose a coin flip (a forecast
    that says 1/2 would leave the quoter's belief flat whatever the book says); `default_s` if all did."""
    gains = {k: c.log_score - COIN_FLIP_LOG_SCORE for c, k in zip(choices, columns, strict=True)
             if c.book_scale > 0 or c.belief_scale > 0}
    return float(HORIZONS_S[max(gains, key=gains.get)]) if gains else float(default_s)


def apply(route_cfg: Config, book_cfg: Config, choices, columns) -> Config:
    """The exported config: the route's drift belief, the book forecast of `book_cfg` with each
    horizon's choice (a `Choice` or its dict) applied to its column (a column no horizon chose says
    1/2), and the fair value read at the most informative horizon (`fair_value_horizon_s`)."""
    fields = {}
    choices = [Choice(**c) if isinstance(c, dict) else c for c in choices]
    for c, k in zip(choices, columns, strict=True):
        one = scaled_book(book_cfg, c.book_scale, c.belief_scale, c.features).book
        for name in (*BOOK_WEIGHTS, *BOOK_VARS, "trend_var", "belief_weight", "adapt_trend_var", "adapt_scale_var"):
            fields.setdefault(name, np.zeros(NUM_HORIZONS))[k] = np.asarray(getattr(one, name))[k]
    b = book_cfg.book
    fields |= {"flow_window_s": float(b.flow_window_s), "abs_move_bps": np.asarray(b.abs_move_bps),
               "adapt_timescale_s": float(b.adapt_timescale_s),
               "fair_value_horizon_s": fair_value_horizon_s(choices, columns, route_cfg.book.fair_value_horizon_s)}
    return replace(route_cfg, book=fields)
