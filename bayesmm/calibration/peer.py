r"""The peer: a plain logistic regression on public features, fitted to the same training sessions
as the belief and scored beside it on the same points. It is the bar the belief has to clear, and the
first thing a practitioner would try.

Features at time t, over the last `WINDOW_S` seconds (windows, not the filter's decayed sums: an
estimator written independently of the filter's):

- the touch's queue imbalance (bid size - ask size) / (bid size + ask size) at t;
- the order-flow imbalance (Cont, Kukanov & Stoikov 2014): the sum of the touch's OFI increments
  (`events.features.touch_ofi`) in the window;
- the trade-flow imbalance: net aggressor side of the prints in the window (buys - sells);
- the last move: the mid's return over the window, bps.

Per horizon h, P(mid at t + h < mid at t) = sigmoid(a_h + b_h . standardised features), fitted by
maximum likelihood (L-BFGS, with a ridge of 1e-4 per standardised coefficient for a unique optimum)
on the same grid points the book model is fitted to (`models.book.EVERY_S`), ties excluded. It has an
intercept (the trend of its training data), as a plain regression would; the belief has none.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from bayesmm.events.features import EventArrays
from bayesmm.events.kinds import BOOK_UPDATE, TRADE_PRINT
from bayesmm.events.targets import forward_moves, forward_targets
from bayesmm.models.book import EVERY_S

WINDOW_S = 5.0
FEATURES = ("imbalance", "ofi_sum", "trade_flow_net", "move_bps")
_RIDGE = 1e-4


def peer_features(a: EventArrays, window_s: float = WINDOW_S) -> np.ndarray:
    """The features after each event (module docstring): shape (num_events, 4)."""
    n = len(a.t_s)
    valid = a.valid > 0
    ofi = np.where(valid & (a.kind == BOOK_UPDATE), a.ofi, 0.0)
    flow = np.where(valid & (a.kind == TRADE_PRINT), a.side, 0.0)
    start = np.searchsorted(a.t_s, a.t_s - window_s, side="right")  # first event inside (t - w, t]
    c_ofi, c_flow = np.r_[0.0, np.cumsum(ofi)], np.r_[0.0, np.cumsum(flow)]
    idx = np.arange(n)
    before = np.maximum(start - 1, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        move = np.where((a.mid[before] > 0) & (a.mid > 0), (a.mid / a.mid[before] - 1.0) * 1e4, 0.0)
    return np.column_stack([a.imbalance, c_ofi[idx + 1] - c_ofi[start], c_flow[idx + 1] - c_flow[start],
                            np.nan_to_num(move)])


class Peer(NamedTuple):
    """The fitted peer: per horizon (a key "<h>s"), the intercept, the coefficients on the standardised
    features, and the features' means and sds."""

    horizons_s: tuple
    intercept: dict
    coef: dict
    mean: dict
    sd: dict

    def summary(self) -> dict:
        """What calibration.json records of it."""
        return {"features": list(FEATURES), "window_s": WINDOW_S,
                **{h: {"intercept": self.intercept[h], "coef_per_sd": dict(zip(FEATURES, self.coef[h], strict=True))}
                   for h in self.intercept}}

    def forecasts(self, a: EventArrays) -> dict:
        """{h: P(fall over h) after each event of a session}."""
        x = peer_features(a)
        out = {}
        for h in self.horizons_s:
            k = f"{h:g}s"
            z = self.intercept[k] + ((x - self.mean[k]) / self.sd[k]) @ self.coef[k]
            out[h] = 1.0 / (1.0 + np.exp(-z))
        return out


def _fit_logistic(z: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    from scipy.optimize import minimize

    design = np.column_stack([np.ones(len(z)), z])

    def fun(w):
        u = design @ w
        return (np.sum(np.logaddexp(0.0, u) - y * u) + _RIDGE * w[1:] @ w[1:],
                design.T @ (1.0 / (1.0 + np.exp(-u)) - y) + 2 * _RIDGE * np.r_[0.0, w[1:]])

    w = minimize(fun, np.zeros(design.shape[1]), jac=True, method="L-BFGS-B").x
    return float(w[0]), w[1:]


def fit_peer(arrays: list[EventArrays], horizons_s, every_s: float = EVERY_S) -> Peer:
    """The peer fitted to sessions' arrays, per horizon (module docstring)."""
    feats = [peer_features(a) for a in arrays]
    inter, coef, mean, sd = {}, {}, {}, {}
    for h in horizons_s:
        xs, ys = [], []
        for a, f in zip(arrays, feats, strict=True):
            tg = forward_targets(a.t_s, a.mid, a.valid, h, every_s)
            xs.append(f[tg.rows])
            ys.append(tg.down)
        x, y = np.concatenate(xs), np.concatenate(ys)
        k = f"{h:g}s"
        mean[k] = x.mean(axis=0) if len(x) else np.zeros(len(FEATURES))
        sd[k] = np.where(x.std(axis=0) > 0, x.std(axis=0), 1.0) if len(x) else np.ones(len(FEATURES))
        inter[k], coef[k] = _fit_logistic((x - mean[k]) / sd[k], y) if len(y) else (0.0, np.zeros(len(FEATURES)))
    return Peer(tuple(horizons_s), inter, coef, mean, sd)


def scores(peer: Peer, arrays: list[EventArrays], horizons_s, reliability_bins: int = 0) -> dict:
    """`calibration.score.scores_of` the peer's forecasts."""
    from bayesmm.calibration.score import scores_of

    return scores_of(peer.forecasts, arrays, horizons_s, reliability_bins=reliability_bins)


def imbalance_skew_bps(arrays: list[EventArrays], horizon_s: float, every_s: float = EVERY_S) -> float:
    """The order-book-imbalance maker's alpha (`quoter.imbalance_skew_bps`): the least-squares slope,
    through the origin, of the mid's move over `horizon_s` (bps, no move counted as 0) on the touch's
    queue imbalance, on the grid points of the training sessions. Through the origin so that the lean
    is odd in the book's mirror image (an intercept would be the training data's trend); 0 when no
    point has an imbalance."""
    xy = xx = 0.0
    for a in arrays:
        now, move, _ = forward_moves(a.t_s, a.mid, a.valid, horizon_s, every_s)
        x = a.imbalance[now]
        xy, xx = xy + float(np.sum(x * move)), xx + float(np.sum(x * x))
    return xy / xx if xx > 0 else 0.0
