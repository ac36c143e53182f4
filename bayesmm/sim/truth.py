"""The online parameters that the generative model implies: the simulator knows its truth, so the
best closed-form filter for a simulated market is known in closed form, and calibration can be
checked against it.

- lambda_fill = ln(1 + lambda_i / lambda_u): given a fill, the odds that it is a buy are
  (lambda_u + lambda_i) / lambda_u higher under down-drift than up-drift (lambda_i averaged over
  the regimes the scenario lives in: 0 in a market without informed flow, where fills say nothing).
- theta_decay: how fast what we know of the drift's sign goes stale. In a trend the sign is the
  trend's, and it lasts as long as the trend: for two symmetric states switching at rate q, the
  probability relaxes to 1/2 at rate 2q. Outside trends (mean-reverting, volatile regimes) the
  drift is the OU's around 0, whose mean - and so its sign's predictability - relaxes at
  theta_mu. The decay is these rates weighted by the time the market spends in each (P(trend) x
  2q + (1 - P(trend)) x theta_mu): a market without trends (quiet, vol_spike) had 2q = 2e-6, and
  AS and burst evidence piled up without end. How it goes stale is the chain's too
  (`evidence.markov_decay_weight` 1): the probability's distance from 1/2 relaxes at that rate, not the
  log-odds - the log-odds rule is its linearisation, and held a confident belief through a
  reversal (whipsaw, reading the tape: ECE 0.075 with it, 0.018 with the chain's rule).
- lambda_trade (when the filter reads the public tape): a print is a taker's order, and the same
  odds hold for its aggressor side as for the fill it makes, so lambda_trade = lambda_fill. Our
  own fills are prints of that tape, and which taker fills us depends on our depth, not on the
  drift: given the tape they carry nothing more, so a tape-reading filter gives them no weight
  (lambda_fill 0, which also zeroes the survival term; the HMM's fill emissions uninformative) -
  reading both would count each taker that filled us twice.
- lambda_AS = 0 and lambda_burst = 0: an adverse selection is the mid's move after a fill, which
  the filter already reads as returns (counting it again overstated the evidence: vol_spike's ECE
  0.033 with the spec's 0.15, 0.025 without); and under Poisson takers a burst's fills carry
  their per-fill log-LR and no more, so an extra weight per burst fill counts them twice.
- Kalman: the drift's OU rate theta_mu, and sigma_mu inflated so the zero-mean OU's stationary
  variance equals the regime mixture's (OU variance + m^2 P(trend)).
- Toxicity prior: Beta with mean near the true informed share pi = lambda_i / (lambda_i + 2 lambda_u)
  and a weight of 4 fills; the realised-AS prior is the expected AS, P(trend) x m x horizon.
- The sign of the drift, optionally, from the regime HMM alone (`regime_sign`: the exact filter
  for this market, see `matched_config`).
- Regime HMM: the market's generator, drift means, volatility levels (as multipliers of the
  stationary-average level), P(buy fill | regime) from the taker rates, AS means |m| x horizon.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import null_space

from bayesmm.online.kernels import ou_stationary_var
from bayesmm.online.params import Config, default_config, replace
from bayesmm.sim.exchange import ExchangeParams
from bayesmm.sim.market import MarketParams


def stationary_distribution(q: np.ndarray) -> np.ndarray:
    """pi with pi Q = 0, sum 1 (the first stationary vector if the chain is reducible)."""
    ns = null_space(np.asarray(q, float).T)
    v = np.abs(ns[:, 0])
    return v / v.sum()


def matched_config(m: MarketParams, ex: ExchangeParams, base: Config | None = None, initial: bool = True,
                   tape: bool = False, regime_sign: bool = False) -> Config:
    """`base` (default: the spec's defaults) with every online parameter the market's truth implies
    (module docstring) put in its place.

    `initial`: use the market's initial regime distribution (rather than the stationary one) for
    the averages, which is what a short scenario lives in. `tape`: the filter reads the public
    tape, so a print carries the log-LR an own fill would (`evidence.lambda_trade`) and our fills,
    prints of that tape, none (module docstring); off, the filter reads our fills and not the tape.
    `regime_sign`: p_down is the regime posterior's verdict alone (`drift.regime_weight` 1, the
    returns' weight and the additive evidence weights 0). This market's drift sign is its regime's
    (up to the OU's small spread within a regime), so the regime HMM with the market's own
    generator and emissions is the exact filter for it; the additive evidence, weighted per event
    as above, is exact only inside a trend and sums noise between trends (on the validation
    markets of `calibration.simulation_check` it read the hidden sign worse than a coin flip, Brier
    0.28-0.41 where the HMM's verdict scored 0.15-0.23), and adding it to the HMM's verdict
    counts the same prints twice.
    """
    base = default_config() if base is None else base
    q = np.asarray(m.regime_rates_per_s, float)
    probs = np.asarray(m.initial_regime_probs, float) if initial else stationary_distribution(q)
    lam_u = float(m.uninformed_rate_per_s)
    lam_i = np.asarray(m.informed_rate_per_s, float)
    informed = float(np.sum(probs * lam_i))
    vol = np.asarray(m.vol_level_bps_sqrt_s, float)
    sigma_long = float(np.sqrt(np.sum(probs * vol**2)))
    mm = float(m.trend_drift_bps_s)
    theta = float(m.theta_mu_per_s)
    ou_var = float(ou_stationary_var(float(m.sigma_mu_bps_s_sqrt_s), theta))
    p_trend = float(probs[0] + probs[1])
    var = ou_var + mm**2 * p_trend
    leave = float(max(-q[0, 0], -q[1, 1], 1e-6))
    decay = p_trend * 2 * leave + (1.0 - p_trend) * theta
    horizon = float(base.evidence.as_horizon_s)
    p_buy = np.array([(lam_u + lam_i[0]) / (2 * lam_u + lam_i[0]), lam_u / (2 * lam_u + lam_i[1]), 0.5, 0.5])
    fill_rate = (2 * lam_u + lam_i) * float(np.exp(-float(ex.kappa_per_bps) * 7.0))
    pi = float(np.sum(probs * lam_i / (lam_i + 2 * lam_u)))
    lam = float(np.log1p(informed / lam_u))
    sign = dict(return_weight=0.0, regime_weight=1.0) if regime_sign else {}
    additive = 0.0 if regime_sign else 1.0
    return replace(base,
                   drift=dict(theta_mu_per_s=theta, sigma_mu_bps_s_sqrt_s=float(np.sqrt(2 * theta * var)),
                              return_noise_s=0.0, **sign),
                   evidence=dict(lambda_fill=0.0 if tape else lam * additive,
                                 lambda_trade=lam * additive if tape else 0.0,
                                 theta_decay_per_s=float(decay), markov_decay_weight=1.0, lambda_as=0.0,
                                 lambda_burst=0.0),
                   volatility=dict(sigma_long_bps_sqrt_s=sigma_long, return_df=0.0),  # Gaussian returns
                   toxicity=dict(as_prior_bps=p_trend * mm * horizon, prior_informed_fills=4.0 * pi + 0.1,
                                 prior_uninformed_fills=4.0 * (1.0 - pi) + 0.1),
                   regime=dict(rates_per_s=q, drift_bps_s=(-mm, mm, 0.0, 0.0), vol_mult=tuple(vol / sigma_long),
                               p_buy_fill=(0.5,) * 4 if tape else tuple(np.clip(p_buy, 0.01, 0.99)),
                               p_taker_buy=tuple(np.clip(1.0 - p_buy, 0.01, 0.99)) if tape else (0.5,) * 4,
                               as_mean_bps=(mm * horizon, mm * horizon, 0.0, 0.0),
                               as_sd_bps=tuple(np.maximum(vol * np.sqrt(horizon), 1.0)),
                               fill_rate_per_s=tuple(np.maximum(fill_rate if not tape else
                                                                np.full(4, np.sum(probs * fill_rate)), 1e-3))))
