"""`OnlineParams`: every parameter of spec stage 1 (and the burst rule), with the spec's values as
defaults, units in the names, range checks with clear errors, and a plain-dict round trip.

The parameters are a NamedTuple of scalars / small arrays, i.e. a pytree: `jit`, `vmap` (a batch
of parameter sets is an `OnlineParams` whose leaves have a leading axis) and `grad` accept it.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

REGIMES: tuple[str, ...] = ("trending_down", "trending_up", "mean_reverting", "volatile")
NUM_REGIMES = len(REGIMES)

# OU drift prior: "drift probably within about +-10 bps/s" (spec 1A fix) -> stationary sd 5 bps/s.
_THETA_MU = 0.001
_PRIOR_SD = 5.0


class OnlineParams(NamedTuple):
    """Parameters of the online belief (spec stage 1, sections 5-6). Units are in the names.

    Attributes:
        lambda_fill: log-likelihood ratio of one own fill for the sign of drift (0.35: 8 same-side
            fills ~ 95%).
        lambda_as: weight of the adverse-selection term (0.15).
        as_scale_bps: AS normaliser in that term, bps (20).
        fee_bps: maker fee subtracted from AS before it counts as evidence, bps (1.5).
        lambda_burst: per-extra-fill weight of a same-side burst (0.25).
        burst_min_fills: fills on one side within the window that make a burst (4).
        max_burst_age_s: the burst window, s (2).
        theta_decay_per_s: decay rate of the evidence log-odds without fresh evidence, 1/s (0.02,
            half-life ln2/0.02 = 34.7 s).
        lambda_trade: log-LR per public trade print, by aggressor side (0 until calibrated).
        lambda_imbalance_per_s: log-LR per second of holding a top-K book imbalance of 1 (0).
        lambda_cv_per_bps: log-LR per bps of another venue's mid move (0).
        return_noise_s: microstructure noise of mid returns in seconds of diffusion: a return over
            dt has variance sigma^2 (dt + return_noise_s). 0 gives the spec's r^2 = dp^2/dt, which
            real tick data (moves within milliseconds) blows up; this keeps the update conjugate.
        theta_mu_per_s: OU mean reversion of the drift, 1/s (0.001: half-life ~11.5 min).
        sigma_mu_bps_s_sqrt_s: OU diffusion of the drift, (bps/s)/sqrt(s); default gives a
            stationary sd of 5 bps/s, i.e. drift within about +-10 bps/s.
        sigma_long_bps_sqrt_s: long-run volatility, the volatility prior's centre, bps/sqrt(s).
        vol_prior_strength: inverse-gamma prior alpha_0 (> 1); larger = slower to move.
        vol_forget_per_s: rate at which volatility evidence is forgotten toward the prior, 1/s.
        fill_window_s: the window of the fill-clustering adjustment, s (5).
        expected_fills_per_window: fills expected in that window in normal conditions.
        vol_low_ratio: sigma / sigma_long below this is the "low" vol regime.
        vol_high_ratio: sigma / sigma_long above this is the "high" vol regime.
        tox_prior_informed: Beta prior pseudo-count of informed fills (alpha_informed_0).
        tox_prior_uninformed: Beta prior pseudo-count of uninformed fills.
        tox_decay_per_window: multiplicative decay of the evidence per window (0.95).
        tox_window_s: that window, s (30); the decay is applied continuously.
        as_prior_bps: prior of the realised AS mean (the spec's AS_scale of stage 3 "from realised AS
            history"), bps.
        as_prior_weight: that prior's weight, in fills; the evidence decays like the toxicity's.
        regime_switch_per_s: total rate of leaving a regime, 1/s (0.001), used when `regime_rates_per_s`
            is built by `default_params`.
        regime_rates_per_s: continuous-time generator Q (4x4, rows sum to 0), 1/s.
        regime_drift_bps_s: mean drift of each regime, bps/s (-m, +m, 0, 0); also gives the drift
            magnitude E|mu| = sum_r P(r) |m_r| of the read-out mu_bps_s.
        regime_vol_mult: volatility multiplier of each regime (volatile > 1).
        regime_p_buy_fill: P(own fill is a buy | regime).
        regime_p_taker_buy: P(trade print aggressor bought | regime).
        regime_as_mean_bps: mean AS of a fill in each regime, bps.
        regime_as_sd_bps: sd of AS in each regime, bps.
        regime_fill_rate_per_s: own-fill arrival rate in each regime, 1/s.
    """

    lambda_fill: float = 0.35
    lambda_as: float = 0.15
    as_scale_bps: float = 20.0
    fee_bps: float = 1.5
    lambda_burst: float = 0.25
    burst_min_fills: float = 4.0
    max_burst_age_s: float = 2.0
    theta_decay_per_s: float = 0.02
    lambda_trade: float = 0.0
    lambda_imbalance_per_s: float = 0.0
    lambda_cv_per_bps: float = 0.0
    return_noise_s: float = 1.0
    theta_mu_per_s: float = _THETA_MU
    sigma_mu_bps_s_sqrt_s: float = _PRIOR_SD * math.sqrt(2 * _THETA_MU)
    sigma_long_bps_sqrt_s: float = 1.5
    vol_prior_strength: float = 3.0
    vol_forget_per_s: float = 1.0 / 60.0
    fill_window_s: float = 5.0
    expected_fills_per_window: float = 2.0
    vol_low_ratio: float = 0.75
    vol_high_ratio: float = 1.5
    tox_prior_informed: float = 1.0
    tox_prior_uninformed: float = 3.0
    tox_decay_per_window: float = 0.95
    tox_window_s: float = 30.0
    as_prior_bps: float = 20.0
    as_prior_weight: float = 2.0
    regime_switch_per_s: float = 0.001
    regime_rates_per_s: tuple = ()
    regime_drift_bps_s: tuple = (-6.0, 6.0, 0.0, 0.0)
    regime_vol_mult: tuple = (1.0, 1.0, 0.8, 2.0)
    regime_p_buy_fill: tuple = (0.7, 0.3, 0.5, 0.5)
    regime_p_taker_buy: tuple = (0.5, 0.5, 0.5, 0.5)
    regime_as_mean_bps: tuple = (10.0, 10.0, 1.0, 5.0)
    regime_as_sd_bps: tuple = (8.0, 8.0, 4.0, 10.0)
    regime_fill_rate_per_s: tuple = (0.2, 0.2, 0.05, 0.3)


_VECTORS = ("regime_drift_bps_s", "regime_vol_mult", "regime_p_buy_fill", "regime_p_taker_buy",
            "regime_as_mean_bps", "regime_as_sd_bps", "regime_fill_rate_per_s")

# name -> (low, high, low inclusive?) for scalars; checked on the host by `validate_params`.
_RANGES = {
    "lambda_fill": (0, math.inf, True), "lambda_as": (0, math.inf, True), "as_scale_bps": (0, math.inf, False),
    "fee_bps": (-math.inf, math.inf, True), "lambda_burst": (0, math.inf, True),
    "burst_min_fills": (1, math.inf, True), "max_burst_age_s": (0, math.inf, False),
    "theta_decay_per_s": (0, math.inf, True), "lambda_trade": (-math.inf, math.inf, True),
    "lambda_imbalance_per_s": (-math.inf, math.inf, True), "lambda_cv_per_bps": (-math.inf, math.inf, True),
    "return_noise_s": (0, math.inf, True), "theta_mu_per_s": (0, math.inf, False),
    "sigma_mu_bps_s_sqrt_s": (0, math.inf, False),
    "sigma_long_bps_sqrt_s": (0, math.inf, False),
    "vol_prior_strength": (1, math.inf, False), "vol_forget_per_s": (0, math.inf, True),
    "fill_window_s": (0, math.inf, False), "expected_fills_per_window": (0, math.inf, False),
    "vol_low_ratio": (0, math.inf, False), "vol_high_ratio": (0, math.inf, False),
    "tox_prior_informed": (0, math.inf, False), "tox_prior_uninformed": (0, math.inf, False),
    "tox_decay_per_window": (0, 1, False), "tox_window_s": (0, math.inf, False),
    "as_prior_bps": (-math.inf, math.inf, True), "as_prior_weight": (0, math.inf, False),
    "regime_switch_per_s": (0, math.inf, True),
}


def symmetric_generator(rate_per_s: float, num_states: int = NUM_REGIMES) -> np.ndarray:
    """Generator Q that leaves each state at `rate_per_s`, to each other state equally."""
    q = np.full((num_states, num_states), rate_per_s / (num_states - 1))
    np.fill_diagonal(q, -rate_per_s)
    return q


def validate_params(p: OnlineParams) -> OnlineParams:
    """Check every value on the host; raise ValueError naming the field, its value and the allowed range."""
    for name, (lo, hi, lo_incl) in _RANGES.items():
        v = float(np.asarray(getattr(p, name)))
        ok = (v >= lo if lo_incl else v > lo) and v <= hi and not math.isnan(v)
        if not ok:
            raise ValueError(f"OnlineParams.{name} = {v!r} is out of range "
                             f"{'[' if lo_incl else '('}{lo}, {hi}]")
    if float(p.vol_low_ratio) >= float(p.vol_high_ratio):
        raise ValueError(f"OnlineParams.vol_low_ratio ({p.vol_low_ratio}) must be < vol_high_ratio "
                         f"({p.vol_high_ratio})")
    for name in _VECTORS:
        v = np.asarray(getattr(p, name), dtype=float)
        if v.shape != (NUM_REGIMES,) or not np.isfinite(v).all():
            raise ValueError(f"OnlineParams.{name} must be {NUM_REGIMES} finite numbers, got {v.tolist()}")
    for name in ("regime_p_buy_fill", "regime_p_taker_buy"):
        v = np.asarray(getattr(p, name), dtype=float)
        if not ((v > 0) & (v < 1)).all():
            raise ValueError(f"OnlineParams.{name} must be probabilities in (0, 1), got {v.tolist()}")
    for name in ("regime_vol_mult", "regime_as_sd_bps", "regime_fill_rate_per_s"):
        if not (np.asarray(getattr(p, name), dtype=float) > 0).all():
            raise ValueError(f"OnlineParams.{name} must be > 0, got {np.asarray(getattr(p, name)).tolist()}")
    q = np.asarray(p.regime_rates_per_s, dtype=float)
    off = q - np.diag(np.diag(q))
    is_generator = (off >= 0).all() and np.allclose(q.sum(axis=1), 0, atol=1e-9)
    if q.shape != (NUM_REGIMES, NUM_REGIMES) or not is_generator:
        raise ValueError(f"OnlineParams.regime_rates_per_s must be a {NUM_REGIMES}x{NUM_REGIMES} generator "
                         f"(off-diagonal >= 0, rows sum to 0), got {q.tolist()}")
    return p


def named_tuple_from(cls, overrides: dict):
    """`cls(**overrides)` for a parameter NamedTuple, naming any field it does not have
    (shared by every parameter builder: online, quote, market, exchange)."""
    unknown = sorted(set(overrides) - set(cls._fields))
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s) {unknown}")
    return cls(**overrides)


def require_positive(p, names) -> None:
    """Raise ValueError naming the first of `names` whose value in `p` is not > 0."""
    for name in names:
        if not float(getattr(p, name)) > 0:
            raise ValueError(f"{type(p).__name__}.{name} must be > 0, got {getattr(p, name)!r}")


def default_params(dtype=np.float64, **overrides) -> OnlineParams:
    """The spec's defaults (with any overrides), validated, as arrays of `dtype`.

    `regime_rates_per_s` is built from `regime_switch_per_s` unless given.
    """
    p = named_tuple_from(OnlineParams, overrides)
    if len(np.asarray(p.regime_rates_per_s)) == 0:
        p = p._replace(regime_rates_per_s=symmetric_generator(float(p.regime_switch_per_s)))
    validate_params(p)
    return OnlineParams(*(np.asarray(v, dtype=dtype) for v in p))


def params_to_dict(p: OnlineParams) -> dict:
    """Plain JSON/TOML-able dict: floats and nested lists."""
    return {k: np.asarray(v).tolist() for k, v in p._asdict().items()}


def params_from_dict(d: dict, dtype=np.float64) -> OnlineParams:
    """Inverse of `params_to_dict`; unknown keys are an error, missing keys take the defaults."""
    return default_params(dtype=dtype, **{k: (tuple(map(tuple, v)) if k == "regime_rates_per_s" else
                                              tuple(v) if isinstance(v, list) else v) for k, v in d.items()})
