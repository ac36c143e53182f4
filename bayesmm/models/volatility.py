r"""Stochastic volatility: log sigma^2 is a mean-reverting AR(1) over bins (a discretised log-OU),
non-centred (standard-normal innovations; the state is built by a scan).

    h_1 = mu_h + xi / sqrt(1 - phi^2) e_1,   h_t = mu_h + phi (h_{t-1} - mu_h) + xi e_t,   e ~ N(0, 1)
    ret_t ~ N(0, exp(h_t / 2) sqrt(dt))      (sigma_t = exp(h_t / 2) in bps/sqrt(s))

phi is the persistence per bin (the log-OU rate is -ln(phi) / dt), xi the vol-of-vol per bin.
NUTS for thousands of bins (non-centred, the default); SVI for longer ones with the centred form
(`centred=True`: the path is one `GaussianMarkovChain` site "log_var") and `SVStructuredGuide`.

Recorded mids move on a tick grid and, for a liquid perp, do not move at all in ~half of the
1 s bins. A Gaussian return cannot produce an exact zero, and fitting one drags log sigma to
-infinity in those bins (hundreds of divergences on the Binance sample). So a bin's return is
zero ("no move") with probability p0 and otherwise N(0, sigma_t^2 dt): the zeros inform p0, the
moves inform the volatility. Without zeros in the data p0 goes to 0 and the model is the one above.

Fill clustering (optional, when per-bin fill counts are given): fills arrive faster when the market
is more volatile, n_t ~ NegBinomial(mean rate dt exp(loading (h_t - mu_h) / 2), concentration k),
i.e. the fill rate scales as (sigma_t / typical sigma)^loading. The counts then inform the
volatility path too. Over-dispersed (Poisson as k -> infinity) for the reason the regime HMM's
counts are: on the real tape a 1 s bin holds 62 trades on average with variance 20,000, and with
Poisson counts those bursts, not the returns, set the volatility path (NUTS, AutoNormal SVI and
the structured SVI then put the mean log-variance at 1.7, -4.8 and 4.4).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints
from numpyro.infer.autoguide import AutoNormal

from bayesmm.models.gaussian_chain import AR1GivenPseudoObservations, GaussianMarkovChain


def sv_model(ret_bps, dt_s, n_fills=None, centred=False, start=None, heavy_tails=False, pointwise=False):
    """NumPyro model; deterministic sites give sigma_t and the log-OU rate per second; `n_fills`
    (fills per bin, optional) adds the fill-clustering observation. `centred`: the log-variance
    path is the sample site "log_var" (for `SVStructuredGuide`) instead of being built from the
    standard-normal "innovation" site; the same model either way. `start` (1 at the first bin of
    each session): the path restarts there from its stationary law (separate paths, shared
    parameters). `heavy_tails`: a moving bin's return is Student-t with scale sigma_t sqrt(dt)
    and df = 2 + Gamma(2, 0.1) degrees of freedom, learnt (jumps within a bin that the smooth
    log-variance path cannot follow); its sd is then the scale x sqrt(df / (df - 2)).
    `pointwise`: record each bin's log-likelihood given the path as "log_lik" (for PSIS-LOO)."""
    num_bins = ret_bps.shape[0]
    start = jnp.zeros(num_bins).at[0].set(1.0) if start is None else jnp.asarray(start).at[0].set(1.0)
    mu_h = numpyro.sample("log_var_mean", dist.Normal(jnp.log(4.0), 2.0))
    phi01 = numpyro.sample("persistence_01", dist.Beta(20.0, 1.5))
    phi = numpyro.deterministic("persistence", 2.0 * phi01 - 1.0)
    xi = numpyro.sample("vol_of_vol", dist.HalfNormal(0.5))
    numpyro.deterministic("log_ou_rate_per_s", -jnp.log(phi) / dt_s[0])
    if centred:
        coef, scale = ar1_steps(phi, xi, start)
        h = numpyro.sample("log_var", GaussianMarkovChain(jnp.full(num_bins, mu_h), coef, scale))
    else:
        h = _path_from_innovations(mu_h, phi, xi, start)
    numpyro.deterministic("sigma_bps_sqrt_s", jnp.exp(h / 2.0))
    p0 = numpyro.sample("no_move_prob", dist.Beta(1.0, 1.0))
    zero = ret_bps == 0.0
    scale = jnp.exp(h / 2.0) * jnp.sqrt(dt_s)
    if heavy_tails:
        df = numpyro.deterministic("return_df", 2.0 + numpyro.sample("return_df_excess", dist.Gamma(2.0, 0.1)))
        law = dist.StudentT(df, 0.0, scale)
    else:
        law = dist.Normal(0.0, scale)
    ll = jnp.where(zero, jnp.log(p0), jnp.log1p(-p0) + law.log_prob(ret_bps))
    numpyro.factor("returns", jnp.sum(ll))
    if pointwise:
        numpyro.deterministic("log_lik", ll)
    if n_fills is not None:
        rate = numpyro.sample("fill_rate_per_s", dist.LogNormal(jnp.log(0.2), 1.5))
        loading = numpyro.sample("fill_vol_loading", dist.Normal(0.0, 2.0))
        k = numpyro.sample("fill_count_concentration", dist.LogNormal(jnp.log(10.0), 2.0))
        mean = rate * dt_s * jnp.exp(loading * (h - mu_h) / 2.0)
        numpyro.factor("fills", jnp.sum(dist.NegativeBinomial2(mean, k).log_prob(n_fills)))


def ar1_steps(phi, xi, start):
    """Per-bin (coefficient, innovation sd) of the AR(1) log-variance path: (phi, xi), except at a
    session's first bin, where it restarts from the stationary law (0, xi / sqrt(1 - phi^2))."""
    s = jnp.asarray(start) > 0
    return jnp.where(s, 0.0, phi), jnp.where(s, xi / jnp.sqrt(1.0 - phi**2), xi)


def _path_from_innovations(mu_h, phi, xi, start):
    with numpyro.plate("bins", start.shape[0]):
        eps = numpyro.sample("innovation", dist.Normal(0.0, 1.0))
    coef, scale = ar1_steps(phi, xi, start)

    def step(h, x):
        a, s, e = x
        h = mu_h + a * (h - mu_h) + s * e
        return h, h

    _, h = jax.lax.scan(step, mu_h, (coef, scale, eps))
    return h


LOG_CHI2_MEAN = -1.2704  # E[log z^2], z ~ N(0, 1)
LOG_CHI2_VAR = np.pi**2 / 2  # Var[log z^2]


class SVStructuredGuide:
    """SVI guide for `sv_model(..., centred=True)`: the scalar parameters mean-field normal
    (AutoNormal), and the log-variance path given them the AR(1) prior conditioned on Gaussian
    pseudo-observations (y_t, v_t) with free values per bin (`AR1GivenPseudoObservations`):
    q(h | scalars) follows the drawn persistence and vol-of-vol instead of being fitted
    independently of them. Starts at the quasi-likelihood linearisation of the returns,
    y_t = log(ret_t^2 / dt) - E[log chi^2_1], v_t = Var[log chi^2_1]; a no-move bin starts with
    v_t = 1e4 (no information). Pass the class to `models.fit.fit(..., method="svi", guide=...)`.

    Measured against NUTS on bench_fit's 2,000 bins (posterior-mean gaps per site, in NUTS
    posterior sds; the benchmark prints the largest): this guide, vol-of-vol -0.85, persistence
    +0.64, level +0.16; AutoNormal on the non-centred innovations, vol-of-vol at 2/3 of the NUTS value (-2.4),
    persistence -2.1; a low-rank multivariate normal did no better; a guide whose path was a free
    Gaussian Markov chain (mean, coefficient and scale per bin, independent of the scalars) put
    vol-of-vol at twice the value: its path roughness and the vol-of-vol held each other up.
    (The no-move probability's gap, ~3.4 sd for every guide, is a boundary artefact: without zeros
    in the data its posterior sits at ~0.0005 with sd ~0.0005.)"""

    def __init__(self, model, init_loc_fn):
        hide = lambda site: site["type"] != "sample" or site["name"] == "log_var"  # noqa: E731
        self.scalars = AutoNormal(numpyro.handlers.block(model, hide_fn=hide), init_loc_fn=init_loc_fn)

    def __call__(self, ret_bps, dt_s, n_fills=None, centred=True, start=None, heavy_tails=False, pointwise=False):
        if not centred:
            raise ValueError("SVStructuredGuide guides sv_model(..., centred=True)")
        s = self.scalars(ret_bps, dt_s, n_fills, centred, start, heavy_tails, pointwise)
        start = jnp.zeros(ret_bps.shape[0]).at[0].set(1.0) if start is None else jnp.asarray(start).at[0].set(1.0)
        moved = ret_bps != 0.0
        y0 = jnp.where(moved, jnp.log(jnp.where(moved, ret_bps, 1.0) ** 2 / dt_s) - LOG_CHI2_MEAN,
                       jnp.log(jnp.mean(ret_bps**2 / dt_s)))
        y = numpyro.param("log_var_pseudo_obs", y0)
        v = numpyro.param("log_var_pseudo_var", jnp.where(moved, LOG_CHI2_VAR, 1e4),
                          constraint=constraints.positive)
        phi = 2.0 * s["persistence_01"] - 1.0
        path = AR1GivenPseudoObservations(s["log_var_mean"], phi, s["vol_of_vol"], y, v, start)
        return s | {"log_var": numpyro.sample("log_var", path)}


def simulate_sv(key, num_bins: int, dt_s: float, mu_h: float, phi: float, xi: float, no_move_prob: float = 0.0,
                fill_rate_per_s: float | None = None, fill_vol_loading: float = 0.0,
                fill_count_concentration: float = np.inf, return_df: float | None = None) -> dict:
    """Draw a log-variance path and returns from the model (and fill counts if `fill_rate_per_s`;
    Poisson unless `fill_count_concentration` is finite; Student-t returns with `return_df`)."""
    k1, k2, k3 = jax.random.split(key, 3)
    e = np.asarray(jax.random.normal(k1, (num_bins,)))
    h = np.empty(num_bins)
    h[0] = mu_h + xi / np.sqrt(1 - phi**2) * e[0]
    for t in range(1, num_bins):
        h[t] = mu_h + phi * (h[t - 1] - mu_h) + xi * e[t]
    if return_df is None:
        noise = np.asarray(jax.random.normal(k2, (num_bins,)))
    else:
        noise = np.asarray(jax.random.t(k2, return_df, (num_bins,)))
    ret = np.exp(h / 2) * np.sqrt(dt_s) * noise
    rng = np.random.default_rng(int(jax.random.randint(k3, (), 0, 2**31 - 1)))
    ret = np.where(rng.uniform(size=num_bins) < no_move_prob, 0.0, ret)
    out = {"ret_bps": ret, "dt_s": np.full(num_bins, dt_s), "log_var": h}
    if fill_rate_per_s is not None:
        mean = fill_rate_per_s * dt_s * np.exp(fill_vol_loading * (h - mu_h) / 2)
        k = fill_count_concentration
        out["n_fills"] = rng.poisson(mean if np.isinf(k) else rng.gamma(k, mean / k)).astype(float)
    return out
