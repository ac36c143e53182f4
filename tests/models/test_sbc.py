"""Simulation-based calibration of the drift and toxicity models (slow): over R prior draws, the rank
of each true parameter among 99 thinned posterior draws must be uniform. The stated test: a
chi-square test on 10 groups of ranks per parameter, failing below p = 0.001 (with 3-5 parameters
per model, a correct model fails by chance with probability < 0.5%)."""

from __future__ import annotations

import numpy as np
import pytest

from bayesmm.models.drift import ou_drift_model, simulate_drift
from bayesmm.models.sbc import prior_sampler, rank_uniformity_p_value, run_sbc
from bayesmm.models.toxicity import simulate_toxicity, toxicity_model

ALPHA = 0.001
MAX_FILLS = 160


def test_rank_uniformity_test_can_fail():
    """The uniformity test accepts uniform ranks and rejects the shapes SBC is meant to catch."""
    rng = np.random.default_rng(0)
    uniform = rng.integers(0, 100, 200)
    too_narrow = np.concatenate([rng.integers(0, 10, 60), rng.integers(90, 100, 60), rng.integers(0, 100, 80)])
    biased = np.minimum(rng.integers(0, 100, 200), rng.integers(0, 100, 200))
    assert rank_uniformity_p_value(uniform, 99) > ALPHA
    assert rank_uniformity_p_value(too_narrow, 99) < ALPHA
    assert rank_uniformity_p_value(biased, 99) < ALPHA
    with pytest.raises(ValueError, match="multiple"):
        rank_uniformity_p_value(uniform, 100)


@pytest.mark.slow
def test_sbc_toxicity():
    """pi and the AS mixture from 150 fills per replicate, 100 replicates."""
    names = ("pi", "as_uninformed_mean_bps", "as_informed_shift_bps", "as_uninformed_sd_bps",
             "as_informed_extra_sd_bps")
    draw = prior_sampler(toxicity_model, {"as_bps": np.zeros(3)}, names)

    def simulate(rng, t):
        d = simulate_toxicity(_key(rng), 150, t["pi"], t["as_uninformed_mean_bps"], t["as_uninformed_sd_bps"],
                              t["as_informed_shift_bps"],
                              t["as_uninformed_sd_bps"] + t["as_informed_extra_sd_bps"])
        return {"as_bps": d["as_bps"]}

    res = run_sbc(toxicity_model, draw, simulate, num_replicates=100, seed=1, progress=False)
    assert min(res.p_values.values()) > ALPHA, res.p_values


@pytest.mark.slow
def test_sbc_drift():
    """theta_mu, sigma_mu, sigma and the fill link (a, b) from 300 one-second bins with ~75 fills, 60
    replicates, ranks among 59 draws in 6 groups (10 expected per group)."""
    names = ("theta_per_s", "sigma_mu_bps_s_sqrt_s", "sigma_bps_sqrt_s", "fill_link_a", "fill_link_b")
    template = {"ret_bps": np.zeros(3), "dt_s": np.ones(3), "fill_bin": np.zeros(1, np.int32),
                "fill_side": np.ones(1)}
    draw = prior_sampler(ou_drift_model, template, names)

    def simulate(rng, t):
        d = simulate_drift(_key(rng), 300, 1.0, t["theta_per_s"], t["sigma_mu_bps_s_sqrt_s"], t["sigma_bps_sqrt_s"],
                           fills_per_s=0.25, a=t["fill_link_a"], b=t["fill_link_b"])
        n = len(d["fill_side"])
        assert n <= MAX_FILLS  # P(Poisson(75) > 160) ~ 1e-16: padding, never truncation
        pad = MAX_FILLS - n
        return {"ret_bps": d["ret_bps"], "dt_s": d["dt_s"],
                "fill_bin": np.concatenate([d["fill_bin"], np.zeros(pad, np.int32)]),
                "fill_side": np.concatenate([d["fill_side"], np.zeros(pad)])}  # side 0: padding

    res = run_sbc(ou_drift_model, draw, simulate, num_replicates=60, seed=2, num_draws=59, thin=3, num_bins=6,
                  progress=False)
    assert min(res.p_values.values()) > ALPHA, res.p_values


def _key(rng):
    import jax

    return jax.random.key(int(rng.integers(2**31)))
