r"""Beta toxicity model (PIN-style mixture): each fill is informed with probability pi; the AS of
informed fills is drawn from a wider, shifted law than that of uninformed ones; the label is
marginalised out.

    pi ~ Beta(1, 3)                     (optionally pi_w ~ Beta(pi k, (1 - pi) k) per time window w)
    AS_i | informed   ~ N(mu_uninformed + shift, sd_uninformed + extra)   shift, extra > 0: shifted and
                                                                       wider, which labels the components
    AS_i | uninformed ~ N(mu_uninformed, sd_uninformed)
    p(AS_i) = pi N(AS_i; informed) + (1 - pi) N(AS_i; uninformed)    (log-sum-exp)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax.scipy.special import logsumexp


def toxicity_model(as_bps, window=None, num_windows: int = 0):
    """NumPyro model of the fills' AS (bps). With `window` (int per fill) and `num_windows`, pi varies
    by window around a session-level pi with concentration `concentration`."""
    pi = numpyro.sample("pi", dist.Beta(1.0, 3.0))
    mu_u = numpyro.sample("as_uninformed_mean_bps", dist.Normal(0.0, 5.0))
    shift = numpyro.sample("as_informed_shift_bps", dist.HalfNormal(30.0))
    sd_u = numpyro.sample("as_uninformed_sd_bps", dist.HalfNormal(10.0))
    sd_extra = numpyro.sample("as_informed_extra_sd_bps", dist.HalfNormal(20.0))
    sd_i = numpyro.deterministic("as_informed_sd_bps", sd_u + sd_extra)
    numpyro.deterministic("as_informed_mean_bps", mu_u + shift)
    if window is not None and num_windows > 0:
        k = numpyro.sample("concentration", dist.LogNormal(jnp.log(20.0), 1.0))
        with numpyro.plate("windows", num_windows):
            pi_w = numpyro.sample("pi_window", dist.Beta(pi * k, (1.0 - pi) * k))
        p = pi_w[window]
    else:
        p = pi
    log_i = jnp.log(p) + dist.Normal(mu_u + shift, sd_i).log_prob(as_bps)
    log_u = jnp.log1p(-p) + dist.Normal(mu_u, sd_u).log_prob(as_bps)
    numpyro.factor("as_mixture", jnp.sum(logsumexp(jnp.stack([log_i, log_u]), axis=0)))


def simulate_toxicity(key, num_fills: int, pi: float, mu_u: float, sd_u: float, shift: float, sd_i: float) -> dict:
    """Draw fills' AS and their hidden labels."""
    k1, k2, k3 = jax.random.split(key, 3)
    informed = np.asarray(jax.random.bernoulli(k1, pi, (num_fills,)))
    z = np.asarray(jax.random.normal(k2, (num_fills,)))
    as_bps = np.where(informed, mu_u + shift + sd_i * z, mu_u + sd_u * z)
    return {"as_bps": as_bps, "informed": informed}
