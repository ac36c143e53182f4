"""Many seeds at once: `run_scenario` vmaps the market simulation and the closed loop over seeds
and summarises each run; `run_sets` does the same for a batch of parameter sets on the same seeds
(the sweep's inner loop: sets x seeds in one compiled call); `percentiles` turns the per-seed
metrics into median / p10 / p90."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from bayesmm.sim.metrics import summarize
from bayesmm.sim.run import LoopParams, learns_online, simulate_and_run
from bayesmm.sim.scenarios import Scenario, loop_params


@partial(jax.jit, static_argnums=(3, 5))
def _run_many(keys, market, params, num_steps, sweep, adapt: bool = True):
    paths, outs = jax.vmap(lambda k: simulate_and_run(k, market, params, num_steps, sweep, adapt))(keys)
    metrics = jax.vmap(lambda o: summarize(o, params.initial_position))(outs)
    return paths, outs, metrics


def run_scenario(scenario: Scenario, quoter: str, seeds: int = 100, first_seed: int = 0, base=None,
                 matched: bool = True, tape: bool = True):
    """(paths, outputs, metrics) for `seeds` runs; seed i uses jax.random.key(first_seed + i), so
    different quoters on the same seeds see the same markets. `base`, `matched` and `tape`: the bot's
    configuration, as in `sim.scenarios.scenario_config` (by default the truth-matched belief
    reading the tape)."""
    params = loop_params(scenario, quoter, base, matched, tape)
    keys = jax.vmap(jax.random.key)(jnp.arange(first_seed, first_seed + seeds))
    paths, outs, metrics = _run_many(keys, scenario.market, params, scenario.num_steps,
                                     jnp.asarray(scenario.sweep_sells), learns_online(params.config))
    return paths, outs, {k: np.asarray(v) for k, v in metrics.items()}


@partial(jax.jit, static_argnums=(3, 5))
def _sets_many(keys, market, params, num_steps, sweep, adapt: bool):
    return jax.vmap(lambda p: _run_many(keys, market, p, num_steps, sweep, adapt)[2])(params)


def run_sets(scenario: Scenario, params: LoopParams, seeds: int, first_seed: int = 0) -> dict:
    """{metric: (num_sets, seeds) array} for a batch of LoopParams (every leaf with a leading set
    axis, e.g. `stack_params`), each set on the same seeds as `run_scenario` would use."""
    keys = jax.vmap(jax.random.key)(jnp.arange(first_seed, first_seed + seeds))
    metrics = _sets_many(keys, scenario.market, params, scenario.num_steps, jnp.asarray(scenario.sweep_sells),
                         learns_online(params.config))
    return {k: np.asarray(v) for k, v in metrics.items()}


def stack_params(items: list):
    """One pytree with a leading axis from a list of pytrees of the same structure (configs, LoopParams)."""
    return jax.tree_util.tree_map(lambda *x: np.stack([np.asarray(v) for v in x]), *items)


def percentiles(metrics: dict) -> dict:
    """{metric: {"median", "p10", "p90"}} over seeds (NaNs - e.g. never entered reduce-only - ignored;
    `n` counts the seeds with a value)."""
    out = {}
    for k, v in metrics.items():
        v = np.asarray(v, float)
        ok = v[np.isfinite(v)]
        out[k] = {"median": float(np.median(ok)) if ok.size else None,
                  "p10": float(np.percentile(ok, 10)) if ok.size else None,
                  "p90": float(np.percentile(ok, 90)) if ok.size else None, "n": int(ok.size)}
    return out
