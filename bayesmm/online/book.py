r"""What the order book and the tape say about the mid's next move: four bounded features kept by
O(1) updates, and the per-horizon forecast read from them and the drift belief (`BookParams`).

The features, each in [-1, 1] and odd in the mirror image (bid <-> ask, buy <-> sell, up <-> down):

| feature    | what it is                                                            | updated on   |
|------------|-----------------------------------------------------------------------|--------------|
| imbalance  | (bid size - ask size) / (bid size + ask size) at the touch: a level   | book_update (replaced) |
| ofi        | decayed order-flow imbalance at the touch / decayed sum of its sizes  | book_update  |
| trade_flow | decayed net aggressor side of the tape / decayed number of prints     | trade_print  |
| move       | decayed sum of mid returns / decayed sum of their sizes               | mid_tick     |

The flows decay as e^{-dt / flow_window_s}. They are kept as three (signed, absolute) pairs of
decayed sums, `FLOW_SIZE` numbers: a ratio of two sums with the same decay is the weighted mean
direction of the recent flow, free of the instrument's size and price units, so that weights learnt on
one instrument mean the same on another and no event moves a feature by more than its range. The
imbalance is a state of the book, replaced when the book changes and never accumulated.

Per horizon h, the log-odds that the mid is lower h seconds later (ties excluded):

    z_h = (b_h L + w_h . x) / sqrt(1 + pi/8 (t_h + v_h . x^2))

with L the drift belief's log-odds, v_h the variance of a new session's weights and t_h that of its
trend: the probit approximation of E[sigmoid(a + beta . x)] over a ~ N(0, t_h), beta ~ N(w_h, diag
v_h), the offline model's predictive (`models.book`).
"""

from __future__ import annotations

import jax.numpy as jnp

from bayesmm.online.params import BOOK_VARS, BOOK_WEIGHTS, HORIZONS_S, Config

FLOW_SIZE = 6  # (ofi, |ofi|, trade side, trade count, move, |move|): decayed sums
_TINY = 1e-12  # a ratio's denominator floor: a flow with no events reads 0


def flow_decay(dt_s, p: Config):
    """The flows' decay over dt_s: e^{-dt / flow_window_s}."""
    return jnp.exp(-jnp.maximum(dt_s, 0.0) / p.book.flow_window_s)


def flow_increment(is_book, is_trade, is_mid, ofi, side, ret_bps):
    """The six decayed sums' increments of one event (0/1 kind flags; `FLOW_SIZE` numbers)."""
    ret = jnp.where(is_mid, ret_bps, 0.0)
    ofi = jnp.where(is_book, ofi, 0.0)
    side = jnp.where(is_trade, side, 0.0)
    return jnp.stack([ofi, jnp.abs(ofi), side, jnp.abs(side), ret, jnp.abs(ret)], axis=-1)


def features(imbalance, flow):
    """(imbalance, ofi, trade_flow, move), each in [-1, 1] (module docstring); `flow` (..., 6)."""
    ratio = flow[..., 0::2] / jnp.maximum(flow[..., 1::2], _TINY)
    return jnp.concatenate([jnp.asarray(imbalance)[..., None], jnp.clip(ratio, -1.0, 1.0)], axis=-1)


def horizon_linear(belief_log_odds, x, p: Config):
    """(the linear predictor b_h L + w_h . x, its variance t_h + v_h . x^2) for every horizon (module
    docstring): each of shape (..., NUM_HORIZONS)."""
    b = p.book
    w = jnp.stack([getattr(b, k) for k in BOOK_WEIGHTS], axis=-1)  # (H, K)
    v = jnp.stack([getattr(b, k) for k in BOOK_VARS], axis=-1)
    x = x[..., None, :]
    linear = b.belief_weight * belief_log_odds[..., None] + jnp.sum(w * x, axis=-1)
    return linear, b.trend_var + jnp.sum(v * x**2, axis=-1)


def horizon_log_odds(belief_log_odds, x, p: Config):
    """z_h for every horizon (module docstring): shape (..., NUM_HORIZONS); before what a session
    teaches online (`online.adapt`)."""
    linear, var = horizon_linear(belief_log_odds, x, p)
    return linear / jnp.sqrt(1.0 + jnp.pi / 8.0 * var)


def horizon_index(p: Config):
    """The index in HORIZONS_S of the horizon nearest `book.fair_value_horizon_s`."""
    h = jnp.asarray(HORIZONS_S, jnp.asarray(p.book.fair_value_horizon_s).dtype)
    return jnp.argmin(jnp.abs(h - p.book.fair_value_horizon_s))


def fair_value_offset_bps(p_down, p: Config):
    """The fair value's offset from the mid, bps: E[move over h] = (1 - 2 p_down_h) E|move over h| at
    the fair-value horizon (the expected move of a sign with that probability; no move counted as 0
    in E|move|, as ties are excluded from p_down)."""
    return (1.0 - 2.0 * p_down) * jnp.asarray(p.book.abs_move_bps)[horizon_index(p)]
