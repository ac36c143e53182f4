"""Scoring inference against the simulator's hidden truth: Brier score, reliability curve and
expected calibration error of p_down against the true sign of mu, regime accuracy, and an
**oracle**: a particle filter that knows the true generative parameters, to show how far the
closed-form filter is from the best achievable.

The oracle observes each step's return and the public tape (taker buy and sell counts): the
information a filter could have with the true model, without our own fills (which depend on our
quotes). It is a bootstrap particle filter over (regime, mu, log sigma) with systematic resampling.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import expm
from jax.scipy.special import gammaln, logsumexp

from bayesmm.sim.market import MarketParams, MarketPath, _ou_step, regime_means


def brier(p, y) -> float:
    """Mean squared error of probabilities p against outcomes y in {0, 1}."""
    p, y = np.asarray(p, float).ravel(), np.asarray(y, float).ravel()
    return float(np.mean((p - y) ** 2))


def reliability(p, y, num_bins: int = 10):
    """(bin mean prediction, observed frequency, count) over equal-width bins of p."""
    p, y = np.asarray(p, float).ravel(), np.asarray(y, float).ravel()
    idx = np.clip((p * num_bins).astype(int), 0, num_bins - 1)
    count = np.bincount(idx, minlength=num_bins)
    mean_p = np.bincount(idx, p, num_bins) / np.maximum(count, 1)
    freq = np.bincount(idx, y, num_bins) / np.maximum(count, 1)
    return mean_p, freq, count


def ece(p, y, num_bins: int = 10) -> float:
    """Expected calibration error: sum over bins of (count / n) |mean prediction - frequency|."""
    mean_p, freq, count = reliability(p, y, num_bins)
    return float(np.sum(count / count.sum() * np.abs(mean_p - freq)))


def regime_accuracy(p_regime, regime) -> float:
    """Share of steps where the most probable regime is the true one."""
    return float(np.mean(np.argmax(np.asarray(p_regime), axis=-1) == np.asarray(regime)))


def _poisson_logpmf(k, rate):
    return k * jnp.log(rate) - rate - gammaln(k + 1.0)


@partial(jax.jit, static_argnums=(3,))
def oracle_filter(key, path: MarketPath, m: MarketParams, num_particles: int = 1000):
    """Particle-filter p_down and P(regime) at every step of a path, with the true parameters."""
    dt = m.dt_s
    trans = expm(m.regime_rates_per_s * dt)
    means = regime_means(m)
    vol = jnp.asarray(m.vol_level_bps_sqrt_s)
    lam_i = jnp.asarray(m.informed_rate_per_s)
    k0, k1, k2, key = jax.random.split(key, 4)
    r = jax.random.categorical(k0, jnp.log(jnp.asarray(m.initial_regime_probs) + 1e-300), shape=(num_particles,))
    stat_sd = m.sigma_mu_bps_s_sqrt_s / jnp.sqrt(2.0 * m.theta_mu_per_s)
    mu = jnp.where(jnp.isnan(m.initial_drift_bps_s), means[r] + stat_sd * jax.random.normal(k1, (num_particles,)),
                   m.initial_drift_bps_s)
    logs = jnp.log(vol[r])

    def step(carry, inp):
        r, mu, logs = carry
        row, k = inp
        kr, kmu, ks, kres = jax.random.split(k, 4)
        r = jax.random.categorical(kr, jnp.log(trans[r] + 1e-300))
        mu = _ou_step(mu, means[r], m.theta_mu_per_s, m.sigma_mu_bps_s_sqrt_s, dt, jax.random.normal(kmu, mu.shape))
        logs = _ou_step(logs, jnp.log(vol[r]), m.theta_sigma_per_s, m.xi_per_sqrt_s, dt,
                        jax.random.normal(ks, logs.shape))
        sigma = jnp.exp(logs)
        logw = jax.scipy.stats.norm.logpdf(row.ret_bps, mu * dt, sigma * jnp.sqrt(dt))
        lam = lam_i[r]
        logw += _poisson_logpmf(row.taker_buys, (m.uninformed_rate_per_s + jnp.where(mu > 0, lam, 0.0)) * dt)
        logw += _poisson_logpmf(row.taker_sells, (m.uninformed_rate_per_s + jnp.where(mu < 0, lam, 0.0)) * dt)
        w = jnp.exp(logw - logsumexp(logw))
        p_down = jnp.sum(w * (mu < 0))
        p_regime = jnp.zeros(4).at[r].add(w)
        # systematic resampling
        u = (jax.random.uniform(kres) + jnp.arange(num_particles)) / num_particles
        idx = jnp.clip(jnp.searchsorted(jnp.cumsum(w), u), 0, num_particles - 1)
        return (r[idx], mu[idx], logs[idx]), (p_down, p_regime)

    keys = jax.random.split(k2, path.t_s.shape[0])
    _, (p_down, p_regime) = jax.lax.scan(step, (r, mu, logs), (path, keys))
    return p_down, p_regime


def score_runs(paths: MarketPath, outs, market: MarketParams, oracle_particles: int = 1000,
               oracle_seed: int = 0) -> dict:
    """Brier, ECE and regime accuracy of the closed-form filter (from closed-loop outputs) and of
    the oracle on the same paths (batched over seeds)."""
    y = np.asarray(paths.mu_bps_s) < 0
    keys = jax.random.split(jax.random.key(oracle_seed), y.shape[0])
    o_pd, o_pr = jax.vmap(lambda k, pth: oracle_filter(k, pth, market, oracle_particles))(keys, paths)
    return {
        "filter_brier": brier(outs.p_down, y), "filter_ece": ece(outs.p_down, y),
        "filter_regime_accuracy": regime_accuracy(outs.p_regime, paths.regime),
        "oracle_brier": brier(o_pd, y), "oracle_ece": ece(o_pd, y),
        "oracle_regime_accuracy": regime_accuracy(o_pr, paths.regime),
        "climatology_brier": brier(np.full(y.shape, y.mean()), y),
    }
