"""Stages 2-7 against the spec's worked examples, the GLFT closed form, and
properties that must hold for any belief: no crossed quotes, sizes within capacity, reduce-only
never adds to the position."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bayesmm.online.belief import snapshot
from bayesmm.online.orders import Orders, apply_actions, desired_from_quote, emergency_cancel, reconcile
from bayesmm.online.params import default_config, replace
from bayesmm.online.quoter import (
    Market,
    QuoterState,
    drift_shift_bps,
    glft_coefficients,
    preset,
    quote,
    quoter_init,
    reduce_only_mode,
    touch_depths,
)


def quote_params(**quoter):
    """The spec's defaults with some `[quoter]` fields replaced."""
    return replace(default_config(), quoter=quoter)


def beliefs(p_down=0.5, mu=0.0, sigma=1.5, tox=0.25, regime=(0.25, 0.25, 0.25, 0.25), burst=0.0, burst_side=0.0,
            expected_as=21.0, magnitude=6.0, fair=0.0):
    """A belief snapshot; the realised AS mean defaults to the spec's stage-3 AS_scale of 21 bps."""
    f = lambda x: jnp.asarray(x, jnp.float64)  # noqa: E731
    return snapshot(f(p_down), t_s=f(0), mu_bps_s=f(mu), drift_magnitude_bps_s=f(magnitude), fair_value_bps=f(fair),
                   confidence=f(abs(2 * p_down - 1)),
                   drift_mean_bps_s=f(0), drift_sd_bps_s=f(1), sigma_bps_sqrt_s=f(sigma), vol_regime=jnp.asarray(1),
                   toxicity=f(tox), expected_as_bps=f(expected_as), p_regime=jnp.asarray(regime, jnp.float64),
                   burst=f(burst), burst_count=f(0),
                   burst_side=f(burst_side))


HYPE = Market(jnp.asarray(28.37), jnp.asarray(28.35), jnp.asarray(28.39), jnp.asarray(7.0), jnp.asarray(0.0))


def test_capped_drift_shift():
    """mu = -5 bps/s x 30 s = -150 bps, capped at 2 x 7 bps -> -14 bps (stage 2)."""
    assert float(drift_shift_bps(-5.0, 7.0, quote_params())) == pytest.approx(-14.0, abs=1e-12)
    assert float(drift_shift_bps(0.1, 7.0, quote_params())) == pytest.approx(3.0, abs=1e-12)  # under the cap
    ou = replace(default_config(), quoter=dict(use_ou_drift_shift=True, drift_cap_mult=100.0),
                 drift=dict(theta_mu_per_s=0.05))
    assert float(drift_shift_bps(-1.0, 7.0, ou)) == pytest.approx(-(1 - math.exp(-1.5)) / 0.05, rel=1e-12)


def test_section5_depths():
    """Half-spread 1.0 + 0.68 x 21 + 5 = 20.28 (spec: 20.3), shift -14 -> bid 34.3, ask 6.3 bps."""
    p = quote_params(fixed_half_spread_bps=1.0, use_inventory_skew=False, use_burst_premium=False)
    q, _ = quote(beliefs(p_down=0.98, mu=-5.8, tox=0.68, regime=(1, 0, 0, 0)), HYPE, jnp.asarray(4.13),
                 quoter_init(), p)
    assert float(q.half_spread_bps) == pytest.approx(20.28, abs=1e-9)
    assert float(q.bid_depth_bps) == pytest.approx(34.28, abs=1e-9)
    assert float(q.ask_depth_bps) == pytest.approx(6.28, abs=1e-9)
    assert round(float(q.bid_depth_bps), 1) == 34.3 and round(float(q.ask_depth_bps), 1) == 6.3


def test_stage4_example():
    """half 10, shift 8, inventory skew 3, burst premium 5 on the bid -> bid 26, ask -1 floored at 1.5."""
    bid, ask = touch_depths(10.0, -(8.0 + 3.0), 5.0, 0.0, 1.5)
    assert (float(bid), float(ask)) == (26.0, 1.5)
    # the same through `quote`: mu x 30 s = -8 bps, position chosen so that q sigma c2 = 3 bps
    p = quote_params(fixed_half_spread_bps=10.0, use_toxicity=False, use_regime=False)
    _, c2 = glft_coefficients(1.5, p)
    position = 3.0 / (1.5 * float(c2))
    q, _ = quote(beliefs(p_down=0.98, mu=-8.0 / 30, burst=1.0, burst_side=1.0), HYPE, jnp.asarray(position),
                 quoter_init(), p)
    assert float(q.inventory_skew_bps) == pytest.approx(3.0, abs=1e-9)
    assert float(q.bid_depth_bps) == pytest.approx(26.0, abs=1e-9)
    assert float(q.ask_depth_bps) == pytest.approx(1.5, abs=1e-12)


def test_reduce_only_at_098():
    """p_down 0.98, position +4.13 -> reduce-only: bid size 0, ask size min(4.13, max_reduce)."""
    q, s = quote(beliefs(p_down=0.98), HYPE, jnp.asarray(4.13), quoter_init(), quote_params())
    assert float(q.mode) == 1 and float(s.mode) == 1
    assert float(q.bid_size) == 0.0 and float(q.ask_size) == pytest.approx(4.13)
    assert float(jnp.sum(q.bid_qty)) == 0.0
    assert float(jnp.sum(q.ask_qty)) == pytest.approx(4.13, abs=1e-9)
    q, _ = quote(beliefs(p_down=0.98), HYPE, jnp.asarray(4.13), quoter_init(), quote_params(max_reduce_size_qty=2.0))
    assert float(q.ask_size) == pytest.approx(2.0)


def test_directional_sizing_without_reduce_only():
    """Spec stage 5: bid = base x 0.02, ask = base x 0.98 at p_down 0.98 (base 4: 0.08 and 3.92)."""
    q, _ = quote(beliefs(p_down=0.98), HYPE, jnp.asarray(0.0), quoter_init(),
                 quote_params(order_size_qty=4.0, use_reduce_only=False))
    assert float(q.bid_size) == pytest.approx(0.08, abs=1e-12)
    assert float(q.ask_size) == pytest.approx(3.92, abs=1e-12)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_hysteresis(sign):
    """Long: enter above 0.85, stay down to 0.70, leave below 0.70, no re-entry until above 0.85
    again; short: the mirror image (below 0.15 in, above 0.30 out)."""
    p = quote_params()
    path = [0.80, 0.86, 0.75, 0.71, 0.69, 0.80, 0.90]
    want = [0, 1, 1, 1, 0, 0, 1]
    mode = jnp.asarray(0.0)
    got = []
    for pd in path:
        pd = pd if sign > 0 else 1.0 - pd
        mode = reduce_only_mode(mode, jnp.asarray(pd), jnp.asarray(sign * 4.13), p)
        got.append(int(mode) * int(sign))
    assert got == want


def test_ladder_under_reduce_only():
    """The ask ladder sums to the stage-5 size and its sizes fall away from the touch."""
    q, _ = quote(beliefs(p_down=0.98, mu=-5.8, tox=0.68), HYPE, jnp.asarray(4.13), quoter_init(), quote_params())
    qty = np.asarray(q.ask_qty)
    assert qty.sum() == pytest.approx(4.13, abs=1e-9)
    assert (np.diff(qty) <= 1e-12).all() and qty[0] > qty[-1]
    depths = np.asarray(q.ask_level_depth_bps)
    np.testing.assert_allclose(np.diff(depths), 2.1)
    # prices on the Hyperliquid grid: 5 significant figures at $28 -> steps of 0.001
    px = np.asarray(q.ask_px)
    np.testing.assert_allclose(px * 1000, np.round(px * 1000), atol=1e-6)
    assert (px >= 28.37 * (1 + depths / 1e4) - 1e-12).all()  # asks round up, away from the market


def test_stage7_reconcile_20_cancels_6_places():
    """8 resting bids and 12 resting asks, desired 0 bids and 6 asks at new prices -> 20 cancels, 6 places."""
    side = jnp.asarray([1.0] * 8 + [-1.0] * 12 + [0.0] * 4)
    px = jnp.asarray([28.30 - 0.01 * i for i in range(8)] + [28.4005 + 0.01 * i for i in range(12)] + [0.0] * 4)
    resting = Orders(side, px, jnp.where(side != 0, 0.5, 0.0), (side != 0).astype(jnp.float64))
    q, _ = quote(beliefs(p_down=0.98, mu=-5.8, tox=0.68), HYPE, jnp.asarray(4.13), quoter_init(), quote_params())
    d_side, d_px, d_qty = desired_from_quote(q)
    actions = reconcile(resting, d_side, d_px, d_qty, price_tol=1e-6, size_tol=1e-9)
    assert actions.counts() == {"cancel": 20, "modify": 0, "place": 6}
    after = apply_actions(resting, actions)
    live = np.asarray(after.active) > 0
    got = sorted(zip(np.asarray(after.side)[live], np.round(np.asarray(after.px)[live], 6),
                     np.round(np.asarray(after.qty)[live], 9), strict=True))
    want = sorted((s, round(p, 6), round(x, 9)) for s, p, x in zip(np.asarray(d_side), np.asarray(d_px),
                                                                  np.asarray(d_qty), strict=True) if x > 0)
    assert got == want
    # reconciling the result again is a no-op
    assert reconcile(after, d_side, d_px, d_qty, 1e-6, 1e-9).counts() == {"cancel": 0, "modify": 0, "place": 0}


def test_reconcile_modifies_size_within_price_tolerance():
    resting = Orders(jnp.asarray([-1.0, 0.0]), jnp.asarray([28.40, 0.0]), jnp.asarray([1.0, 0.0]),
                     jnp.asarray([1.0, 0.0]))
    a = reconcile(resting, jnp.asarray([-1.0]), jnp.asarray([28.4004]), jnp.asarray([0.7]), 0.001, 1e-9)
    assert a.counts() == {"cancel": 0, "modify": 1, "place": 0} and float(a.new_qty[0]) == pytest.approx(0.7)


def test_emergency_cancel_swept_side():
    """A burst of our buy fills (side +1) cancels every resting bid at once, and no ask."""
    resting = Orders(jnp.asarray([1.0, 1.0, -1.0, 1.0]), jnp.ones(4), jnp.ones(4), jnp.asarray([1.0, 1.0, 1.0, 0.0]))
    np.testing.assert_array_equal(np.asarray(emergency_cancel(resting, 1.0, 1.0)), [1, 1, 0, 0])
    np.testing.assert_array_equal(np.asarray(emergency_cancel(resting, 1.0, -1.0)), [0, 0, 1, 0])
    np.testing.assert_array_equal(np.asarray(emergency_cancel(resting, 0.0, 1.0)), [0, 0, 0, 0])


def test_glft_closed_form_and_limit():
    """c1, c2 against an independent evaluation of Gueant (2017)'s formulas; c1 -> 1/kappa as gamma -> 0."""
    g, k, a, d = 0.05, 0.3, 2.0, 1.5
    c1, c2 = glft_coefficients(1.0, quote_params(gamma_per_bps_qty=g, kappa_per_bps=k, fill_intensity_per_s=a,
                                                 order_size_qty=d))
    assert float(c1) == pytest.approx(math.log(1 + g * d / k) / (g * d), rel=1e-12)
    assert float(c2) == pytest.approx(math.sqrt(g / (2 * a * d * k) * (1 + g * d / k) ** (k / (g * d) + 1)), rel=1e-12)
    c1, _ = glft_coefficients(1.0, quote_params(gamma_per_bps_qty=1e-9, kappa_per_bps=k))
    assert float(c1) == pytest.approx(1 / k, rel=1e-6)


def test_grid_rounding_is_relative():
    """A price exactly on a fine grid far from 1 in tick units stays where it is, on both sides: at
    100 with a 1e-6 tick, px / step ~ 1e8, where one float step (1.5e-8) exceeds an absolute guard of
    1e-9; a price between two ticks goes away from the market (bid down, ask up) by one tick."""
    import jax.numpy as jnp

    from bayesmm.online.quoter import round_price

    cfg = replace(default_config(), venue=dict(tick_size_px=1e-6, max_sig_figs=0.0, price_decimals=8.0))
    on_grid = jnp.asarray([100.000021, 100.000049, 100.000077, 100.000001, 3.000001])  # the first three: px / step
    # lands 1e-8 above the grid point, which an absolute guard put one tick up on the ask side
    for is_bid in (True, False):
        np.testing.assert_allclose(np.asarray(round_price(on_grid, is_bid, cfg)), np.asarray(on_grid), rtol=0,
                                   atol=1e-12)
    between = jnp.asarray([100.0000015])
    assert float(round_price(between, True, cfg)[0]) == pytest.approx(100.000001, abs=1e-12)
    assert float(round_price(between, False, cfg)[0]) == pytest.approx(100.000002, abs=1e-12)


def test_baselines_are_presets_of_the_same_quoter():
    """current_system: symmetric 7.02 bps touch whatever the belief; glft: no drift shift, skew from inventory."""
    q, _ = quote(beliefs(p_down=0.98, mu=-5.8, tox=0.68, regime=(1, 0, 0, 0), burst=1.0, burst_side=1.0), HYPE,
                 jnp.asarray(4.87), quoter_init(), preset("current_system"))
    assert float(q.bid_depth_bps) == pytest.approx(7.02) and float(q.ask_depth_bps) == pytest.approx(7.02)
    assert float(q.mode) == 0 and float(q.bid_size) > 0
    q, _ = quote(beliefs(p_down=0.98, mu=-5.8, tox=0.68), HYPE, jnp.asarray(4.87), quoter_init(), preset("glft"))
    assert float(q.drift_shift_bps) == 0.0 and float(q.toxicity_premium_bps) == 0.0
    assert float(q.ask_depth_bps) < float(q.bid_depth_bps)  # long: skewed to sell, by inventory only


def test_quotes_centre_on_the_fair_value_or_the_imbalance_lean():
    """bayesian and glft_micro centre on the belief's fair value: a fair value 2 bps above the mid moves
    the reservation price and both touches up by 2 bps against glft's (the mid); the imbalance maker
    leans by alpha x imbalance (0.75 x -0.5 = -0.375 bps); nothing else changes."""
    b, pos = beliefs(p_down=0.4, fair=2.0, tox=0.0), jnp.asarray(0.0)
    m = HYPE._replace(imbalance=jnp.asarray(-0.5))
    plain, _ = quote(b, m, pos, quoter_init(), preset("glft"))
    micro, _ = quote(b, m, pos, quoter_init(), preset("glft_micro"))
    lean, _ = quote(b, m, pos, quoter_init(), preset("imbalance", quote_params(imbalance_skew_bps=0.75)))
    assert float(plain.centre_bps) == 0.0 and float(micro.centre_bps) == pytest.approx(2.0, abs=1e-12)
    assert float(lean.centre_bps) == pytest.approx(-0.375, abs=1e-12)
    for q, shift in ((micro, 2.0), (lean, -0.375)):
        assert float(q.reservation_offset_bps - plain.reservation_offset_bps) == pytest.approx(shift, abs=1e-12)
        assert float(plain.bid_depth_bps - q.bid_depth_bps) == pytest.approx(shift, abs=1e-12)
        assert float(q.ask_depth_bps - plain.ask_depth_bps) == pytest.approx(shift, abs=1e-12)
    full, _ = quote(b, m, pos, quoter_init(), preset("bayesian", quote_params(imbalance_skew_bps=0.75)))
    assert float(full.centre_bps) == pytest.approx(2.0, abs=1e-12)  # the belief's own view, not the peer's lean


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_no_quote_crosses_when_the_fair_value_is_beyond_the_touch(sign):
    """A fair value 20 bps beyond a 1 bps spread with a 2 bps rebate puts the fee-floored touch at -2 bps,
    through the book; the quote is held one price step (the 0.001 tick) inside it instead: the ask at
    best bid + 0.001 when the fair value is below, the bid at best ask - 0.001 when above (each the
    mirror of the other)."""
    cfg = replace(default_config(), venue=dict(tick_size_px=0.001, max_sig_figs=0.0, price_decimals=3.0,
                                               maker_fee_bps=-2.0))
    m = Market(*(jnp.asarray(x) for x in (100.0, 99.995, 100.005, 1.0, 0.0)))
    q, _ = quote(beliefs(tox=0.0, fair=-20.0 * sign), m, jnp.asarray(0.0), quoter_init(), cfg)
    if sign > 0:
        assert float(q.ask_depth_bps) == -2.0 and float(q.ask_px[0]) == pytest.approx(99.996, abs=1e-9)
    else:
        assert float(q.bid_depth_bps) == -2.0 and float(q.bid_px[0]) == pytest.approx(100.004, abs=1e-9)


def test_vmap_over_parameter_sets_and_scan_with_the_belief():
    """One quote function vmapped over [bayesian, glft, current_system]; and belief + quoter in one scan."""
    from tests.online.helpers import fills, stream

    batch = jax.tree_util.tree_map(lambda *x: jnp.stack(x), quote_params(), preset("glft"), preset("current_system"))
    qs, _ = jax.vmap(lambda p: quote(beliefs(p_down=0.9, mu=-3.0, tox=0.5), HYPE, jnp.asarray(2.0),
                                     quoter_init(), p))(batch)
    assert qs.bid_depth_bps.shape == (3,) and float(qs.bid_depth_bps[2]) == pytest.approx(7.02)
    assert float(qs.drift_shift_bps[0]) < 0 and float(qs.drift_shift_bps[1]) == 0

    from bayesmm.online.belief import init, readout, update

    bp = qp = replace(default_config(), evidence=dict(theta_decay_per_s=0.0))
    ev = stream(fills(8, gap_s=0.5))

    @jax.jit
    def loop(ev):
        def step(carry, e):
            s, qs_ = carry
            s = update(s, e, bp)
            q, qs_ = quote(readout(s, bp), HYPE, jnp.asarray(4.0), qs_, qp)
            return (s, qs_), (q.mode, q.bid_size, q.ask_size)

        return jax.lax.scan(step, (init(bp), quoter_init()), ev)[1]

    mode, bid, ask = loop(ev)
    assert int(mode[-1]) == 1 and float(bid[-1]) == 0.0  # 8 buy fills (with bursts) -> reduce-only
    assert int(mode[0]) == 0


def test_toxicity_premium_uses_realised_as_unless_fixed():
    """pi x realised AS mean by default (0 when fills have not been adverse); a fixed AS_scale overrides."""
    q, _ = quote(beliefs(tox=0.5, expected_as=-3.0), HYPE, jnp.asarray(0.0), quoter_init(), quote_params())
    assert float(q.toxicity_premium_bps) == 0.0
    q, _ = quote(beliefs(tox=0.5, expected_as=8.0), HYPE, jnp.asarray(0.0), quoter_init(), quote_params())
    assert float(q.toxicity_premium_bps) == pytest.approx(4.0)
    q, _ = quote(beliefs(tox=0.5, expected_as=8.0), HYPE, jnp.asarray(0.0), quoter_init(),
                 quote_params(expected_as_bps=21.0))
    assert float(q.toxicity_premium_bps) == pytest.approx(10.5)


@settings(max_examples=60, deadline=None)
@given(p_down=st.floats(0, 1), mu=st.floats(-50, 50), sigma=st.floats(0.01, 100), tox=st.floats(0, 1),
       pos=st.floats(-30, 30), spread=st.floats(0.01, 100), burst=st.booleans(), bside=st.sampled_from([-1.0, 1.0]),
       prev=st.sampled_from([-1.0, 0.0, 1.0]), mid=st.floats(0.5, 200_000), fair=st.floats(-200, 200),
       fee=st.floats(-3, 3), imb=st.floats(-1, 1), alpha=st.floats(-50, 50))
def test_quote_properties(p_down, mu, sigma, tox, pos, spread, burst, bside, prev, mid, fair, fee, imb, alpha):
    """For any belief, fair value (beyond the touch included), imbalance lean and fee (a rebate
    included): bid < ask, no quote crosses the book, sizes in [0, capacity], reduce-only quotes only
    the reducing side."""
    p = replace(default_config(), venue=dict(tick_size_px=1e-6, price_decimals=6.0, maker_fee_bps=fee),
                quoter=dict(imbalance_skew_bps=alpha))
    half = mid * spread / 2e4
    m = Market(*(jnp.asarray(x) for x in (mid, mid - half, mid + half, spread, imb)))
    q, _ = quote(beliefs(p_down, mu, sigma, tox, burst=float(burst), burst_side=bside, fair=fair), m,
                 jnp.asarray(pos), QuoterState(jnp.asarray(prev)), p)
    bid_px, ask_px = np.asarray(q.bid_px), np.asarray(q.ask_px)
    assert bid_px.max() < ask_px.min()
    assert bid_px.max() < float(m.best_ask_px) and ask_px.min() > float(m.best_bid_px)
    bq, aq = np.asarray(q.bid_qty), np.asarray(q.ask_qty)
    assert (bq >= 0).all() and (aq >= 0).all()
    cap = max(float(p.quoter.order_size_qty), min(abs(pos), float(p.quoter.max_reduce_size_qty)))
    assert bq.sum() <= cap + 1e-9 and aq.sum() <= cap + 1e-9
    if float(q.mode) == 1:
        assert bq.sum() == 0 and pos > 0
    if float(q.mode) == -1:
        assert aq.sum() == 0 and pos < 0
