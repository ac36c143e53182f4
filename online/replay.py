"""Replay and streaming: the belief over a whole session with `lax.scan`, and a `Filter` object
for live use (one event or a micro-batch at a time). Both run the same jitted step, so they give
identical trajectories."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from online.belief import Beliefs, BeliefState, Event, init, readout, update
from online.params import OnlineParams

_EVENT_FIELDS = Event._fields


def as_events(arrays, dtype=None) -> Event:
    """An `Event` of arrays from any struct with those fields (e.g. `events.EventArrays`).

    Floats are cast to `dtype` (default: float64 if x64 is enabled, else float32); kind to int32.
    Works on a single event (scalars) as well as on a batch.
    """
    dtype = dtype or (jnp.float64 if jax.config.jax_enable_x64 else jnp.float32)
    return Event(*(jnp.asarray(getattr(arrays, f), jnp.int32 if f == "kind" else dtype) for f in _EVENT_FIELDS))


def _step(state: BeliefState, event: Event, params: OnlineParams):
    state = update(state, event, params)
    return state, readout(state, params)


@jax.jit
def run(events: Event, params: OnlineParams) -> Beliefs:
    """The belief after every event of a session: `lax.scan(update)` from `init(params)`.

    Returns a `Beliefs` whose leaves have a leading axis of length num_events (row i = the state
    after event i). `vmap` it over a batch of parameter sets to sweep them.
    """
    _, beliefs = jax.lax.scan(partial(_step, params=params), init(params), events)
    return beliefs


@jax.jit
def _scan_from(state: BeliefState, events: Event, params: OnlineParams):
    return jax.lax.scan(partial(_step, params=params), state, events)


_step_jit = jax.jit(_step)


class Filter:
    """Streaming belief for live use: `push(event)` or `push_many(events)` -> `Beliefs`.

    The state stays on the device between calls; each call is one jitted dispatch.
    """

    def __init__(self, params: OnlineParams):
        self.params = params
        self.state = init(params)

    def push(self, event: Event) -> Beliefs:
        """Update with one event (an `Event` of scalars); returns the beliefs after it."""
        self.state, beliefs = _step_jit(self.state, event, self.params)
        return beliefs

    def push_many(self, events: Event) -> Beliefs:
        """Update with a micro-batch (an `Event` of arrays); returns the beliefs after each event."""
        self.state, beliefs = _scan_from(self.state, events, self.params)
        return beliefs


def beliefs_to_columns(beliefs: Beliefs, kind) -> dict[str, np.ndarray]:
    """Flatten a replay's `Beliefs` into named NumPy columns (p_regime split per regime), plus kind."""
    from online.params import REGIMES

    cols = {}
    for name, value in beliefs._asdict().items():
        value = np.asarray(value)
        if name == "p_regime":
            for i, regime in enumerate(REGIMES):
                cols[f"p_{regime}"] = value[..., i]
        else:
            cols[name] = value
    cols["kind"] = np.asarray(kind)
    return cols
