r"""Ground-truth market (the generative model of the simulated markets): a continuous-time 4-regime chain drives
the drift (OU toward the regime's mean), the volatility (log-OU toward the regime's level) and the
informed-flow intensity; uninformed and informed takers arrive as Poisson streams.

The market is exogenous (our quotes do not move the mid), so a whole path is simulated first in
one `lax.scan` on a fixed step `dt_s` and the closed loop (`sim.run`) scans over it. The path keeps
the hidden state (regime, mu, sigma, pi) for scoring inference against the truth.

Per step, exactly:
- regime: r' ~ Categorical(expm(Q dt)[r]);
- drift (bps/s): mu' = m_r + (mu - m_r) e^{-theta_mu dt} + sigma_mu sqrt((1 - e^{-2 theta_mu dt}) / (2 theta_mu)) z;
- log-vol: the same OU form toward log sigma_bar_r with rate theta_sigma and diffusion xi;
- return (bps): N(mu dt, sigma^2 dt); mid *= exp(ret / 1e4);
- takers: uninformed buys and sells ~ Poisson(lambda_u dt) each; informed ~ Poisson(lambda_i(r) dt),
  all on the side of the drift (they sell when mu < 0); toxicity pi = lambda_i / (lambda_i + 2 lambda_u);
- book imbalance = tanh(beta mu + noise).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import expm

from bayesmm.online.params import named_tuple_from, require_positive, symmetric_generator
from bayesmm.sim.sampling import poisson_small


class MarketParams(NamedTuple):
    """Attributes (units in names; per-regime tuples are ordered trending_down, trending_up,
    mean_reverting, volatile):
        dt_s: simulation step, s.
        mid0_px: starting mid, quote currency.
        regime_rates_per_s: generator Q, 1/s (4x4, rows sum to 0).
        initial_regime_probs: distribution of the first regime.
        trend_drift_bps_s: m: regime drift means are (-m, +m, 0, 0), bps/s.
        theta_mu_per_s: OU mean reversion of the drift, 1/s.
        sigma_mu_bps_s_sqrt_s: OU diffusion of the drift, (bps/s)/sqrt(s).
        vol_level_bps_sqrt_s: sigma_bar_r per regime, bps/sqrt(s).
        theta_sigma_per_s: mean reversion of log sigma, 1/s.
        xi_per_sqrt_s: volatility of log sigma, 1/sqrt(s).
        uninformed_rate_per_s: lambda_u, uninformed takers per side, 1/s.
        informed_rate_per_s: lambda_i per regime, informed takers, 1/s.
        taker_size: quantity of one taker, units.
        spread_bps: market spread per regime, bps.
        imbalance_beta_per_bps_s: lean of the book imbalance on the drift, 1/(bps/s).
        imbalance_noise: sd of the imbalance noise before tanh.
        initial_drift_bps_s: mu at t = 0 (NaN: the regime's mean).
    """

    dt_s: float = 0.1
    mid0_px: float = 28.4
    regime_rates_per_s: tuple = ()
    initial_regime_probs: tuple = (0.25, 0.25, 0.25, 0.25)
    trend_drift_bps_s: float = 2.0
    theta_mu_per_s: float = 0.05
    sigma_mu_bps_s_sqrt_s: float = 0.3
    vol_level_bps_sqrt_s: tuple = (3.0, 3.0, 2.0, 6.0)
    theta_sigma_per_s: float = 0.05
    xi_per_sqrt_s: float = 0.05
    uninformed_rate_per_s: float = 1.0
    informed_rate_per_s: tuple = (0.6, 0.6, 0.0, 0.3)
    taker_size: float = 0.5
    spread_bps: tuple = (7.0, 7.0, 5.0, 12.0)
    imbalance_beta_per_bps_s: float = 0.2
    imbalance_noise: float = 0.5
    initial_drift_bps_s: float = float("nan")


def market_params(**overrides) -> MarketParams:
    """MarketParams with the generator built from `regime_switch_per_s` (default 1/300 s) unless
    given; validated; leaves as float64 arrays."""
    switch = overrides.pop("regime_switch_per_s", 1.0 / 300.0)
    p = named_tuple_from(MarketParams, overrides)
    if len(np.asarray(p.regime_rates_per_s)) == 0:
        p = p._replace(regime_rates_per_s=symmetric_generator(switch))
    require_positive(p, ("dt_s", "mid0_px", "theta_mu_per_s", "theta_sigma_per_s", "taker_size"))
    probs = np.asarray(p.initial_regime_probs, float)
    if probs.shape != (4,) or (probs < 0).any() or abs(probs.sum() - 1) > 1e-9:
        raise ValueError(f"MarketParams.initial_regime_probs must be 4 probabilities, got {probs.tolist()}")
    if (np.asarray(p.vol_level_bps_sqrt_s) <= 0).any() or (np.asarray(p.informed_rate_per_s) < 0).any():
        raise ValueError("MarketParams: vol levels must be > 0 and informed rates >= 0")
    return MarketParams(*(jnp.asarray(v, jnp.float64) for v in p))


class MarketPath(NamedTuple):
    """One simulated path, one row per step (after the step's move).

    Attributes: t_s; mid_px; ret_bps (this step's return); spread_bps; imbalance; taker_buys,
    taker_sells (counts of all takers that bought / sold this step); informed_buys, informed_sells;
    hidden truth: regime (int), mu_bps_s, sigma_bps_sqrt_s, toxicity (pi).
    """

    t_s: jax.Array
    mid_px: jax.Array
    ret_bps: jax.Array
    spread_bps: jax.Array
    imbalance: jax.Array
    taker_buys: jax.Array
    taker_sells: jax.Array
    informed_buys: jax.Array
    informed_sells: jax.Array
    regime: jax.Array
    mu_bps_s: jax.Array
    sigma_bps_sqrt_s: jax.Array
    toxicity: jax.Array


def regime_means(p: MarketParams):
    """Drift means per regime (-m, +m, 0, 0), bps/s."""
    m = p.trend_drift_bps_s
    return jnp.stack([-m, m, jnp.zeros_like(m), jnp.zeros_like(m)])


def _ou_step(x, target, theta, sigma, dt, z):
    decay = jnp.exp(-theta * dt)
    return target + (x - target) * decay + sigma * jnp.sqrt((1.0 - decay**2) / (2.0 * theta)) * z


def simulate(key, params: MarketParams, num_steps: int) -> MarketPath:
    """Simulate `num_steps` steps of the market (static length; vmap over keys for many paths)."""
    p = params
    dt = p.dt_s
    trans = expm(p.regime_rates_per_s * dt)
    means = regime_means(p)
    k0, k1, k2, key = jax.random.split(key, 4)
    r0 = jax.random.categorical(k0, jnp.log(jnp.asarray(p.initial_regime_probs) + 1e-300))
    stat_sd = p.sigma_mu_bps_s_sqrt_s / jnp.sqrt(2.0 * p.theta_mu_per_s)
    mu0 = jnp.where(jnp.isnan(p.initial_drift_bps_s), means[r0] + stat_sd * jax.random.normal(k1),
                    p.initial_drift_bps_s)
    logs0 = jnp.log(jnp.asarray(p.vol_level_bps_sqrt_s)[r0])

    def step(carry, k):
        r, mu, logs, mid, t = carry
        kr, kmu, ks, kret, kt, ki = jax.random.split(k, 6)
        r = jax.random.categorical(kr, jnp.log(trans[r] + 1e-300))
        mu = _ou_step(mu, means[r], p.theta_mu_per_s, p.sigma_mu_bps_s_sqrt_s, dt, jax.random.normal(kmu))
        logs = _ou_step(logs, jnp.log(jnp.asarray(p.vol_level_bps_sqrt_s)[r]), p.theta_sigma_per_s,
                        p.xi_per_sqrt_s, dt, jax.random.normal(ks))
        sigma = jnp.exp(logs)
        ret = mu * dt + sigma * jnp.sqrt(dt) * jax.random.normal(kret)
        mid = mid * jnp.exp(ret / 1e4)
        kb, ks2, kn = jax.random.split(kt, 3)
        u_buys = poisson_small(kb, p.uninformed_rate_per_s * dt)
        u_sells = poisson_small(ks2, p.uninformed_rate_per_s * dt)
        lam_i = jnp.asarray(p.informed_rate_per_s)[r]
        n_inf = poisson_small(ki, lam_i * dt)
        inf_buys, inf_sells = jnp.where(mu > 0, n_inf, 0.0), jnp.where(mu < 0, n_inf, 0.0)
        imb = jnp.tanh(p.imbalance_beta_per_bps_s * mu + p.imbalance_noise * jax.random.normal(kn))
        t = t + dt
        row = MarketPath(t, mid, ret, jnp.asarray(p.spread_bps)[r], imb, u_buys + inf_buys, u_sells + inf_sells,
                         inf_buys, inf_sells, r, mu, sigma, lam_i / (lam_i + 2.0 * p.uninformed_rate_per_s))
        return (r, mu, logs, mid, t), row

    init = (r0, mu0, logs0, jnp.asarray(p.mid0_px, jnp.float64), jnp.zeros((), jnp.float64))
    _, path = jax.lax.scan(step, init, jax.random.split(k2, num_steps))
    return path
