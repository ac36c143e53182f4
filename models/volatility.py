r"""Stochastic volatility: log sigma^2 is a mean-reverting AR(1) over bins (a discretised log-OU),
non-centred (standard-normal innovations; the state is built by a scan).

    h_1 = mu_h + xi / sqrt(1 - phi^2) e_1,   h_t = mu_h + phi (h_{t-1} - mu_h) + xi e_t,   e ~ N(0, 1)
    ret_t ~ N(0, exp(h_t / 2) sqrt(dt))      (sigma_t = exp(h_t / 2) in bps/sqrt(s))

phi is the persistence per bin (the log-OU rate is -ln(phi) / dt), xi the vol-of-vol per bin.
NUTS for thousands of bins; `models.fit` offers SVI (AutoNormal) for longer sessions.

Recorded mids move on a tick grid and, for a liquid perp, do not move at all in ~half of the
1 s bins. A Gaussian return cannot produce an exact zero, and fitting one drags log sigma to
-infinity in those bins (hundreds of divergences on the Binance sample). So a bin's return is
zero ("no move") with probability p0 and otherwise N(0, sigma_t^2 dt): the zeros inform p0, the
moves inform the volatility. Without zeros in the data p0 goes to 0 and the model is the one above.

Fill clustering (optional, when per-bin fill counts are given): fills arrive faster when the market
is more volatile, n_t ~ Poisson(rate dt exp(loading (h_t - mu_h) / 2)), i.e. the fill rate scales
as (sigma_t / typical sigma)^loading. The counts then inform the volatility path too.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist


def sv_model(ret_bps, dt_s, n_fills=None):
    """NumPyro model; deterministic sites give sigma_t and the log-OU rate per second; `n_fills`
    (fills per bin, optional) adds the fill-clustering observation."""
    num_bins = ret_bps.shape[0]
    mu_h = numpyro.sample("log_var_mean", dist.Normal(jnp.log(4.0), 2.0))
    phi01 = numpyro.sample("persistence_01", dist.Beta(20.0, 1.5))
    phi = numpyro.deterministic("persistence", 2.0 * phi01 - 1.0)
    xi = numpyro.sample("vol_of_vol", dist.HalfNormal(0.5))
    numpyro.deterministic("log_ou_rate_per_s", -jnp.log(phi) / dt_s[0])
    with numpyro.plate("bins", num_bins):
        eps = numpyro.sample("innovation", dist.Normal(0.0, 1.0))

    def step(h, e):
        h = mu_h + phi * (h - mu_h) + xi * e
        return h, h

    h0 = mu_h + xi / jnp.sqrt(1.0 - phi**2) * eps[0]
    _, rest = jax.lax.scan(step, h0, eps[1:])
    h = jnp.concatenate([h0[None], rest])
    numpyro.deterministic("sigma_bps_sqrt_s", jnp.exp(h / 2.0))
    p0 = numpyro.sample("no_move_prob", dist.Beta(1.0, 1.0))
    zero = ret_bps == 0.0
    ll = jnp.where(zero, jnp.log(p0),
                   jnp.log1p(-p0) + dist.Normal(0.0, jnp.exp(h / 2.0) * jnp.sqrt(dt_s)).log_prob(ret_bps))
    numpyro.factor("returns", jnp.sum(ll))
    if n_fills is not None:
        rate = numpyro.sample("fill_rate_per_s", dist.LogNormal(jnp.log(0.2), 1.5))
        loading = numpyro.sample("fill_vol_loading", dist.Normal(0.0, 2.0))
        numpyro.factor("fills", jnp.sum(dist.Poisson(rate * dt_s * jnp.exp(loading * (h - mu_h) / 2.0))
                                        .log_prob(n_fills)))


def simulate_sv(key, num_bins: int, dt_s: float, mu_h: float, phi: float, xi: float, no_move_prob: float = 0.0,
                fill_rate_per_s: float | None = None, fill_vol_loading: float = 0.0) -> dict:
    """Draw a log-variance path and returns from the model (and fill counts if `fill_rate_per_s`)."""
    k1, k2, k3 = jax.random.split(key, 3)
    e = np.asarray(jax.random.normal(k1, (num_bins,)))
    h = np.empty(num_bins)
    h[0] = mu_h + xi / np.sqrt(1 - phi**2) * e[0]
    for t in range(1, num_bins):
        h[t] = mu_h + phi * (h[t - 1] - mu_h) + xi * e[t]
    ret = np.exp(h / 2) * np.sqrt(dt_s) * np.asarray(jax.random.normal(k2, (num_bins,)))
    rng = np.random.default_rng(int(jax.random.randint(k3, (), 0, 2**31 - 1)))
    ret = np.where(rng.uniform(size=num_bins) < no_move_prob, 0.0, ret)
    out = {"ret_bps": ret, "dt_s": np.full(num_bins, dt_s), "log_var": h}
    if fill_rate_per_s is not None:
        out["n_fills"] = rng.poisson(fill_rate_per_s * dt_s * np.exp(fill_vol_loading * (h - mu_h) / 2)).astype(float)
    return out
