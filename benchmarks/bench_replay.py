"""Online belief throughput on one core: scan replay (events/s) by the fast path (`online.fused`)
against the reference (`run_reference`, `belief.update` scanned as written) in the same process,
push_many's amortised cost per event (1,000-event batches), and single-event push latency beside
the floor of any jitted call from Python; float64 and float32. With each, the kernels per event
(per iteration of the scan, per call of push) read from the compiled program: on a CPU each is a
separately dispatched kernel, and their number times the dispatch cost is what bounds the rate.
"""

from __future__ import annotations

# XLA_FLAGS (one intra-op thread) is set by benchmarks/__main__.py before JAX starts.
import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402

from bayesmm.events import ingest, to_arrays  # noqa: E402
from bayesmm.online.belief import Event  # noqa: E402
from bayesmm.online.params import default_config  # noqa: E402
from bayesmm.online.replay import Filter, as_events, run_reference  # noqa: E402
from bayesmm.online.replay import run as replay  # noqa: E402
from benchmarks._hlo import kernels_per_call, kernels_per_iteration  # noqa: E402
from benchmarks._timing import best_of  # noqa: E402
from tests.conftest import PERP  # noqa: E402


def call_floor_us(filt: Filter, event_vec: np.ndarray) -> float:
    """The wall time of a jitted call from Python with push's arguments (the filter's flat state and
    parameters, an event vector) that does one addition and returns two vectors: what any
    single-event push costs before its own work (JAX's dispatch), us."""
    f = jax.jit(lambda state, event, params: (state + event[0], params))
    args = (filt._flat_state, event_vec, filt._flat_params)
    jax.block_until_ready(f(*args))
    return best_of(lambda: jax.block_until_ready(f(*args)), repeat=200) * 1e6


def run_one(dtype, path=PERP, reference: bool = True) -> dict:
    session, _ = ingest(path)
    arrays = to_arrays(session)
    ev = as_events(arrays, dtype)
    params = default_config(dtype)
    n = len(arrays.kind)
    out = {"events": n}
    for name, fn in (("replay", replay), ("reference", run_reference)) if reference else (("replay", replay),):
        jax.block_until_ready(fn(ev, params))
        out[f"{name}_events_per_s"] = n / best_of(lambda fn=fn: jax.block_until_ready(fn(ev, params)))
        out[f"{name}_kernels_per_event"] = kernels_per_iteration(fn.lower(ev, params).compile())
    if reference:
        out["replay_over_reference"] = out["replay_events_per_s"] / out["reference_events_per_s"]
    batch = Event(*(x[:1000] for x in ev))
    f = Filter(params)
    jax.block_until_ready(f.push_many(batch))
    out["push_many_us_per_event"] = best_of(lambda: jax.block_until_ready(f.push_many(batch)), repeat=20) / 1000 * 1e6
    one = Event(*(float(x[0]) for x in ev))  # a live event arrives as Python numbers
    jax.block_until_ready(f.push(one))
    out["push_latency_us"] = best_of(lambda: jax.block_until_ready(f.push(one)), repeat=200) * 1e6
    vec = np.zeros(len(Event._fields), f._dtype)
    out["push_kernels"] = kernels_per_call(f._step_flat.lower(f._flat_state, vec, f._flat_params).compile())
    out["jax_call_floor_us"] = call_floor_us(f, vec)
    return out


def _print(name: str, r: dict) -> None:
    ref = (f" (reference {r['reference_events_per_s']:,.0f}, {r['replay_over_reference']:.2f}x; kernels per event "
           f"{r['replay_kernels_per_event']:.0f} against {r['reference_kernels_per_event']:.0f})"
           if "reference_events_per_s" in r else "")
    print(f"  {name}: replay {r['replay_events_per_s']:,.0f} events/s over {r['events']:,} events{ref}; "
          f"push_many(1000) {r['push_many_us_per_event']:.2f} us/event; push {r['push_latency_us']:.1f} us "
          f"({r['push_kernels']:.0f} kernels; a jitted call's floor {r['jax_call_floor_us']:.1f} us)")


def run() -> dict:
    out = {}
    for name, dtype in (("float64", np.float64), ("float32", np.float32)):
        out[name] = run_one(dtype)
        _print(name, out[name])
    return out


def smoke() -> dict:
    """The same measurements on the 4-second Hyperliquid file (the fast path only)."""
    from tests.conftest import HL

    r = run_one(np.float64, HL, reference=False)
    _print("float64 (smoke)", r)
    return r


if __name__ == "__main__":
    run()
