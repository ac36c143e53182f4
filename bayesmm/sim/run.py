"""The closed loop: market events -> belief update on every event -> quote at
each quote cycle (and emergency cancels on bursts) -> orders with latency -> exchange -> fills and,
`as_horizon_s` later, their adverse-selection events back into the belief.

The order path is the bot's: stage 7 of `online.orders` (the reconciler with the config's price and
size tolerances, the emergency cancel), its actions reaching the exchange after the entry or cancel
latency (longer in a fast market); the exchange keeps our resting orders in slots and matches the
best NUM_LEVELS per side (`ladder_view`).

One `lax.scan` over the market path's steps; everything is a pytree, so `vmap` runs many seeds or
parameter sets at once. Within a step the belief sees, in order: our best bid and ask as they rested
through the step (two own_quote events, read by the survival term of `online.belief`), the
mid_tick of the step's return (the step's time passes here), a book_update, the step's trade
prints (the public tape: every taker, those that filled us among them), the adverse-selection
events that fell due, then each own fill. The tape is what the oracle filter (`sim.scoring`) reads
besides the returns, so the filter and the oracle are scored on the same public events; whether
the filter weighs the prints, our fills or both is its configuration's choice (`sim.truth`).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bayesmm.events.kinds import ADVERSE_SELECTION, BOOK_UPDATE, MID_TICK, OWN_FILL, OWN_QUOTE, TRADE_PRINT
from bayesmm.online.belief import Event, init, observe, readout, update
from bayesmm.online.kernels import select_tree
from bayesmm.online.orders import (
    Actions,
    Orders,
    apply_actions,
    desired_from_quote,
    emergency_cancel,
    empty_orders,
    reconcile,
)
from bayesmm.online.params import Config
from bayesmm.online.quoter import Market, quote, quoter_init
from bayesmm.sim.exchange import ExchangeParams, Ladder, match, touch_depth_bps
from bayesmm.sim.market import MarketParams, MarketPath, simulate

NUM_LEVELS = 6
MAX_FILL_EVENTS = 3  # own_fill events fed to the belief per side per step (the rest are counted)
MAX_PRINT_EVENTS = 3  # trade_print events fed to the belief per aggressor side per step (the rest are counted)
AS_BUFFER = 32  # fills awaiting their adverse-selection measurement
AS_PER_STEP = 4  # AS events delivered per step at most (the rest wait for the next step)
_INF = 1e18


class LoopParams(NamedTuple):
    """Everything the closed loop needs besides the market: the bot's configuration (belief, quoter,
    orders, venue), the simulated exchange, the taker size (units) and our starting position (units)."""

    config: Config
    exchange: ExchangeParams
    taker_size: jax.Array
    initial_position: jax.Array


class LoopOutput(NamedTuple):
    """Per step: t_s, mid_px, position, cash, equity (cash + position x `settlement_price` of the mid;
    starts at 0; quote currency, or the base asset for an inverse contract), fees;
    p_down, mu_bps_s, fair_value_bps (the belief's fair value, bps from the mid), p_regime (4,), mode
    (reduce-only), burst; live touch bid/ask depth (bps, NaN
    when that side is empty); fill qty, value (sum px x qty) and count per side; own fill events and
    tape prints not fed to the belief (beyond MAX_FILL_EVENTS, MAX_PRINT_EVENTS per side); AS events
    delivered: sum of AS (bps), count, sum and sum of squares of per-fill P&L at the horizon (edge -
    AS - fee, bps); orders placed, modified and cancelled
    (sent this step: a quote cycle's reconcile, an emergency cancel)."""

    t_s: jax.Array
    mid_px: jax.Array
    position: jax.Array
    cash: jax.Array
    equity: jax.Array
    fees: jax.Array
    p_down: jax.Array
    mu_bps_s: jax.Array
    fair_value_bps: jax.Array
    p_regime: jax.Array
    mode: jax.Array
    burst: jax.Array
    bid_depth_bps: jax.Array
    ask_depth_bps: jax.Array
    bid_fill_qty: jax.Array
    ask_fill_qty: jax.Array
    bid_fill_value: jax.Array
    ask_fill_value: jax.Array
    bid_fill_count: jax.Array
    ask_fill_count: jax.Array
    unfed_fill_events: jax.Array
    unfed_print_events: jax.Array
    as_sum_bps: jax.Array
    as_count: jax.Array
    fill_pnl_sum_bps: jax.Array
    fill_pnl_sq_sum: jax.Array
    orders_placed: jax.Array
    orders_modified: jax.Array
    orders_cancelled: jax.Array


class _Carry(NamedTuple):
    belief: tuple
    qstate: tuple
    resting: Orders
    pending: Actions
    pending_t: jax.Array
    cancel_mask: jax.Array
    cancel_t: jax.Array
    position: jax.Array
    cash: jax.Array
    fees: jax.Array
    last_quote_t: jax.Array
    belief_t: jax.Array
    buf_t: jax.Array
    buf_side: jax.Array
    buf_mid: jax.Array
    buf_px: jax.Array
    buf_active: jax.Array


ORDER_SLOTS = 4 * NUM_LEVELS  # resting orders the exchange holds for us: a full ladder per side, twice


def _no_actions(dtype=jnp.float64) -> Actions:
    z, zl = jnp.zeros((ORDER_SLOTS,), dtype), jnp.zeros((2 * NUM_LEVELS,), dtype)
    return Actions(cancel=z, modify=z, new_qty=z, place=zl, place_side=zl, place_px=zl, place_qty=zl)


def ladder_view(resting: Orders) -> tuple[Ladder, jax.Array, jax.Array]:
    """The resting orders as the exchange matches them: per side the best NUM_LEVELS by price (bids
    high to low, asks low to high; empty levels have qty 0), and the slot of each level."""
    live = resting.active > 0
    bid_slot = jnp.argsort(jnp.where(live & (resting.side > 0), -resting.px, jnp.inf))[:NUM_LEVELS]
    ask_slot = jnp.argsort(jnp.where(live & (resting.side < 0), resting.px, jnp.inf))[:NUM_LEVELS]
    bid_ok = live[bid_slot] & (resting.side[bid_slot] > 0)
    ask_ok = live[ask_slot] & (resting.side[ask_slot] < 0)
    ladder = Ladder(resting.px[bid_slot], jnp.where(bid_ok, resting.qty[bid_slot], 0.0),
                    resting.px[ask_slot], jnp.where(ask_ok, resting.qty[ask_slot], 0.0))
    return ladder, jnp.where(bid_ok, bid_slot, ORDER_SLOTS), jnp.where(ask_ok, ask_slot, ORDER_SLOTS)


def _write_back(resting: Orders, ladder: Ladder, bid_slot, ask_slot) -> Orders:
    """The quantities left after matching, written back to their slots; a filled order is gone."""
    qty = resting.qty.at[bid_slot].set(ladder.bid_qty, mode="drop").at[ask_slot].set(ladder.ask_qty, mode="drop")
    return resting._replace(qty=qty, active=resting.active * (qty > 0))


def _event(kind, dt=0.0, side=0.0, as_bps=0.0, spread=0.0, ret=0.0, ret_dt=0.0, imb=0.0, valid=1.0, t=0.0,
           depth=0.0):
    f = lambda x: jnp.asarray(x, jnp.float64)  # noqa: E731
    return Event(f(t), f(dt), jnp.asarray(kind, jnp.int32), f(side), f(0.0), f(as_bps), f(spread), f(ret),
                 f(ret_dt), f(imb), f(0.0), f(valid), f(0.0), f(depth), f(0.0))


def _stack(events):
    return Event(*(jnp.stack(x) for x in zip(*events, strict=True)))


def _beyond_cap(counts_per_side, cap: int):
    """How many of a step's events (counts per side) exceed the `cap` per side fed to the belief:
    counted into the output (`unfed_*`) and reported, never dropped silently."""
    return sum(jnp.maximum(c - cap, 0) for c in counts_per_side)


def intensity_fills(key, live: Ladder, row: MarketPath, sweep, taker_size, ex: ExchangeParams):
    """The synthetic market's fill model (`sim.exchange.match`) on one step of a `MarketPath`."""
    return match(key, live, row.mid_px, row.spread_bps, row.taker_buys, row.taker_sells, sweep, taker_size, ex)


def learns_online(cfg: Config) -> bool:
    """Whether a config's forecasts learn online (any `book.adapt_*_var` > 0; configs stacked for
    vmap included): the closed loop's static `adapt` flag, read on the host. Without it the loop
    skips the learning's work on every event (the simulator's usual case: the spec's defaults and
    the truth-implied configs learn nothing), with the same numbers."""
    b = cfg.book
    return bool(np.any(np.asarray(b.adapt_trend_var) > 0) or np.any(np.asarray(b.adapt_scale_var) > 0))


def closed_loop(key, path, p: LoopParams, sweep_sells=None, fill_fn=intensity_fills, adapt: bool = True) -> LoopOutput:
    """Run our quoter against a market path (see module docstring). `sweep_sells` (per step, count)
    adds takers that sell into our bids with certainty - the scenario's forced sweeps. `fill_fn`
    is the exchange's fill model for a step (`intensity_fills` on a simulated `MarketPath`; the
    real-feed replay passes a queue model); the path needs t_s, mid_px, ret_bps, spread_bps,
    imbalance and the tape's print counts per aggressor side (taker_buys, taker_sells) per step,
    plus whatever `fill_fn` reads. `adapt` (static): whether the belief learns online
    (`learns_online(p.config)`; True is right for any config, False skips the work where it learns
    nothing)."""
    num_steps = path.t_s.shape[0]
    sweep_sells = jnp.zeros(num_steps) if sweep_sells is None else jnp.asarray(sweep_sells, jnp.float64)
    ex, cfg = p.exchange, p.config
    dt_step = path.t_s[0]
    carry0 = _start(p, path.mid_px[0] * jnp.exp(-path.ret_bps[0] / 1e4))

    def step(c: _Carry, inp):
        row, sweep, k = inp
        t, mid = row.t_s, row.mid_px
        resting, pending_t, cancel_t = _deliver(c, t)
        view, bid_slot, ask_slot = ladder_view(resting)
        live, f = fill_fn(k, view, row, sweep, p.taker_size, ex)
        resting = _write_back(resting, live, bid_slot, ask_slot)
        bought, sold = settlement_value(f.bid_qty, f.bid_value, cfg.venue), settlement_value(f.ask_qty, f.ask_value,
                                                                                              cfg.venue)
        fee = cfg.venue.maker_fee_bps / 1e4 * (jnp.abs(bought) + jnp.abs(sold))
        position = c.position + f.bid_qty - f.ask_qty
        cash = c.cash - bought + sold - fee
        as_events, buf_active, due = _adverse_selection_due(c, row, cfg)
        fill_events, buf = _own_fill_events(f, (c.buf_t, c.buf_side, c.buf_mid, c.buf_px, buf_active), t, mid)
        print_events = [_event(TRADE_PRINT, side=side, valid=(j < count).astype(jnp.float64))
                        for side, count in ((1.0, row.taker_buys), (-1.0, row.taker_sells))
                        for j in range(MAX_PRINT_EVENTS)]
        belief = _believe(c, view, row, dt_step, cfg, (print_events, as_events, fill_events), adapt)
        b = readout(belief, cfg)
        cancel_mask, cancel_t, pending, emergency, mask = _emergency(c, resting, row, b, t, cancel_t, cfg, ex)
        cycle = t - c.last_quote_t >= cfg.orders.quote_cycle_s - 1e-9
        pending, pending_t, qstate, actions = _quote_cycle(c, resting, row, b, position, pending, pending_t, cycle,
                                                            cfg, ex)
        c = _Carry(belief, qstate, resting, pending, pending_t, cancel_mask, cancel_t, position, cash, c.fees + fee,
                   jnp.where(cycle, t, c.last_quote_t), t, *buf)
        out = LoopOutput(
            t_s=t, mid_px=mid, position=position, cash=cash, equity=cash + position * settlement_price(mid, cfg.venue),
            fees=c.fees,
            p_down=b.p_down, mu_bps_s=b.mu_bps_s, fair_value_bps=b.fair_value_bps, p_regime=b.p_regime,
            mode=qstate.mode, burst=b.burst,
            bid_depth_bps=touch_depth_bps(live.bid_px, live.bid_qty, mid, 1.0),
            ask_depth_bps=touch_depth_bps(live.ask_px, live.ask_qty, mid, -1.0),
            bid_fill_qty=f.bid_qty, ask_fill_qty=f.ask_qty, bid_fill_value=f.bid_value, ask_fill_value=f.ask_value,
            bid_fill_count=f.bid_count, ask_fill_count=f.ask_count,
            unfed_fill_events=_beyond_cap((f.bid_count, f.ask_count), MAX_FILL_EVENTS),
            unfed_print_events=_beyond_cap((row.taker_buys, row.taker_sells), MAX_PRINT_EVENTS), **due,
            orders_placed=jnp.where(cycle, jnp.sum(actions.place), 0.0),
            orders_modified=jnp.where(cycle, jnp.sum(actions.modify), 0.0),
            orders_cancelled=jnp.where(cycle, jnp.sum(actions.cancel), 0.0) + jnp.where(emergency, jnp.sum(mask), 0.0),
        )
        return c, out

    keys = jax.random.split(key, num_steps)
    _, out = jax.lax.scan(step, carry0, (path, sweep_sells, keys))
    return out


def simulate_and_run(key, market: MarketParams, p: LoopParams, num_steps: int, sweep_sells=None, adapt: bool = True):
    """Simulate a market path and run the closed loop on it; returns (path, output). vmap over keys.
    `adapt`: `closed_loop`'s."""
    k_market, k_loop = jax.random.split(key)
    path = simulate(k_market, market, num_steps)
    return path, closed_loop(k_loop, path, p, sweep_sells, adapt=adapt)


closed_loop_jit = jax.jit(closed_loop, static_argnames=("fill_fn", "adapt"))


def settlement_price(px, venue):
    """What one unit of size is worth at price `px`, in the currency P&L settles in: px x contract_size
    for a linear instrument (quote currency); -contract_size / px for an inverse one (base asset: a
    contract is worth contract_size / px of it, and the sign keeps 'buy low, sell high' a gain, so
    cash and equity below are written once for both kinds: buying q at p0 and marking at p1 gives
    q contract_size (1/p0 - 1/p1), the inverse contract's P&L)."""
    return jnp.where(venue.inverse > 0, -venue.contract_size / px, px * venue.contract_size)


def settlement_value(qty, value, venue):
    """The settlement value of a step's fills on one side, `qty` units for `value` = sum px x qty:
    linear, value x contract_size exactly; inverse, qty at the side's average price value / qty (the
    levels a step fills lie within bps of each other, so the average stands for each to ~1e-8 of
    the notional)."""
    px = jnp.where(qty > 0, value / jnp.where(qty > 0, qty, 1.0), 1.0)
    return jnp.where(venue.inverse > 0, qty * settlement_price(px, venue), value * venue.contract_size)


def _start(p: LoopParams, mid0) -> _Carry:
    """The loop's state before the first step: the prior belief, nothing resting or pending, the
    initial position bought at the mid before the path (cash = -position x mid0)."""
    return _Carry(
        belief=init(p.config), qstate=quoter_init(), resting=empty_orders(ORDER_SLOTS), pending=_no_actions(),
        pending_t=jnp.asarray(_INF), cancel_mask=jnp.zeros(ORDER_SLOTS), cancel_t=jnp.asarray(_INF),
        position=jnp.asarray(p.initial_position, jnp.float64),
        cash=-p.initial_position * settlement_price(mid0, p.config.venue),
        fees=jnp.asarray(0.0), last_quote_t=jnp.asarray(-_INF), belief_t=jnp.asarray(0.0),
        buf_t=jnp.zeros(AS_BUFFER), buf_side=jnp.zeros(AS_BUFFER), buf_mid=jnp.zeros(AS_BUFFER),
        buf_px=jnp.zeros(AS_BUFFER), buf_active=jnp.zeros(AS_BUFFER),
    )


def _deliver(c: _Carry, t):
    """Phase 1: actions sent earlier reach the exchange (the cycle's reconcile, an emergency cancel):
    (resting orders, pending actions' arrival time, the cancel's arrival time)."""
    go = t >= c.pending_t
    resting = select_tree(go, apply_actions(c.resting, c.pending), c.resting)
    pending_t = jnp.where(go, _INF, c.pending_t)
    cut = t >= c.cancel_t
    resting = resting._replace(active=resting.active * (1.0 - jnp.where(cut, c.cancel_mask, 0.0)))
    return resting, pending_t, jnp.where(cut, _INF, c.cancel_t)


def _adverse_selection_due(c: _Carry, row, cfg):
    """Phase 3: the fills whose AS horizon has passed, measured from the mids the loop has seen:
    (AS events, the fill buffer's active flags, {as_sum_bps, as_count, fill_pnl_sum_bps, fill_pnl_sq_sum})."""
    t, mid = row.t_s, row.mid_px
    due = (c.buf_active > 0) & (t - c.buf_t >= cfg.evidence.as_horizon_s - 1e-9)
    as_events, buf_active = [], c.buf_active
    as_sum = fill_pnl = fill_pnl_sq = as_count = jnp.asarray(0.0)
    for _ in range(AS_PER_STEP):
        idx = jnp.argmax(due)
        ok = due[idx]
        side, m0 = c.buf_side[idx], c.buf_mid[idx]
        as_bps = side * (m0 - mid) / m0 * 1e4
        edge = side * (m0 - c.buf_px[idx]) / m0 * 1e4
        pnl = edge - as_bps - cfg.venue.maker_fee_bps
        as_events.append(_event(ADVERSE_SELECTION, side=side, as_bps=as_bps, spread=row.spread_bps,
                                valid=ok.astype(jnp.float64)))
        okf = ok.astype(jnp.float64)
        as_sum, as_count = as_sum + okf * as_bps, as_count + okf
        fill_pnl, fill_pnl_sq = fill_pnl + okf * pnl, fill_pnl_sq + okf * pnl**2
        due = due.at[idx].set(False)
        buf_active = buf_active.at[idx].set(jnp.where(ok, 0.0, buf_active[idx]))
    return as_events, buf_active, {"as_sum_bps": as_sum, "as_count": as_count, "fill_pnl_sum_bps": fill_pnl,
                                   "fill_pnl_sq_sum": fill_pnl_sq}


def _own_fill_events(f, buf: tuple, t, mid):
    """Phase 4: one own_fill event per filling taker (up to MAX_FILL_EVENTS per side), each written
    into the fill buffer (time, side, mid, price, active) for its AS later: (events, buffer)."""
    events = []
    for side, count, qty, value in ((1.0, f.bid_count, f.bid_qty, f.bid_value),
                                    (-1.0, f.ask_count, f.ask_qty, f.ask_value)):
        px = value / jnp.maximum(qty, 1e-300)
        for j in range(MAX_FILL_EVENTS):
            ok = j < count
            events.append(_event(OWN_FILL, side=side, valid=ok.astype(jnp.float64)))
            slot = jnp.argmin(buf[4])
            okf = ok & (buf[4][slot] == 0)
            buf = tuple(b.at[slot].set(jnp.where(okf, v, b[slot])) for b, v in zip(buf, (t, side, mid, px, 1.0),
                                                                                   strict=True))
    return events, buf


def _believe(c: _Carry, view: Ladder, row, dt_step, cfg, groups, adapt: bool = True):
    """Phase 5: the belief, event by event: first what rested through the step (NaN depth: nothing),
    then the step's time passes at its mid tick; the rest are at that instant, each slot's kind known
    (`online.belief.observe`), masked slots (no fill, no AS due) leaving the belief as it is.
    `groups`: the step's (trade prints, AS events, own fills); `adapt`: `closed_loop`'s."""
    t, mid = row.t_s, row.mid_px
    belief = c.belief
    for side, px, qty in ((1.0, view.bid_px, view.bid_qty), (-1.0, view.ask_px, view.ask_qty)):
        belief = observe(belief, _event(OWN_QUOTE, side=side, depth=touch_depth_bps(px, qty, mid, side)), cfg,
                         OWN_QUOTE, adapt)
    belief = update(belief, _event(MID_TICK, dt=t - c.belief_t, ret=row.ret_bps, ret_dt=dt_step), cfg, kind=MID_TICK,
                    adapt=adapt)
    belief = observe(belief, _event(BOOK_UPDATE, imb=row.imbalance, spread=row.spread_bps), cfg, BOOK_UPDATE, adapt)
    for kind, group in zip((TRADE_PRINT, ADVERSE_SELECTION, OWN_FILL), groups, strict=True):
        belief = jax.lax.scan(lambda s, e, kind=kind: (observe(s, e, cfg, kind, adapt), None), belief,
                              _stack(group))[0]
    return belief


def _emergency(c: _Carry, resting: Orders, row, b, t, cancel_t, cfg, ex):
    """Phase 6: emergency cancel of the swept side between quote cycles (stage 7: `online.orders`);
    the cycle's orders still in flight on that side are withdrawn too: (cancel mask, its arrival,
    pending actions, whether it fired, the mask it fired with)."""
    spike = 1.0 + ex.latency_spike_mult * (jnp.abs(row.ret_bps) > ex.spike_threshold_bps)
    mask = emergency_cancel(resting, b.burst, b.burst_side)
    emergency = jnp.any(mask > 0) & (cancel_t >= _INF) & (cfg.orders.use_emergency_cancel > 0)
    cancel_mask = jnp.where(emergency, mask, c.cancel_mask)
    cancel_t = jnp.where(emergency, t + ex.cancel_latency_s * spike, cancel_t)
    withdrawn = emergency & (c.pending.place_side == b.burst_side)
    pending = c.pending._replace(place=jnp.where(withdrawn, 0.0, c.pending.place))
    return cancel_mask, cancel_t, pending, emergency, mask


def _quote_cycle(c: _Carry, resting: Orders, row, b, position, pending, pending_t, cycle, cfg, ex):
    """Phase 7: on a quote cycle, the desired ladder reconciled with what rests (`online.orders.reconcile`:
    orders within the price tolerance kept, resized beyond the size tolerance, the rest cancelled and
    placed), sent with the entry latency: (pending actions, their arrival, quoter state, the actions)."""
    t, mid = row.t_s, row.mid_px
    spike = 1.0 + ex.latency_spike_mult * (jnp.abs(row.ret_bps) > ex.spike_threshold_bps)
    half = mid * row.spread_bps / 2e4
    q, qstate = quote(b, Market(mid, mid - half, mid + half, row.spread_bps, row.imbalance), position, c.qstate, cfg,
                      num_levels=NUM_LEVELS)
    actions = reconcile(resting, *desired_from_quote(q), mid * cfg.orders.price_tolerance_bps / 1e4,
                        cfg.orders.size_tolerance_qty)
    pending = select_tree(cycle, actions, pending)
    pending_t = jnp.where(cycle, t + ex.entry_latency_s * spike, pending_t)
    qstate = select_tree(cycle, qstate, c.qstate)
    return pending, pending_t, qstate, actions
