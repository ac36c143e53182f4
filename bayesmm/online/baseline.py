"""The old belief system (spec section 2), kept as a baseline: mid returns only.

What the spec describes: prior mu ~ N(0, expected_sigma^2) with expected_sigma = 0.001 (returns as
fractions of the price, per second), likelihood dp | mu ~ N(mu dt, sigma_obs^2 dt), the standard
conjugate normal update. What the production logs show on top of that: `drift_confidence` grew
by ~1e-4 per observation (0.001 at N = 10, 0.099 at N = 1100), and the published drift and
probabilities were scaled by it. We model that clamp as confidence = 1 - (1 - rate)^N, which
reproduces both logged values, so the baseline behaves as the deployed system did: it barely moves.

(The spec writes expected_sigma = 0.001 as "100 bps"; 0.001 of the price is 10 bps.)
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.stats import norm

from bayesmm.events.kinds import MID_TICK


class CurrentSystemParams(NamedTuple):
    """Attributes:
    expected_sigma_per_s: prior sd of the drift, fraction of price per second (0.001).
    sigma_obs_per_sqrt_s: return volatility, fraction of price per sqrt(s) (0.0002).
    confidence_rate: growth of drift_confidence per observation, as logged (1e-4).
    """

    expected_sigma_per_s: float = 0.001
    sigma_obs_per_sqrt_s: float = 0.0002
    confidence_rate: float = 1e-4


class CurrentSystemState(NamedTuple):
    """Attributes: precision and mean of the conjugate normal drift posterior (fraction/s); N observations."""

    precision: jax.Array
    mean: jax.Array
    num_obs: jax.Array


def current_system_init(params: CurrentSystemParams, dtype=jnp.float64) -> CurrentSystemState:
    """The prior N(0, expected_sigma^2) and no observations."""
    return CurrentSystemState(jnp.asarray(1.0 / params.expected_sigma_per_s**2, dtype), jnp.zeros((), dtype),
                              jnp.zeros((), dtype))


def current_system_update(state: CurrentSystemState, event, params: CurrentSystemParams) -> CurrentSystemState:
    """The spec's conjugate update on each mid return (other events are ignored, as they were)."""
    use = (event.kind == MID_TICK) & (event.ret_dt_s > 0) & (event.valid > 0)
    dt = jnp.where(use, event.ret_dt_s, 1.0)
    ret = event.ret_bps / 1e4  # fraction of price
    obs_precision = dt / params.sigma_obs_per_sqrt_s**2
    precision = state.precision + obs_precision
    mean = (state.precision * state.mean + (ret / dt) * obs_precision) / precision
    return CurrentSystemState(jnp.where(use, precision, state.precision), jnp.where(use, mean, state.mean),
                              state.num_obs + use.astype(state.num_obs.dtype))


def current_system_readout(state: CurrentSystemState, params: CurrentSystemParams) -> dict:
    """p_down, drift (bps/s) and drift_confidence as the old system published them."""
    confidence = 1.0 - (1.0 - params.confidence_rate) ** state.num_obs
    p_conj = norm.cdf(-state.mean * jnp.sqrt(state.precision))
    return {"p_down": 0.5 + (p_conj - 0.5) * confidence, "mu_bps_s": state.mean * 1e4 * confidence,
            "confidence": confidence}


@jax.jit
def current_system_run(events, params: CurrentSystemParams) -> dict:
    """The old belief after every event (`lax.scan`), like `online.replay.run`."""

    def step(state, ev):
        state = current_system_update(state, ev, params)
        return state, current_system_readout(state, params)

    _, out = jax.lax.scan(step, current_system_init(params, events.ret_bps.dtype), events)
    return out
