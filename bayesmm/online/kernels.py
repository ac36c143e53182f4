"""Pure closed-form kernels shared by the online filters and the offline models.

No NumPyro here: `bayesmm/models/` builds its likelihoods from these very functions, so the likelihood a
model is fitted with is the computation the exported filter runs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.scipy.special import logsumexp
from jax.scipy.stats import norm
from jax.scipy.stats import t as t_dist


def ou_stationary_var(sigma, theta_per_s):
    """Stationary variance sigma^2 / (2 theta) of an OU process dx = -theta x dt + sigma dW."""
    return sigma**2 / (2.0 * theta_per_s)


def ou_predict(mean, var, dt_s, theta_per_s, sigma):
    """Exact OU transition of a Gaussian belief over dt_s seconds.

    dx = -theta x dt + sigma dW  =>  mean * e^{-theta dt},
    var * e^{-2 theta dt} + sigma^2 (1 - e^{-2 theta dt}) / (2 theta).
    """
    decay = jnp.exp(-theta_per_s * dt_s)
    stationary = ou_stationary_var(sigma, theta_per_s)
    return mean * decay, var * decay**2 + stationary * (1.0 - decay**2)


def gaussian_update(mean, var, y, obs_var):
    """Condition N(mean, var) on y ~ N(state, obs_var); returns (mean, var, log p(y))."""
    s = var + obs_var
    k = var / s
    resid = y - mean
    loglik = -0.5 * (jnp.log(2.0 * jnp.pi * s) + resid**2 / s)
    return mean + k * resid, (1.0 - k) * var, loglik


_TAYLOR_NORM = 0.05  # scale Q dt below this row-sum norm, where 9 Taylor terms are exact to ~5e-18
_MAX_SQUARINGS = 20  # ||Q dt|| up to 0.05 x 2^20 ~ 5e4 (weeks of gap at regime rates of 1e-2/s)


def _matmul_small(x, y):
    """x @ y for the 4x4 regime matrices written as a broadcast product and a sum: XLA on CPU fuses
    these into the surrounding elementwise work, where each `dot` was a kernel call of its own
    (fewer kernels per event, `benchmarks/_hlo.py` counts them; results equal)."""
    return jnp.sum(x[..., :, :, None] * y[..., None, :, :], axis=-2)


def _taylor_expm(a):
    eye = jnp.eye(a.shape[-1], dtype=a.dtype)
    term, total = eye, eye
    for k in range(1, 10):
        term = _matmul_small(term, a) / k
        total = total + term
    return total


def _scaled_squared(operand):
    a, s = operand
    p = _taylor_expm(a / jnp.exp2(s.astype(a.dtype)))
    return lax.scan(lambda m, i: (jnp.where(i < s, _matmul_small(m, m), m), None), p, jnp.arange(_MAX_SQUARINGS))[0]


def squarings(norm):
    """How many times Q dt (of row-sum norm `norm`) is halved before its Taylor series, and the result
    squared after (`transition_matrix`): until the norm is below _TAYLOR_NORM, at most _MAX_SQUARINGS."""
    return jnp.clip(jnp.ceil(jnp.log2(jnp.maximum(norm, 1e-300) / _TAYLOR_NORM)), 0, _MAX_SQUARINGS)


def transition_matrix(rates_per_s, dt_s):
    """expm(Q dt): the regime transition matrix over dt_s for generator Q (rows sum to 0).

    Scaling and squaring around a 9-term Taylor series: Q dt is halved s times until its norm is
    below 0.05 (remainder < ||.||^10 / 10! ~ 3e-20), and the result squared s times; rounding
    grows with the squarings (~1e-12 after a gap of hours, machine precision for short gaps).
    Events are milliseconds apart, so s is almost always 0 and `lax.cond` takes the plain Taylor
    branch; the squarings are a fixed-length scan, so the whole is reverse-differentiable.
    """
    a = rates_per_s * dt_s
    s = squarings(jnp.max(jnp.sum(jnp.abs(a), axis=-1))).astype(jnp.int32)
    return lax.cond(s == 0, lambda op: _taylor_expm(op[0]), _scaled_squared, (a, s))


def hmm_predict(log_probs, transition):
    """Push a normalised log belief through a transition matrix (A.T @ p), staying in log space."""
    m = jnp.max(log_probs)
    pushed = jnp.sum(transition * jnp.exp(log_probs - m)[:, None], axis=0)  # A.T @ p, fused (`_matmul_small`)
    return jnp.log(jnp.maximum(pushed, jnp.finfo(pushed.dtype).tiny)) + m


def hmm_condition(log_probs, log_lik):
    """Bayes' rule in log space: add the emission log-likelihoods and renormalise.

    Returns (normalised log belief, log p(observation | past)).
    """
    joint = log_probs + log_lik
    norm = logsumexp(joint)
    return joint - norm, norm


def select_tree(flag, a, b):
    """`a` where `flag` holds, else `b`, leaf by leaf over two pytrees of the same structure (a state
    kept or replaced under a traced condition: `jnp.where` needs no branch)."""
    return jax.tree_util.tree_map(lambda x, y: jnp.where(flag, x, y), a, b)


def return_logpdf(ret_bps, loc, scale, df=None):
    """log density of a mid return: Student-t with `df` degrees of freedom where df > 0 (heavier
    tails: one large move is weaker evidence), Normal where df is 0 or None; location `loc`, scale
    `scale`. One law for the regime model's likelihood (`models.regime`) and the online filter's
    (`online.belief.return_log_lik`), so that what is fitted is what is filtered."""
    if df is None:
        return norm.logpdf(ret_bps, loc, scale)
    heavy = df > 0
    return jnp.where(heavy, t_dist.logpdf(ret_bps, jnp.where(heavy, df, 1.0), loc, scale),
                     norm.logpdf(ret_bps, loc, scale))
