"""The closed loop on a recorded session: the real feed on a step grid, our fills from the real
tape by the queue model (`sim.feed`), the bot's configuration as given."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from bayesmm.events.session import Session
from bayesmm.online.params import Config
from bayesmm.sim.exchange import exchange_params
from bayesmm.sim.feed import feed_path, queue_fills
from bayesmm.sim.metrics import summarize
from bayesmm.sim.run import LoopParams, closed_loop, closed_loop_jit


def backtest(session: Session, cfg: Config, seed: int = 0, dt_s: float = 0.1):
    """Run `cfg` (belief, quoter preset, orders, venue) on the session. Returns (LoopOutput,
    metrics {name: float}, report of the feed's construction)."""
    path, report = feed_path(session, dt_s)
    lp = LoopParams(jax.tree_util.tree_map(jnp.asarray, cfg), exchange_params(), jnp.asarray(0.0), jnp.asarray(0.0))
    out = closed_loop_jit(jax.random.key(seed), path, lp, None, fill_fn=queue_fills)
    metrics = {k: float(v) for k, v in summarize(out, 0.0).items()}
    return out, metrics, report


@jax.jit
def _sets_on_path(key, path, params: LoopParams):
    def one(p):
        return summarize(closed_loop(key, path, p, None, fill_fn=queue_fills), p.initial_position)

    return jax.vmap(one)(params)


def backtest_sets(path, cfgs: Config, seed: int = 0) -> dict:
    """{metric: (num_sets,) array}: `backtest` of a batch of configurations (every leaf of `cfgs`
    with a leading set axis, `sim.batch.stack_params`) on one feed path (`feed_path`), vmapped."""
    n = np.shape(cfgs.evidence.lambda_fill)[0]
    lp = LoopParams(cfgs, jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (n, *jnp.shape(x))), exchange_params()),
                    jnp.zeros(n), jnp.zeros(n))
    return {k: np.asarray(v) for k, v in _sets_on_path(jax.random.key(seed), path, lp).items()}
