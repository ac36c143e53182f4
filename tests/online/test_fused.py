"""The replay's fast path (`online.fused`, behind `replay.run`, `scan_from` and `Filter`) equals the
reference - `lax.scan` of `belief.update` as written (`replay.run_reference`) - to 1e-12 in float64:
on the bundled recordings, on a simulated market's feed, on drawn streams of every event kind
(invalid events, restarts, long gaps that need the transition matrix's squarings, extreme values),
under other settings of the belief (Gaussian returns, the Markov decay, the regime's verdict, the
tape and other venues), and in the gradient the tuner takes through it. Float32 agrees with
float64's reference to the float32 tolerance of the replay tests."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bayesmm.events import ingest, to_arrays
from bayesmm.online.belief import Event
from bayesmm.online.fused import transition_matrices
from bayesmm.online.kernels import transition_matrix
from bayesmm.online.params import default_config, replace
from bayesmm.online.replay import as_events, run, run_reference
from tests.conftest import HL, PERP, SPOT
from tests.online.test_invariants import _random_stream

P = default_config()
SETTINGS = {
    "default": P,
    "gaussian_markov_pooled": replace(
        P, volatility=dict(return_df=0.0), drift=dict(regime_weight=0.7, return_weight=0.5),
        evidence=dict(markov_decay_weight=0.6, lambda_trade=0.3, lambda_imbalance=0.8, lambda_cv_per_bps=0.05,
                      survival_weight=0.5),
        regime=dict(p_taker_buy=(0.35, 0.65, 0.5, 0.5)),
        book=dict(flow_window_s=2.0, belief_weight=(0.2, 0.5, 1.0, 0.0), imbalance_weight=(-1.5, -0.6, -0.3, 0.1),
                  ofi_weight=(-0.5, -0.2, 0.0, 0.3), trade_flow_weight=(0.2, -0.4, 0.1, 0.0),
                  move_weight=(0.7, 0.1, -0.2, 0.0), imbalance_var=(0.1, 0.3, 0.0, 1.0),
                  move_var=(0.05, 0.0, 0.2, 0.0), abs_move_bps=(0.3, 0.8, 2.0, 3.0), fair_value_horizon_s=5.0,
                  adapt_trend_var=(0.3, 0.2, 0.5, 0.1), adapt_scale_var=(0.5, 1.0, 0.2, 2.0), adapt_timescale_s=20.0)),
}


def _assert_equal(got, want, atol=1e-12):
    """Equal to 1e-12, absolute or relative (a log-odds of 150, reached on the drawn streams' extreme
    books, holds 1e-13 relative: the rounding of its terms' different grouping)."""
    for name in want._fields:
        a, b = np.asarray(getattr(want, name), np.float64), np.asarray(getattr(got, name), np.float64)
        np.testing.assert_array_equal(np.isfinite(b), np.isfinite(a), err_msg=name)
        np.testing.assert_allclose(b, a, atol=atol, rtol=atol, err_msg=name)


def _with_restarts(ev: Event, every: int) -> Event:
    seg = (np.arange(len(np.asarray(ev.dt_s))) % every == every - 1).astype(np.float64)
    return ev._replace(segment_start=seg)


@pytest.mark.parametrize("path", [PERP, SPOT, HL], ids=["perp", "spot", "hyperliquid"])
def test_fast_replay_equals_the_reference_on_the_recordings(path):
    ev = as_events(to_arrays(ingest(path)[0]), np.float64)
    _assert_equal(run(ev, P), run_reference(ev, P))


def test_fast_replay_equals_the_reference_on_a_simulated_market():
    """The feed a recorder would write of a simulated trending market (`sim.session`: book, mid
    ticks, the tape; 150 s), read by the belief the market's truth implies (`sim.truth`: the
    regimes' own drifts, rates and tape law, the Markov decay)."""
    import bayesmm.sim  # noqa: F401  (float64)
    from bayesmm.calibration.simulation_check import sim_market
    from bayesmm.sim.exchange import exchange_params
    from bayesmm.sim.market import simulate
    from bayesmm.sim.session import session_from_path
    from bayesmm.sim.truth import matched_config

    m = sim_market("trending")
    ev = as_events(to_arrays(session_from_path(simulate(jax.random.key(5), m, 1500), m)), np.float64)
    cfg = matched_config(m, exchange_params(), tape=True, regime_sign=True)
    _assert_equal(run(ev, cfg), run_reference(ev, cfg))


@pytest.mark.parametrize("setting", sorted(SETTINGS))
@pytest.mark.parametrize("scenario", ["mixed", "same_side_fills", "extreme"])
def test_fast_replay_equals_the_reference_on_drawn_streams(scenario, setting):
    """Every kind, invalid events (5%), dt from 0 to 5 h (squarings of the transition matrix), returns
    up to +-50%, depths through the mid, at infinity or NaN; restarts every 97 events."""
    ev = _with_restarts(_random_stream(3, scenario), 97)
    ev = as_events(ev, np.float64)
    assert set(np.unique(np.asarray(ev.kind)).tolist()) == (set(range(7)) if scenario != "same_side_fills" else {3})
    _assert_equal(run(ev, SETTINGS[setting]), run_reference(ev, SETTINGS[setting]))


def test_fast_gradient_equals_the_reference():
    """The tuner's gradient: d(mean log p of the sign)/d(every parameter) through both paths agree to
    1e-9 relative (the paths' rounding differs at 1e-15; a gradient amplifies it no more) - but for the
    prior variances of what the forecasts learn online, whose gradient runs through the learning step's
    eta^2 (1e13 on this stream's 50% moves, log-odds of 5e6) and so amplifies that rounding a billion-fold:
    to 1e-5 (the tuner replays without the online learning and never takes it)."""
    ev = as_events(_with_restarts(_random_stream(7, "mixed"), 211), np.float64)
    ev = Event(*(x[:700] for x in ev))  # every kind, three restarts: the gradient's compile is most of the cost
    # the tuner's setting: what the forecasts learn online is off in its replays (`calibration.tune`)
    cfg = replace(SETTINGS["gaussian_markov_pooled"], book=dict(adapt_trend_var=(0.0,) * 4, adapt_scale_var=(0.0,) * 4))

    def loss(path):
        return jax.grad(lambda p: jnp.mean(jax.nn.log_sigmoid(path(ev, p).log_odds)))(cfg)

    ref = jax.tree_util.tree_flatten_with_path(loss(run_reference))[0]
    for (path, a), b in zip(ref, jax.tree_util.tree_leaves(loss(run)), strict=True):
        a, b = np.asarray(a), np.asarray(b)
        rtol = 1e-5 if "adapt_" in jax.tree_util.keystr(path) else 1e-9
        np.testing.assert_allclose(b, a, rtol=rtol, atol=1e-12 * (1.0 + np.max(np.abs(a))),
                                   err_msg=jax.tree_util.keystr(path))


def test_float32_fast_path_is_within_the_float32_tolerance():
    ev = _random_stream(2, "mixed")
    want = run_reference(as_events(ev, np.float64), P)
    got = run(as_events(ev, np.float32), default_config(np.float32))
    assert got.p_down.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(got.p_down), np.asarray(want.p_down), atol=2e-3)
    np.testing.assert_allclose(np.asarray(got.sigma_bps_sqrt_s), np.asarray(want.sigma_bps_sqrt_s), rtol=1e-3)


def test_batched_transition_matrices_equal_the_reference_expm():
    """Each dt's expm(Q dt), from 0 through the squarings' range (hours at the default rates), equals
    `kernels.transition_matrix` to 1e-13, and is a stochastic matrix."""
    q = jnp.asarray(P.regime.rates_per_s)
    dt = jnp.asarray([0.0, 1e-9, 1e-3, 0.7, 24.9, 25.1, 60.0, 600.0, 3.6e3, 1.8e4, 1e5])
    got = transition_matrices(q, dt)
    for i, d in enumerate(np.asarray(dt)):
        np.testing.assert_allclose(np.asarray(got[i]), np.asarray(transition_matrix(q, d)), atol=1e-13, rtol=0)
    np.testing.assert_allclose(np.asarray(got).sum(axis=-1), 1.0, atol=1e-13)


def test_empty_batch():
    ev = as_events(Event(*(np.zeros(0) for _ in Event._fields)), np.float64)
    assert run(ev, P).p_down.shape == (0,)


def test_replay_without_online_learning_is_exact_where_nothing_is_learnt():
    """`run(..., adapt=False)` (the tuner's replays) equals the full replay where the config's
    `book.adapt_*_var` are 0, and differs where they are not (the check is not of a no-op)."""
    ev = as_events(_with_restarts(_random_stream(5, "mixed"), 97), np.float64)
    cfg = SETTINGS["gaussian_markov_pooled"]
    off = replace(cfg, book=dict(adapt_trend_var=(0.0,) * 4, adapt_scale_var=(0.0,) * 4))
    _assert_equal(run(ev, off, adapt=False), run(ev, off))
    assert not np.allclose(np.asarray(run(ev, cfg, adapt=False).log_odds_h), np.asarray(run(ev, cfg).log_odds_h))
