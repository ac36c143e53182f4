"""The ground-truth market against its own parameters (Monte Carlo within standard errors), the
exchange's fill rules, and the filter parameters the truth implies."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import bayesmm.sim  # noqa: F401
from bayesmm.sim.exchange import Ladder, exchange_params, match
from bayesmm.sim.market import market_params, simulate
from bayesmm.sim.scenarios import make_scenario
from bayesmm.sim.truth import matched_config


def test_market_moments_match_parameters():
    """Held in one regime: returns have sd sigma_bar sqrt(dt) and mean mu dt; takers arrive at
    lambda_u (+ lambda_i on the drift's side); tolerances are 6 standard errors."""
    m = market_params(initial_regime_probs=(1, 0, 0, 0), regime_switch_per_s=1e-9, initial_drift_bps_s=-2.0,
                      trend_drift_bps_s=2.0, sigma_mu_bps_s_sqrt_s=1e-6, xi_per_sqrt_s=1e-6,
                      vol_level_bps_sqrt_s=(3.0, 3.0, 2.0, 6.0), informed_rate_per_s=(0.6, 0.6, 0.0, 0.3))
    n = 50_000
    path = simulate(jax.random.key(0), m, n)
    ret = np.asarray(path.ret_bps)
    sd = 3.0 * math.sqrt(0.1)
    assert ret.std() == pytest.approx(sd, rel=6 / math.sqrt(2 * n))
    assert ret.mean() == pytest.approx(-2.0 * 0.1, abs=6 * sd / math.sqrt(n))
    buys, sells = np.asarray(path.taker_buys), np.asarray(path.taker_sells)
    assert buys.mean() == pytest.approx(0.1, abs=6 * math.sqrt(0.1 / n))
    assert sells.mean() == pytest.approx(0.16, abs=6 * math.sqrt(0.16 / n))
    assert (np.asarray(path.regime) == 0).all()
    np.testing.assert_allclose(np.asarray(path.toxicity), 0.6 / 2.6)
    mid = np.asarray(path.mid_px)
    np.testing.assert_allclose(mid, 28.4 * np.exp(np.cumsum(ret) / 1e4), rtol=1e-10)


def test_regime_switching_rate():
    """Time spent per visit to a regime is exponential with mean 1 / exit rate (here 1/20 s)."""
    m = market_params(regime_switch_per_s=1 / 20.0)
    path = simulate(jax.random.key(1), m, 100_000)
    r = np.asarray(path.regime)
    switches = np.count_nonzero(np.diff(r))
    expected = 100_000 * 0.1 / 20.0 * (1 - 0.0)  # every exit lands in another state
    assert switches == pytest.approx(expected, rel=6 / math.sqrt(expected))


def test_exchange_crossing_sweep_and_partial_fill():
    """A bid above the market's best ask fills whole at its price; takers sweep from the touch and
    the last level fills partially."""
    ex = exchange_params(kappa_per_bps=1e-9)  # every taker fills
    ladder = Ladder(bid_px=jnp.asarray([100.5, 99.0, 98.0]), bid_qty=jnp.asarray([1.0, 1.0, 1.0]),
                    ask_px=jnp.asarray([101.0, 102.0, 103.0]), ask_qty=jnp.asarray([1.0, 1.0, 1.0]))
    # market mid 100, spread 0.4 bps -> best ask 100.002 < our bid 100.5: crossed
    new, f = match(jax.random.key(0), ladder, 100.0, 0.4, 3.0, 3.0, 0.0, 0.5, ex)
    assert float(f.bid_qty) == pytest.approx(1.0 + 1.5)  # crossed level + 3 takers x 0.5
    assert float(f.bid_value) == pytest.approx(100.5 + 99.0 + 0.5 * 98.0)
    np.testing.assert_allclose(np.asarray(new.bid_qty), [0.0, 0.0, 0.5])
    assert float(f.ask_qty) == pytest.approx(1.5) and float(f.ask_value) == pytest.approx(101.0 + 0.5 * 102.0)
    np.testing.assert_allclose(np.asarray(new.ask_qty), [0.0, 0.5, 1.0])


def test_fill_probability_decays_with_depth():
    """Each taker fills a touch at depth d with probability e^{-kappa d}: 5,000 steps of 2 takers at
    7 bps, kappa 0.2."""
    ex = exchange_params(kappa_per_bps=0.2)
    px = 100.0 * (1 - 7e-4)
    ladder = Ladder(jnp.asarray([px]), jnp.asarray([1e9]), jnp.asarray([200.0]), jnp.asarray([0.0]))
    keys = jax.random.split(jax.random.key(3), 5_000)
    counts = jax.vmap(lambda k: match(k, ladder, 100.0, 1.0, 0.0, 2.0, 0.0, 1.0, ex)[1].bid_count)(keys)
    p = math.exp(-1.4)
    assert float(jnp.sum(counts)) == pytest.approx(10_000 * p, abs=6 * math.sqrt(10_000 * p * (1 - p)))


def test_matched_filter_parameters():
    """lambda_fill = ln(1 + lambda_i / lambda_u) in the selloff's regime; 0 where no flow is informed."""
    s = make_scenario("hype_selloff")
    p = matched_config(s.market, s.exchange)
    assert float(p.evidence.lambda_fill) == pytest.approx(math.log(1 + 0.8 / 1.0))
    assert float(p.evidence.lambda_trade) == 0.0  # the closed loop's filter reads our fills, not the tape
    assert float(matched_config(s.market, s.exchange, tape=True).evidence.lambda_trade) == pytest.approx(
        math.log(1 + 0.8 / 1.0))
    q = matched_config(make_scenario("quiet").market, s.exchange)
    assert float(q.evidence.lambda_fill) == 0.0
    r = matched_config(s.market, s.exchange, tape=True, regime_sign=True)  # the HMM's verdict alone
    assert (float(r.drift.regime_weight), float(r.drift.return_weight)) == (1.0, 0.0)
    assert float(r.evidence.lambda_trade) == float(r.evidence.lambda_fill) == 0.0


def test_matched_decay_is_how_fast_the_sign_goes_stale():
    """In a trend the sign lasts as long as the trend (2q: the selloff's chain leaves it at 1e-4 per
    s); in a market without trends (quiet, vol_spike) the drift is the OU's and its sign relaxes at
    theta_mu - not 2e-6, which let evidence pile up for ever; a 50/50 mix weighs the two."""
    s = make_scenario("hype_selloff")
    assert float(matched_config(s.market, s.exchange).evidence.theta_decay_per_s) == pytest.approx(2e-4)
    for name in ("quiet", "vol_spike"):
        m = make_scenario(name).market
        assert float(matched_config(m, s.exchange).evidence.theta_decay_per_s) == pytest.approx(
            float(m.theta_mu_per_s))
    half = market_params(regime_switch_per_s=1 / 300.0, initial_regime_probs=(0.25, 0.25, 0.5, 0.0))
    q = -float(np.asarray(half.regime_rates_per_s)[0, 0])
    assert float(matched_config(half, s.exchange).evidence.theta_decay_per_s) == pytest.approx(
        0.5 * 2 * q + 0.5 * float(half.theta_mu_per_s))


@pytest.mark.parametrize("market", ["trending", "mean_reverting"])
def test_the_regime_filter_is_the_truth_implied_sign_reader(market):
    """On a 20-minute recording of each validation market (calibration.simulation_check), the regime HMM
    with the market's own parameters reads the hidden sign of the drift (Brier score) better than
    the spec's defaults and better than the additive evidence with its truth-implied per-print
    weight, which sums the uninformed prints between trends (sim.truth.matched_config)."""
    from bayesmm.calibration.simulation_check import hidden_sign_brier, sim_market, sim_session
    from bayesmm.online.params import default_config

    m = sim_market(market)
    session, path = sim_session(jax.random.key(2), m, 1200.0)
    regime = hidden_sign_brier(matched_config(m, exchange_params(), initial=False, tape=True, regime_sign=True),
                               session, path)
    additive = hidden_sign_brier(matched_config(m, exchange_params(), initial=False, tape=True), session, path)
    assert regime < hidden_sign_brier(default_config(), session, path)
    assert regime < additive


@pytest.mark.parametrize(("n", "p"), [(0.0, 0.3), (3.0, 0.25), (20.0, 0.9), (5.0, 1.0), (7.0, 0.0)])
def test_binomial_small_matches_the_distribution(n, p):
    """Mean and variance of 20,000 draws within 6 standard errors of n p and n p (1 - p)."""
    from bayesmm.sim.sampling import binomial_small

    draws = np.asarray(jax.vmap(lambda k: binomial_small(k, n, p))(jax.random.split(jax.random.key(0), 20_000)))
    assert draws.min() >= 0 and draws.max() <= n
    mean, var = n * p, n * p * (1 - p)
    assert draws.mean() == pytest.approx(mean, abs=6 * math.sqrt(var / 20_000) + 1e-12)
    if var > 0:
        assert draws.var() == pytest.approx(var, rel=6 * math.sqrt(2 / 20_000) + 0.02)


@pytest.mark.parametrize("rate", [0.0, 0.05, 0.8, 6.0])
def test_poisson_small_matches_the_distribution(rate):
    from bayesmm.sim.sampling import poisson_small

    draws = np.asarray(jax.vmap(lambda k: poisson_small(k, rate))(jax.random.split(jax.random.key(1), 20_000)))
    assert draws.mean() == pytest.approx(rate, abs=6 * math.sqrt(rate / 20_000) + 1e-12)
    if rate > 0:
        assert draws.var() == pytest.approx(rate, rel=0.05)
