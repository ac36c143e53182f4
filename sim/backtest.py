"""The closed loop on a recorded session: the real feed on a step grid, our fills from the real
tape by the queue model (`sim.feed`), the bot's configuration as given."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from events.session import Session
from online.params import Config
from sim.exchange import exchange_params
from sim.feed import feed_path, queue_fills
from sim.metrics import summarize
from sim.run import LoopParams, closed_loop_jit


def backtest(session: Session, cfg: Config, seed: int = 0, dt_s: float = 0.1):
    """Run `cfg` (belief, quoter preset, orders, venue) on the session. Returns (LoopOutput,
    metrics {name: float}, report of the feed's construction)."""
    path, report = feed_path(session, dt_s)
    lp = LoopParams(jax.tree_util.tree_map(jnp.asarray, cfg), exchange_params(), jnp.asarray(0.0), jnp.asarray(0.0))
    out = closed_loop_jit(jax.random.key(seed), path, lp, None, fill_fn=queue_fills)
    metrics = {k: float(v) for k, v in summarize(out, 0.0).items()}
    return out, metrics, report
