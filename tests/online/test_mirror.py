"""Mirror symmetry of stages 2-7: mirroring the world - position q -> -q, p_down -> 1 - p_down,
drift -> -drift, the fair value's offset and the book's imbalance negated, the burst's side flipped,
P(trending down) <-> P(trending up), resting orders
flipped around the mid - must swap the bid and the ask exactly: depths, sizes, ladders, reduce-only
mode and cancels. The spec writes the downtrend case of the incident; every rule must hold for its
mirror image. Values are drawn on dyadic grids so that 1 - p and -x are exact in floating point,
and the price grid is symmetric about the mid (mid on the grid, no significant-figure rule)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bayesmm.online.belief import snapshot
from bayesmm.online.orders import Orders, desired_from_quote, emergency_cancel, reconcile
from bayesmm.online.params import default_config, replace
from bayesmm.online.quoter import Market, QuoterState, quote

MID = 100.0
CFG = replace(default_config(), venue=dict(tick_size_px=0.01, max_sig_figs=0.0, price_decimals=2.0, sz_decimals=3.0),
              quoter=dict(order_size_qty=1.0, max_position_qty=8.0, max_reduce_size_qty=3.0, imbalance_skew_bps=0.75))


def _beliefs(p_down, mu, sigma, tox, regime, burst, burst_side, magnitude, fair=0.0):
    f = lambda x: jnp.asarray(x, jnp.float64)  # noqa: E731
    return snapshot(f(p_down), t_s=f(0), mu_bps_s=f(mu), drift_magnitude_bps_s=f(magnitude), fair_value_bps=f(fair),
                   confidence=f(abs(2 * p_down - 1)), drift_mean_bps_s=f(mu), drift_sd_bps_s=f(1),
                   sigma_bps_sqrt_s=f(sigma), vol_regime=jnp.asarray(1), toxicity=f(tox), expected_as_bps=f(12.0),
                   p_regime=jnp.asarray(regime, jnp.float64), burst=f(burst), burst_count=f(5 * burst),
                   burst_side=f(burst_side))


dyadic = st.integers(-1024, 1024).map(lambda k: k / 128.0)
_quote = jax.jit(quote)
_reconcile = jax.jit(reconcile)
_cancel = jax.jit(emergency_cancel)


@settings(max_examples=150, deadline=None)
@given(k=st.integers(0, 1024), mu=dyadic, q=st.integers(-640, 640).map(lambda i: i / 64.0),
       sigma=st.floats(0.05, 20.0), tox=st.floats(0.0, 1.0), spread=st.floats(0.5, 50.0),
       regime=st.lists(st.integers(1, 100), min_size=4, max_size=4), burst=st.booleans(),
       burst_side=st.sampled_from([-1.0, 1.0]), prev=st.sampled_from([-1.0, 0.0, 1.0]), magnitude=st.floats(0, 10),
       fair=dyadic, imb=st.integers(-128, 128).map(lambda i: i / 128.0))
def test_mirroring_the_world_swaps_bid_and_ask(k, mu, q, sigma, tox, spread, regime, burst, burst_side, prev,
                                               magnitude, fair, imb):
    p_down = k / 1024.0
    r = np.asarray(regime, float) / np.sum(regime)
    half = MID * spread / 2e4
    market = Market(*(jnp.asarray(x) for x in (MID, MID - half, MID + half, spread, imb)))
    mirror_market = market._replace(imbalance=jnp.asarray(-imb))
    b = _beliefs(p_down, mu, sigma, tox, r, float(burst), burst_side, magnitude, fair)
    m = _beliefs(1.0 - p_down, -mu, sigma, tox, r[[1, 0, 2, 3]], float(burst), -burst_side, magnitude, -fair)
    q1, s1 = _quote(b, market, jnp.asarray(q), QuoterState(jnp.asarray(prev)), CFG)
    q2, s2 = _quote(m, mirror_market, jnp.asarray(-q), QuoterState(jnp.asarray(-prev)), CFG)
    f = lambda x: np.asarray(x)  # noqa: E731
    assert f(q2.mode) == -f(q1.mode) and f(s2.mode) == -f(s1.mode)
    for a, c in (("bid", "ask"), ("ask", "bid")):
        for field in ("depth_bps", "size", "burst_premium_bps", "qty", "level_depth_bps"):
            np.testing.assert_array_equal(f(getattr(q1, f"{a}_{field}")), f(getattr(q2, f"{c}_{field}")),
                                          err_msg=f"{a}_{field}")
        np.testing.assert_allclose(2 * MID - f(getattr(q1, f"{a}_px")), f(getattr(q2, f"{c}_px")), atol=1e-9)
    assert f(q2.reservation_offset_bps) == -f(q1.reservation_offset_bps)
    assert f(q2.centre_bps) == -f(q1.centre_bps)
    assert f(q1.half_spread_bps) == f(q2.half_spread_bps)

    # stage 7: a resting book and its mirror image get the same cancels, modifies and places
    rng = np.random.default_rng(k)
    n = 8
    side = rng.choice([-1.0, 1.0], n)
    ticks = rng.integers(1, 40, n) * 0.01
    resting = Orders(jnp.asarray(side), jnp.asarray(MID - side * ticks), jnp.asarray(rng.integers(1, 4, n) * 0.25),
                     jnp.asarray((rng.uniform(size=n) < 0.8).astype(float)))
    mirrored = resting._replace(side=-resting.side, px=jnp.asarray(MID + side * ticks))
    np.testing.assert_array_equal(f(_cancel(resting, b.burst, b.burst_side)),
                                  f(_cancel(mirrored, m.burst, m.burst_side)))
    tol = 0.015  # between grid multiples: no match decided by a last-bit rounding difference
    a1 = _reconcile(resting, *desired_from_quote(q1), tol, 1e-9)
    d_side, d_px, d_qty = desired_from_quote(q2)
    a2 = _reconcile(mirrored, d_side, d_px, d_qty, tol, 1e-9)
    half_n = f(a1.place).shape[0] // 2
    np.testing.assert_array_equal(f(a1.cancel), f(a2.cancel))
    np.testing.assert_array_equal(f(a1.modify), f(a2.modify))
    np.testing.assert_array_equal(f(a1.place), np.concatenate([f(a2.place)[half_n:], f(a2.place)[:half_n]]))
