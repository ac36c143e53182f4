"""Ready for an accelerator without one at hand: the replay, the streaming filter's batch step and the
vmapped closed loop compile to programs with no host callback (a GPU would otherwise stop at every
event to run Python), and run with every implicit transfer between host and device disallowed
(`jax.transfer_guard`), their inputs placed on the device first - what a GPU backend needs to run
them unchanged."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from bayesmm.online.params import default_config
from bayesmm.online.replay import Filter, as_events, run
from tests.online.test_invariants import _random_stream

_HOST_CALLS = ("callback", "py_func", "host_compute", "outfeed", "infeed", "send(", "recv(")


def _assert_no_host_calls(compiled) -> None:
    hlo = compiled.as_text()
    found = [w for w in _HOST_CALLS if w in hlo]
    assert not found, f"host round trips in the compiled program: {found}"


def test_the_checks_see_a_host_round_trip():
    """Controls: a program that calls back into Python is caught, and so is an implicit transfer."""
    import pytest

    def with_callback(x):
        return jax.pure_callback(lambda v: np.asarray(v) * 2.0, jax.ShapeDtypeStruct(x.shape, x.dtype), x)

    with pytest.raises(AssertionError, match="host round trips"):
        _assert_no_host_calls(jax.jit(with_callback).lower(jnp.ones(3)).compile())
    with jax.transfer_guard("disallow"), pytest.raises(Exception, match="[Dd]isallowed"):
        jax.jit(lambda x: x + 1.0)(np.ones(3))


def test_replay_and_filter_stay_on_the_device():
    params = jax.device_put(default_config())
    ev = jax.device_put(as_events(_random_stream(4, "mixed"), np.float64))
    _assert_no_host_calls(run.lower(ev, params).compile())
    with jax.transfer_guard("disallow"):
        out = run(ev, params)
        assert out.p_down.shape == ev.kind.shape
    f = Filter(default_config())
    batch = jax.device_put(jax.tree_util.tree_map(lambda x: x[:64], ev))
    _assert_no_host_calls(f._many_flat.lower(f._flat_state, batch, f._flat_params).compile())
    with jax.transfer_guard("disallow"):
        f.push_many(batch)


def test_vmapped_closed_loop_stays_on_the_device():
    import bayesmm.sim  # noqa: F401  (float64)
    from bayesmm.sim.run import simulate_and_run
    from bayesmm.sim.scenarios import loop_params, make_scenario

    s = make_scenario("hype_selloff")
    steps = 40
    params = jax.device_put(loop_params(s, "bayesian"))
    keys = jax.device_put(jax.vmap(jax.random.key)(jnp.arange(3)))
    sweep = jax.device_put(jnp.asarray(s.sweep_sells[:steps]))
    market = jax.device_put(s.market)
    loop = jax.jit(jax.vmap(lambda k, m, p, w: simulate_and_run(k, m, p, steps, w)[1].equity,
                            in_axes=(0, None, None, None)))
    _assert_no_host_calls(loop.lower(keys, market, params, sweep).compile())
    with jax.transfer_guard("disallow"):
        equity = loop(keys, market, params, sweep)
        assert equity.shape == (3, steps)
