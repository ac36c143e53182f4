"""Pure closed-form kernels shared by the online filters and the offline models.

No NumPyro here: `models/` builds its likelihoods from these very functions, so the likelihood a
model is fitted with is the computation the exported filter runs (DESIGN.md).
"""

from __future__ import annotations

import jax.numpy as jnp
from jax.scipy.linalg import expm
from jax.scipy.special import logsumexp


def ou_predict(mean, var, dt_s, theta_per_s, sigma):
    """Exact OU transition of a Gaussian belief over dt_s seconds.

    dx = -theta x dt + sigma dW  =>  mean * e^{-theta dt},
    var * e^{-2 theta dt} + sigma^2 (1 - e^{-2 theta dt}) / (2 theta).
    """
    decay = jnp.exp(-theta_per_s * dt_s)
    stationary = sigma**2 / (2.0 * theta_per_s)
    return mean * decay, var * decay**2 + stationary * (1.0 - decay**2)


def gaussian_update(mean, var, y, obs_var):
    """Condition N(mean, var) on y ~ N(state, obs_var); returns (mean, var, log p(y))."""
    s = var + obs_var
    k = var / s
    resid = y - mean
    loglik = -0.5 * (jnp.log(2.0 * jnp.pi * s) + resid**2 / s)
    return mean + k * resid, (1.0 - k) * var, loglik


def transition_matrix(rates_per_s, dt_s):
    """expm(Q dt): the regime transition matrix over dt_s for generator Q (rows sum to 0)."""
    return expm(rates_per_s * dt_s)


def hmm_predict(log_probs, transition):
    """Push a normalised log belief through a transition matrix (A.T @ p), staying in log space."""
    m = jnp.max(log_probs)
    pushed = transition.T @ jnp.exp(log_probs - m)
    return jnp.log(jnp.maximum(pushed, jnp.finfo(pushed.dtype).tiny)) + m


def hmm_condition(log_probs, log_lik):
    """Bayes' rule in log space: add the emission log-likelihoods and renormalise.

    Returns (normalised log belief, log p(observation | past)).
    """
    joint = log_probs + log_lik
    norm = logsumexp(joint)
    return joint - norm, norm
