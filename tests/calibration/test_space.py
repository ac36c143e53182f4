"""The sweep's space file and objective (bayesmm/calibration/space.py): parsing, errors that name the entry,
grid and random sets, the spec's objective and the Pareto front, against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from bayesmm.calibration.space import Objective, SpaceError, apply, load_space, space_from_dict
from bayesmm.calibration.sweep import best_index, pareto_front
from bayesmm.online.params import default_config

EXAMPLE = "examples/sweep-selloff.toml"


def test_example_space_parses_and_its_grid_is_the_product_of_its_dimensions():
    from tests.conftest import ROOT

    sp = load_space(ROOT / EXAMPLE)
    sizes = [len(d.grid()) for d in sp.dims]
    assert sp.grid_size() == int(np.prod(sizes)) == len(sp.grid())
    g = sp.dims[0].grid()  # gamma: 4 points, log-spaced 0.003 .. 0.3: 0.003, 0.0139, 0.0646, 0.3
    assert np.allclose(g, [0.003, 0.003 * 100 ** (1 / 3), 0.003 * 100 ** (2 / 3), 0.3])


def test_random_sets_stay_in_range_are_seeded_and_log_uniform():
    sp = space_from_dict({"quoter": {"gamma_per_bps_qty": {"low": 0.001, "high": 1.0, "log": True},
                                     "burst_premium_bps": {"choices": [0.0, 5.0]}, "horizon_s": 20.0}})
    a, b = sp.random(4000, seed=3), sp.random(4000, seed=3)
    assert a == b
    g = np.array([s["quoter.gamma_per_bps_qty"] for s in a])
    assert g.min() >= 0.001 and g.max() <= 1.0
    # log-uniform on [1e-3, 1]: P(g < 0.01) = 1/3, P(g < 0.1) = 2/3 (binomial sd ~0.0075)
    assert abs(np.mean(g < 0.01) - 1 / 3) < 0.03 and abs(np.mean(g < 0.1) - 2 / 3) < 0.03
    assert {s["quoter.burst_premium_bps"] for s in a} == {0.0, 5.0}
    assert all(s["quoter.horizon_s"] == 20.0 for s in a)


@pytest.mark.parametrize("doc, message", [
    ({"quoter": {"gama_per_bps_qty": {"low": 0.1, "high": 1}}}, "did you mean 'gamma_per_bps_qty'"),
    ({"quoterr": {"gamma_per_bps_qty": 0.1}}, "did you mean 'quoter'"),
    ({"quoter": {"p_reduce": {"low": 0.4, "high": 0.9}}}, "outside the parameter's range"),
    ({"quoter": {"gamma_per_bps_qty": {"low": 1.0, "high": 0.1}}}, "low < high"),
    ({"quoter": {"drift_cap_mult": {"low": 0.0, "high": 2.0, "log": True}}}, "log scale"),
    ({"quoter": {"regime_premium_bps": {"low": 0.0, "high": 2.0}}}, "only scalar fields"),
    ({"quoter": {"use_drift": {"low": 0.0, "high": 1.0}}}, "choices = [0, 1]"),
    ({"quoter": {"horizon_s": {"low": 1.0, "high": 2.0, "step": 1}}}, "unknown keys ['step']"),
    ({"quoter": {"horizon_s": float("nan")}}, "not a finite number"),
    ({"quoter": {"horizon_s": 30.0}}, "nothing to sweep"),
    ({"objective": {"max_position": 3}, "quoter": {"horizon_s": {"choices": [1.0, 2.0]}}}, "unknown keys"),
])
def test_a_bad_space_is_an_error_naming_the_entry(doc, message):
    with pytest.raises(SpaceError) as err:
        space_from_dict(doc, "space.toml")
    assert message in str(err.value) and "space.toml" in str(err.value)


def test_a_space_file_that_is_not_toml_or_missing_is_named(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text("[quoter\n")
    with pytest.raises(SpaceError, match="not valid TOML"):
        load_space(p)
    with pytest.raises(SpaceError, match="no such space file"):
        load_space(tmp_path / "missing.toml")


def test_objective_by_hand():
    o = Objective(max_reduce_only_fraction=0.3, min_pnl=0.0, pnl_weight=2.0, reduce_only_weight=100.0)
    # feasible: only max |position| counts
    assert o.score(5.0, 1.0, 0.1) == 5.0 and o.feasible(1.0, 0.1)
    # P&L 1.5 short (x2) and reduce-only 0.1 over the cap (x100): 5 + 3 + 10
    assert o.score(5.0, -1.5, 0.4) == pytest.approx(18.0)
    assert not o.feasible(-1.5, 0.1) and not o.feasible(1.0, 0.4)
    assert not o.feasible(0.0, 0.1)  # P&L > 0 strictly, as the spec writes it


def test_pareto_front_and_winner_by_hand():
    import pandas as pd

    pnl = np.array([1.0, 2.0, 2.0, 0.5, 3.0])
    pos = np.array([1.0, 1.0, 3.0, 0.5, 4.0])
    # set 0 is dominated by set 1 (same position, more P&L); 2 by 1; 3, 1, 4 trade off
    assert pareto_front(pnl, pos).tolist() == [False, True, False, True, True]
    t = pd.DataFrame({"score": [1.0, 2.0, 0.5], "feasible": [False, True, False]})
    assert best_index(t) == 1  # the feasible set wins over a lower-scoring infeasible one
    assert best_index(t.assign(feasible=False)) == 2


def test_apply_sets_values_and_keeps_the_configs_cross_field_rules():
    cfg = apply(default_config(), {"quoter.gamma_per_bps_qty": 0.05, "evidence.theta_decay_per_s": 0.01})
    assert float(cfg.quoter.gamma_per_bps_qty) == 0.05 and float(cfg.evidence.theta_decay_per_s) == 0.01
    with pytest.raises(ValueError, match="p_resume"):
        apply(default_config(), {"quoter.p_reduce": 0.6})  # below the default p_resume 0.7
