"""The drift model's Kalman likelihood against dense Gaussian algebra, and its forward-mode
gradient against JAX's reverse mode."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest

from models.drift import kalman_loglik, kalman_loglik_forward_grad

RNG = np.random.default_rng(3)
DT = jnp.asarray(RNG.uniform(0.5, 2.0, 8))
RET = jnp.asarray(RNG.normal(0.0, 2.0, 8))
START = jnp.asarray([1.0, 0, 0, 0, 0, 1.0, 0, 0])  # two sessions: bins 0-4 and 5-7


def test_kalman_loglik_is_the_dense_gaussian_density():
    """mu is a stationary OU sampled at the bins' end times; ret_t = mu_t dt_t + N(0, sigma^2 dt_t):
    ret ~ N(0, D C D + diag(sigma^2 dt)) with C_ij = sigma_mu^2 / (2 theta) exp(-theta |t_i - t_j|)."""
    theta, sigma_mu, sigma = 0.3, 0.8, 2.0
    t = np.cumsum(np.asarray(DT))
    c = sigma_mu**2 / (2 * theta) * np.exp(-theta * np.abs(t[:, None] - t[None, :]))
    d = np.diag(np.asarray(DT))
    cov = d @ c @ d + np.diag(sigma**2 * np.asarray(DT))
    ll, _, _ = kalman_loglik(RET, DT, theta, sigma_mu, sigma)
    assert float(ll) == pytest.approx(float(dist.MultivariateNormal(jnp.zeros(8), cov).log_prob(RET)), abs=1e-9)


def test_forward_mode_gradient_equals_reverse_mode():
    """With cotangents on the per-bin predictive outputs too (what the fill term does), and vmapped."""
    weights = jnp.asarray(RNG.normal(size=8))

    def loss(f, q):
        ll, m, p = f(RET, DT, q[0], q[1], q[2], START)
        return ll + jnp.sum(weights * jnp.tanh(m) * p)

    qs = jnp.array([[0.3, 0.8, 2.0], [0.05, 0.2, 1.0]])
    reverse = jax.vmap(jax.grad(lambda q: loss(kalman_loglik, q)))(qs)
    forward = jax.vmap(jax.grad(lambda q: loss(kalman_loglik_forward_grad, q)))(qs)
    np.testing.assert_allclose(np.asarray(forward), np.asarray(reverse), rtol=1e-10)


def test_sessions_are_separate_paths_with_shared_parameters():
    """With `start` marking a second session at bin 5, the likelihood is the sum of the two
    sessions' own likelihoods (each from the stationary law), and the predictive law restarts."""
    q = (0.3, 0.8, 2.0)
    joint, m, p = kalman_loglik(RET, DT, *q, START)
    first, _, _ = kalman_loglik(RET[:5], DT[:5], *q)
    second, m2, p2 = kalman_loglik(RET[5:], DT[5:], *q)
    assert float(joint) == pytest.approx(float(first + second), abs=1e-12)
    np.testing.assert_allclose(np.asarray(p[5:]), np.asarray(p2), rtol=1e-12)
    assert float(m[5]) == 0.0 and float(p[5]) == pytest.approx(0.8**2 / 0.6, rel=1e-12)
