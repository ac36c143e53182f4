"""The closed loop on a recorded session: the real feed on a step grid, our fills from the real
tape by the queue model (`sim.feed`), the bot's configuration as given."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from bayesmm.events.session import Session
from bayesmm.online.params import Config
from bayesmm.sim.exchange import exchange_params
from bayesmm.sim.feed import feed_path, queue_fills
from bayesmm.sim.metrics import summarize
from bayesmm.sim.run import LoopParams, closed_loop, closed_loop_jit, learns_online


def backtest(session: Session, cfg: Config, seed: int = 0, dt_s: float = 0.1):
    """Run `cfg` (belief, quoter preset, orders, venue) on the session. Returns (LoopOutput,
    metrics {name: float}, report of the feed's construction)."""
    path, report = feed_path(session, dt_s)
    lp = LoopParams(jax.tree_util.tree_map(jnp.asarray, cfg), exchange_params(), jnp.asarray(0.0), jnp.asarray(0.0))
    out = closed_loop_jit(jax.random.key(seed), path, lp, None, fill_fn=queue_fills, adapt=learns_online(cfg))
    metrics = {k: float(v) for k, v in summarize(out, 0.0).items()}
    return out, metrics, report


@partial(jax.jit, static_argnames="adapt")
def _sets_on_path(key, path, params: LoopParams, adapt: bool):
    def one(p):
        return summarize(closed_loop(key, path, p, None, fill_fn=queue_fills, adapt=adapt), p.initial_position)

    return jax.vmap(one)(params)


def backtest_sets(path, cfgs: Config, seed: int = 0) -> dict:
    """{metric: (num_sets,) array}: `backtest` of a batch of configurations (every leaf of `cfgs`
    with a leading set axis, `sim.batch.stack_params`) on one feed path (`feed_path`), vmapped."""
    n = np.shape(cfgs.evidence.lambda_fill)[0]
    lp = LoopParams(cfgs, jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (n, *jnp.shape(x))), exchange_params()),
                    jnp.zeros(n), jnp.zeros(n))
    return {k: np.asarray(v) for k, v in _sets_on_path(jax.random.key(seed), path, lp, learns_online(cfgs)).items()}


def backtest_quoters(session: Session, quoters, base: Config | None = None) -> dict:
    """Each quoter preset backtested on the session, on `base` (a calibrated config; default: the
    spec's defaults on the session's instrument, `calibration.venue.bot_config`): {quoter: {"out",
    "metrics", "report", "fills" (`sim.markout.fills_table`), "markout" (`summarize_markout`)}}. One
    process: the presets share the compiled loop (their configs differ in values only)."""
    from bayesmm.calibration.venue import session_config
    from bayesmm.online.quoter import preset
    from bayesmm.sim.markout import fills_table, summarize_markout

    base = session_config(session) if base is None else base  # once: it reads the session's whole tape
    runs = {}
    for quoter in dict.fromkeys(quoters):
        cfg = preset(quoter, base)
        out, metrics, report = backtest(session, cfg)
        table = fills_table(out, quoter, float(cfg.quoter.level_spacing_bps))
        t = np.asarray(out.t_s)
        runs[quoter] = {"out": out, "metrics": metrics, "report": report, "fills": table,
                        "markout": summarize_markout(table, float(t[-1] - t[0]), metrics["pnl"])}
    return runs


def fills_meta(session: Session, runs: dict) -> dict:
    """The metadata `sim.markout.write_fills` stores for `backtest_quoters`' runs."""
    t = np.asarray(next(iter(runs.values()))["out"].t_s)
    m = session.meta
    return {"instrument": m.instrument, "venue": m.venue, "t0_ns": int(session.column("t_ns")[0]),
            "contract_size": m.contract_size, "inverse": m.inverse, "duration_s": float(t[-1] - t[0]),
            "quoters": {q: {"pnl": r["metrics"]["pnl"]} for q, r in runs.items()}}
