"""Closed-loop throughput on one core: one path (market steps/s and belief events/s), a vmapped
sweep of 1,000 parameter sets (aggregate event-steps/s), and, side by side in the same process,
the public hftbacktest package running a GLFT market maker on the same real Binance perp file.

Rates on the real file are in raw feed messages per second (93,954 messages) for both tools, with
each tool's data preparation timed separately. hftbacktest is a benchmark-only dependency
(`requirements-bench.lock`, installed by `make bench`); the comparison is skipped without it.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp

import bayesmm.sim  # noqa: F401  (float64)
from bayesmm.events import ingest
from bayesmm.sim.market import simulate
from bayesmm.sim.metrics import summarize
from bayesmm.sim.run import closed_loop, simulate_and_run
from bayesmm.sim.scenarios import loop_params, make_scenario
from benchmarks._hlo import kernels_per_iteration
from tests.conftest import PERP


def _time(fn, repeat=3):
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - t0)
    return best


def bench_one_path(num_steps: int | None = None) -> dict:
    s = make_scenario("hype_selloff")
    if num_steps is not None:
        s = s._replace(duration_s=num_steps * float(s.market.dt_s), sweep_sells=s.sweep_sells[:num_steps])
    p = loop_params(s, "bayesian")
    f = jax.jit(simulate_and_run, static_argnums=3)
    sweep = jnp.asarray(s.sweep_sells)
    _, out = f(jax.random.key(0), s.market, p, s.num_steps, sweep)
    t = _time(lambda: f(jax.random.key(0), s.market, p, s.num_steps, sweep)[1].equity)
    events = s.num_steps * 2 + float(jnp.sum(out.as_count) + jnp.sum(jnp.minimum(out.bid_fill_count, 3))
                                     + jnp.sum(jnp.minimum(out.ask_fill_count, 3)))
    return {"steps_per_s": s.num_steps / t, "belief_events_per_s": events / t, "seconds": t}


def bench_sweep(num_sets: int = 1000) -> dict:
    s = make_scenario("hype_selloff")
    base = loop_params(s, "bayesian")
    lam = jnp.linspace(0.1, 0.8, num_sets)
    batch = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (num_sets, *jnp.shape(x))), base)
    cfg = batch.config
    batch = batch._replace(config=cfg._replace(evidence=cfg.evidence._replace(lambda_fill=lam)))
    sweep = jnp.asarray(s.sweep_sells)

    path = simulate(jax.random.key(0), s.market, s.num_steps)  # one market, many parameter sets

    @jax.jit
    def run_all(batch):
        def one(p):
            out = closed_loop(jax.random.key(1), path, p, sweep)
            return summarize(out, p.initial_position)["pnl"]

        return jax.vmap(one)(batch)

    run_all(batch)
    t = _time(lambda: run_all(batch), repeat=1)
    return {"parameter_sets": num_sets, "aggregate_steps_per_s": num_sets * s.num_steps / t, "seconds": t}


def _kernels_per_step(session, cfg) -> float:
    """Kernels per step of `backtest`'s jitted loop (`benchmarks._hlo`): what bounds its rate."""
    from bayesmm.sim.exchange import exchange_params
    from bayesmm.sim.feed import feed_path, queue_fills
    from bayesmm.sim.run import LoopParams, closed_loop_jit

    path, _ = feed_path(session)
    lp = LoopParams(jax.tree_util.tree_map(jnp.asarray, cfg), exchange_params(), jnp.asarray(0.0), jnp.asarray(0.0))
    lowered = closed_loop_jit.lower(jax.random.key(0), path, lp, None, fill_fn=queue_fills)
    return kernels_per_iteration(lowered.compile())


def bench_real_file() -> dict:
    from bayesmm.sim.backtest import backtest
    from bayesmm.sim_cmd import backtest_config

    t0 = time.perf_counter()
    session, report = ingest(PERP)
    t_ingest = time.perf_counter() - t0
    n_msgs = report.counts["raw_messages"]
    cfg = backtest_config(session, "glft")
    backtest(session, cfg)  # compile
    t0 = time.perf_counter()
    backtest(session, cfg)
    t_loop = time.perf_counter() - t0
    out = {"messages": n_msgs, "bayesmm_ingest_s": t_ingest, "bayesmm_backtest_s": t_loop,
           "bayesmm_kernels_per_step": _kernels_per_step(session, cfg),
           "bayesmm_msgs_per_s_backtest": n_msgs / t_loop, "bayesmm_msgs_per_s_total": n_msgs / (t_ingest + t_loop)}
    try:
        from benchmarks.hbt_glft import run_hftbacktest_glft
    except ImportError as exc:
        out["hftbacktest"] = f"skipped ({exc}); `make bench` installs requirements-bench.lock"
        return out
    h = run_hftbacktest_glft(str(PERP))
    out.update({f"hftbacktest_{k}": v for k, v in h.items()})
    out["hftbacktest_msgs_per_s_backtest"] = n_msgs / h["backtest_s"]
    out["hftbacktest_steps_per_s"] = h["steps"] / h["backtest_s"]  # the baseline of the sweep's aggregate rate
    out["ratio_backtest_bayesmm_over_hftbacktest"] = out["bayesmm_msgs_per_s_backtest"] / out[
        "hftbacktest_msgs_per_s_backtest"]
    return out


def run() -> dict:
    res = {"one_path": bench_one_path(), "sweep_1000": bench_sweep(), "real_file": bench_real_file()}
    for name, r in res.items():
        print(f"  {name}:")
        for k, v in r.items():
            print(f"    {k:<44} {v:>14,.3f}" if isinstance(v, float | int) else f"    {k:<44} {v}")
    return res


def smoke() -> dict:
    """One path of 200 steps."""
    r = bench_one_path(200)
    print(f"  one path: {r['steps_per_s']:,.0f} steps/s (smoke)")
    return r


if __name__ == "__main__":
    run()
