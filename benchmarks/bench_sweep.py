"""The sweep's throughput (bayesmm/calibration/sweep.py): parameter sets x closed-loop steps per second for
a vmapped batch against the same sets one at a time (same process, same seeds), and the Ray
backend's scaling from 1 to 2 local workers (skipped without the ray extra).

set-steps/s = sets x seeds x steps / wall seconds, after compilation (each shape is compiled once
before it is timed; a Ray worker's first batch includes its compilation, so the Ray runs time a
second pass over the same batches)."""

from __future__ import annotations

import time

import bayesmm.sim  # noqa: F401  (float64)
from bayesmm.calibration.space import space_from_dict
from bayesmm.calibration.sweep import Evaluator, evaluate_batch, scenario_target

SPACE = {"quoter": {"gamma_per_bps_qty": {"low": 0.003, "high": 0.3, "log": True},
                    "p_reduce": {"low": 0.75, "high": 0.95}}}


def _sets(n: int) -> list[dict]:
    return space_from_dict(SPACE).random(n, seed=0)


def bench_batch_vs_one(num_sets: int = 32, seeds: int = 8, duration_s: float = 150.0) -> dict:
    target = scenario_target("hype_selloff", seeds=seeds, duration_s=duration_s)
    sets = _sets(num_sets)
    steps = num_sets * target.steps
    batched, single = Evaluator((target,), num_sets), Evaluator((target,), 1)
    evaluate_batch(batched, sets)
    evaluate_batch(single, sets[:1])  # compile both shapes first
    t0 = time.perf_counter()
    evaluate_batch(batched, sets)
    t_batch = time.perf_counter() - t0
    t0 = time.perf_counter()
    for s in sets:
        evaluate_batch(single, [s])
    t_one = time.perf_counter() - t0
    return {"sets": num_sets, "seeds": seeds, "batch_set_steps_per_s": steps / t_batch,
            "one_at_a_time_set_steps_per_s": steps / t_one, "ratio": t_one / t_batch}


def bench_ray(workers: int, num_sets: int = 32, batch: int = 8, seeds: int = 8, duration_s: float = 150.0):
    try:
        import ray
    except ImportError:
        return None
    from bayesmm.calibration.sweep_backends import RayBackend

    target = scenario_target("hype_selloff", seeds=seeds, duration_s=duration_s)
    ev = Evaluator((target,), batch)
    sets = _sets(num_sets)
    batches = [sets[i:i + batch] for i in range(0, num_sets, batch)]
    be = RayBackend(workers=workers)
    try:
        list(be.run(evaluate_batch, ev, batches))  # every worker compiles
        t0 = time.perf_counter()
        list(be.run(evaluate_batch, ev, batches))
        t = time.perf_counter() - t0
    finally:
        be.close()
        ray.shutdown()
    return {"workers": workers, "set_steps_per_s": num_sets * target.steps / t, "seconds": t}


def _print(r: dict, rays: list) -> None:
    print(f"  {r['sets']} sets x {r['seeds']} seeds: vmapped batch {r['batch_set_steps_per_s']:,.0f} set-steps/s, "
          f"one set at a time {r['one_at_a_time_set_steps_per_s']:,.0f} set-steps/s ({r['ratio']:.1f}x)")
    for x in rays:
        if x is None:
            print("  ray: not installed (make ray)")
            break
        print(f"  ray, {x['workers']} worker(s): {x['set_steps_per_s']:,.0f} set-steps/s ({x['seconds']:.1f} s)")


def run() -> dict:
    r = bench_batch_vs_one()
    rays = [bench_ray(1), bench_ray(2)]
    _print(r, rays)
    return {"batch": r, "ray": rays}


def smoke() -> dict:
    """The batch path only: starting Ray and compiling in its workers takes most of a minute, and
    tests/calibration/test_sweep_ray.py runs that path."""
    r = bench_batch_vs_one(num_sets=2, seeds=1, duration_s=2.0)
    _print(r, [])
    return {"batch": r}
