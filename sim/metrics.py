"""Metrics of a closed-loop run (spec section 8 and DESIGN.md): max |position|, P&L, fill Sharpe vs
equity Sharpe, time in reduce-only, AS per fill, fills per side, time to halve an opposed
position, and bearish fills before reduce-only. Pure JAX so they vmap over seeds."""

from __future__ import annotations

import jax.numpy as jnp

from sim.run import LoopOutput


def summarize(out: LoopOutput, initial_position, cycle_steps: int = 30) -> dict:
    """Scalar metrics of one run (vmap for many)."""
    pos = out.position
    n_as = jnp.sum(out.as_count)
    mean_pnl = jnp.sum(out.fill_pnl_sum_bps) / jnp.maximum(n_as, 1)
    var_pnl = jnp.sum(out.fill_pnl_sq_sum) / jnp.maximum(n_as, 1) - mean_pnl**2
    fill_sharpe = mean_pnl / jnp.sqrt(jnp.maximum(var_pnl, 1e-12))
    eq = out.equity[::cycle_steps]
    d_eq = jnp.diff(eq)
    equity_sharpe = jnp.mean(d_eq) / jnp.maximum(jnp.std(d_eq), 1e-12)
    half = jnp.abs(initial_position) / 2
    halved = (jnp.abs(pos) <= half) & (initial_position != 0)
    t_halve = jnp.where(jnp.any(halved), out.t_s[jnp.argmax(halved)], jnp.nan)
    reduce_long = out.mode > 0
    entered = jnp.any(reduce_long)
    buys_so_far = jnp.cumsum(out.bid_fill_count)
    bearish_before = jnp.where(entered, buys_so_far[jnp.argmax(reduce_long)], jnp.nan)
    return {
        "max_abs_position": jnp.max(jnp.abs(pos)),
        "pnl": out.equity[-1],
        "reduce_only_fraction": jnp.mean(out.mode != 0),
        "fills": jnp.sum(out.bid_fill_count + out.ask_fill_count),
        "fills_bid": jnp.sum(out.bid_fill_count),
        "fills_ask": jnp.sum(out.ask_fill_count),
        "as_per_fill_bps": jnp.sum(out.as_sum_bps) / jnp.maximum(n_as, 1),
        "fill_sharpe": fill_sharpe,
        "equity_sharpe": equity_sharpe,
        "sharpe_gap": fill_sharpe - equity_sharpe,
        "time_to_halve_s": t_halve,
        "bearish_fills_before_reduce_only": bearish_before,
        "final_position": pos[-1],
        "fees": out.fees[-1],
        "unfed_fill_events": jnp.sum(out.unfed_fill_events),
    }
