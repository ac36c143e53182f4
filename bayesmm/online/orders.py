"""Stage 7: the reconciler (desired ladder vs resting orders -> cancel / modify / place) and the
emergency cancel on a burst. Pure JAX with fixed shapes: resting orders live in a fixed-capacity
book of slots, the desired ladder has `num_levels` per side.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax


class Orders(NamedTuple):
    """Resting orders in fixed slots. Attributes: side (+1 bid, -1 ask), px, qty (units); active (1/0)."""

    side: jax.Array
    px: jax.Array
    qty: jax.Array
    active: jax.Array


class Actions(NamedTuple):
    """What to send. Attributes (per resting slot): cancel, modify (1/0) and new_qty for modifies;
    (per desired level, bids then asks): place (1/0), place_side, place_px, place_qty."""

    cancel: jax.Array
    modify: jax.Array
    new_qty: jax.Array
    place: jax.Array
    place_side: jax.Array
    place_px: jax.Array
    place_qty: jax.Array

    def counts(self) -> dict:
        """Number of cancels, modifies and places (host-side convenience)."""
        return {"cancel": int(jnp.sum(self.cancel)), "modify": int(jnp.sum(self.modify)),
                "place": int(jnp.sum(self.place))}


def empty_orders(capacity: int, dtype=jnp.float64) -> Orders:
    z = jnp.zeros((capacity,), dtype)
    return Orders(z, z, z, z)


def desired_from_quote(q) -> tuple:
    """(side, px, qty) of the desired ladder from a `Quote`: bids then asks, qty 0 = no order."""
    n = q.bid_px.shape[-1]
    side = jnp.concatenate([jnp.ones(n, q.bid_px.dtype), -jnp.ones(n, q.bid_px.dtype)])
    return side, jnp.concatenate([q.bid_px, q.ask_px]), jnp.concatenate([q.bid_qty, q.ask_qty])


def reconcile(resting: Orders, side, px, qty, price_tol, size_tol) -> Actions:
    """Match each desired order (qty > 0) to the first unmatched resting order on its side within
    `price_tol` (quote currency); a match within `size_tol` (units) is kept, otherwise modified;
    unmatched resting orders are cancelled and unmatched desired orders placed."""

    def match_one(taken, d):
        d_side, d_px, d_qty = d
        ok = (resting.active > 0) & (taken == 0) & (resting.side == d_side) & (jnp.abs(resting.px - d_px) <= price_tol)
        ok = ok & (d_qty > 0)
        idx = jnp.argmax(ok)
        found = ok[idx]
        taken = taken.at[idx].set(jnp.where(found, 1.0, taken[idx]))
        return taken, (found, idx)

    taken0 = jnp.zeros_like(resting.active)
    taken, (found, idx) = lax.scan(match_one, taken0, (side, px, qty))
    slots = jnp.arange(resting.active.shape[0])
    # per resting slot: which desired level (if any) matched it
    match_of_slot = (found[:, None] & (idx[:, None] == slots[None, :]))
    want_qty = jnp.sum(jnp.where(match_of_slot, qty[:, None], 0.0), axis=0)
    matched = taken > 0
    cancel = (resting.active > 0) & ~matched
    modify = matched & (jnp.abs(want_qty - resting.qty) > size_tol)
    place = (qty > 0) & ~found
    f = resting.px.dtype
    return Actions(cancel=cancel.astype(f), modify=modify.astype(f), new_qty=jnp.where(modify, want_qty, 0.0),
                   place=place.astype(f), place_side=side, place_px=px, place_qty=jnp.where(place, qty, 0.0))


def apply_actions(resting: Orders, actions: Actions) -> Orders:
    """The resting book after the actions are acknowledged: cancels removed, modifies resized,
    places written into free slots (first free slot first; places beyond capacity are dropped)."""
    active = resting.active * (1.0 - actions.cancel)
    qty = jnp.where(actions.modify > 0, actions.new_qty, resting.qty)
    orders = Orders(resting.side, resting.px, qty, active)

    def put(o, a):
        do, s, p_, q_ = a
        free = o.active == 0
        slot = jnp.argmax(free)
        ok = (do > 0) & free[slot]
        return Orders(o.side.at[slot].set(jnp.where(ok, s, o.side[slot])),
                      o.px.at[slot].set(jnp.where(ok, p_, o.px[slot])),
                      o.qty.at[slot].set(jnp.where(ok, q_, o.qty[slot])),
                      o.active.at[slot].set(jnp.where(ok, 1.0, o.active[slot]))), None

    orders, _ = lax.scan(put, orders, (actions.place, actions.place_side, actions.place_px, actions.place_qty))
    return orders


def emergency_cancel(resting: Orders, burst, burst_side) -> jax.Array:
    """On a burst (spec stage 7), cancel every resting order on the swept side at once, between
    quote cycles: our buy fills (burst_side +1) sweep our bids, sell fills (-1) our asks.
    Returns the cancel mask per slot."""
    return ((burst > 0) & (resting.active > 0) & (resting.side == burst_side)).astype(resting.px.dtype)
