r"""OU drift model: a latent drift mu_t (bps/s) with OU dynamics seen through mid returns, with
own-fill sides and their adverse selection loading on mu.

    mu_t = mu_{t-1} e^{-theta dt} + sqrt(sigma_mu^2 (1 - e^{-2 theta dt}) / (2 theta)) eps_t
    ret_t ~ N(mu_t dt, sigma^2 dt)                        (bps per bin of dt s)
    P(fill i is a buy) = sigmoid(a - b mu_{t(i)})           (b > 0: buys when the drift is down)

The Gaussian part (mu and returns) is marginalised exactly by the Kalman filter of
`online.kernels` (the same `ou_predict` / `gaussian_update` the online filter runs). The fills are
non-Gaussian: they enter as a pseudo-likelihood evaluated against the Kalman *predictive* law of
mu at their bin, N(m, P), without feeding back into the filter - P(buy) by the probit
approximation sigmoid((a - b m) / sqrt(1 + pi b^2 P / 8)). This is exact for the returns and an
approximation for the fills (it ignores what fills say about mu at later bins), stated as such.

**Microstructure** (`microstructure=True`, the fitted variant: `models.workflow.DEFAULT_VARIANTS`).
The mid is a noisy view of an efficient price: the bounce between bid and ask is observation noise
e_t ~ N(0, noise^2) on the mid at each bin's end, not drift, so a bin's return carries e_t - e_{t-1}
(the negative lag-1 autocorrelation of real 1 s returns, which the plain model reads as mean-
reverting drift); and the efficient price's own increments are Student-t (a scale mixture: each bin's
precision lambda_t ~ Gamma(nu/2, nu/2), sampled), as real 1 s returns are (their kurtosis runs to
tens: sweeps). Given the precisions the returns are still linear-Gaussian in (mu_t, e_t, e_{t-1}),
and the Kalman filter of that three-dimensional state (`microstructure_loglik`) marginalises them
exactly:

    r_t = mu_t dt + sigma sqrt(dt / lambda_t) eps_t + e_t - e_{t-1}

On a tick grid most 1 s bins hold no move at all (60% on the bundled spot session): the price moved
less than the grid shows, a rounding this linear-Gaussian model cannot write. Those bins are taken as
unobserved (the state is predicted through them, not conditioned), as the regime model takes them,
and its replicates keep them (`models.checks.replicate_drift`): the model describes the moves the grid
shows, an approximation stated as such.

Adverse selection is left to the toxicity model: a link "AS mean rising with |mu| against us"
evaluated at the predictive m was tried and is biased (m is shrunk towards 0 because the fills'
own information about mu is not in the filter, and the AS intercept absorbs the difference:
intercept 1.0 recovered as 2.1-3.2 at 90%), so it is not offered.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from bayesmm.online.kernels import gaussian_update, ou_predict, ou_stationary_var


def kalman_loglik(ret_bps, dt_s, theta, sigma_mu, sigma, start=None):
    """Exact log-likelihood of the returns and the predictive (mean, var) of mu in each bin.
    `start` (1 at the first bin of each session, optional): the drift restarts there from its
    stationary law, a separate latent path with the same parameters."""
    var0 = ou_stationary_var(sigma_mu, theta)
    start = jnp.zeros_like(ret_bps) if start is None else start

    def step(carry, x):
        ll, m, p = carry
        r, dt, s = x
        m, p = ou_predict(m, p, dt, theta, sigma_mu)
        m, p = jnp.where(s > 0, 0.0, m), jnp.where(s > 0, var0, p)
        pred_m, pred_p = m, p
        m_new, p_new, l = gaussian_update(m, p, r / dt, sigma**2 / dt)
        # ret = mu dt + e: the density of ret is that of ret/dt times 1/dt
        return (ll + l - jnp.log(dt), m_new, p_new), (pred_m, pred_p)

    (ll, _, _), (pm, pp) = jax.lax.scan(step, (jnp.zeros_like(var0), jnp.zeros_like(var0), var0),
                                        (ret_bps, dt_s, start))
    return ll, pm, pp


@jax.custom_vjp
def kalman_loglik_forward_grad(ret_bps, dt_s, theta, sigma_mu, sigma, start):
    """`kalman_loglik`, differentiated in forward mode: the outputs depend on three scalars, so
    their full Jacobian is one scan carrying three tangents, and a gradient is that Jacobian applied
    to the cotangents. For when the per-bin outputs are used (the fill term reads them), where
    reverse mode through the scan costs more (benchmarks/bench_fit.py, `gradient_costs`, measures
    both). With the log-likelihood alone reverse mode is cheaper and is what runs."""
    return kalman_loglik(ret_bps, dt_s, theta, sigma_mu, sigma, start)


def _kalman_fwd(ret_bps, dt_s, theta, sigma_mu, sigma, start):
    params = jnp.stack(jnp.broadcast_arrays(theta, sigma_mu, sigma))

    def along(tangent):  # the outputs and their derivative along one direction in (theta, sigma_mu, sigma)
        return jax.jvp(lambda q: kalman_loglik(ret_bps, dt_s, q[0], q[1], q[2], start), (params,), (tangent,))

    out, jac = jax.vmap(along, out_axes=(None, -1))(jnp.eye(3, dtype=params.dtype))
    return out, (jac, ret_bps, dt_s, start)


def _kalman_bwd(res, cotangents):
    (j_ll, j_m, j_p), ret_bps, dt_s, start = res
    g_ll, g_m, g_p = cotangents
    grad = g_ll * j_ll + g_m @ j_m + g_p @ j_p
    return jnp.zeros_like(ret_bps), jnp.zeros_like(dt_s), grad[0], grad[1], grad[2], jnp.zeros_like(start)


kalman_loglik_forward_grad.defvjp(_kalman_fwd, _kalman_bwd)


def microstructure_loglik(ret_bps, dt_s, theta, sigma_mu, sigma_bin_bps_sqrt_s, noise_bps, start):
    """Exact log-likelihood of the returns under the microstructure variant (module docstring) given
    each bin's diffusion sd `sigma_bin_bps_sqrt_s` (sigma / sqrt(lambda_t)), and the predictive
    (mean, var) of mu in each bin: a Kalman filter on the state (mu_t, e_t, e_{t-1}). At a session's
    first bin the state restarts: mu from its stationary law, both noises fresh."""
    var0 = ou_stationary_var(sigma_mu, theta)
    n2 = noise_bps**2
    dtype = jnp.result_type(ret_bps, var0)
    p0 = jnp.diag(jnp.stack([var0, n2, n2]).astype(dtype))
    shift = jnp.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype)

    def step(carry, x):
        ll, m, p = carry
        r, dt, s_bin, st = x
        a = jnp.exp(-theta * dt)
        f = shift.at[0, 0].set(a)
        m, p = f @ m, f @ p @ f.T + jnp.diag(jnp.stack([var0 * (1.0 - a**2), n2, jnp.zeros_like(n2)]))
        m, p = jnp.where(st > 0, jnp.zeros_like(m), m), jnp.where(st > 0, p0, p)
        pred_m, pred_p = m[0], p[0, 0]
        h = jnp.stack([dt, jnp.ones_like(dt), -jnp.ones_like(dt)])
        ph = p @ h
        var = h @ ph + s_bin**2 * dt
        gain = ph / var
        resid = r - h @ m
        moved = r != 0.0  # a bin without a move is taken as unobserved (module docstring)
        m = jnp.where(moved, m + gain * resid, m)
        p = jnp.where(moved, p - jnp.outer(gain, ph), p)
        p = 0.5 * (p + p.T)
        ll = ll + jnp.where(moved, -0.5 * (jnp.log(2.0 * jnp.pi * var) + resid**2 / var), 0.0)
        return (ll, m, p), (pred_m, pred_p)

    s_bins = jnp.broadcast_to(sigma_bin_bps_sqrt_s, jnp.shape(ret_bps))
    (ll, _, _), (pm, pp) = jax.lax.scan(step, (jnp.zeros((), dtype), jnp.zeros(3, dtype), p0),
                                        (ret_bps, dt_s, s_bins, start))
    return ll, pm, pp


def ou_drift_model(ret_bps, dt_s, fill_bin=None, fill_side=None, start=None, microstructure: bool = False):
    """NumPyro model (sites in the units of their names); fills are optional: fill_bin (int, the bin of
    each fill) and fill_side (+1 our buy, -1 our sell, 0 padding); `start` marks the first bin of
    each session (separate drift paths, shared parameters). `microstructure`: the mid's observation
    noise (`noise_bps`) and Student-t increments (`return_df`, per-bin `return_precision`), module
    docstring."""
    theta = numpyro.sample("theta_per_s", dist.LogNormal(jnp.log(0.01), 1.5))
    sigma_mu = numpyro.sample("sigma_mu_bps_s_sqrt_s", dist.LogNormal(jnp.log(0.3), 1.5))
    sigma = numpyro.sample("sigma_bps_sqrt_s", dist.LogNormal(jnp.log(2.0), 1.5))
    numpyro.deterministic("stationary_sd_bps_s", sigma_mu / jnp.sqrt(2.0 * theta))
    has_fills = fill_bin is not None and len(fill_bin) > 0
    start = jnp.zeros_like(ret_bps) if start is None else start
    if microstructure:
        noise = numpyro.sample("noise_bps", dist.HalfNormal(1.0))
        df = numpyro.deterministic("return_df", 2.0 + numpyro.sample("return_df_excess", dist.Gamma(2.0, 0.1)))
        lam = numpyro.sample("return_precision", dist.Gamma(df / 2.0, df / 2.0).expand([len(ret_bps)]).to_event(1))
        ll, pm, pp = microstructure_loglik(ret_bps, dt_s, theta, sigma_mu, sigma / jnp.sqrt(lam), noise, start)
    else:
        ll, pm, pp = (kalman_loglik_forward_grad if has_fills else kalman_loglik)(ret_bps, dt_s, theta, sigma_mu,
                                                                                  sigma, start)
    numpyro.factor("returns", ll)
    if has_fills:
        a = numpyro.sample("fill_link_a", dist.Normal(0.0, 1.0))
        b = numpyro.sample("fill_link_b", dist.HalfNormal(2.0))
        m, p = pm[fill_bin], pp[fill_bin]
        logit = (a - b * m) / jnp.sqrt(1.0 + jnp.pi * b**2 * p / 8.0)
        # side 0 marks padding (fixed-length inputs let one compiled sampler serve many data sets)
        ll = dist.Bernoulli(logits=logit).log_prob((fill_side > 0).astype(m.dtype))
        numpyro.factor("fill_sides", jnp.sum(jnp.where(fill_side != 0, ll, 0.0)))


def simulate_drift(key, num_bins: int, dt_s: float, theta: float, sigma_mu: float, sigma: float,
                   fills_per_s: float = 0.0, a: float = 0.0, b: float = 0.0) -> dict:
    """Draw from the model (prior or posterior predictive): mu path, returns, and Poisson fills."""
    rng = np.random.default_rng(int(jax.random.randint(key, (), 0, 2**31 - 1)))
    decay = np.exp(-theta * dt_s)
    q = ou_stationary_var(sigma_mu, theta) * (1 - decay**2)
    mu = np.empty(num_bins)
    m = rng.normal(0, sigma_mu / np.sqrt(2 * theta))
    for t in range(num_bins):
        m = m * decay + np.sqrt(q) * rng.normal()
        mu[t] = m
    ret = mu * dt_s + sigma * np.sqrt(dt_s) * rng.normal(size=num_bins)
    n = rng.poisson(fills_per_s * dt_s, num_bins)
    fill_bin = np.repeat(np.arange(num_bins), n).astype(np.int32)
    p_buy = 1 / (1 + np.exp(-(a - b * mu[fill_bin])))
    side = np.where(rng.uniform(size=len(fill_bin)) < p_buy, 1.0, -1.0)
    return {"mu_bps_s": mu, "ret_bps": ret, "dt_s": np.full(num_bins, dt_s), "fill_bin": fill_bin, "fill_side": side}
