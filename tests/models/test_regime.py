"""The regime HMM's likelihood: the scaled forward scan the model uses (and its forward-backward
gradient) equals the log-space forward algorithm written with the online filter's kernels, and the
textbook enumerated NumPyro form of the model (emissions written independently as observed sites)
has the same log density."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.contrib.funsor import config_enumerate, enum
from numpyro.handlers import seed
from numpyro.infer.util import potential_energy

from bayesmm.models.regime import (
    NUM_STATES,
    draw_path,
    forward_log_evidence,
    generator,
    regime_dominated_session,
    regime_hmm_enumerated_model,
    regime_hmm_model,
    scaled_log_evidence,
)
from bayesmm.online.kernels import transition_matrix


def _brute_force_log_evidence(ll, a, init):
    """Sum over every state path (4^T of them), for tiny T."""
    import itertools

    total = []
    for path in itertools.product(range(NUM_STATES), repeat=len(ll)):
        lp = np.log(init[path[0]]) + ll[0, path[0]]
        for t in range(1, len(ll)):
            lp += np.log(a[path[t - 1], path[t]]) + ll[t, path[t]]
        total.append(lp)
    return np.logaddexp.reduce(total)


@pytest.mark.parametrize("num_bins", [1, 2, 5])
def test_forward_equals_brute_force(num_bins):
    rng = np.random.default_rng(num_bins)
    ll = rng.normal(size=(num_bins, NUM_STATES)) * 3
    a = np.asarray(transition_matrix(generator(jnp.asarray(rng.uniform(0.01, 0.2, 12))), 1.0))
    init = np.full(NUM_STATES, 0.25)
    expected = _brute_force_log_evidence(ll, a, init)
    assert float(forward_log_evidence(jnp.asarray(ll), jnp.asarray(a), jnp.log(init))[0]) == pytest.approx(expected,
                                                                                                            abs=1e-9)
    assert float(scaled_log_evidence(jnp.asarray(ll), jnp.asarray(a), jnp.log(init))) == pytest.approx(expected,
                                                                                                        abs=1e-9)


def test_scaled_scan_equals_online_kernels_on_long_extreme_data():
    """20,000 bins with emission log-likelihoods spread over hundreds of nats (a state can be 1e-200
    less likely than another): both forms agree to 1e-9 relative."""
    rng = np.random.default_rng(1)
    ll = jnp.asarray(rng.normal(size=(20_000, NUM_STATES)) * 100 - 50)
    a = transition_matrix(generator(jnp.full(12, 1 / 900.0)), 1.0)
    init = jnp.log(jnp.asarray([0.7, 0.1, 0.1, 0.1]))
    ref = float(forward_log_evidence(ll, a, init)[0])
    assert float(scaled_log_evidence(ll, a, init)) == pytest.approx(ref, rel=1e-9)


def test_sessions_restart_the_regime_path():
    """Bins 0-2 and 3-4 as two sessions (`start`): the evidence is the sum of the two sessions'
    brute-force evidences, each from the initial law."""
    rng = np.random.default_rng(7)
    ll = rng.normal(size=(5, NUM_STATES)) * 3
    a = np.asarray(transition_matrix(generator(jnp.asarray(rng.uniform(0.01, 0.2, 12))), 1.0))
    init = np.asarray([0.4, 0.3, 0.2, 0.1])
    expected = _brute_force_log_evidence(ll[:3], a, init) + _brute_force_log_evidence(ll[3:], a, init)
    start = jnp.asarray([1.0, 0, 0, 1.0, 0])
    args = (jnp.asarray(ll), jnp.asarray(a), jnp.log(init))
    assert float(forward_log_evidence(*args, start)[0]) == pytest.approx(expected, abs=1e-9)
    assert float(scaled_log_evidence(*args, start)) == pytest.approx(expected, abs=1e-9)


def test_drawn_paths_follow_the_exact_path_posterior():
    """Forward filtering, backward sampling (`draw_path`) against the posterior of every path written
    out: 5 bins as two sessions (bins 0-2, 3-4), 4^5 = 1,024 paths, each one's probability from
    init * transitions * emissions normalised by brute force. 40,000 drawn paths pass a chi-square
    test of their joint frequencies (paths expected >= 5 times, the rest pooled; p > 0.001), which
    paths drawn bin by bin from the right marginals would fail (they ignore the transitions), and
    every bin's marginal frequencies lie within 4.5 standard errors."""
    import itertools

    from scipy import stats

    rng = np.random.default_rng(3)
    ll = rng.normal(size=(5, NUM_STATES)) * 1.5
    a = np.asarray(transition_matrix(generator(jnp.asarray(rng.uniform(0.05, 0.5, 12))), 1.0))
    start = np.asarray([1.0, 0, 0, 1.0, 0])
    paths = np.array(list(itertools.product(range(NUM_STATES), repeat=5)))
    logp = np.array([sum(ll[t, z[t]] + (np.log(0.25) if start[t] else np.log(a[z[t - 1], z[t]])) for t in range(5))
                     for z in paths])
    prob = np.exp(logp - np.logaddexp.reduce(logp))
    n = 40_000
    keys = jax.random.split(jax.random.key(0), n)
    drawn = np.asarray(jax.vmap(lambda k: draw_path(k, jnp.asarray(ll), jnp.asarray(a), jnp.asarray(start)))(keys))
    counts = np.bincount((drawn * NUM_STATES ** np.arange(4, -1, -1)).sum(axis=1), minlength=len(paths))
    big = prob * n >= 5
    observed = np.append(counts[big], counts[~big].sum())
    expected = np.append(prob[big], prob[~big].sum()) * n
    assert stats.chisquare(observed, expected).pvalue > 1e-3
    for t in range(5):
        marginal = np.array([prob[paths[:, t] == k].sum() for k in range(NUM_STATES)])
        freq = np.bincount(drawn[:, t], minlength=NUM_STATES) / n
        assert np.all(np.abs(freq - marginal) <= 4.5 * np.sqrt(marginal * (1 - marginal) / n) + 1e-9)


@pytest.mark.parametrize("spread", [3.0, 100.0])
def test_forward_backward_gradient_equals_autodiff(spread):
    """The evidence's hand-written gradient (smoothed marginals, expected transition counts) equals
    JAX's autodiff through the log-space forward pass of the online kernels, for moderate and for
    extreme emissions (states 1e-200 apart), on 3,000 bins in three sessions, also under vmap."""
    rng = np.random.default_rng(int(spread))
    ll = jnp.asarray(rng.normal(size=(2, 3000, NUM_STATES)) * spread)
    a = transition_matrix(generator(jnp.asarray(rng.uniform(1e-3, 0.05, 12))), 1.0)
    init = jnp.log(jnp.asarray([0.4, 0.3, 0.2, 0.1]))
    start = jnp.zeros(3000).at[jnp.asarray([0, 1000, 2500])].set(1.0)
    ref = jax.vmap(jax.grad(lambda *x: forward_log_evidence(*x, start)[0], argnums=(0, 1, 2)),
                   (0, None, None))(ll, a, init)
    got = jax.vmap(jax.grad(lambda *x: scaled_log_evidence(*x, start), argnums=(0, 1, 2)), (0, None, None))(ll, a, init)
    for r, g in zip(ref, got, strict=True):
        np.testing.assert_allclose(np.asarray(g), np.asarray(r), rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("optional", [False, True])
@pytest.mark.parametrize("counts_known", [True, False])
def test_enumerated_model_has_the_same_log_density(optional, counts_known):
    """Also with Student-t returns, the optional book-imbalance and other-venue emissions and a
    second session; with the data known when the model is traced (the count laws' log-gammas taken
    once per distinct count, as samplers run it) and traced (once per bin, `jit_model_args`)."""
    data, _ = regime_dominated_session(jax.random.key(0), 200)
    kw = {k: jnp.asarray(v) for k, v in data.items()}
    extra = ()
    if optional:
        rng0 = np.random.default_rng(9)
        cv = rng0.normal(0, 2, 200)
        cv[rng0.uniform(size=200) < 0.3] = 0.0  # bins where the other venue did not move
        kw |= {"imbalance": jnp.asarray(rng0.uniform(-1, 1, 200)), "cv_ret_bps": jnp.asarray(cv),
               "start": jnp.zeros(200).at[jnp.asarray([0, 120])].set(1.0), "heavy_tails": True,
               "shared_fill_rate": True}
        extra = ("imbalance_offset", "imbalance_trend", "imbalance_sd", "cv_sd_bps_sqrt_s", "cv_beta",
                 "return_df_excess")
    fills = ("fill_rate_shared_per_s",) if optional else ("fill_rate_trend_per_s", "fill_rate_mr_per_s",
                                                          "fill_rate_vol_per_s")
    enumerated = seed(enum(config_enumerate(regime_hmm_enumerated_model), -1), 0)  # as initialize_model wraps it
    if counts_known:
        pot_m = jax.jit(lambda z: potential_energy(regime_hmm_model, (), kw, z))
    else:
        arrays = {k: v for k, v in kw.items() if isinstance(v, jax.Array)}
        flags = {k: v for k, v in kw.items() if k not in arrays}
        traced = jax.jit(lambda z, a: potential_energy(regime_hmm_model, (), a | flags, z))
        pot_m = lambda z: traced(z, arrays)  # noqa: E731
    pot_e = jax.jit(lambda z: potential_energy(enumerated, (), kw, z, enum=True))
    rng = np.random.default_rng(2)
    shapes = {"switch_rates_per_s": 12}
    names = ("trend_drift_bps_s", "fill_asymmetry", *fills, "trend_vol_excess", "sigma_mr_bps_sqrt_s", "vol_excess",
             "as_trend_bps", "as_mr_bps", "as_vol_bps", "as_sd_bps", "count_concentration", "side_concentration",
             "as_within_bin_corr", *extra, *shapes)
    for _ in range(3):  # random points in the unconstrained space
        z = {k: jnp.asarray(rng.normal(size=shapes.get(k, ())) + (-5.0 if k == "switch_rates_per_s" else 0.0))
             for k in names}
        m, e = float(pot_m(z)), float(pot_e(z))  # potentials: -log densities
        assert np.isfinite(m) and m == pytest.approx(e, rel=1e-12, abs=1e-8)
