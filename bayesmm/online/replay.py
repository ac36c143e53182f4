"""Replay and streaming: the belief over a whole session with `lax.scan`, and a `Filter` object
for live use (one event or a micro-batch at a time). Both run the same jitted fast path
(`online.fused`), so they give identical trajectories; `run_reference` is `belief.update` scanned
as written, the reference the fast path is held to."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from bayesmm.online.belief import Beliefs, BeliefState, Event, init, readout, update
from bayesmm.online.fused import event_terms, scan_states, step
from bayesmm.online.params import Config

_EVENT_FIELDS = Event._fields


def as_events(arrays, dtype=None) -> Event:
    """An `Event` of arrays from any struct with those fields (e.g. `events.EventArrays`).

    Floats are cast to `dtype` (default: float64 if x64 is enabled, else float32); kind to int32.
    Works on a single event (scalars) as well as on a batch.
    """
    dtype = dtype or (jnp.float64 if jax.config.jax_enable_x64 else jnp.float32)
    return Event(*(jnp.asarray(getattr(arrays, f), jnp.int32 if f == "kind" else dtype) for f in _EVENT_FIELDS))


@partial(jax.jit, static_argnames="adapt")
def run(events: Event, params: Config, adapt: bool = True) -> Beliefs:
    """The belief after every event of a session, from `init(params)`.

    Returns a `Beliefs` whose leaves have a leading axis of length num_events (row i = the state
    after event i). `vmap` it over a batch of parameter sets to sweep them; `grad` through it to
    tune them. The same computation as `Filter.push_many` from the prior (`scan_from`), and equal to
    the reference, `run_reference` (`lax.scan` of `belief.update`), to ~1e-13 in float64.
    `adapt` False skips what the forecasts learn online (`online.adapt`): the same numbers where the
    config's `book.adapt_*_var` are 0, without the second scan (the tuner's replays, whose gradient
    would carry its state through every event).
    """
    return scan_from(init(params), events, params, adapt)[1]


@partial(jax.jit, static_argnames="adapt")
def scan_from(state: BeliefState, events: Event, params: Config, adapt: bool = True) -> tuple[BeliefState, Beliefs]:
    """(the state after the last event, the beliefs after each) from `state`, by the fast path
    (`online.fused`: the state-free part of every event's update computed for the batch at once, a
    flat masked scan over the rest).

    The scan emits the states and the read-out runs once over all of them (`vmap(readout)`)
    rather than inside the scan: the same function of the same state, but one batched computation
    instead of ~20 small per-event kernels (issue 18 measured the in-scan read-out at about half of
    the replay's time)."""
    last, states = scan_states(state, events, params, adapt)
    return last, jax.vmap(readout, in_axes=(0, None))(states, params)


@jax.jit
def run_reference(events: Event, params: Config) -> Beliefs:
    """`run` the way the belief is written: `lax.scan` of `belief.update` (its `lax.switch` on the
    kind, its `lax.cond` in the transition matrix), one event at a time. Kept as the reference the
    fast path is tested against (tests/online/test_fused.py) and the baseline of the replay
    benchmark (`benchmarks/bench_replay.py` measures both)."""
    states = jax.lax.scan(lambda s, e: (update(s, e, params),) * 2, init(params), events)[1]
    return jax.vmap(readout, in_axes=(0, None))(states, params)


def _host_unravel(template):
    """Split a flat NumPy vector back into a pytree shaped like `template` (cheap host slicing)."""
    leaves, treedef = jax.tree_util.tree_flatten(template)
    shapes = [(leaf.shape, leaf.dtype) for leaf in leaves]
    sizes = np.cumsum([0] + [int(np.prod(shape)) for shape, _ in shapes])

    def unravel(flat: np.ndarray):
        bounds = zip(sizes[:-1], sizes[1:], strict=True)
        return treedef.unflatten([flat[a:b].reshape(shape).astype(dtype)
                                  for (a, b), (shape, dtype) in zip(bounds, shapes, strict=True)])

    return unravel


class Filter:
    """Streaming belief for live use: `push(event)` or `push_many(events)` -> `Beliefs`.

    `push` packs the state, the event and the parameters into one flat vector each, so a call
    dispatches 3 buffers instead of ~60 pytree leaves (JAX's per-leaf dispatch cost dominated the
    latency); the step itself is the replay's (`fused.event_terms`, `fused.step`, `readout`).
    """

    def __init__(self, params: Config):
        self.params = jax.device_put(params)
        self._flat_params, unravel_params = ravel_pytree(self.params)
        flat_state, self._unravel_state = ravel_pytree(init(self.params))
        self._flat_state = flat_state
        self._dtype = flat_state.dtype
        beliefs_template = jax.eval_shape(readout, init(self.params), self.params)
        self._unravel_beliefs = _host_unravel(beliefs_template)
        unravel_state = self._unravel_state

        @jax.jit
        def step_flat(flat_state, event_vec, flat_params):
            params = unravel_params(flat_params)
            event = Event(*(event_vec[i].astype(jnp.int32) if f == "kind" else event_vec[i]
                            for i, f in enumerate(_EVENT_FIELDS)))
            terms = jax.tree_util.tree_map(lambda x: x[0], event_terms(Event(*(x[None] for x in event)), params))
            state = step(unravel_state(flat_state), terms, params)
            return ravel_pytree(state)[0], ravel_pytree(readout(state, params))[0]

        @jax.jit
        def many_flat(flat_state, events, flat_params):
            last, beliefs = scan_from(unravel_state(flat_state), events, unravel_params(flat_params))
            return ravel_pytree(last)[0], beliefs

        self._step_flat, self._many_flat = step_flat, many_flat

    @property
    def state(self) -> BeliefState:
        """The current state as a `BeliefState` pytree."""
        return self._unravel_state(self._flat_state)

    @state.setter
    def state(self, state: BeliefState) -> None:
        self._flat_state = ravel_pytree(state)[0]

    def push(self, event: Event) -> Beliefs:
        """Update with one event (an `Event` of scalars); returns the beliefs after it (NumPy)."""
        vec = np.fromiter(event, dtype=self._dtype, count=len(_EVENT_FIELDS))
        self._flat_state, flat_beliefs = self._step_flat(self._flat_state, vec, self._flat_params)
        return self._unravel_beliefs(np.asarray(flat_beliefs))

    def push_many(self, events: Event) -> Beliefs:
        """Update with a micro-batch (an `Event` of arrays); returns the beliefs after each event.
        The state stays one flat vector between calls, as `push`'s does (unravelling and
        re-ravelling the pytree on the host costs more than the update: `benchmarks/bench_replay.py`)."""
        self._flat_state, beliefs = self._many_flat(self._flat_state, events, self._flat_params)
        return beliefs


def beliefs_to_columns(beliefs: Beliefs, kind) -> dict[str, np.ndarray]:
    """Flatten a replay's `Beliefs` into named NumPy columns (p_regime split per regime: p_<regime>;
    the per-horizon forecasts per horizon: p_down_<h>s, log_odds_<h>s), plus kind."""
    from bayesmm.online.params import HORIZONS_S, REGIMES

    cols = {}
    for name, value in beliefs._asdict().items():
        value = np.asarray(value)
        if name == "p_regime":
            for i, regime in enumerate(REGIMES):
                cols[f"p_{regime}"] = value[..., i]
        elif name in ("p_down_h", "log_odds_h"):
            for i, h in enumerate(HORIZONS_S):
                cols[f"{name[:-2]}_{h:g}s"] = value[..., i]
        else:
            cols[name] = value
    cols["kind"] = np.asarray(kind)
    return cols
