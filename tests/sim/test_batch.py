"""`sim.batch.map_sets`: a sweep's sets run in chunks give what one `vmap` over all of them gives."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from sim.batch import map_sets
from sim.metrics import summarize
from sim.run import simulate_and_run
from sim.scenarios import loop_params, make_scenario


def test_chunked_sets_equal_one_vmap():
    """5 sets in chunks of 2 (two chunks and a remainder of 1) against one vmap of the 5: the closed
    loop's metrics agree to 1e-12, and the sets differ (each was run with its own parameters)."""
    s = make_scenario("hype_selloff")
    steps = 60
    base = loop_params(s, "bayesian")
    batch = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (5, *jnp.shape(x))), base)
    gamma = jnp.asarray([0.003, 0.01, 0.03, 0.1, 0.3])
    batch = batch._replace(config=batch.config._replace(quoter=batch.config.quoter._replace(gamma_per_bps_qty=gamma)))
    sweep = jnp.asarray(s.sweep_sells[:steps])

    def one(p):
        out = simulate_and_run(jax.random.key(3), s.market, p, steps, sweep)[1]
        return summarize(out, p.initial_position)

    want = jax.jit(jax.vmap(one))(batch)
    got = jax.jit(lambda b: map_sets(one, b, chunk=2))(batch)
    for k in want:
        np.testing.assert_allclose(np.asarray(got[k]), np.asarray(want[k]), rtol=1e-12, atol=1e-12, err_msg=k)
    assert len(set(np.round(np.asarray(want["pnl"]), 9).tolist())) > 1
