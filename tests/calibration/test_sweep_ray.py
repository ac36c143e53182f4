"""The sweep on Ray (bayesmm/calibration/sweep_backends.py), on a local `ray.init`: the same grid gives the
same numbers as the local backend, and a batch whose worker dies mid-sweep is retried, not lost.
Ray is the optional `ray` extra (requirements-ray.lock, installed by `make test`)."""

from __future__ import annotations

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="the ray extra is not installed (make ray)")

from bayesmm.calibration.space import space_from_dict  # noqa: E402
from bayesmm.calibration.sweep import evaluate_batch, scenario_target, sweep  # noqa: E402
from bayesmm.calibration.sweep_backends import SweepError  # noqa: E402

GRID = {"quoter": {"gamma_per_bps_qty": {"low": 0.005, "high": 0.2, "log": True, "points": 4},
                   "p_reduce": {"low": 0.8, "high": 0.95, "points": 4}}}  # 16 sets


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def target():
    return scenario_target("hype_selloff", seeds=2, duration_s=6.0)


@pytest.fixture(scope="module")
def local_result(target):
    return sweep([target], space_from_dict(GRID), search="grid", batch=8, progress=False, holdout=[])


def _metrics(result):
    cols = [c for c in result.table.columns if ":" in c or c in ("score", "feasible")]
    return result.table[cols]


def test_ray_and_local_backends_give_identical_metrics(local_ray, target, local_result):
    r = sweep([target], space_from_dict(GRID), search="grid", batch=8, progress=False, holdout=[], backend="ray")
    assert len(r.table) == 16 and r.report["backend"] == "ray"
    a, b = _metrics(local_result), _metrics(r)
    assert list(a.columns) == list(b.columns)
    assert np.array_equal(a.to_numpy(float), b.to_numpy(float), equal_nan=True)
    assert r.report["winner"] == local_result.report["winner"]


def test_a_worker_killed_mid_sweep_is_retried_and_no_set_is_lost(local_ray, target, local_result, tmp_path):
    marker = tmp_path / "killed-once"

    def dies_once(evaluator, sets):  # pickled by value: a closure
        import os

        if sets[0]["quoter.gamma_per_bps_qty"] > 0.02 and not marker.exists():  # the second batch of two
            marker.touch()
            os._exit(1)  # the worker process dies, as on a lost node
        return evaluate_batch(evaluator, sets)

    r = sweep([target], space_from_dict(GRID), search="grid", batch=8, progress=False, holdout=[], backend="ray",
              evaluate=dies_once)
    assert marker.exists()
    assert len(r.report["retried"]) == 1 and r.report["retried"][0]["error"] in (
        "WorkerCrashedError", "RayTaskError", "ActorDiedError", "NodeDiedError")
    assert len(r.table) == 16
    assert np.array_equal(_metrics(local_result).to_numpy(float), _metrics(r).to_numpy(float), equal_nan=True)


def test_a_batch_that_always_fails_is_an_error_naming_it(local_ray, target):
    def always(evaluator, sets):
        raise RuntimeError("boom")

    with pytest.raises(SweepError, match=r"(?s)batch 0 \(4 sets\) failed 2 times.*boom"):
        from bayesmm.calibration.sweep_backends import RayBackend

        be = RayBackend(retries=1)
        list(be.run(always, None, [[{"a": 1}] * 4]))


def test_a_seeded_optuna_sweep_proposes_the_same_sets_on_either_backend(local_ray, tmp_path):
    """The shipped space (examples/sweep-selloff.toml), Optuna TPE, 64 sets in batches of 16, seed 0:
    the local backend and Ray with 2 workers write identical sets.parquet files (values, metrics,
    scores, winner): the search's rounds do not depend on the backend (`sweep.ROUND_BATCHES`). Before,
    the proposals diverged after the first batch of 16."""
    import pyarrow.parquet as pq

    from bayesmm.calibration.space import load_space
    from bayesmm.calibration.sweep import write_outputs
    from tests.conftest import ROOT

    space = load_space(ROOT / "examples" / "sweep-selloff.toml")
    t = scenario_target("hype_selloff", seeds=1, duration_s=6.0)
    tables = []
    for backend in ("local", "ray"):
        r = sweep([t], space, search="optuna", sets=64, batch=16, seed=0, progress=False, holdout=[], backend=backend)
        write_outputs(r, tmp_path / backend)
        tables.append(pq.read_table(tmp_path / backend / "sets.parquet"))
        assert r.report["backend"] == backend
    assert tables[0].num_rows == 64 and tables[0].equals(tables[1])
