"""Replay on a real feed: the closed loop driven by a recorded session, our fills simulated from
the real tape with a queue model, AS measured from the real mids.

The session is put on a step grid (`dt_s`, 0.1 s by default): per step the last mid, its return,
spread, imbalance, top-of-book sizes, and up to `MAX_TRADES` tape prints (price, size, aggressor
side; later prints of a busy step are merged into the last slot at their extreme price, counted).

Queue model for a bid at price P (asks mirrored), per step and without memory:
- P above the best bid (we improve the book): we are first; sells printed at <= P fill us;
- P at the best bid: we join behind the displayed size, so only the sell volume at <= P beyond
  the best-bid size fills us (conservative: the queue ahead only shrinks in reality);
- P below the best bid: only prints strictly below P (the tape trading through us) fill us;
- and a bid at or above the best ask fills whole (the market crossed it).
Volume is consumed level by level from the touch.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from events.features import to_arrays
from events.kinds import TRADE_PRINT
from events.session import Session
from sim.exchange import ExchangeParams, Fills, Ladder

MAX_TRADES = 32


class FeedPath(NamedTuple):
    """One row per step: t_s, mid_px, ret_bps, spread_bps, imbalance, best_bid_sz, best_ask_sz, and the
    step's prints trade_px, trade_qty, trade_side (MAX_TRADES each, qty 0 = none)."""

    t_s: jax.Array
    mid_px: jax.Array
    ret_bps: jax.Array
    spread_bps: jax.Array
    imbalance: jax.Array
    best_bid_sz: jax.Array
    best_ask_sz: jax.Array
    trade_px: jax.Array
    trade_qty: jax.Array
    trade_side: jax.Array


def feed_path(session: Session, dt_s: float = 0.1) -> tuple[FeedPath, dict]:
    """The session on a step grid (module docstring); returns the path and a report of merged prints."""
    a = to_arrays(session)
    ok = a.valid > 0
    if not ok.any():
        raise ValueError("the session has no book (no bid/ask, so no mid): a backtest needs one; a trades-only "
                         "recording can be replayed and fitted, not backtested")
    t = a.t_s[ok]
    n = int(np.floor((t[-1] - t[0]) / dt_s))
    if n < 2:
        raise ValueError(f"session too short for dt_s = {dt_s}: {t[-1] - t[0]:.3f} s")
    t0 = t[0]
    edges = t0 + dt_s * np.arange(1, n + 1)
    last = np.searchsorted(a.t_s, edges, side="right") - 1
    mid = a.mid[last]
    prev = np.concatenate([[a.mid[np.searchsorted(a.t_s, t0, side="right") - 1]], mid[:-1]])
    bid_sz = np.where(a.kind == 1, np.nan_to_num(session.column("bid_sz")), np.nan)
    ask_sz = np.where(a.kind == 1, np.nan_to_num(session.column("ask_sz")), np.nan)
    idx = np.maximum.accumulate(np.where(np.isfinite(bid_sz), np.arange(len(bid_sz)), 0))
    tr = np.flatnonzero((a.kind == TRADE_PRINT) & (a.t_s > t0) & (a.t_s <= edges[-1]))
    step_of = np.clip(np.ceil((a.t_s[tr] - t0) / dt_s).astype(int) - 1, 0, n - 1)
    px, qty, side = np.zeros((n, MAX_TRADES)), np.zeros((n, MAX_TRADES)), np.zeros((n, MAX_TRADES))
    slot = np.zeros(n, dtype=int)
    merged = 0
    for i, s in zip(tr, step_of, strict=True):
        k = slot[s]
        if k < MAX_TRADES:
            px[s, k], qty[s, k], side[s, k] = a.price[i], a.size[i], a.side[i]
            slot[s] += 1
        else:  # merge into the last slot at the more extreme price of its side
            merged += 1
            j = MAX_TRADES - 1
            qty[s, j] += a.size[i]
            px[s, j] = min(px[s, j], a.price[i]) if side[s, j] < 0 else max(px[s, j], a.price[i])
    path = FeedPath(
        t_s=jnp.asarray(edges - t0), mid_px=jnp.asarray(mid), ret_bps=jnp.asarray((mid / prev - 1) * 1e4),
        spread_bps=jnp.asarray(a.spread_bps[last]), imbalance=jnp.asarray(a.imbalance[last]),
        best_bid_sz=jnp.asarray(bid_sz[idx[last]]), best_ask_sz=jnp.asarray(ask_sz[idx[last]]),
        trade_px=jnp.asarray(px), trade_qty=jnp.asarray(qty), trade_side=jnp.asarray(side),
    )
    return path, {"steps": n, "trades": int(len(tr)), "trades_merged": merged}


def _queue_side(px, qty, trade_px, trade_qty, trade_hit, best_px, best_sz, sign):
    """Fills of one side's levels (sign +1 bids, -1 asks) from the prints that hit that side."""
    def level(carry, lvl):
        used = carry
        p, q = lvl
        improves = sign * (p - best_px) > 1e-12
        at_touch = jnp.abs(p - best_px) <= 1e-12
        reach = jnp.where(improves | at_touch, sign * (trade_px - p) <= 1e-12, sign * (trade_px - p) < -1e-12)
        vol = jnp.sum(jnp.where(trade_hit & reach, trade_qty, 0.0))
        vol = jnp.where(at_touch, jnp.maximum(vol - best_sz, 0.0), vol)
        take = jnp.clip(vol - used, 0.0, q)
        return used + take, take

    _, taken = jax.lax.scan(level, jnp.asarray(0.0), (px, qty))
    return taken


def queue_fills(key, live: Ladder, row: FeedPath, sweep, taker_size, ex: ExchangeParams):
    """The queue model (module docstring) for one step: (ladder after fills, `Fills`)."""
    half = row.mid_px * row.spread_bps / 2e4
    best_bid, best_ask = row.mid_px - half, row.mid_px + half
    cross_b = (live.bid_px >= best_ask) & (live.bid_qty > 0)
    cross_a = (live.ask_px <= best_bid) & (live.ask_qty > 0)
    bid_qty = jnp.where(cross_b, 0.0, live.bid_qty)
    ask_qty = jnp.where(cross_a, 0.0, live.ask_qty)
    sells = (row.trade_side < 0) & (row.trade_qty > 0)
    buys = (row.trade_side > 0) & (row.trade_qty > 0)
    tb = _queue_side(live.bid_px, bid_qty, row.trade_px, row.trade_qty, sells, best_bid, row.best_bid_sz, 1.0)
    ta = _queue_side(live.ask_px, ask_qty, row.trade_px, row.trade_qty, buys, best_ask, row.best_ask_sz, -1.0)
    bxq = jnp.where(cross_b, live.bid_qty, 0.0)
    axq = jnp.where(cross_a, live.ask_qty, 0.0)
    fills = Fills(
        bid_qty=jnp.sum(bxq + tb), bid_value=jnp.sum((bxq + tb) * live.bid_px),
        bid_count=jnp.sum((bxq + tb) > 0), ask_qty=jnp.sum(axq + ta), ask_value=jnp.sum((axq + ta) * live.ask_px),
        ask_count=jnp.sum((axq + ta) > 0),
    )
    return Ladder(live.bid_px, bid_qty - tb, live.ask_px, ask_qty - ta), fills
