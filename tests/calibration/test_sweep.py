"""The sweep (bayesmm/calibration/sweep.py): its numbers are the closed loop's own (each set scored in a
batch equals an independent `run_scenario` / `backtest` of that configuration), the search finds a
known optimum, the overfitting check flags an in-sample-only winner, and the command line writes
the table, the frontier and a config that records the sweep."""

from __future__ import annotations

import numpy as np
import pytest

from bayesmm.calibration.space import Objective, Space, apply, space_from_dict
from bayesmm.calibration.sweep import (
    HOLDOUT_FIRST_SEED,
    METRICS,
    Evaluator,
    evaluate_batch,
    scenario_target,
    session_target,
    sweep,
)
from bayesmm.online.params import default_config

SMALL = {"quoter": {"gamma_per_bps_qty": {"low": 0.005, "high": 0.2, "log": True, "points": 2},
                    "p_reduce": {"choices": [0.8, 0.95]}}}


def test_a_set_in_a_batch_scores_what_an_independent_run_of_its_config_scores():
    from bayesmm.sim.batch import run_scenario

    target = scenario_target("hype_selloff", seeds=3, duration_s=12.0)
    sets = space_from_dict(SMALL).grid()  # 4 sets in a batch of 6: two padded lanes
    got = evaluate_batch(Evaluator((target,), 6), sets)["hype_selloff"]
    for i, values in enumerate(sets):
        _, _, m = run_scenario(target.scenario, "bayesian", seeds=3, base=apply(default_config(), values))
        for k in ("max_abs_position", "pnl", "reduce_only_fraction", "fills_bid", "fills_ask"):
            assert got[k][i] == pytest.approx(np.mean(m[k]), rel=1e-9, abs=1e-12), (values, k)
    # the sets differ (gamma moves the quotes), so the batch did not score one set four times
    assert len({round(float(v), 9) for v in got["pnl"]}) > 1


def test_a_set_on_a_recorded_session_scores_what_backtest_scores(perp_session):
    from bayesmm.calibration.venue import bot_config
    from bayesmm.sim.backtest import backtest

    session = perp_session[0].between(0, 60)
    target = session_target(session, name="perp")
    sets = [{"quoter.gamma_per_bps_qty": 0.02}, {"quoter.gamma_per_bps_qty": 0.1}]
    got = evaluate_batch(Evaluator((target,), 2), sets)["perp"]
    for i, values in enumerate(sets):
        _, m, _ = backtest(session, apply(bot_config(session, "bayesian"), values))
        for k in ("max_abs_position", "pnl", "fills_bid", "fills_ask"):
            assert got[k][i] == pytest.approx(m[k], rel=1e-9, abs=1e-12), (values, k)


def _quadratic(evaluator, sets):
    """A stand-in for the closed loop with a known optimum: max |position| = 1 + (log10 gamma + 1.5)^2
    + (p_reduce - 0.9)^2 (minimum at gamma = 10^-1.5, p_reduce = 0.9); P&L 1, no reduce-only; a
    held-out target (first seed >= HOLDOUT_FIRST_SEED) sees the optimum elsewhere."""
    out = {}
    for t in evaluator.targets:
        g = np.log10([s.get("quoter.gamma_per_bps_qty", 0.01) for s in sets])  # {}: the base's 0.01
        p = np.array([s.get("quoter.p_reduce", 0.85) for s in sets])
        shift = 1.0 if t.first_seed >= HOLDOUT_FIRST_SEED else 0.0
        pos = 1 + (g + 1.5 + shift) ** 2 + (p - 0.9) ** 2
        m = {k: np.zeros(len(sets)) for k in METRICS}
        m.update(max_abs_position=pos, pnl=np.ones(len(sets)))
        out[t.name] = m
    return out


def _fake_target(first_seed=0):
    from types import SimpleNamespace

    from bayesmm.calibration.sweep import Target

    return Target("fake", default_config(), scenario=SimpleNamespace(num_steps=1), seeds=1, first_seed=first_seed)


def test_optuna_search_is_seeded_and_finds_a_known_optimum_better_than_random():
    sp = space_from_dict({"quoter": {"gamma_per_bps_qty": {"low": 1e-3, "high": 1.0, "log": True},
                                     "p_reduce": {"low": 0.75, "high": 0.99}}})
    tgt = _fake_target()
    kw = dict(sets=96, batch=8, progress=False, evaluate=_quadratic, holdout=[])
    a = sweep([tgt], sp, search="optuna", seed=1, **kw)
    b = sweep([tgt], sp, search="optuna", seed=1, **kw)
    assert a.report["winner"] == b.report["winner"]
    w = a.report["winner"]
    assert abs(np.log10(w["quoter.gamma_per_bps_qty"]) + 1.5) < 0.15
    # TPE beats random search of the same budget on the best score (averaged over 3 seeds)
    tpe = np.mean([sweep([tgt], sp, search="optuna", seed=s, **kw).report["winner_score"] for s in range(3)])
    rnd = np.mean([sweep([tgt], sp, search="random", seed=s, **kw).report["winner_score"] for s in range(3)])
    assert tpe - 1 < rnd - 1


def test_sets_breaking_a_config_rule_are_reported_invalid_not_run():
    sp = space_from_dict({"quoter": {"gamma_per_bps_qty": {"choices": [0.01, 0.1]},
                                     "p_reduce": {"choices": [0.6, 0.9]}}})  # 0.6 < p_resume 0.7: invalid
    r = sweep([_fake_target()], sp, search="grid", batch=4, progress=False, evaluate=_quadratic, holdout=[])
    bad = r.table["quoter.p_reduce"] == 0.6
    assert r.report["invalid_sets"] == 2 and (r.table.loc[bad, "invalid"].str.contains("p_resume")).all()
    assert np.isinf(r.table.loc[bad, "score"]).all() and not r.table.loc[bad, "feasible"].any()
    assert r.report["winner"]["quoter.p_reduce"] == 0.9


def test_a_winner_that_wins_only_in_sample_is_flagged():
    sp = space_from_dict({"quoter": {"gamma_per_bps_qty": {"low": 1e-3, "high": 1.0, "log": True, "points": 7}}})
    base_gamma = float(default_config().quoter.gamma_per_bps_qty)  # 0.01: 1 + 0.25 in sample, 1 + 0.25 held out
    r = sweep([_fake_target()], sp, search="grid", batch=8, progress=False, evaluate=_quadratic)
    assert base_gamma == 0.01
    c = r.check
    # p_reduce stays at the default 0.85: + 0.05^2 everywhere. In sample the winner sits at 10^-1.5
    # (1 + 0.0025 < base 1.25 + 0.0025); held out the optimum is 10^-2.5, so the winner scores
    # 1 + 1 + 0.0025 > base 1 + 0.25 + 0.0025
    assert c["in_sample"]["winner"]["score"] == pytest.approx(1.0025)
    assert c["in_sample"]["base"]["score"] == pytest.approx(1.2525)
    assert c["held_out"]["winner"]["score"] == pytest.approx(2.0025)
    assert c["held_out"]["base"]["score"] == pytest.approx(1.2525)
    assert "only in sample" in c["flag"]


def test_when_no_set_beats_the_base_the_base_is_kept():
    from bayesmm.calibration.sweep import winner_config

    sp = space_from_dict({"quoter": {"gamma_per_bps_qty": {"choices": [0.5, 1.0]}}})
    # the base's gamma 0.01 scores 1 + 0.25 + 0.0025; the sets 1 + 1.2^2 + 0.0025 and 1 + 1.5^2 + 0.0025
    r = sweep([_fake_target()], sp, search="grid", batch=2, progress=False, evaluate=_quadratic, holdout=[])
    assert r.report["winner"] == {} and "base is kept" in r.report["kept_base"]
    assert r.report["best_set"] == {"quoter.gamma_per_bps_qty": 0.5}
    from bayesmm.online.params import config_to_dict

    assert config_to_dict(winner_config(default_config(), r)) == config_to_dict(default_config())


def test_cli_sweep_writes_table_frontier_and_a_config_recording_the_sweep(tmp_path, capsys):
    import pandas as pd

    from bayesmm.calibration.config import load_config, load_provenance
    from bayesmm.cli import main
    from tests.conftest import ROOT

    space = tmp_path / "space.toml"
    space.write_text('[objective]\nmin_pnl = -100.0\n[quoter]\n'
                     'gamma_per_bps_qty = { low = 0.005, high = 0.2, log = true, points = 4 }\n'
                     'p_reduce = { choices = [0.8, 0.95] }\nhorizon_s = 20.0\n')
    out = tmp_path / "sweep"
    rc = main(["sweep", "hype_selloff", "--space", str(space), "--search", "grid", "--seeds", "2",
               "--duration-s", "10", "--batch", "8", "--out", str(out), "--write-config", "--quiet"])
    assert rc == 0
    table = pd.read_parquet(out / "sets.parquet")
    assert len(table) == 8 and table["on_front"].any() and (out / "frontier.png").stat().st_size > 10_000
    cfg, prov = load_config(out / "config.toml"), load_provenance(out / "config.toml")
    w = prov["sweep"]["winner"]
    assert float(cfg.quoter.gamma_per_bps_qty) == pytest.approx(w["quoter.gamma_per_bps_qty"])
    assert float(cfg.quoter.horizon_s) == 20.0
    # the scenario's venue is not written into the production config: only the swept values change
    assert float(cfg.venue.tick_size_px) == float(default_config().venue.tick_size_px)
    assert prov["sweep"]["targets"][0]["name"] == "hype_selloff" and "score_held_out" in prov["sweep"]
    capsys.readouterr()
    assert main(["check-config", str(out / "config.toml")]) == 0  # its golden vectors are beside it
    assert "bit-identical" in capsys.readouterr().out and (out / "golden.parquet").exists()
    from bayesmm.calibration.report import _sweep_section

    html = "".join(_sweep_section(out))  # the calibration report's section when DIR/sweep exists
    assert "Sweep (spec section 8)" in html and "data:image/png;base64," in html and "held out" in html
    assert main(["sweep", "hype_selloff", "--space", str(ROOT / "README.md"), "--out", str(out)]) == 2


def test_objective_defaults_are_the_spec_s():
    assert Objective() == Objective(0.3, 0.0, 1.0, 100.0)
    assert Space((), Objective()).objective.max_reduce_only_fraction == 0.3
