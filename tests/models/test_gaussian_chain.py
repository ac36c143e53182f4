"""The path distributions of the SV model against dense Gaussian algebra: the AR(1)-style chain is
the Gaussian with covariance L L^T (L from its recursion), and the AR(1) conditioned on Gaussian
pseudo-observations is the textbook posterior N(P (C^-1 mu 1 + y / v), P = (C^-1 + diag(1/v))^-1)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest

from bayesmm.models.gaussian_chain import AR1GivenPseudoObservations, GaussianMarkovChain

LOC = jnp.array([0.1, -0.2, 0.3, 0.0, 0.5])
COEF = jnp.array([0.0, 0.9, -0.5, 0.3, 0.7])
SCALE = jnp.array([1.0, 0.5, 0.2, 0.8, 0.3])
X = jnp.array([0.3, 0.1, -0.4, 0.2, 1.0])


def _chain_cov():
    lower = np.zeros((5, 5))
    for t in range(5):
        if t > 0:
            lower[t] = COEF[t] * lower[t - 1]
        lower[t, t] = SCALE[t]
    return lower @ lower.T


def _ar1_posterior(mu, phi, xi, y, v):
    idx = np.arange(len(y))
    prior_cov = xi**2 / (1 - phi**2) * phi ** np.abs(idx[:, None] - idx[None, :])
    prec = np.linalg.inv(prior_cov)
    cov = np.linalg.inv(prec + np.diag(1 / np.asarray(v)))
    return cov @ (prec @ np.full(len(y), mu) + np.asarray(y) / np.asarray(v)), cov


def test_chain_log_prob_and_moments_match_the_dense_gaussian():
    chain = GaussianMarkovChain(LOC, COEF, SCALE)
    cov = _chain_cov()
    assert float(chain.log_prob(X)) == pytest.approx(float(dist.MultivariateNormal(LOC, cov).log_prob(X)), abs=1e-10)
    draws = np.asarray(chain.sample(jax.random.key(0), (100_000,)))
    assert np.abs(draws.mean(0) - np.asarray(LOC)).max() < 0.02  # sd of a mean <= 1/sqrt(1e5) ~ 0.003
    assert np.abs(np.cov(draws.T) - cov).max() < 0.02


def test_ar1_given_pseudo_observations_is_the_exact_posterior():
    mu, phi, xi = 0.5, 0.8, 0.4
    y = jnp.array([0.1, 1.0, -0.5, 0.7, 2.0])
    v = jnp.array([1.0, 0.5, 3.0, 0.2, 1e4])  # the last one: no information (a no-move bin)
    q = AR1GivenPseudoObservations(mu, phi, xi, y, v)
    mean, cov = _ar1_posterior(mu, phi, xi, y, v)
    assert float(q.log_prob(X)) == pytest.approx(float(dist.MultivariateNormal(mean, cov).log_prob(X)), abs=1e-9)
    draws = np.asarray(q.sample(jax.random.key(1), (100_000,)))
    assert np.abs(draws.mean(0) - mean).max() < 0.02
    assert np.abs(np.cov(draws.T) - cov).max() < 0.02


def test_pseudo_observation_samples_are_differentiable():
    """SVI differentiates the ELBO through the sampled path: the gradient must exist and be finite."""

    def mean_path(y):
        q = AR1GivenPseudoObservations(0.0, 0.9, 0.3, y, jnp.ones(5))
        return jnp.sum(q.sample(jax.random.key(2), (8,)))

    g = jax.grad(mean_path)(jnp.zeros(5))
    assert np.all(np.isfinite(np.asarray(g))) and np.any(np.asarray(g) != 0)


def test_chain_rejects_a_batch_of_paths():
    with pytest.raises(ValueError, match=r"\(T,\) arrays"):
        GaussianMarkovChain(jnp.zeros((2, 3)), jnp.zeros(3), jnp.ones(3))


def test_pseudo_observation_posterior_restarts_at_a_session_start():
    """Two sessions (bins 0-1 and 2-4) share (mu, phi, xi) but not the path: the posterior is the
    block-diagonal product of each session's own exact posterior, for log_prob and for samples."""
    mu, phi, xi = 0.5, 0.8, 0.4
    y = jnp.array([0.1, 1.0, -0.5, 0.7, 2.0])
    v = jnp.array([1.0, 0.5, 3.0, 0.2, 1.0])
    q = AR1GivenPseudoObservations(mu, phi, xi, y, v, start=jnp.array([1.0, 0, 1.0, 0, 0]))
    m1, c1 = _ar1_posterior(mu, phi, xi, y[:2], v[:2])
    m2, c2 = _ar1_posterior(mu, phi, xi, y[2:], v[2:])
    mean = np.concatenate([m1, m2])
    cov = np.zeros((5, 5))
    cov[:2, :2], cov[2:, 2:] = c1, c2
    assert float(q.log_prob(X)) == pytest.approx(float(dist.MultivariateNormal(mean, cov).log_prob(X)), abs=1e-9)
    draws = np.asarray(q.sample(jax.random.key(3), (100_000,)))
    assert np.abs(draws.mean(0) - mean).max() < 0.02
    assert np.abs(np.cov(draws.T) - cov).max() < 0.02
