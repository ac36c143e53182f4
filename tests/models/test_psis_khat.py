"""The SVI guide's check (`models.fit.psis_khat`; Yao, Vehtari, Simpson and Gelman 2018): the log
importance ratios log p(theta, y) - log q(theta) at the guide's draws and their Pareto k-hat, on
two posteriors whose answer is known without the code under test:

- a conjugate normal mean (and a positive parameter the data do not touch): the exact guide is
  mean-field normal, so every ratio equals the log evidence log p(y), a multivariate normal density;
- a standard bivariate normal with correlation rho (no data): the mean-field normal closest to it in
  KL(q || p) has means 0 and variances 1 - rho^2 (the conditional ones), and then the log ratio is
  rho u v + const with u, v independent N(0, 1) under q, whose tail P(rho u v > log t) ~ t^(-1/rho)
  is a generalised Pareto tail of shape k = rho."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro.infer.autoguide import AutoNormal
from scipy.stats import multivariate_normal

from bayesmm.models.fit import check, diagnostics, fit, load_fit, psis_khat, save_fit
from bayesmm.models.gate import Gate, diagnostic_failures

PRIOR_SD = 10.0
Y = np.random.default_rng(0).normal(1.5, 1.0, 20)


def conjugate(y):
    """mu ~ N(0, PRIOR_SD^2), y_i ~ N(mu, 1); s ~ LogNormal(0.5, 0.7) is in no likelihood term."""
    mu = numpyro.sample("mu", dist.Normal(0.0, PRIOR_SD))
    numpyro.sample("s", dist.LogNormal(0.5, 0.7))
    numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)


def correlated(rho):
    """(x, z) standard bivariate normal with correlation rho."""
    x = numpyro.sample("x", dist.Normal(0.0, 1.0))
    numpyro.sample("z", dist.Normal(rho * x, jnp.sqrt(1.0 - rho**2)))


def mean_field_khat(rho: float, seed: int = 0) -> float:
    """k-hat of the KL-optimal mean-field guide of `correlated(rho)`, its parameters set by hand."""
    sd = jnp.sqrt(1.0 - rho**2)
    params = {"x_auto_loc": jnp.array(0.0), "x_auto_scale": sd, "z_auto_loc": jnp.array(0.0), "z_auto_scale": sd}
    khat, _ = psis_khat(correlated, AutoNormal(correlated), params, {"rho": rho}, jax.random.key(seed))
    return khat


def test_the_exact_guides_ratios_are_the_log_evidence():
    """Posterior of mu: N(m, v), v = 1 / (1 / PRIOR_SD^2 + n), m = v sum(y); s keeps its prior (a
    LogNormal, which AutoNormal's guide is on the log scale: the ratio would move with log s if the
    two densities were taken on different scales)."""
    n = len(Y)
    v = 1.0 / (1.0 / PRIOR_SD**2 + n)
    params = {"mu_auto_loc": jnp.array(v * Y.sum()), "mu_auto_scale": jnp.array(np.sqrt(v)),
              "s_auto_loc": jnp.array(0.5), "s_auto_scale": jnp.array(0.7)}
    _, lw = psis_khat(conjugate, AutoNormal(conjugate), params, {"y": jnp.asarray(Y)}, jax.random.key(0), 400)
    log_evidence = multivariate_normal(np.zeros(n), np.eye(n) + PRIOR_SD**2 * np.ones((n, n))).logpdf(Y)
    assert lw.shape == (400,)
    np.testing.assert_allclose(lw, log_evidence, atol=1e-9)
    # a guide 20% too narrow is no longer exact: the ratios spread
    _, off = psis_khat(conjugate, AutoNormal(conjugate), params | {"mu_auto_scale": params["mu_auto_scale"] * 0.8},
                       {"y": jnp.asarray(Y)}, jax.random.key(0), 400)
    assert off.std() > 0.1


def test_mean_field_khat_of_a_correlated_gaussian_follows_rho():
    """k = rho (module docstring): the estimate from 1000 draws is near 0.5 at rho = 0.5 and above the
    gate's 0.7 at rho = 0.98, where the guide's variance along the correlation is 1 - rho^2 = 0.04
    against the posterior's 1 + rho = 1.98."""
    assert abs(mean_field_khat(0.5) - 0.5) < 0.15
    assert mean_field_khat(0.98) > 0.7


def test_svi_fits_record_khat_and_the_gate_reads_it(tmp_path):
    """Through `fit`: AutoNormal optimised on the conjugate model (exact family: k-hat small, passes)
    and on the 0.98-correlated Gaussian (mean-field: k-hat above 0.7, fails, named); the value survives
    the netCDF round trip."""
    good = fit(conjugate, {"y": Y}, method="svi", draws=100, progress=False)
    d = diagnostics(good)
    assert d["psis_khat"] < 0.5 and diagnostic_failures(d) == [] and check(good) == []
    bad = fit(correlated, {"rho": 0.98}, method="svi", draws=100, progress=False)
    d = diagnostics(bad)
    assert d["psis_khat"] > 0.7
    assert diagnostic_failures(d) == [f"Pareto k-hat {d['psis_khat']:.2f} > 0.7 (the SVI guide misses posterior mass)"]
    assert diagnostic_failures(d, Gate(max_khat=d["psis_khat"])) == []
    with pytest.warns(RuntimeWarning, match="k-hat"):
        check(bad)
    assert diagnostics(load_fit(save_fit(bad, tmp_path / "bad.nc")))["psis_khat"] == d["psis_khat"]


def test_ratios_the_model_cannot_evaluate_give_an_infinite_khat():
    """A model whose density is NaN at some of the guide's draws: k-hat inf, which fails the gate."""

    def broken():
        x = numpyro.sample("x", dist.Normal(0.0, 1.0))
        numpyro.factor("nan", jnp.where(x > 2.0, jnp.nan, 0.0))  # (finite at the guide's start)

    params = {"x_auto_loc": jnp.array(0.0), "x_auto_scale": jnp.array(1.0)}
    khat, _ = psis_khat(broken, AutoNormal(broken), params, {}, jax.random.key(0), 200)
    assert khat == np.inf and diagnostic_failures({"method": "svi", "psis_khat": khat})


def test_auto_fits_by_nuts_where_the_guide_fails():
    """`FitSettings(method="auto")` (calibration's default): the conjugate model's guide passes, so its
    fit stays SVI; the 0.98-correlated Gaussian's fails, so it is refitted by NUTS, which records the
    k-hat that sent it there and recovers the correlation the mean-field guide cannot hold (its draws
    are independent by construction)."""
    from bayesmm.models.fit import FitSettings
    from bayesmm.models.workflow import fit_model

    auto = FitSettings(method="auto", draws=1000, warmup=500, chains=2)
    good = fit_model("conjugate", conjugate, {"y": Y}, auto, progress=False)
    assert good.posterior.attrs["method"] == "svi" and "svi_psis_khat" not in good.sample_stats.attrs
    bad = fit_model("correlated", correlated, {"rho": 0.98}, auto, progress=False)
    d = diagnostics(bad)
    assert d["method"] == "nuts" and d["svi_psis_khat"] > 0.7 and diagnostic_failures(d) == [], d
    x, z = (bad.posterior[k].values.ravel() for k in ("x", "z"))
    assert np.corrcoef(x, z)[0, 1] > 0.95
    svi = fit_model("correlated", correlated, {"rho": 0.98}, auto.replace(method="svi"), progress=False)
    assert abs(np.corrcoef(*(svi.posterior[k].values.ravel() for k in ("x", "z")))[0, 1]) < 0.2
