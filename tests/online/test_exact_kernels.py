"""The filters against independent exact computations: the dense joint Gaussian for the Kalman
drift, a plain NumPy/SciPy forward algorithm for the regime HMM, SciPy's expm for the transition."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import expm as scipy_expm
from scipy.stats import norm
from scipy.stats import t as student_t

from bayesmm.online.kernels import transition_matrix
from bayesmm.online.params import default_config, replace, symmetric_generator
from bayesmm.online.replay import run
from tests.online.helpers import stream


@pytest.mark.parametrize("dt", [0.0, 1e-6, 1e-3, 0.1, 2.0, 7.49, 7.51, 60.0, 3600.0 * 10])
def test_transition_matrix_equals_expm(dt):
    """Scaling-and-squaring Taylor equals SciPy's expm: to 1e-14 for gaps up to a minute (no or few
    squarings), 1e-11 for a 10-hour gap (rounding grows with 15 squarings); rows sum to 1."""
    q = np.array([[-0.003, 0.001, 0.0015, 0.0005], [0.002, -0.004, 0.001, 0.001],
                  [0.0001, 0.0002, -0.0004, 0.0001], [0.01, 0.01, 0.02, -0.04]])
    got = np.asarray(transition_matrix(q, dt))
    np.testing.assert_allclose(got, scipy_expm(q * dt), atol=1e-14 if dt <= 60 else 1e-11, rtol=0)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-13)


def _tick_stream(seed, n=12):
    rng = np.random.default_rng(seed)
    rows, gaps = [], rng.exponential(2.0, n)
    for g in gaps:
        rows.append({"kind": "book_update", "dt_s": g * 0.3})
        rows.append({"kind": "mid_tick", "dt_s": g * 0.7, "ret_dt_s": g, "ret_bps": rng.normal(-1.0, 3.0)})
    return rows


def test_kalman_drift_equals_dense_gaussian():
    """Posterior of mu at the last tick = conditioning the OU joint Gaussian of mu(t_1..t_n) on
    ret_i = mu(t_i) dt_i + e_i, e_i ~ N(0, sigma^2 (dt_i + noise)), computed densely."""
    p = replace(default_config(), volatility=dict(prior_strength_obs=1e12, return_df=0.0),  # the Gaussian law
                drift=dict(theta_mu_per_s=0.01, sigma_mu_bps_s_sqrt_s=0.5))
    rows = _tick_stream(1)
    b = run(stream(rows), p)
    t = np.cumsum([r["dt_s"] for r in rows])
    ticks = [i for i, r in enumerate(rows) if r["kind"] == "mid_tick"]
    tt = t[ticks]
    dt = np.array([rows[i]["ret_dt_s"] for i in ticks])
    y = np.array([rows[i]["ret_bps"] for i in ticks])
    theta, s_mu, sig, tau = 0.01, 0.5, float(p.volatility.sigma_long_bps_sqrt_s), float(p.drift.return_noise_s)
    v = s_mu**2 / (2 * theta)
    k_mm = v * np.exp(-theta * np.abs(tt[:, None] - tt[None, :]))
    h = np.diag(dt)
    s = h @ k_mm @ h.T + np.diag(sig**2 * (dt + tau))
    gain = k_mm[-1] @ h.T @ np.linalg.inv(s)
    mean = gain @ y
    var = k_mm[-1, -1] - gain @ h @ k_mm[:, -1]
    last = ticks[-1]
    assert float(b.drift_mean_bps_s[last]) == pytest.approx(mean, abs=1e-9)
    assert float(b.drift_sd_bps_s[last]) == pytest.approx(np.sqrt(var), abs=1e-9)
    # and the tick log-odds is log Phi(-m/s) - log Phi(m/s), with no other evidence in the stream
    z = -mean / np.sqrt(var)
    assert float(b.log_odds[last]) == pytest.approx(norm.logcdf(z) - norm.logcdf(-z), abs=1e-8)


@pytest.mark.parametrize("df", [0.0, 4.0])
def test_regime_filter_equals_numpy_forward_algorithm(df):
    """P(regime) after a stream of ticks, fills and AS events equals a NumPy forward pass:
    predict with expm(Q dt) and no-fill survival exp(-rate dt), then multiply by each emission
    (a return's: Gaussian, or SciPy's Student-t with the configured degrees of freedom)."""
    q = symmetric_generator(0.05)
    p = replace(default_config(), regime=dict(rates_per_s=q), volatility=dict(return_df=df))
    rows = _tick_stream(2, n=8)
    rows += [{"kind": "own_fill", "side": 1, "dt_s": 0.4}, {"kind": "own_fill", "side": -1, "dt_s": 1.1},
             {"kind": "adverse_selection", "side": 1, "as_bps": 12.0, "spread_bps": 5.0, "dt_s": 3.0},
             {"kind": "trade_print", "side": 1, "dt_s": 0.2}]
    b = run(stream(rows), p)
    belief = np.full(4, 0.25)
    pp = {k: np.asarray(getattr(p.regime, k)) for k in p.regime._fields}
    sigma_long, noise = float(p.volatility.sigma_long_bps_sqrt_s), float(p.drift.return_noise_s)
    for r in rows:
        belief = scipy_expm(q * r["dt_s"]).T @ belief
        belief = belief * np.exp(-pp["fill_rate_per_s"] * r["dt_s"])
        if r["kind"] == "mid_tick":
            dt = r["ret_dt_s"]
            sd = sigma_long * pp["vol_mult"] * np.sqrt(dt + noise)
            law = norm(pp["drift_bps_s"] * dt, sd) if df == 0 else student_t(df, pp["drift_bps_s"] * dt, sd)
            belief = belief * law.pdf(r["ret_bps"])
        elif r["kind"] == "own_fill":
            pb = pp["p_buy_fill"]
            belief = belief * (pb if r["side"] > 0 else 1 - pb) * pp["fill_rate_per_s"]
        elif r["kind"] == "adverse_selection":
            belief = belief * norm.pdf(r["as_bps"], pp["as_mean_bps"], pp["as_sd_bps"])
        elif r["kind"] == "trade_print":
            pt = pp["p_taker_buy"]
            belief = belief * (pt if r["side"] > 0 else 1 - pt)
        belief = belief / belief.sum()
    np.testing.assert_allclose(np.asarray(b.p_regime[-1]), belief, atol=1e-10)


@pytest.mark.parametrize("dt", [0.5, 600.0])
def test_transition_matrix_gradient(dt):
    """Reverse-mode gradient of an entry of expm(Q dt) w.r.t. a rate (both branches) equals a
    central finite difference of SciPy's expm (the offline models differentiate through it)."""
    import jax

    q = symmetric_generator(0.01)
    f = lambda x: transition_matrix(q + x * (np.eye(4)[0:1].T @ np.eye(4)[1:2] - np.eye(4)[0:1].T @ np.eye(4)[0:1]),  # noqa: E731
                                    dt)[0, 1]
    g = float(jax.grad(f)(0.0))
    e = 1e-6
    bump = np.zeros((4, 4))
    bump[0, 1], bump[0, 0] = 1.0, -1.0
    fd = (scipy_expm((q + e * bump) * dt)[0, 1] - scipy_expm((q - e * bump) * dt)[0, 1]) / (2 * e)
    assert g == pytest.approx(fd, rel=1e-6)
