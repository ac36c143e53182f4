"""The filter-quality table (bayesmm/sim/quality.py, `bayesmm simulate --report`) on the incident scenario:
every row finite, the oracle near-perfect on a scenario that trends down throughout, and the old system's p_down stays
near 1/2 all through the selloff - the failure the spec was written about (section 2: its
drift_confidence reached 0.099 after 1,100 observations, so p_down moves at most ~0.05 from 1/2)."""

from __future__ import annotations

import numpy as np


def test_quality_table_on_the_incident():
    from bayesmm.sim.quality import _current_system_p_down, format_table, quality_table

    rows = quality_table(["hype_selloff"], seeds=4, first_seed=1000, oracle_seeds=2, oracle_particles=200)
    by = {r["filter"]: r for r in rows}
    assert set(by) == {"truth-implied", "spec defaults", "oracle", "current system", "climatology"}
    for r in rows:
        assert np.isfinite(r["brier"]) and np.isfinite(r["ece"]), r
    # the selloff trends down throughout: climatology is exactly right, and the oracle nearly so
    assert by["climatology"]["brier"] == 0.0 and by["oracle"]["brier"] < 0.01
    assert by["oracle"]["brier"] <= min(by["truth-implied"]["brier"], by["spec defaults"]["brier"])
    assert by["truth-implied"]["regime_accuracy"] is not None and 0 <= by["truth-implied"]["regime_accuracy"] <= 1
    assert "Brier/oracle" in format_table(rows)
    # no ratio to a near-zero oracle score (it would be ~1e5): the excess is reported instead
    assert by["truth-implied"]["brier_vs_oracle"] is None and np.isfinite(by["truth-implied"]["brier_over_oracle"])

    from bayesmm.sim.batch import run_scenario
    from bayesmm.sim.scenarios import make_scenario

    paths, _, _ = run_scenario(make_scenario("hype_selloff"), "bayesian", seeds=2, first_seed=1000)
    cs = _current_system_p_down(paths)  # 1,500 mid returns per path: confidence 1 - (1 - 1e-4)^1500 = 0.139
    assert np.all(np.abs(cs - 0.5) <= 0.5 * (1 - (1 - 1e-4) ** 1500) + 1e-9)


def test_truth_implied_filter_meets_the_goal_in_every_scenario():
    """Issue 14's goal for the filter with the parameters the truth implies, reading the events the
    oracle reads (returns and the tape): ECE <= 0.03 and Brier <= 1.1 x the oracle's in every
    scenario (32 held-out seeds; where the oracle's Brier is ~0 - the selloff - its excess is
    under 0.01 instead). Before the tape, the chain's decay and lambda_AS = lambda_burst = 0
    (`sim.truth`): hype_selloff ECE 0.058, whipsaw Brier 1.54 x, vol_spike ECE 0.033."""
    from bayesmm.sim.quality import format_table, quality_table

    rows = quality_table()
    print(format_table(rows))
    for r in rows:
        if r["filter"] == "truth-implied":
            assert r["ece"] <= 0.03, r
            if r["brier_vs_oracle"] is None:
                assert r["brier_over_oracle"] < 0.01, r
            else:
                assert r["brier_vs_oracle"] <= 1.1, r
