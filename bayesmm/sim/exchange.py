"""The simulated exchange: our resting ladder against the takers of a market step.

- A taker that sells hits our best remaining bid with probability e^{-kappa delta} (delta: that
  level's depth below the mid, bps) - the intensity model A e^{-kappa delta} thinned per taker;
  each filling taker takes `taker_size`, sweeping our levels from the touch (partial fills).
- A resting order also fills, whole, when the market's opposite best price crosses it.
- Maker fee on every fill (the config's `venue.maker_fee_bps`; Hyperliquid: 1.5 bps paid, not a rebate).
Position and cash are float64 and updated exactly: cash -= side x px x qty + fee.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from bayesmm.online.params import named_tuple_from, require_positive
from bayesmm.sim.sampling import binomial_small


class ExchangeParams(NamedTuple):
    """The simulated venue's physics (what the bot does not choose). The fee it charges, the AS
    horizon and the quote cycle are the bot's configuration (`Config.venue`, `.evidence`, `.orders`),
    not repeated here.

    Attributes: kappa_per_bps (fill probability decay with depth), taker_fee_bps (4.5; no taker
    orders are sent by the quoters here), entry_latency_s and cancel_latency_s (order entry /
    cancel delay), latency_spike_mult (latency x (1 + this) when the mid moved more than
    spike_threshold_bps in the last step)."""

    kappa_per_bps: float = 0.2
    taker_fee_bps: float = 4.5
    entry_latency_s: float = 0.2
    cancel_latency_s: float = 0.2
    latency_spike_mult: float = 4.0
    spike_threshold_bps: float = 5.0


def exchange_params(**overrides) -> ExchangeParams:
    """Validated `ExchangeParams` (Hyperliquid defaults + overrides) as float64 arrays."""
    p = named_tuple_from(ExchangeParams, overrides)
    require_positive(p, ("kappa_per_bps",))
    return ExchangeParams(*(jnp.asarray(v, jnp.float64) for v in p))


class Ladder(NamedTuple):
    """Live (or pending) resting orders: per level bid_px, bid_qty, ask_px, ask_qty (levels from the touch)."""

    bid_px: jax.Array
    bid_qty: jax.Array
    ask_px: jax.Array
    ask_qty: jax.Array


class Fills(NamedTuple):
    """A step's fills per side: qty (units), value (sum px x qty) and count (filling takers, or
    crossed levels); the closed loop turns each count into one own_fill event for the belief."""

    bid_qty: jax.Array
    bid_value: jax.Array
    bid_count: jax.Array
    ask_qty: jax.Array
    ask_value: jax.Array
    ask_count: jax.Array


def _sweep(px, qty, want):
    """Take `want` units from levels in order; returns (qty left, qty taken, value taken)."""
    before = jnp.cumsum(qty) - qty
    taken = jnp.clip(want - before, 0.0, qty)
    return qty - taken, jnp.sum(taken), jnp.sum(taken * px)


def touch_depth_bps(px, qty, mid_px, sign):
    """Depth of the best level that holds quantity (levels in order from the touch) from the mid,
    bps, positive away from the mid (sign +1 bids, -1 asks); NaN when no level holds any."""
    first = jnp.argmax(qty > 0)
    return jnp.where(jnp.any(qty > 0), sign * (mid_px - px[first]) / mid_px * 1e4, jnp.nan)


def match(key, ladder: Ladder, mid_px, spread_bps, taker_buys, taker_sells, sweep_sells, taker_size,
          p: ExchangeParams) -> tuple[Ladder, Fills]:
    """Fill our ladder against one market step (crossing first, then takers, then forced sweeps)."""
    half = mid_px * spread_bps / 2e4
    best_bid, best_ask = mid_px - half, mid_px + half
    # crossing: the market moved through our price
    cross_b = (ladder.bid_px >= best_ask) & (ladder.bid_qty > 0)
    cross_a = (ladder.ask_px <= best_bid) & (ladder.ask_qty > 0)
    bq_x, aq_x = jnp.where(cross_b, ladder.bid_qty, 0.0), jnp.where(cross_a, ladder.ask_qty, 0.0)
    bid_qty, ask_qty = ladder.bid_qty - bq_x, ladder.ask_qty - aq_x
    # takers against the best remaining level on each side
    kb, ka = jax.random.split(key)

    def reach_bps(px, qty, sign):  # how far a taker must reach: through the mid counts as 0, none rests as inf
        d = touch_depth_bps(px, qty, mid_px, sign)
        return jnp.where(jnp.isnan(d), jnp.inf, jnp.maximum(d, 0.0))

    pb = jnp.exp(-p.kappa_per_bps * reach_bps(ladder.bid_px, bid_qty, 1.0))
    pa = jnp.exp(-p.kappa_per_bps * reach_bps(ladder.ask_px, ask_qty, -1.0))
    nb = binomial_small(kb, taker_sells, pb) + sweep_sells
    na = binomial_small(ka, taker_buys, pa)
    bid_qty, bq_t, bv_t = _sweep(ladder.bid_px, bid_qty, nb * taker_size)
    ask_qty, aq_t, av_t = _sweep(ladder.ask_px, ask_qty, na * taker_size)
    fills = Fills(
        bid_qty=jnp.sum(bq_x) + bq_t, bid_value=jnp.sum(bq_x * ladder.bid_px) + bv_t,
        bid_count=jnp.sum(cross_b) + jnp.ceil(bq_t / taker_size - 1e-9),
        ask_qty=jnp.sum(aq_x) + aq_t, ask_value=jnp.sum(aq_x * ladder.ask_px) + av_t,
        ask_count=jnp.sum(cross_a) + jnp.ceil(aq_t / taker_size - 1e-9),
    )
    return Ladder(ladder.bid_px, bid_qty, ladder.ask_px, ask_qty), fills
