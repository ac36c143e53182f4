"""Metrics of a closed-loop run (spec section 8): max |position|, P&L, fill Sharpe vs
equity Sharpe, time in reduce-only, the share of steps with a live quote (either side, both),
AS per fill, fills per side, time to halve an opposed position, and bearish fills before
reduce-only (markout per fill: `sim.markout`). Pure JAX so they vmap over seeds."""

from __future__ import annotations

import jax.numpy as jnp

from bayesmm.sim.run import LoopOutput

MIN_SAMPLES = 10
"""A Sharpe ratio from fewer than this many fills (or equity changes) is undefined (NaN), not a
number: on a real BTC perp recording one fill gave a 'fill Sharpe' of -1,475,629 (a mean over a
near-zero spread). `undefined_reasons` says why a metric is NaN."""


def _sharpe(total, total_sq, n):
    """mean / sd from sums; NaN with fewer than MIN_SAMPLES samples or no dispersion (sd < 1e-9 of
    the mean's scale)."""
    mean = total / jnp.maximum(n, 1)
    sd = jnp.sqrt(jnp.maximum(total_sq / jnp.maximum(n, 1) - mean**2, 0.0))
    ok = (n >= MIN_SAMPLES) & (sd > 1e-9 * jnp.maximum(jnp.abs(mean), 1e-12))
    return jnp.where(ok, mean / jnp.where(ok, sd, 1.0), jnp.nan)


def summarize(out: LoopOutput, initial_position, cycle_steps: int = 30) -> dict:
    """Scalar metrics of one run (vmap for many)."""
    pos = out.position
    n_as = jnp.sum(out.as_count)
    fill_sharpe = _sharpe(jnp.sum(out.fill_pnl_sum_bps), jnp.sum(out.fill_pnl_sq_sum), n_as)
    eq = out.equity[::cycle_steps]
    d_eq = jnp.diff(eq)
    equity_sharpe = _sharpe(jnp.sum(d_eq), jnp.sum(d_eq**2), jnp.sum(d_eq != 0))
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
        "quoted_fraction": jnp.mean(~jnp.isnan(out.bid_depth_bps) | ~jnp.isnan(out.ask_depth_bps)),
        "two_sided_fraction": jnp.mean(~jnp.isnan(out.bid_depth_bps) & ~jnp.isnan(out.ask_depth_bps)),
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
        "unfed_print_events": jnp.sum(out.unfed_print_events),
    }


def undefined_reasons(metrics: dict) -> dict:
    """{metric: why it is undefined} for the NaN metrics of one run (host side, for reports)."""
    why = {"fill_sharpe": f"fewer than {MIN_SAMPLES} fills with a measured AS, or no dispersion among them",
           "equity_sharpe": f"fewer than {MIN_SAMPLES} equity changes between quote cycles",
           "sharpe_gap": "a Sharpe ratio it is the difference of is undefined",
           "time_to_halve_s": "the opening position was never halved (or was 0)",
           "bearish_fills_before_reduce_only": "reduce-only mode was never entered"}
    return {k: why.get(k, "undefined") for k, v in metrics.items() if isinstance(v, float) and v != v}
