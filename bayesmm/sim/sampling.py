"""Counting-distribution samplers for the small counts of one simulation step, by inverse CDF over
0..K. JAX's own Poisson and binomial samplers loop until acceptance; under `vmap` (many seeds or
parameter sets) every lane then waits for the slowest, which dominated the sweep's cost. Counts
above K = 64 are clipped: per 0.1 s step, with rates of a few per second, P(N > 64) < 1e-80."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import gammaln

K_MAX = 64


def _from_log_pmf(key, log_pmf):
    cdf = jnp.cumsum(jnp.exp(log_pmf - jnp.max(log_pmf)))
    u = jax.random.uniform(key, dtype=cdf.dtype) * cdf[-1]
    return jnp.sum(cdf < u).astype(cdf.dtype)


def poisson_small(key, rate):
    """Poisson(rate) for small rates (count clipped at K_MAX)."""
    k = jnp.arange(K_MAX + 1, dtype=jnp.result_type(rate, jnp.float32))
    log_pmf = jnp.where(rate > 0, k * jnp.log(jnp.maximum(rate, 1e-300)) - rate - gammaln(k + 1.0),
                        jnp.where(k == 0, 0.0, -jnp.inf))
    return _from_log_pmf(key, log_pmf)


def binomial_small(key, n, p):
    """Binomial(n, p) for n <= K_MAX (n above is clipped to K_MAX)."""
    n = jnp.minimum(n, K_MAX)
    k = jnp.arange(K_MAX + 1, dtype=jnp.result_type(n, p, jnp.float32))
    p = jnp.clip(p, 0.0, 1.0)
    log_choose = gammaln(n + 1.0) - gammaln(k + 1.0) - gammaln(jnp.maximum(n - k, 0.0) + 1.0)
    log_pmf = log_choose + k * jnp.log(jnp.maximum(p, 1e-300)) + (n - k) * jnp.log(jnp.maximum(1.0 - p, 1e-300))
    log_pmf = jnp.where(k <= n, log_pmf, -jnp.inf)
    log_pmf = jnp.where(p >= 1.0, jnp.where(k == n, 0.0, -jnp.inf), log_pmf)
    log_pmf = jnp.where(p <= 0.0, jnp.where(k == 0, 0.0, -jnp.inf), log_pmf)
    return _from_log_pmf(key, log_pmf)
