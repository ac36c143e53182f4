"""The closed loop against the issue's targets, computed from simulations (nothing asserted from
constants): the incident scenario, the quiet market, calibration of p_down against the hidden
drift, and exact accounting."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import bayesmm.sim  # noqa: F401  (float64)
from bayesmm.online.params import default_config, replace
from bayesmm.sim.batch import run_scenario
from bayesmm.sim.market import simulate
from bayesmm.sim.run import closed_loop_jit, simulate_and_run
from bayesmm.sim.scenarios import loop_params, make_scenario
from bayesmm.sim.scoring import brier, ece, oracle_filter, score_runs

SEEDS = 100


@pytest.fixture(scope="module")
def selloff():
    s = make_scenario("hype_selloff")
    # the Bayesian quoter on 100 seeds (the share test's issue asks >= 100); the references it is
    # compared with on the first 50 of them (their medians move by less than the margins asserted)
    return s, {q: run_scenario(s, q, seeds=SEEDS if q == "bayesian" else SEEDS // 2)
               for q in ("bayesian", "current_system", "glft")}


def test_selloff_position_pnl_and_reduce_only(selloff):
    """Over 100 seeds (50 for the other quoters): the Bayesian quoter's median max |position| is at
    most half of the current system's, its median P&L is higher, and it enters reduce-only within
    the first 6-8 bearish fills."""
    _, runs = selloff
    bayes, old = runs["bayesian"][2], runs["current_system"][2]
    assert np.median(bayes["max_abs_position"]) <= 0.5 * np.median(old["max_abs_position"])
    assert np.median(bayes["pnl"]) > np.median(old["pnl"])
    assert np.median(bayes["pnl"]) > np.median(runs["glft"][2]["pnl"])
    entered = np.isfinite(bayes["bearish_fills_before_reduce_only"])
    assert entered.mean() >= 0.95
    assert np.median(bayes["bearish_fills_before_reduce_only"][entered]) <= 8
    assert not np.isfinite(old["bearish_fills_before_reduce_only"]).any()  # the old system never reduces


def _downtrend_share(p_down, mu) -> float:
    """The share of the true-downtrend time (mu < 0) with p_down > 0.5."""
    down = np.asarray(mu) < 0
    return float(np.mean(np.asarray(p_down)[down] > 0.5))


def test_selloff_downtrend_read_like_the_oracle(selloff):
    """Issue 14: over the 100 seeds, with the truth-implied parameters and the Bayesian quoter, the
    filter reads the events the oracle particle filter reads (the returns and the public tape; our
    own fills, prints of that tape, get no weight: `sim.truth`), and p_down > 0.5 for a share of the
    true-downtrend time within 5 points of the oracle's (on 8 of the paths). A filter that reads our
    fills instead of the tape had 81.6% against the oracle's 99.8% before the survival term (the
    test below measures that case)."""
    s, runs = selloff
    paths, outs, _ = runs["bayesian"]
    sub = jax.tree_util.tree_map(lambda x: x[:8], paths)
    keys = jax.random.split(jax.random.key(0), 8)
    o_pd, _ = jax.vmap(lambda k, pth: oracle_filter(k, pth, s.market, 300))(keys, sub)
    oracle, ours = _downtrend_share(o_pd, sub.mu_bps_s), _downtrend_share(outs.p_down, paths.mu_bps_s)
    print(f"share of the downtrend with p_down > 0.5: filter {ours:.3f}, oracle {oracle:.3f}")
    assert ours >= oracle - 0.05, (ours, oracle)


def test_survival_term_removes_the_selection_bias():
    """A filter that reads our own fills and not the tape (`tape=False`), before and after, on 128
    held-out seeds (1000-1127): the same loop with the spec's fill evidence alone (survival_weight
    0) reads the downtrend far worse (the bias the term removes)."""
    s = make_scenario("hype_selloff")
    spec = replace(default_config(), evidence=dict(survival_weight=0.0))
    share = {}
    for label, base in (("after", None), ("before", spec)):
        paths, outs, _ = run_scenario(s, "bayesian", seeds=128, first_seed=1000, base=base, tape=False)
        share[label] = _downtrend_share(outs.p_down, paths.mu_bps_s)
    print(share)
    assert share["before"] < share["after"] - 0.1, share


def test_selloff_fills_are_toxic_for_the_old_system(selloff):
    """The scenario is the incident: the old system's fills carry AS in the spec's 18-25 bps range
    order of magnitude (trend 3.5 bps/s x 5 s horizon ~ 17.5 bps on informed fills)."""
    _, runs = selloff
    assert 5.0 < np.median(runs["current_system"][2]["as_per_fill_bps"]) < 25.0


def test_emergency_cancel_between_cycles():
    """A sweep at t = 1.0-1.5 s into a ladder deep enough to survive it: the burst detector fires and
    the rest of the swept side is cancelled before the next quote cycle (t = 3 s); plain GLFT (no
    emergency path) still has bids resting then."""
    s = make_scenario("hype_selloff")
    sweeps = np.zeros(s.num_steps)
    sweeps[10:16] = 1.0
    quoter = {**s.config_overrides["quoter"], "order_size_qty": 10.0}
    s = s._replace(sweep_sells=sweeps, config_overrides={**s.config_overrides, "quoter": quoter})
    bayes = run_scenario(s, "bayesian", seeds=40)[1]
    glft = run_scenario(s, "glft", seeds=40)[1]
    t = np.asarray(bayes.t_s[0])
    assert np.asarray(bayes.burst)[:, np.searchsorted(t, 1.6)].mean() > 0.9
    at = np.searchsorted(t, 2.9)
    assert np.isnan(np.asarray(bayes.bid_depth_bps)[:, at]).mean() > 0.9
    # without the emergency path most GLFT ladders still rest there (some are swept empty by chance)
    assert np.isfinite(np.asarray(glft.bid_depth_bps)[:, at]).mean() > 0.6


def test_quiet_market_costs_nothing():
    """quiet: under 5% of the time in reduce-only, and P&L within noise of plain GLFT: the median
    difference is under a quarter of the seed-to-seed sd, and the paired mean is within 5%."""
    s = make_scenario("quiet")
    bayes = run_scenario(s, "bayesian", seeds=SEEDS)[2]
    glft = run_scenario(s, "glft", seeds=SEEDS)[2]
    assert np.mean(bayes["reduce_only_fraction"]) < 0.05
    assert abs(np.median(bayes["pnl"]) - np.median(glft["pnl"])) < 0.25 * np.std(glft["pnl"])
    assert np.mean(bayes["pnl"] - glft["pnl"]) > -0.05 * abs(np.median(glft["pnl"]))


def test_p_down_calibrated_on_held_out_seeds():
    """whipsaw (trend reversals), seeds 1000-1039 (never used to set anything): expected calibration
    error of p_down against the true sign of mu <= 0.05; Brier better than climatology; and within
    issue 14's 1.1 x of the oracle's (a particle filter with the true parameters on the same
    returns and tape) - 1.54 x before the filter read the tape and forgot as the chain does
    (`evidence.markov_decay_weight`)."""
    s = make_scenario("whipsaw")
    paths, outs, _ = run_scenario(s, "bayesian", seeds=40, first_seed=1000)
    y = np.asarray(paths.mu_bps_s) < 0
    assert ece(outs.p_down, y) <= 0.05
    assert brier(outs.p_down, y) < brier(np.full(y.shape, y.mean()), y)
    sub = jax.tree_util.tree_map(lambda x: x[:8], (paths, outs))
    scores = score_runs(*sub, s.market, oracle_particles=300)
    print({k: round(v, 4) for k, v in scores.items()})
    assert scores["filter_brier"] <= 1.1 * scores["oracle_brier"]
    assert scores["filter_brier"] < scores["climatology_brier"]


def test_accounting_is_exact():
    """cash + position x mid equals the sum over fills of side x (mid_T - px) x qty, minus fees,
    plus the initial position's mark (mid_T - mid_0), to 1e-9; fees are 1.5 bps of notional."""
    s = make_scenario("hype_selloff")
    p = loop_params(s, "bayesian")
    path, out = jax.jit(simulate_and_run, static_argnums=3)(jax.random.key(7), s.market, p, s.num_steps,
                                                             np.asarray(s.sweep_sells))
    mid = np.asarray(out.mid_px)
    mid0 = float(path.mid_px[0] * np.exp(-path.ret_bps[0] / 1e4))
    bq, aq = np.asarray(out.bid_fill_qty), np.asarray(out.ask_fill_qty)
    bv, av = np.asarray(out.bid_fill_value), np.asarray(out.ask_fill_value)
    fees = 1.5e-4 * np.sum(bv + av)
    assert float(out.fees[-1]) == pytest.approx(fees, rel=1e-12)
    pos_t = 4.87 + np.sum(bq) - np.sum(aq)
    assert float(out.position[-1]) == pytest.approx(pos_t, abs=1e-9)
    pnl = np.sum(mid[-1] * bq - bv) + np.sum(av - mid[-1] * aq) - fees + 4.87 * (mid[-1] - mid0)
    assert float(out.equity[-1]) == pytest.approx(pnl, abs=1e-9)
    np.testing.assert_allclose(np.asarray(out.equity), np.asarray(out.cash) + np.asarray(out.position) * mid,
                               atol=1e-9)
    assert np.sum(bq) > 0 and np.sum(aq) > 0


def _burst_run(spike: bool, tolerance_bps: float = 0.5):
    """The selloff market, a sweep of our bid at 1.0-1.5 s into a ladder deep enough to survive it;
    with `spike`, the mid moves 10 bps in each of those steps (a fast market: latency x 5)."""
    s = make_scenario("hype_selloff")
    sweeps = np.zeros(s.num_steps)
    sweeps[10:16] = 1.0
    quoter = {**s.config_overrides["quoter"], "order_size_qty": 10.0}
    s = s._replace(sweep_sells=sweeps, config_overrides={**s.config_overrides, "quoter": quoter,
                                                          "orders": {"price_tolerance_bps": tolerance_bps}})
    p = loop_params(s, "bayesian")
    path = simulate(jax.random.key(3), s.market, s.num_steps)
    if spike:
        path = path._replace(ret_bps=path.ret_bps.at[10:17].set(-10.0))
    return closed_loop_jit(jax.random.key(4), path, p, jnp.asarray(sweeps))


def test_emergency_cancel_under_a_latency_spike():
    """Stage 7 in the closed loop, through `online.orders`: the burst's emergency cancel reaches the
    exchange cancel_latency (0.2 s) after it fires, or 5 x that in a fast market (latency x (1 +
    4) when the mid moved over 5 bps in the step); either way the swept bids are gone before the
    next quote cycle (3 s), and the asks stay."""
    gone = {}
    for spike in (False, True):
        out = _burst_run(spike)
        t = np.asarray(out.t_s)
        cancels = np.asarray(out.orders_cancelled)
        fired = int(np.flatnonzero((t > 1.0) & (t < 2.9) & (cancels > 0))[0])
        bids = np.asarray(out.bid_depth_bps)
        empty = int(np.flatnonzero(np.isnan(bids) & (np.arange(len(t)) > fired))[0])
        gone[spike] = t[empty] - t[fired]
        assert t[empty] < 3.0 and not np.isnan(np.asarray(out.ask_depth_bps)[empty])
    assert gone[False] == pytest.approx(0.2, abs=0.1 + 1e-9)
    assert gone[True] == pytest.approx(1.0, abs=0.1 + 1e-9)


def test_reconciler_tolerance_keeps_orders_that_barely_moved():
    """With a 3 bps price tolerance the quote cycles cancel and re-place fewer orders than with none
    (orders that moved less than the tolerance stay, the spec's stage 7 'diff desired vs resting')."""
    s = make_scenario("quiet")
    counts = {}
    for tol in (0.0, 3.0):
        s2 = s._replace(config_overrides={**s.config_overrides, "orders": {"price_tolerance_bps": tol}})
        out = run_scenario(s2, "bayesian", seeds=4)[1]
        counts[tol] = float(np.sum(np.asarray(out.orders_cancelled)))
    assert counts[3.0] < 0.8 * counts[0.0], counts


def test_tape_reading_belief_does_not_depend_on_our_quotes(selloff):
    """The truth-implied filter that reads the tape gives our own fills no weight (they are prints of
    that tape; which taker fills us is our depth's doing): its p_down is the same whichever quoter
    trades (50 seeds), to rounding - the selection effect of our quotes is gone by
    construction. The filter that reads our fills instead (`tape=False`) does depend on them."""
    s, runs = selloff
    glft = np.asarray(runs["glft"][1].p_down)
    np.testing.assert_allclose(np.asarray(runs["bayesian"][1].p_down)[:len(glft)], glft, atol=1e-9)
    f = {q: np.asarray(run_scenario(s, q, seeds=2, tape=False)[1].p_down) for q in ("bayesian", "glft")}
    assert np.max(np.abs(f["bayesian"] - f["glft"])) > 0.05


def test_the_loop_without_online_learning_is_the_same_where_it_learns_nothing():
    """`adapt=False` (what the loop runs for a config with no online learning, `learns_online`) gives
    the same run, bit for bit, where the config's adapt variances are 0; with them > 0 the belief
    learns and the run differs (so the flag is not a no-op; read at the 1 s horizon, whose forecasts
    resolve within the 30 s run)."""
    from bayesmm.online.params import replace
    from bayesmm.sim.run import learns_online

    s = make_scenario("hype_selloff")
    p = loop_params(s, "bayesian")
    assert not learns_online(p.config)
    path = simulate(jax.random.key(5), s.market, 300)
    a = closed_loop_jit(jax.random.key(6), path, p, None, adapt=True)
    b = closed_loop_jit(jax.random.key(6), path, p, None, adapt=False)
    for f in ("p_down", "fair_value_bps", "position", "equity"):
        np.testing.assert_array_equal(np.asarray(getattr(a, f)), np.asarray(getattr(b, f)), err_msg=f)
    learning = p._replace(config=replace(p.config, book={"adapt_trend_var": [1.0] * 4, "adapt_scale_var": [1.0] * 4,
                                                        "adapt_timescale_s": 60.0, "fair_value_horizon_s": 1.0}))
    assert learns_online(learning.config)
    c = closed_loop_jit(jax.random.key(6), path, learning, None, adapt=True)
    d = closed_loop_jit(jax.random.key(6), path, learning, None, adapt=False)
    assert not np.array_equal(np.asarray(c.p_down), np.asarray(d.p_down))
