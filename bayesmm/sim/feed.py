"""Replay on a real feed: the closed loop driven by a recorded session, our fills simulated from
the real tape with a queue model, AS measured from the real mids.

The session is put on a step grid (`dt_s`, 0.1 s by default): per step the last mid, its return,
spread, imbalance, top-of-book sizes, and the step's tape prints as volume per (aggressor side,
price), up to `MAX_TRADES` such levels. Every print is matched: the queue model below reads a
step's prints only through the volume at or through each of our levels, which the sum per price
keeps exactly, and it does not depend on their order within the step (our ladder does not change
inside a step: our orders reach the exchange between steps). A step whose prints span more than
MAX_TRADES / 2 distinct prices on one side (a sweep: 2% of the bundled perp session's steps, up
to 427 prices in 0.1 s) keeps its least and most extreme prices and others evenly spaced between;
the volume at a price not kept is moved to the nearest kept price on the less extreme side - it
reaches fewer of our levels, never more (no fill the tape did not reach is credited), and by at
most the gap between kept prices - and the volume so moved is counted and reported.

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

from bayesmm.events.features import to_arrays
from bayesmm.events.kinds import BOOK_UPDATE, TRADE_PRINT
from bayesmm.events.session import Session
from bayesmm.sim.exchange import ExchangeParams, Fills, Ladder

MAX_TRADES = 32  # price levels of prints per step: half for each aggressor side


class FeedPath(NamedTuple):
    """One row per step: t_s, mid_px, ret_bps, spread_bps, imbalance, best_bid_sz, best_ask_sz, the
    step's prints trade_px, trade_qty, trade_side (MAX_TRADES each, qty 0 = none), and the number of
    prints per aggressor side, taker_buys and taker_sells (the tape the closed loop's belief reads)."""

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
    taker_buys: jax.Array
    taker_sells: jax.Array


def feed_path(session: Session, dt_s: float = 0.1) -> tuple[FeedPath, dict]:
    """The session on a step grid (module docstring); returns the path and a report: steps,
    prints, and the volume moved to a less extreme price (0 unless a step overflows)."""
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
    bid_sz = np.where(a.kind == BOOK_UPDATE, np.nan_to_num(session.column("bid_sz")), np.nan)
    ask_sz = np.where(a.kind == BOOK_UPDATE, np.nan_to_num(session.column("ask_sz")), np.nan)
    idx = np.maximum.accumulate(np.where(np.isfinite(bid_sz), np.arange(len(bid_sz)), 0))
    tr = np.flatnonzero((a.kind == TRADE_PRINT) & (a.t_s > t0) & (a.t_s <= edges[-1]))
    step_of = np.clip(np.ceil((a.t_s[tr] - t0) / dt_s).astype(int) - 1, 0, n - 1)
    px, qty, side, moved = _prints_by_price(step_of, a.price[tr], a.size[tr], a.side[tr], n)
    path = FeedPath(
        t_s=jnp.asarray(edges - t0), mid_px=jnp.asarray(mid), ret_bps=jnp.asarray((mid / prev - 1) * 1e4),
        spread_bps=jnp.asarray(a.spread_bps[last]), imbalance=jnp.asarray(a.imbalance[last]),
        best_bid_sz=jnp.asarray(bid_sz[idx[last]]), best_ask_sz=jnp.asarray(ask_sz[idx[last]]),
        trade_px=jnp.asarray(px), trade_qty=jnp.asarray(qty), trade_side=jnp.asarray(side),
        taker_buys=jnp.asarray(np.bincount(step_of[a.side[tr] > 0], minlength=n), jnp.float64),
        taker_sells=jnp.asarray(np.bincount(step_of[a.side[tr] < 0], minlength=n), jnp.float64),
    )
    return path, {"steps": n, "trades": int(len(tr)), "volume_moved": moved}


def _prints_by_price(step, price, size, side, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Per step (rows) the prints' volume per (side, price): sells in the first MAX_TRADES / 2
    slots, buys in the rest, each side's prices from the least extreme (a sell's extreme is low, a
    buy's high). Returns (px, qty, side, volume moved). A side with more distinct prices in a step
    than its slots keeps as its prices the least and the most extreme and others evenly spaced in
    rank between them; the volume at any other price goes to the nearest kept price on the less
    extreme side, which reaches no more of our levels than it did (module docstring)."""
    half = MAX_TRADES // 2
    px, qty, sd = np.zeros((n, MAX_TRADES)), np.zeros((n, MAX_TRADES)), np.zeros((n, MAX_TRADES))
    if len(step) == 0:
        return px, qty, sd, 0.0
    order = np.lexsort((side * price, side, step))  # by step, side, then from the least extreme price
    step, side, price, size = step[order], side[order], price[order], size[order]
    new = np.r_[True, (np.diff(step) != 0) | (np.diff(side) != 0) | (np.diff(price) != 0)]
    g_step, g_side, g_px = step[new], side[new], price[new]
    g_qty = np.bincount(np.cumsum(new) - 1, size)
    starts = np.flatnonzero(np.r_[True, (np.diff(g_step) != 0) | (np.diff(g_side) != 0)])
    ends = np.r_[starts[1:], len(g_step)]
    # a (step, side) with at most `half` prices keeps them all, in order: one vectorised write
    fits = (ends - starts) <= half
    group = np.repeat(np.arange(len(starts)), ends - starts)
    keep = fits[group]
    rank = np.arange(len(g_step)) - starts[group]
    rows, cols = g_step[keep], np.where(g_side[keep] > 0, half, 0) + rank[keep]
    px[rows, cols], qty[rows, cols], sd[rows, cols] = g_px[keep], g_qty[keep], g_side[keep]
    moved = 0.0
    for lo, hi in zip(starts[~fits], ends[~fits], strict=True):  # the sweeps: 2% of the perp's steps
        m, row, base = hi - lo, g_step[lo], (half if g_side[lo] > 0 else 0)
        kept = np.unique(np.round(np.linspace(0, m - 1, half)).astype(int))
        to = np.searchsorted(kept, np.arange(m), side="right") - 1  # nearest kept rank at or below
        vol = np.bincount(to, g_qty[lo:hi], len(kept))
        moved += float(g_qty[lo:hi][~np.isin(np.arange(m), kept)].sum())
        cols = base + np.arange(len(kept))
        px[row, cols], qty[row, cols], sd[row, cols] = g_px[lo + kept], vol, g_side[lo]
    return px, qty, sd, moved


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
