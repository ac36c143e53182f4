"""Calibration against truth (slow: 22 minutes on 2 cores with a warm compilation cache): eight
simulated recordings (four of a trending and four of a mean-reverting market, 20 minutes each)
calibrated as real ones are, with the best of three SVI starts.

Must hold: the exported filter reads the hidden sign of the drift on a later recording of the same
market better than the spec's defaults (mean Brier), and so does the truth-implied filter (the
regime HMM with the market's own parameters, `sim.truth.matched_config(regime_sign=True)`), or it
would be no benchmark. The issue's two further aims are checked after them and reported as expected
failures with their numbers while unmet: the derived 90% intervals the recordings inform cover the
truth at about the nominal rate, and the exported filter's Brier is within 5% of the truth-implied
filter's exported by the same rule (README, "Against truth in simulation", says why both are
judged so, and gives the raw figures beside them). Measured: informed intervals 19 of 24 covering
(the aim fails below 18), Brier 1.016x (1.036x the raw truth-implied filter's) - both met."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binom

from bayesmm.calibration.calibrate import report_json
from bayesmm.calibration.simulation_check import validate_in_simulation
from bayesmm.models.fit import FitSettings
from tests.conftest import ROOT


@pytest.mark.slow
def test_calibration_covers_the_truth_and_reads_the_drift():
    r = validate_in_simulation(seeds=4, duration_s=1200, settings=FitSettings(method="svi", svi_restarts=3))
    # every number of the run, for the README's table (`make test-slow` leaves it in out/)
    (ROOT / "out").mkdir(exist_ok=True)
    (ROOT / "out" / "validate_in_simulation.json").write_text(report_json(r))
    n = r["intervals"]
    assert n == 8 * 4  # lambda_trade, theta_decay, the trend drift, sigma_long per recording
    brier = {k: np.mean([x["brier"][k] for x in r["runs"]]) for k in ("calibrated", "truth", "defaults")}
    assert brier["truth"] < brier["defaults"], brier  # the benchmark is worth matching
    assert brier["calibrated"] < brier["defaults"], brier
    unmet = []
    # coverage is judged on the intervals the recordings informed (the data removed at least half of
    # the prior's spread, `calibration.simulation_check.coverage_counts` says why); at the nominal 90% the number
    # covered is Binomial(n, 0.9), and the aim fails below its 1% quantile - or when fewer than half
    # the intervals were informed, which would leave too little to judge
    inf = r["informed"]
    if inf["intervals"] < n / 2 or inf["covered"] < binom.ppf(0.01, inf["intervals"], 0.9):
        missed = {}
        for run in r["runs"]:
            for key, row in run["coverage"].items():
                missed[key] = missed.get(key, 0) + (not row["covered"])
        unmet.append(f"coverage of informed intervals {inf['covered']} of {inf['intervals']} (all: {r['covered']} "
                     f"of {n}; missed per parameter: {missed})")
    # the Brier aim compares like with like: the truth-implied filter passed through calibrate's own
    # export rule (each horizon's weight its held-out mid-move score picks, `validate.truth_export`);
    # the ratio to the raw truth-implied filter is reported with it
    if r["brier_ratio_to_truth_exported"] > 1.05:
        unmet.append(f"calibrated Brier {brier['calibrated']:.4f} = {r['brier_ratio_to_truth_exported']:.3f} x the "
                     f"truth-implied filter exported by the same rule ({r['brier_mean']['truth_exported']:.4f}; aim "
                     f"<= 1.05), {r['brier_ratio_to_truth']:.3f} x the raw truth-implied {brier['truth']:.4f}; "
                     f"defaults {brier['defaults']:.4f}")
    assert not unmet, "; ".join(unmet)
