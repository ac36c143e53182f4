"""Online belief throughput on one core: scan replay (events/s), push_many amortised cost per event
(1,000-event batches), and single-event push latency; float64 and float32.

"""

from __future__ import annotations

# XLA_FLAGS (one intra-op thread) is set by benchmarks/__main__.py before JAX starts.
import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402

from benchmarks._timing import best_of  # noqa: E402
from events import ingest, to_arrays  # noqa: E402
from online.belief import Event  # noqa: E402
from online.params import default_config  # noqa: E402
from online.replay import Filter, as_events  # noqa: E402
from online.replay import run as replay  # noqa: E402
from tests.conftest import PERP  # noqa: E402


def run_one(dtype, path=PERP) -> dict:
    session, _ = ingest(path)
    arrays = to_arrays(session)
    ev = as_events(arrays, dtype)
    params = default_config(dtype)
    n = len(arrays.kind)
    jax.block_until_ready(replay(ev, params))
    t_replay = best_of(lambda: jax.block_until_ready(replay(ev, params)))
    batch = Event(*(x[:1000] for x in ev))
    f = Filter(params)
    jax.block_until_ready(f.push_many(batch))
    t_batch = best_of(lambda: jax.block_until_ready(f.push_many(batch)), repeat=20)
    one = Event(*(float(x[0]) for x in ev))  # a live event arrives as Python numbers
    jax.block_until_ready(f.push(one))
    t_push = best_of(lambda: jax.block_until_ready(f.push(one)), repeat=200)
    return {"events": n, "replay_events_per_s": n / t_replay, "push_many_us_per_event": t_batch / 1000 * 1e6,
            "push_latency_us": t_push * 1e6}


def run() -> dict:
    out = {}
    for name, dtype in (("float64", np.float64), ("float32", np.float32)):
        out[name] = r = run_one(dtype)
        print(f"  {name}: replay {r['replay_events_per_s']:,.0f} events/s over {r['events']:,} events; "
              f"push_many(1000) {r['push_many_us_per_event']:.2f} us/event; push {r['push_latency_us']:.1f} us")
    return out


def smoke() -> dict:
    """The same measurements on the 4-second Hyperliquid file."""
    from tests.conftest import HL

    r = run_one(np.float64, HL)
    print(f"  replay {r['replay_events_per_s']:,.0f} events/s over {r['events']:,} events (smoke)")
    return r


if __name__ == "__main__":
    run()
