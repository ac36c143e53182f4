"""The drift model's Kalman likelihood against dense Gaussian algebra, and its forward-mode
gradient against JAX's reverse mode."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest

from bayesmm.models.drift import kalman_loglik, kalman_loglik_forward_grad

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


def test_microstructure_loglik_is_the_dense_gaussian_density_of_the_moves():
    """The microstructure variant given each bin's diffusion sd s_t: ret_t = mu_t dt_t + s_t sqrt(dt_t)
    eps_t + e_t - e_{t-1}, e ~ N(0, n^2) i.i.d., mu the stationary OU of the first test (a separate
    path per session, each session's first noise fresh). The returns are jointly Gaussian with
    covariance D C D + diag(s^2 dt) + n^2 (2 I - adjacency within a session); the bins without a move
    are unobserved, so the likelihood is the marginal density of the others: the dense covariance's
    rows and columns of the moved bins."""
    from bayesmm.models.drift import microstructure_loglik

    theta, sigma_mu, noise = 0.3, 0.8, 0.7
    s_bin = np.asarray(RNG.uniform(0.5, 3.0, 8))
    ret = np.asarray(RET).copy()
    ret[[2, 6]] = 0.0  # no move in two bins
    t = np.cumsum(np.asarray(DT))
    session = np.cumsum(np.asarray(START))
    same = session[:, None] == session[None, :]
    c = sigma_mu**2 / (2 * theta) * np.exp(-theta * np.abs(t[:, None] - t[None, :])) * same
    d = np.diag(np.asarray(DT))
    adjacent = (np.abs(np.arange(8)[:, None] - np.arange(8)[None, :]) == 1) & same
    cov = d @ c @ d + np.diag(s_bin**2 * np.asarray(DT)) + noise**2 * (2 * np.eye(8) - adjacent)
    moved = ret != 0
    want = dist.MultivariateNormal(jnp.zeros(moved.sum()), cov[np.ix_(moved, moved)]).log_prob(ret[moved])
    ll, _, _ = microstructure_loglik(jnp.asarray(ret), DT, theta, sigma_mu, jnp.asarray(s_bin), noise, START)
    assert float(ll) == pytest.approx(float(want), abs=1e-9)
