"""The real-feed replay's prints (`sim.feed`): every print of a busy step is matched, by the queue
model's own reading of the tape (volume at or through each of our levels), checked against the
prints themselves."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import bayesmm.sim  # noqa: F401  (float64)
from bayesmm.sim.exchange import Ladder, exchange_params
from bayesmm.sim.feed import MAX_TRADES, FeedPath, _prints_by_price, queue_fills

MID = 100.0


def _row(px, qty, side) -> FeedPath:
    """One step with these prints: spread 0.02 (best bid 99.99, best ask 100.01), nothing displayed."""
    f = lambda x: jnp.asarray(x, jnp.float64)  # noqa: E731
    return FeedPath(t_s=f(0.1), mid_px=f(MID), ret_bps=f(0.0), spread_bps=f(2.0), imbalance=f(0.0),
                    best_bid_sz=f(0.0), best_ask_sz=f(0.0), trade_px=f(px), trade_qty=f(qty), trade_side=f(side),
                    taker_buys=f(np.sum(np.asarray(side) > 0)), taker_sells=f(np.sum(np.asarray(side) < 0)))


def _ladder(bid_px, ask_px, qty=5.0) -> Ladder:
    return Ladder(jnp.asarray(bid_px, jnp.float64), jnp.full(len(bid_px), qty), jnp.asarray(ask_px, jnp.float64),
                  jnp.full(len(ask_px), qty))


def _fills(row, ladder):
    _, f = queue_fills(None, ladder, row, 0.0, 1.0, exchange_params())
    return np.array([float(f.bid_qty), float(f.ask_qty), float(f.bid_value), float(f.ask_value)])


def test_a_busy_steps_prints_are_all_matched():
    """30 prints at 6 prices (both sides) in one step, given to the queue model one per slot in
    shuffled order, and as the feed keeps them (volume per side and price): the same fills, and
    all the volume is kept. (The old feed merged a busy step's later prints into one slot at
    their extreme price, crediting volume that never traded there.)"""
    rng = np.random.default_rng(3)
    side = rng.choice([-1.0, 1.0], 30)
    px = np.where(side < 0, rng.choice([99.99, 99.97, 99.95], 30), rng.choice([100.01, 100.02, 100.06], 30))
    qty = rng.uniform(0.1, 2.0, 30)
    raw = np.zeros(MAX_TRADES), np.zeros(MAX_TRADES), np.zeros(MAX_TRADES)
    order = rng.permutation(30)
    for arr, v in zip(raw, (px[order], qty[order], side[order]), strict=True):
        arr[:30] = v
    kept_px, kept_qty, kept_side, moved = _prints_by_price(np.zeros(30, int), px, qty, side, 1)
    assert moved == 0.0 and kept_qty.sum() == pytest.approx(qty.sum(), rel=1e-12)
    assert np.count_nonzero(kept_qty) == len(set(zip(px, side, strict=True)))
    ladder = _ladder([99.995, 99.97, 99.96, 99.9], [100.005, 100.02, 100.05])
    np.testing.assert_allclose(_fills(_row(kept_px[0], kept_qty[0], kept_side[0]), ladder), _fills(_row(*raw), ladder),
                               rtol=1e-12)


def test_a_sweep_beyond_the_slots_is_never_over_credited():
    """A sell sweep through 100 prices in one step (more than the side's MAX_TRADES / 2 slots):
    the volume is all kept, the moved part reported, the least and most extreme prices kept, and a
    bid anywhere in the sweep fills no more than the prints at or through it - exactly that at the
    kept prices."""
    prices = 99.99 - 0.01 * np.arange(100)
    qty = np.full(100, 0.05)
    px, q, sd, moved = _prints_by_price(np.zeros(100, int), prices, qty, -np.ones(100), 1)
    assert q.sum() == pytest.approx(5.0, rel=1e-12) and 0 < moved < 5.0
    kept = px[0][q[0] > 0]
    assert kept.max() == pytest.approx(99.99) and kept.min() == pytest.approx(prices[-1])
    for bid in (99.99, 99.905, 99.5, 99.37, prices[-1] + 1e-9):
        got = _fills(_row(px[0], q[0], sd[0]), _ladder([bid], [], qty=100.0))[0]
        through = qty[prices <= bid + 1e-12].sum()
        assert got <= through + 1e-12
        if np.any(np.isclose(kept, bid)):
            assert got == pytest.approx(through, rel=1e-12)


def test_the_tape_counts_every_print_per_side(perp_session):
    """The closed loop's belief reads the tape from the path's per-step print counts: on the bundled
    perp session they add up to the session's prints of each aggressor side inside the grid (those
    after the first book and up to the last step's end), step by step where each print falls."""
    from bayesmm.events.features import to_arrays
    from bayesmm.events.kinds import TRADE_PRINT
    from bayesmm.sim.feed import feed_path

    session = perp_session[0]
    path, report = feed_path(session)
    a = to_arrays(session)
    t0 = a.t_s[a.valid > 0][0]
    inside = (a.kind == TRADE_PRINT) & (a.t_s > t0) & (a.t_s <= t0 + float(path.t_s[-1]))
    assert int(path.taker_buys.sum()) == int(np.sum(inside & (a.side > 0)))
    assert int(path.taker_sells.sum()) == int(np.sum(inside & (a.side < 0)))
    assert int(path.taker_buys.sum() + path.taker_sells.sum()) == report["trades"]
    step = np.ceil((a.t_s[inside] - t0) / 0.1).astype(int) - 1
    np.testing.assert_array_equal(np.asarray(path.taker_sells), np.bincount(step[a.side[inside] < 0],
                                                                             minlength=len(path.t_s)))
