"""The derive route: each formula against an independent evaluation on posterior draws made by hand
(so the expected numbers come from the docstring's algebra, not from the code)."""

from __future__ import annotations

import math

import arviz as az
import numpy as np
import pytest

from bayesmm.calibration.derive import _effective_share, derive, derived_config, median_generator, table
from bayesmm.online.params import default_config


def test_effective_share_of_dependent_fills():
    """n fills equi-correlated with c = 1/(1+k) are worth n / (1 + (n - 1) c) independent ones."""
    share = _effective_share(np.array([1.0, 1.0, 0.0]), np.array([0.5]))
    assert share[0] == pytest.approx(1.0)  # single fills are independent whatever k
    share = _effective_share(np.array([3.0]), np.array([1e12, 0.0]))
    assert share[0] == pytest.approx(1.0) and share[1] == pytest.approx(1 / 3)  # k -> inf: iid; k = 0: one fill
    n, k = np.array([10.0, 2.0]), np.array([1.5])
    c = 1 / (1 + 1.5)
    assert _effective_share(n, k)[0] == pytest.approx((10 / (1 + 9 * c) + 2 / (1 + c)) / 12)


def _idata(**sites):
    return az.from_dict(posterior={k: np.asarray(v)[None] for k, v in sites.items()})


def _regime_draws(num=400, seed=0):
    rng = np.random.default_rng(seed)
    q = np.zeros((num, 4, 4))
    off = rng.uniform(1e-3, 3e-3, (num, 12))
    idx = [(i, j) for i in range(4) for j in range(4) if i != j]
    for k, (i, j) in enumerate(idx):
        q[:, i, j] = off[:, k]
    for i in range(4):
        q[:, i, i] = -q[:, i].sum(axis=1)
    return dict(generator_per_s=q, trend_drift_bps_s=rng.uniform(1.5, 2.5, num),
                fill_asymmetry=rng.uniform(0.1, 0.2, num), side_concentration=rng.uniform(1.0, 100.0, num),
                sigma_mr_bps_sqrt_s=rng.uniform(1.5, 2.5, num), trend_vol_excess=rng.uniform(0.2, 0.6, num),
                vol_excess=rng.uniform(0.5, 1.5, num), fill_rate_per_s=rng.uniform(0.1, 0.3, (num, 4)),
                as_trend_bps=rng.normal(5, 1, num), as_mr_bps=rng.normal(0, 1, num), as_vol_bps=rng.normal(1, 1, num),
                as_sd_bps=rng.uniform(3, 5, num))


def test_tape_weight_decay_and_generator_from_the_regime_posterior():
    """lambda_trade = ln((1/2 + rho) / (1/2 - rho)) x effective share, theta_decay = -Q00 - Q11, draw by
    draw; the config takes the medians, its generator's rows summing to 0."""
    draws = _regime_draws()
    n = np.array([1.0, 4.0, 0.0, 12.0])
    data = {"regime": {"n_buy": n / 2, "n_sell": n / 2}}
    out = {d.key: d for d in derive({"regime": _idata(**draws)}, data, from_tape=True, num_draws=400, seed=1)}
    lam = out["evidence.lambda_trade"].draws
    theta = out["evidence.theta_decay_per_s"].draws
    # the derivation resamples draws: each derived draw must be one of the hand-computed values
    rho, k = draws["fill_asymmetry"], draws["side_concentration"]
    c = 1 / (1 + k)[:, None]
    share = np.sum(n[None, n > 0] / (1 + (n[None, n > 0] - 1) * c), axis=1) / n.sum()
    expected_lam = np.log((0.5 + rho) / (0.5 - rho)) * share
    expected_theta = -draws["generator_per_s"][:, 0, 0] - draws["generator_per_s"][:, 1, 1]
    # each derived draw is the formula applied to ONE posterior draw (the joint posterior, not a
    # product of resampled marginals): find the draw by its theta and compare lambda there
    which = [int(np.argmin(np.abs(expected_theta - x))) for x in theta]
    np.testing.assert_allclose(theta, expected_theta[which], rtol=1e-12)
    np.testing.assert_allclose(lam, expected_lam[which], rtol=1e-12)
    assert "evidence.lambda_fill" not in out and "regime.p_taker_buy" in out
    np.testing.assert_allclose(out["regime.p_taker_buy"].draws[:, 0] + out["regime.p_taker_buy"].draws[:, 1], 1.0)
    cfg = derived_config(default_config(), list(out.values()))
    np.testing.assert_allclose(np.asarray(cfg.regime.rates_per_s).sum(axis=1), 0.0, atol=1e-15)
    assert float(cfg.evidence.lambda_trade) == pytest.approx(np.median(lam))
    np.testing.assert_allclose(np.asarray(cfg.regime.rates_per_s)[0, 1], np.median(draws["generator_per_s"][:, 0, 1]),
                               rtol=0.2)  # the median of a resample of the draws
    rows = table(list(out.values()))
    assert rows["evidence.lambda_trade"]["q05"] <= rows["evidence.lambda_trade"]["median"]
    assert "kept" in rows["evidence.lambda_imbalance"] and "quoter" in rows
    # a decay of 2q is the two-state chain's, so is the rule; AS and bursts are not counted twice
    # (spec defaults: markov_decay_weight 0, lambda_as 0.15, lambda_burst 0.25)
    assert (float(cfg.evidence.markov_decay_weight), float(cfg.evidence.lambda_as), float(cfg.evidence.lambda_burst)) \
        == (1.0, 0.0, 0.0)


def test_volatility_and_drift_formulas():
    """sigma_long^2 = (1 - p0) exp(mu + xi^2 / (2 (1 - phi^2))); the drift's OU as fitted."""
    num = 50
    vol = _idata(log_var_mean=np.full(num, 1.0), persistence=np.full(num, 0.8), vol_of_vol=np.full(num, 0.5),
                 no_move_prob=np.full(num, 0.4), log_ou_rate_per_s=np.full(num, -math.log(0.8)))
    drift = _idata(theta_per_s=np.full(num, 0.3), sigma_mu_bps_s_sqrt_s=np.full(num, 0.7))
    out = {d.key: d for d in derive({"volatility": vol, "drift": drift}, {}, from_tape=False, num_draws=num)}
    want = math.sqrt(0.6 * math.exp(1.0 + 0.25 / (2 * (1 - 0.64))))
    np.testing.assert_allclose(out["volatility.sigma_long_bps_sqrt_s"].draws, want, rtol=1e-12)
    np.testing.assert_allclose(out["volatility.forget_per_s"].draws, -math.log(0.8), rtol=1e-12)
    np.testing.assert_allclose(out["drift.theta_mu_per_s"].draws, 0.3)


def test_median_generator_rows_sum_to_zero():
    q = median_generator(np.asarray(_regime_draws(num=30)["generator_per_s"]))
    np.testing.assert_allclose(q.sum(axis=1), 0.0, atol=1e-15)
    assert (q - np.diag(np.diag(q)) >= 0).all()


def test_book_and_other_venue_weights_from_the_regime_emissions():
    """lambda_imbalance = 2 i_trend / s_i^2 and lambda_cv = 2 m / s_cv^2, draw by draw."""
    draws = _regime_draws(num=200, seed=3)
    rng = np.random.default_rng(4)
    draws |= {"imbalance_trend": rng.normal(-0.1, 0.02, 200), "imbalance_sd": rng.uniform(0.4, 0.6, 200),
              "imbalance_offset": rng.normal(0, 0.1, 200), "cv_sd_bps_sqrt_s": rng.uniform(1.0, 2.0, 200)}
    data = {"regime": {"n_buy": np.ones(5), "n_sell": np.ones(5)}}
    out = {d.key: d for d in derive({"regime": _idata(**draws)}, data, from_tape=True, num_draws=200, seed=2)}
    m = out["regime.drift_bps_s"].draws[:, 1]
    which = [int(np.argmin(np.abs(draws["trend_drift_bps_s"] - x))) for x in m]
    want_imb = 2 * draws["imbalance_trend"][which] / draws["imbalance_sd"][which] ** 2
    want_cv = 2 * draws["trend_drift_bps_s"][which] / draws["cv_sd_bps_sqrt_s"][which] ** 2
    np.testing.assert_allclose(out["evidence.lambda_imbalance"].draws, want_imb, rtol=1e-12)
    np.testing.assert_allclose(out["evidence.lambda_cv_per_bps"].draws, want_cv, rtol=1e-12)
    assert np.all(out["evidence.lambda_imbalance"].draws < 0)  # this book leans against the trend


def test_other_venue_weight_where_the_own_mid_did_not_move():
    """With the two venues' moves linked (`models.regime.cv_law`: the other venue's return is
    cv_beta x this one's plus its own noise), a bin where this venue's mid did not move has the
    other venue's return ~ N(b m dt, (b^2 sigma_t^2 + s^2) dt) in an uptrend, N(-b m dt, same) in a
    downtrend: log-odds per bps 2 b m / (b^2 sigma_t^2 + s^2), draw by draw."""
    draws = _regime_draws(num=200, seed=5)
    rng = np.random.default_rng(6)
    draws |= {"cv_sd_bps_sqrt_s": rng.uniform(0.2, 0.4, 200), "cv_beta": rng.uniform(0.8, 1.0, 200)}
    data = {"regime": {"n_buy": np.ones(5), "n_sell": np.ones(5)}}
    out = {d.key: d for d in derive({"regime": _idata(**draws)}, data, from_tape=True, num_draws=200, seed=2)}
    m = out["regime.drift_bps_s"].draws[:, 1]
    which = [int(np.argmin(np.abs(draws["trend_drift_bps_s"] - x))) for x in m]
    sig_t = draws["sigma_mr_bps_sqrt_s"][which] * (1 + draws["trend_vol_excess"][which])
    b, s = draws["cv_beta"][which], draws["cv_sd_bps_sqrt_s"][which]
    dt, x = 1.0, 1.7  # the log-odds of a 1.7 bps move, from the two Gaussian densities written out
    up = -((x - b * draws["trend_drift_bps_s"][which] * dt) ** 2) / (2 * (b**2 * sig_t**2 + s**2) * dt)
    down = -((x + b * draws["trend_drift_bps_s"][which] * dt) ** 2) / (2 * (b**2 * sig_t**2 + s**2) * dt)
    np.testing.assert_allclose(out["evidence.lambda_cv_per_bps"].draws * x, up - down, rtol=1e-9)


def _mid_ticks(noise_bps: float, seed: int, n: int = 20_000, sigma_bps_sqrt_s: float = 2.0, dt_s: float = 0.1):
    """Mid-tick returns of an efficient price (a random walk, sigma per sqrt(s)) observed with iid noise
    of sd `noise_bps` on every mid, one tick every dt_s, in the fields `return_noise` reads; the
    second half is a new segment (its first return, across the gap, must not be paired)."""
    from types import SimpleNamespace

    from bayesmm.events.kinds import MID_TICK

    rng = np.random.default_rng(seed)
    price = np.cumsum(rng.normal(0.0, sigma_bps_sqrt_s * math.sqrt(dt_s), n + 1))
    observed = price + rng.normal(0.0, noise_bps, n + 1)
    ret = np.diff(observed)
    seg = np.zeros(n)
    seg[n // 2] = 1.0
    ret[n // 2] += 1e3  # a gap's return: paired with its neighbours it would swamp the covariance
    return SimpleNamespace(kind=np.full(n, MID_TICK), ret_bps=ret, ret_dt_s=np.full(n, dt_s), segment_start=seg)


def test_return_noise_recovers_the_noise_of_the_mid():
    """Noise of sd 1 bps on a mid diffusing at 2 bps/sqrt(s): the filter's sigma^2 (dt + noise) form
    has noise = 2 x 1^2 / 2^2 = 0.5 s; without noise, 0. The 90% interval covers the truth in both."""
    from bayesmm.calibration.derive import return_noise

    d = return_noise([_mid_ticks(1.0, seed=3)], seed=1).summary()
    assert d["q05"] <= 0.5 <= d["q95"] and d["median"] == pytest.approx(0.5, rel=0.15)
    clean = return_noise([_mid_ticks(0.0, seed=4)], seed=1).summary()
    assert clean["q05"] == 0.0 and clean["q95"] < 0.05
    assert return_noise([_mid_ticks(1.0, seed=3, n=50)]) is None  # too few pairs to say


def test_learnt_share_of_the_prior_spread():
    """1 - (w_post / w_prior)^2 with w a 90% width: a posterior half the prior's width learnt 3/4,
    one as wide learnt nothing, a positive parameter is judged on the log scale (a LogNormal prior
    of log sd 0.5, a posterior of log sd 0.1: 1 - 0.2^2 = 0.96), a value fixed by construction has
    no share."""
    from bayesmm.calibration.derive import learnt

    rng = np.random.default_rng(0)
    prior = rng.normal(0.0, 1.0, (200_000, 1))
    assert learnt(rng.normal(3.0, 0.5, (200_000, 1)), prior) == pytest.approx(0.75, abs=0.01)
    assert learnt(rng.normal(0.0, 1.0, (200_000, 1)), prior) == pytest.approx(0.0, abs=0.02)
    assert learnt(rng.normal(0.0, 2.0, (200_000, 1)), prior) == 0.0  # wider than the prior: nothing learnt
    lognormal = np.exp(rng.normal(np.log(1 / 900), 0.5, (200_000, 1)))
    assert learnt(np.exp(rng.normal(np.log(1 / 60), 0.1, (200_000, 1))), lognormal) == pytest.approx(0.96, abs=0.005)
    assert learnt(np.zeros((100, 1)), np.zeros((100, 1))) is None
    # a vector: the mean over its elements; an element fixed in both is skipped
    zero = np.zeros(len(prior))
    both = learnt(np.stack([prior[:, 0] * 0.5, zero], 1), np.stack([prior[:, 0], zero], 1))
    assert both == pytest.approx(0.75, abs=1e-9)


def test_prior_fits_draw_the_models_priors(tmp_path):
    """`prior_fits` stands a fit's sites in for draws from the model's prior: the decay derived from
    it is the decay of the switch prior, simulated here by hand (12 LogNormal(ln 1/900, 0.5) rates,
    2q = the summed leave rates of the two trend states)."""
    import jax

    from bayesmm.calibration.derive import prior_fits
    from bayesmm.calibration.simulation_check import sim_market, sim_session
    from bayesmm.models.regime import SWITCH_PRIOR

    session, _ = sim_session(jax.random.key(3), sim_market("trending"), 60.0)
    fake = _idata(**{"generator_per_s": np.zeros((2, 4, 4))})
    drawn = prior_fits({"regime": fake}, [session], num_draws=4000)["regime"].posterior["generator_per_s"].values[0]
    decay = -drawn[:, 0, 0] - drawn[:, 1, 1]
    rng = np.random.default_rng(1)
    by_hand = np.exp(rng.normal(np.log(SWITCH_PRIOR[0]), SWITCH_PRIOR[1], (200_000, 6))).sum(axis=1)
    for q in (0.05, 0.5, 0.95):
        assert np.quantile(decay, q) == pytest.approx(np.quantile(by_hand, q), rel=0.04), q
