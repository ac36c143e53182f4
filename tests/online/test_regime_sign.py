"""The regime HMM's verdict on the drift's sign in p_down (`drift.regime_weight`, `belief.regime_log_odds`):
its closed form from the regime posterior the filter reports, its bound, and the mirror symmetry of the
whole of stage 1 with it switched on."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import logit

from bayesmm.online.belief import Event
from bayesmm.online.params import default_config, replace, symmetric_generator
from bayesmm.online.replay import as_events, run

N = 512  # fixed length: one compilation
ONLY_REGIME = replace(default_config(), drift=dict(regime_weight=1.0, return_weight=0.0),
                      evidence=dict(lambda_fill=0.0, lambda_as=0.0, lambda_burst=0.0))
POOLED = replace(default_config(), drift=dict(regime_weight=0.7),
                 evidence=dict(lambda_trade=0.3, lambda_imbalance=0.8, lambda_cv_per_bps=0.05),
                 regime=dict(p_taker_buy=(0.35, 0.65, 0.5, 0.5)),
                 book=dict(belief_weight=(0.3, 0.6, 1.0, 1.2), imbalance_weight=(-1.7, -0.6, -0.2, 0.0),
                           ofi_weight=(-0.4, -0.3, 0.1, 0.2), trade_flow_weight=(-0.2, 0.3, 0.0, -0.1),
                           move_weight=(0.8, 0.2, -0.3, 0.0), imbalance_var=(0.2, 0.1, 0.0, 0.5),
                           ofi_var=(0.1, 0.0, 0.0, 0.0), move_var=(0.3, 0.0, 0.1, 0.0),
                           abs_move_bps=(0.5, 1.0, 2.0, 3.0), fair_value_horizon_s=5.0,
                           trend_var=(0.1, 0.2, 0.3, 0.0), adapt_trend_var=(0.3, 0.2, 0.5, 0.1),
                           adapt_scale_var=(0.5, 1.0, 0.2, 2.0), adapt_timescale_s=20.0))


def _stream(seed: int, kinds=(0, 1, 2, 3, 4, 5, 6)) -> dict:
    rng = np.random.default_rng(seed)
    return dict(t_s=np.zeros(N), dt_s=rng.choice([0.0, 0.05, 0.5, 3.0], N), kind=rng.choice(kinds, N),
                side=rng.choice([-1.0, 1.0], N), size=rng.exponential(1.0, N), as_bps=rng.normal(5.0, 10.0, N),
                spread_bps=np.full(N, 2.0), ret_bps=rng.normal(-0.5, 3.0, N), ret_dt_s=np.full(N, 0.5),
                imbalance=rng.uniform(-0.9, 0.9, N), cv_ret_bps=rng.normal(0.0, 2.0, N), valid=np.ones(N),
                segment_start=np.zeros(N), depth_bps=rng.choice([0.0, 1.5, 4.0, 12.0, np.nan], N),
                ofi=rng.uniform(-1.0, 1.0, N))


def _run(cols: dict, cfg):
    cols = dict(cols, t_s=np.cumsum(cols["dt_s"]))
    return run(as_events(Event(**cols), np.float64), cfg)


def test_regime_verdict_is_the_posterior_probability_of_a_downtrend():
    """With only the regime's verdict (weight 1), p_down = P(trending_down) + (P(mean_reverting) +
    P(volatile)) / 2 of the regime posterior the same replay reports: the default drifts are
    (-6, +6, 0, 0), so P(mu < 0 | r) is 1, 0, 1/2, 1/2."""
    b = _run(_stream(0), ONLY_REGIME)
    pr = np.asarray(b.p_regime)
    expected = pr[:, 0] + 0.5 * (pr[:, 2] + pr[:, 3])
    lo = float(ONLY_REGIME.evidence.max_log_odds)
    np.testing.assert_allclose(np.asarray(b.log_odds), np.clip(logit(expected), -lo, lo), atol=1e-9)
    assert np.ptp(np.asarray(b.p_down)) > 0.3  # the stream moves it: the check is not of a constant


def test_regime_verdict_is_bounded():
    """A long run of mid ticks at the downtrend's own drift (-6 bps/s x 0.5 s), in a chain that
    almost never switches (so that nothing leaks back into the other regimes), makes the HMM certain
    of the downtrend (P(not down) far below e^-10); its verdict stops at max_log_odds, as a sum of
    evidence does, and is finite throughout."""
    cols = _stream(1, kinds=(0,))
    cols["ret_bps"] = np.full(N, -3.0)
    b = _run(cols, replace(ONLY_REGIME, regime=dict(rates_per_s=symmetric_generator(1e-9))))
    lo = float(ONLY_REGIME.evidence.max_log_odds)
    assert np.all(np.isfinite(np.asarray(b.log_odds)))
    assert float(np.max(np.abs(np.asarray(b.log_odds)))) == lo


def _mirror(cols: dict) -> dict:
    """The same world upside down: every side, return, imbalance, order flow and other-venue move negated (an
    adverse selection stays adverse: it is measured against our own fill's side; an own_quote's
    depth stays, on the other side: our bid at 4 bps becomes our ask at 4 bps)."""
    return dict(cols, side=-cols["side"], ret_bps=-cols["ret_bps"], imbalance=-cols["imbalance"],
                cv_ret_bps=-cols["cv_ret_bps"], ofi=-cols["ofi"])


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), pooled=st.booleans(), markov=st.sampled_from([0.0, 0.5, 1.0]))
def test_stage_one_is_mirror_symmetric(seed, pooled, markov):
    """Mirroring the events mirrors the belief: p_down -> 1 - p_down, mu -> -mu, the two trending
    regimes swap, volatility and toxicity unchanged, with the regime's verdict pooled with the
    returns, fills, our quotes' survival, tape, book and other venue (all weights on, and the book's
    per-horizon forecast with every feature weighted) or alone, under the spec's log-odds decay, the
    Markov chain's, or a blend (`evidence.markov_decay_weight`): every horizon's forecast and the fair value
    mirror too, with what each horizon learns online from its resolved forecasts (`online.adapt`)."""
    cfg = replace(POOLED if pooled else ONLY_REGIME, evidence=dict(markov_decay_weight=markov))
    cols = _stream(seed)
    a, m = _run(cols, cfg), _run(_mirror(cols), cfg)
    np.testing.assert_allclose(np.asarray(m.log_odds), -np.asarray(a.log_odds), atol=1e-9)
    np.testing.assert_allclose(np.asarray(m.log_odds_h), -np.asarray(a.log_odds_h), atol=1e-9)
    np.testing.assert_allclose(np.asarray(m.fair_value_bps), -np.asarray(a.fair_value_bps), atol=1e-9)
    if pooled:  # the book moves the forecasts: the check is not of a constant
        assert np.ptp(np.asarray(a.p_down_h)[:, 0]) > 0.3
    np.testing.assert_allclose(np.asarray(m.mu_bps_s), -np.asarray(a.mu_bps_s), atol=1e-9)
    np.testing.assert_allclose(np.asarray(m.p_regime), np.asarray(a.p_regime)[:, [1, 0, 2, 3]], atol=1e-9)
    np.testing.assert_allclose(np.asarray(m.sigma_bps_sqrt_s), np.asarray(a.sigma_bps_sqrt_s), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(m.toxicity), np.asarray(a.toxicity), rtol=1e-12)
