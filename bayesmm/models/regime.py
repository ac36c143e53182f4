r"""4-state regime HMM over bins: {trending_down, trending_up, mean_reverting, volatile}, with a
continuous-time generator Q (rates per second) as the parameter, so the transition matrix for any
bin width is expm(Q dt).

Emissions per bin, given regime r:
    ret ~ N(m_r dt, sigma_r^2 dt),  m = (-m, +m, 0, 0),
          sigma = (sigma_trend, sigma_trend, sigma_mr, sigma_vol) with sigma_mr < sigma_trend < sigma_vol:
          sigma_trend = sigma_mr (1 + e_trend), sigma_vol = sigma_trend (1 + e_vol), e > 0
    n_fills ~ NegBinomial(mean rate_r dt, concentration k_n),  rate = (rate_trend, rate_trend, rate_mr, rate_vol)
    n_buy | n_fills ~ BetaBinomial(n_fills, p_r k_s, (1 - p_r) k_s),  p = (1/2 + rho, 1/2 - rho, 1/2, 1/2)
    mean AS (bins with fills) ~ N(as_r, as_sd^2 (c + (1 - c) / n_fills)),  as = (as_trend, as_trend, as_mr, as_vol)
The over-dispersed count laws (Poisson and Binomial as k -> infinity) and the within-bin AS
correlation c are there because fills come in bursts: on the real tape a 1 s bin holds 62 trades on
average with variance 20,000, a sweep's prints are all one side, and prints in one bin share the
mid move their AS is measured against. With Poisson / Binomial / independent-AS emissions the HMM
spent its states on count levels, and its chains disagreed.
The two trends are mirror images: every emission of the uptrend is the downtrend's with the sign of
the drift, the side and the book's lean flipped, and the same volatility, AS and fill rate (with a
fill rate of their own the two trend states took different count levels on the real perp session,
0.2 and 400 prints per second, and were no longer trends). Labels are identified by construction:
the trends by the sign of their drift (m > 0) and their fill asymmetry (rho > 0), and the three
volatility levels by their order (quiet mean reversion, trends, the volatile regime; the
ground-truth market's levels are 2, 3, 6). The volatility order matters when the data hold no
clear trend: with m and rho near 0 the trend states differ from the mean-reverting one only by
their volatility, and without an order chains settle in swapped labels (as they did on the
6-minute real sample).

Optional emissions, when the session has them (public feeds do: they are the evidence a filter
without own fills reads):
    book imbalance at the bin's end ~ N(i0 + i_r, s_i^2),  i = (-i_trend, +i_trend, 0, 0)
    the other venue's return over the bin | own return ~ N(b ret, s_cv^2 dt)   (the same move, b of
        it, plus its own noise; where the own mid did not move, N(b m_r dt, (b^2 sigma_r^2 + s_cv^2) dt))
They give the online filter's book and cross-venue weights (`calibration.derive`).

The states are marginalised by the forward algorithm: `forward_log_evidence` is written with the
online regime filter's `hmm_predict` / `hmm_condition` kernels; the model runs the equal but cheaper
`scaled_log_evidence` (tested against it).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax.scipy.special import gammaln

from bayesmm.online.kernels import hmm_condition, hmm_predict, return_logpdf, transition_matrix

NUM_STATES = 4
_transition_matrix = jax.jit(transition_matrix)
_OFF = [(i, j) for i in range(NUM_STATES) for j in range(NUM_STATES) if i != j]


class RegimeModelParams(NamedTuple):
    """The regime HMM's parameters at one posterior draw (what `calibration.derive` turns into the
    online filter's config group, `online.params.RegimeParams`). Attributes: rates_per_s (4x4
    generator), drift_bps_s (4,), sigma_bps_sqrt_s (4,), fill_rate_per_s (4,), p_buy (4,), as_mean_bps
    (4,), as_sd_bps, count_concentration, side_concentration, as_within_bin_corr (module docstring);
    return_df: the returns' Student-t degrees of freedom (None: Gaussian
    returns, sigma their sd; with df, sigma is the t's scale)."""

    rates_per_s: jax.Array
    drift_bps_s: jax.Array
    sigma_bps_sqrt_s: jax.Array
    fill_rate_per_s: jax.Array
    p_buy: jax.Array
    as_mean_bps: jax.Array
    as_sd_bps: jax.Array
    count_concentration: jax.Array
    side_concentration: jax.Array
    as_within_bin_corr: jax.Array
    return_df: jax.Array | None = None


def generator(off_diagonal_rates) -> jax.Array:
    """Q from its 12 off-diagonal rates (row-major, diagonal skipped); rows sum to 0."""
    q = jnp.zeros((NUM_STATES, NUM_STATES), off_diagonal_rates.dtype)
    rows, cols = zip(*_OFF, strict=True)
    q = q.at[jnp.array(rows), jnp.array(cols)].set(off_diagonal_rates)
    return q - jnp.diag(jnp.sum(q, axis=1))


def as_sd_of_mean(p: RegimeModelParams, n_fills):
    """sd of the mean AS of n fills whose AS are equi-correlated with correlation c."""
    c = p.as_within_bin_corr
    return p.as_sd_bps * jnp.sqrt(c + (1.0 - c) / jnp.maximum(n_fills, 1.0))


def emission_log_lik(p: RegimeModelParams, ret_bps, dt_s, n_buy, n_sell, mean_as_bps, has_as):
    """log p(bin t | regime r), shape (num_bins, 4). A bin whose mid did not move (return exactly 0,
    common on a tick grid) carries no return evidence: its return term is the same for every regime
    (see `models.volatility` for why a Gaussian must not be asked to produce exact zeros).

    The count laws are written out rather than taken from `numpyro.distributions` so that their
    log-gamma terms that do not depend on the regime (they depend on the bin's counts and the shared
    concentrations only) are evaluated once per bin instead of once per bin and regime, and every
    log-gamma once per distinct count where the counts are data (`_count_log_gammas`): log-gammas
    and their digamma gradients were most of a NUTS gradient (benchmarks/bench_fit.py,
    `gradient_costs`). The arithmetic is one jitted function (`_emission_log_lik`): inside a
    sampler it is inlined as before, and where NumPyro runs the model op by op (initialisation,
    predictive draws) it is one compilation instead of one per operation."""
    return _emission_log_lik(p, ret_bps, dt_s, n_buy, n_sell, mean_as_bps, has_as, _distinct_counts(n_buy, n_sell))


@jax.jit
def _emission_log_lik(p: RegimeModelParams, ret_bps, dt_s, n_buy, n_sell, mean_as_bps, has_as, distinct):
    """`emission_log_lik` with the counts' `distinct` tables (buy, sell, all; None where not concrete)."""
    dt = dt_s[:, None]
    n = n_buy + n_sell
    ret_ll = return_logpdf(ret_bps[:, None], p.drift_bps_s * dt, p.sigma_bps_sqrt_s * jnp.sqrt(dt), p.return_df)
    ll = jnp.where(ret_bps[:, None] == 0.0, 0.0, ret_ll)
    # n ~ NegBinomial2(mean mu_r, k): lgamma(n+k) - lgamma(k) - lgamma(n+1) + k log(k/(k+mu)) + n log(mu/(k+mu))
    k_n = p.count_concentration
    mu = p.fill_rate_per_s * dt
    ll += k_n * (jnp.log(k_n) - jnp.log(k_n + mu)) + n[:, None] * (jnp.log(mu) - jnp.log(k_n + mu))
    as_ll = dist.Normal(p.as_mean_bps, as_sd_of_mean(p, n[:, None])).log_prob(mean_as_bps[:, None])
    return ll + _count_log_gammas(p, n_buy, n_sell, distinct) + has_as[:, None] * as_ll


def _count_log_gammas(p: RegimeModelParams, n_buy, n_sell, distinct):
    """The count laws' log-gamma terms, shape (num_bins, 4):
    n_buy | n ~ BetaBinomial(n, a_r, b_r) with a_r + b_r = k_s:
        log C(n, n_buy) + lgamma(n_buy + a) + lgamma(n_sell + b) - lgamma(n + k_s) - lgamma(a) - lgamma(b) + lgamma(k_s)
    and the count law's lgamma(n + k_n) - lgamma(k_n) - lgamma(n + 1); the count law's -lgamma(n + 1) and the
    binomial coefficient's +lgamma(n + 1) cancel, so neither is computed.

    Every log-gamma is taken once per distinct count where `distinct` holds the series' distinct
    values (`distinct_counts`; else once per bin), in one call over all of them: counts repeat (the
    benchmark's 20,000 1 s bins hold 6 distinct buy counts), and log-gamma with its digamma gradient
    was most of a NUTS gradient of this model (the side law's two (T, 4) log-gammas took about half
    of it: benchmarks/bench_fit.py, `gradient_costs`), and each call site is a large expansion for
    XLA to compile. A table reaches the bins through a product with the identity: XLA's CPU compiler
    otherwise fuses the log-gamma into the gather and evaluates it once per gathered element again
    (measured: no faster than the direct form; an optimisation barrier is removed before fusion); a
    dot is not fused, and costs distinct^2 per column (hence MAX_DISTINCT_COUNTS). The two forms
    are equal (tested)."""
    k_n, k_s = p.count_concentration, p.side_concentration
    a, b = p.p_buy * k_s, (1.0 - p.p_buy) * k_s
    one = jnp.ones(1, a.dtype)
    series = (n_buy, n_sell, n_buy + n_sell)
    shifts = (jnp.concatenate([a, one]), jnp.concatenate([b, one]), jnp.stack([k_n, k_s]))
    points = [(c if d is None else d.values).astype(a.dtype)[:, None] + sh
              for c, d, sh in zip(series, distinct, shifts, strict=True)]
    scalars = jnp.concatenate([a, b, jnp.stack([k_n, k_s])])
    logs = gammaln(jnp.concatenate([x.ravel() for x in points] + [scalars]))
    tables, at = [], 0
    for x, d in zip(points, distinct, strict=True):
        t = logs[at: at + x.size].reshape(x.shape)
        at += x.size
        tables.append(t if d is None else (jnp.eye(t.shape[0], dtype=t.dtype) @ t)[d.index])
    (buys, sells, alls), g = tables, logs[at:]
    side = buys[:, :4] + sells[:, :4] - g[:4] - g[4:8]
    shared = alls[:, 0] - g[8] - buys[:, 4] - sells[:, 4] - alls[:, 1] + g[9]
    return side + shared[:, None]


class DistinctCounts(NamedTuple):
    """A count series as its distinct values and each bin's index into them (`_count_log_gammas`)."""

    values: jax.Array
    index: jax.Array


MAX_DISTINCT_COUNTS = 256
"""The most distinct values a count series may have for `_count_log_gammas`'s table (its cost grows
as their square)."""


def distinct_counts(counts) -> DistinctCounts | None:
    """`counts`' distinct values and index, or None where they are traced (not data known when the
    model is traced, e.g. under `jit_model_args`) or have more than MAX_DISTINCT_COUNTS values."""
    try:
        values, index = np.unique(np.asarray(counts), return_inverse=True)
    except jax.errors.TracerArrayConversionError:
        return None
    if values.size > MAX_DISTINCT_COUNTS:
        return None
    return DistinctCounts(jnp.asarray(values), jnp.asarray(index.ravel()))


def _distinct_counts(n_buy, n_sell) -> tuple:
    """`distinct_counts` of the buys, the sells and all fills."""
    return tuple(distinct_counts(c) for c in (n_buy, n_sell, n_buy + n_sell))


def _starts(log_lik, start):
    """The session-start flags as floats, the first bin always a start."""
    start = jnp.zeros(log_lik.shape[0], log_lik.dtype) if start is None else jnp.asarray(start, log_lik.dtype)
    return start.at[0].set(1.0)


def forward_log_evidence(log_lik, transition, log_init, start=None):
    """log p(data) and the filtered log beliefs, by the forward algorithm (online kernels). At
    each session start (`start`) the belief restarts from `log_init`: separate regime paths."""

    def step(carry, x):
        lp, total = carry
        ll, s = x
        lp = jnp.where(s > 0, log_init, lp)
        lp, norm = hmm_condition(lp, ll)
        return (hmm_predict(lp, transition), total + norm), lp

    (_, total), filtered = jax.lax.scan(step, (log_init, 0.0), (log_lik, _starts(log_lik, start)))
    return total, filtered


def _scaled_forward(log_lik, transition, log_init, start):
    """Filtered beliefs alpha_t = P(z_t | bins <= t) (T, 4), the normalisers c_t, and the scaled
    emissions e_t = exp(ll_t - max_r ll_t) whose shifts give log p = sum log c_t + sum shifts.
    The prior restarts at exp(log_init) at every session start."""
    shift = jnp.max(log_lik, axis=1)
    scaled = jnp.exp(log_lik - shift[:, None])
    init = jnp.exp(log_init)

    def step(prior, x):
        e_t, s = x
        joint = jnp.where(s > 0, init, prior) * e_t
        norm = jnp.sum(joint)
        filtered = joint / norm
        return filtered @ transition, (filtered, norm)

    _, (filtered, norms) = jax.lax.scan(step, init, (scaled, start))
    return filtered, norms, scaled, shift


def scaled_log_evidence(log_lik, transition, log_init, start=None):
    """`_scaled_log_evidence` with `start` defaulting to one session (see there)."""
    return _scaled_log_evidence(log_lik, transition, log_init, _starts(log_lik, start))


@jax.custom_vjp
def _scaled_log_evidence(log_lik, transition, log_init, start):
    """log p(data), equal to `forward_log_evidence`'s (tested to 1e-9), by the scaled forward
    recursion in probability space: a_t = normalise(a_{t-1} A * e_t) with e_t = exp(ll_t - max_r ll_t)
    computed for all bins at once, and log p = sum of the log normalisers + sum of the shifts.

    Its gradient is the forward-backward algorithm's (Baum-Welch identities), written out rather
    than left to autodiff: d log p / d ll_t = P(z_t | all bins), d log p / d A_ij = sum_t
    P(z_t = i, z_t+1 = j | all bins) / A_ij, d log p / d log_init = P(z_0 | all bins). The backward
    pass is one 4x4 mat-vec per bin; the rest is vectorised over bins. Tested equal to autodiff
    through the log-space reference.

    Why not the log-space kernels (needed online, where a belief must survive arbitrary gaps):
    the scan step is the cost of every NUTS gradient, and theirs has eight exps and five logs.
    Value and gradient of the evidence on 20,000 bins, on a CPU: the log-space kernels with autodiff
    took about three times this recursion with autodiff, and the forward-backward gradient is several
    times faster again (benchmarks/bench_fit.py, `gradient_costs`, writes the current figures to
    out/bench.json). A balanced-tree product of the 4x4 factors (O(log T) depth) was no faster on CPU.
    """
    _, norms, _, shift = _scaled_forward(log_lik, transition, log_init, start)
    return jnp.sum(jnp.log(norms)) + jnp.sum(shift)


def _evidence_fwd(log_lik, transition, log_init, start):
    filtered, norms, scaled, shift = _scaled_forward(log_lik, transition, log_init, start)
    return jnp.sum(jnp.log(norms)) + jnp.sum(shift), (filtered, norms, scaled, transition, start)


def _evidence_bwd(res, g):
    filtered, norms, scaled, transition, start = res
    # beta_t = A (e_t+1 * beta_t+1) / c_t+1, beta_T-1 = 1: the smoothed law is filtered * beta.
    # Across a session start the future does not depend on z_t: beta_t = 1, and that pair of
    # bins adds nothing to the transition counts.
    weighted_next = scaled[1:] / norms[1:, None]
    linked = 1.0 - start[1:]

    def back(beta_next, x):
        w_next, link = x
        beta = jnp.where(link > 0, transition @ (w_next * beta_next), 1.0)
        return beta, beta

    _, betas = jax.lax.scan(back, jnp.ones(NUM_STATES, norms.dtype), (weighted_next, linked), reverse=True)
    betas = jnp.concatenate([betas, jnp.ones((1, NUM_STATES), betas.dtype)])
    smoothed = filtered * betas
    d_transition = filtered[:-1].T @ (linked[:, None] * weighted_next * betas[1:])
    return g * smoothed, g * d_transition, g * (start @ smoothed), jnp.zeros_like(start)


_scaled_log_evidence.defvjp(_evidence_fwd, _evidence_bwd)


@jax.jit
def regime_params_from_sample(s: dict) -> RegimeModelParams:
    """RegimeModelParams from one posterior draw (or the posterior medians) of `regime_hmm_model`.
    (Jitted, as is the model's transition matrix, `_transition_matrix`: one compilation where
    NumPyro runs the model op by op - its initialisation - instead of one per operation.)"""
    half = jnp.asarray(0.5)
    m, rho = s["trend_drift_bps_s"], s["fill_asymmetry"]
    sig_mr = s["sigma_mr_bps_sqrt_s"]
    sig_t = sig_mr * (1.0 + s["trend_vol_excess"])
    sig_v = sig_t * (1.0 + s["vol_excess"])
    return RegimeModelParams(
        rates_per_s=generator(s["switch_rates_per_s"]),
        drift_bps_s=jnp.stack([-m, m, 0.0 * m, 0.0 * m]),
        sigma_bps_sqrt_s=jnp.stack([sig_t, sig_t, sig_mr, sig_v]),
        fill_rate_per_s=(jnp.stack([s["fill_rate_trend_per_s"], s["fill_rate_trend_per_s"], s["fill_rate_mr_per_s"],
                                    s["fill_rate_vol_per_s"]]) if "fill_rate_trend_per_s" in s
                         else jnp.stack([s["fill_rate_shared_per_s"]] * NUM_STATES) if "fill_rate_shared_per_s" in s
                         else s["fill_rate_per_s"]),
        p_buy=jnp.stack([half + rho, half - rho, half + 0 * rho, half + 0 * rho]),
        as_mean_bps=jnp.stack([s["as_trend_bps"], s["as_trend_bps"], s["as_mr_bps"], s["as_vol_bps"]]),
        as_sd_bps=s["as_sd_bps"],
        count_concentration=s["count_concentration"],
        side_concentration=s["side_concentration"],
        as_within_bin_corr=s["as_within_bin_corr"],
        return_df=s.get("return_df"),
    )


SWITCH_PRIOR = (1 / 900.0, 0.5)
"""Default prior of each of the 12 off-diagonal switch rates: LogNormal(log median_per_s, log_sd).
Sticky: a regime is left at ~1/300 per s in total (a few minutes' stay, DESIGN's market), within a
factor ~2.3 either way at 90%. A wide prior (log_sd 1.5) lets a short session's chains settle in
different explanations (fast switching among look-alike states vs few regimes): on the 6-minute
Binance sample r_hat was 1.8-2.1 with it and 1.01 with this one. Recovery tests on simulated
data pass a wide prior centred 3x off the truth, so what they recover comes from the data."""


def fill_rate_prior_median(n_buy, n_sell, dt_s):
    """The fill rates' prior median, per s: the data's own mean rate (a floor of 1e-3 per s for a
    session without fills). The prior's scale is the data's because the fills may be our own (a few
    per minute) or the public tape's prints standing in for them (60 per s on the bundled perp
    session): a fixed median of 0.2 per s sat 3.8 prior sds below the tape, so a state the data did
    not use kept a rate 300x below the one they did, and NUTS chains that gave the used state
    different labels could not reach each other (each relabelling crossed ~7 nats of prior per state)."""
    return jnp.maximum(jnp.sum(n_buy + n_sell) / jnp.sum(dt_s), 1e-3)


def _priors(switch_prior, heavy_tails: bool = False, fill_rate_median=0.2, shared_fill_rate=False) -> dict:
    """The model's parameters drawn from their priors (shared by both forms of the model). With
    `heavy_tails`, the returns' Student-t degrees of freedom: 2 + Gamma(2, 0.1) (finite variance;
    prior mean 22, so near-Gaussian tails unless the data say otherwise; Juarez and Steel's prior)."""
    median, log_sd = switch_prior
    extra = {"return_df": 2.0 + numpyro.sample("return_df_excess", dist.Gamma(2.0, 0.1))} if heavy_tails else {}
    return extra | {
        "switch_rates_per_s": numpyro.sample("switch_rates_per_s",
                                             dist.LogNormal(jnp.log(median), log_sd).expand([len(_OFF)]).to_event(1)),
        "trend_drift_bps_s": numpyro.sample("trend_drift_bps_s", dist.HalfNormal(5.0)),
        "fill_asymmetry": numpyro.sample("fill_asymmetry", dist.Uniform(0.0, 0.5)),
        "sigma_mr_bps_sqrt_s": numpyro.sample("sigma_mr_bps_sqrt_s", dist.LogNormal(jnp.log(2.0), 1.0)),
        "trend_vol_excess": numpyro.sample("trend_vol_excess", dist.HalfNormal(1.0)),
        "vol_excess": numpyro.sample("vol_excess", dist.LogNormal(0.0, 1.0)),
        **{f"fill_rate_{kind}_per_s": numpyro.sample(f"fill_rate_{kind}_per_s",
                                                              dist.LogNormal(jnp.log(fill_rate_median), 1.5))
           for kind in (("shared",) if shared_fill_rate else ("trend", "mr", "vol"))},
        "as_trend_bps": numpyro.sample("as_trend_bps", dist.Normal(5.0, 10.0)),
        "as_mr_bps": numpyro.sample("as_mr_bps", dist.Normal(0.0, 5.0)),
        "as_vol_bps": numpyro.sample("as_vol_bps", dist.Normal(0.0, 10.0)),
        "as_sd_bps": numpyro.sample("as_sd_bps", dist.HalfNormal(20.0)),
        "count_concentration": numpyro.sample("count_concentration", dist.LogNormal(jnp.log(10.0), 2.0)),
        "side_concentration": numpyro.sample("side_concentration", dist.LogNormal(jnp.log(10.0), 2.0)),
        "as_within_bin_corr": numpyro.sample("as_within_bin_corr", dist.Beta(1.0, 1.0)),
    }


class BookVenueParams(NamedTuple):
    """The optional emissions (module docstring): imbalance_offset (i0), imbalance_trend (i_trend,
    signed: the data say which way the book leans in a downtrend), imbalance_sd (s_i), and
    cv_sd_bps_sqrt_s (s_cv, the other venue's own noise, bps/sqrt(s)) and cv_beta (b, the share of this
    venue's surprise the other venue's return also shows); None where the data have no such series."""

    imbalance_offset: jax.Array | None = None
    imbalance_trend: jax.Array | None = None
    imbalance_sd: jax.Array | None = None
    cv_sd_bps_sqrt_s: jax.Array | None = None
    cv_beta: jax.Array | None = None


def _book_venue_priors(imbalance, cv_ret_bps) -> BookVenueParams:
    """The optional emissions' parameters from their priors (only those whose data are given)."""
    q = BookVenueParams()
    if imbalance is not None:
        q = q._replace(imbalance_offset=numpyro.sample("imbalance_offset", dist.Normal(0.0, 0.5)),
                       imbalance_trend=numpyro.sample("imbalance_trend", dist.Normal(0.0, 0.5)),
                       imbalance_sd=numpyro.sample("imbalance_sd", dist.HalfNormal(1.0)))
    if cv_ret_bps is not None:
        q = q._replace(cv_sd_bps_sqrt_s=numpyro.sample("cv_sd_bps_sqrt_s", dist.LogNormal(jnp.log(2.0), 1.0)),
                       cv_beta=numpyro.sample("cv_beta", dist.Normal(0.0, 1.0)))
    return q


def _imbalance_means(q: BookVenueParams):
    z = 0.0 * q.imbalance_trend
    return q.imbalance_offset + jnp.stack([-q.imbalance_trend, q.imbalance_trend, z, z])


def cv_law(p: RegimeModelParams, q: BookVenueParams, dt_s, ret_bps):
    """The other venue's return's law given the regime (axis 1) and the bin's own return, as
    (moved, conditional, marginal): where the own mid moved (`moved`), N(b ret, s_cv^2 dt) - the same
    move, b of it, plus the other venue's own noise, and no evidence of the regime beyond the own
    return; where it did not (ret = 0, no return evidence), the marginal N(b m_r dt, (b^2 sigma_r^2 +
    s_cv^2) dt), the other venue's move then being the only reading of the drift.

    Why the own return enters: the other venue's move in a bin is mostly the same move (spot and
    perp of one coin, b = 0.92 on the bundled perp session), not a second independent reading of the
    drift. Read as independent (the model's first form), each bin's return counted twice: on the perp
    session the NUTS posterior then flipped between the two trends every 10 s bin or two (the paths it
    drew stayed 24 s against the 85-170 s its generator replicates: regime-duration p-value 1.00), and
    without the other venue it passed every check. (A correlation c with the marginal sd's shared,
    tried first, made the slope c s_cv / sigma_r differ by regime, itself evidence of the regime, and
    split the chains between two volatility scales; a conditional mean m_r dt + b (ret - m_r dt),
    tried second, read the other venue's (1 - b) share of the drift as fresh evidence of the trend in
    every bin and the chains split again, r_hat 1.27.) With Student-t own returns the no-move bins'
    marginal is the Gaussian one (an approximation)."""
    dt = dt_s[:, None]
    mean = p.drift_bps_s * dt
    moved = (ret_bps != 0.0)[:, None]
    b = q.cv_beta
    cond = dist.Normal(b * ret_bps[:, None], q.cv_sd_bps_sqrt_s * jnp.sqrt(dt))  # (the same for every regime)
    marginal = dist.Normal(b * mean, jnp.sqrt((b**2 * p.sigma_bps_sqrt_s**2 + q.cv_sd_bps_sqrt_s**2) * dt))
    return moved, cond, marginal


def book_venue_log_lik(p: RegimeModelParams, q: BookVenueParams, dt_s, imbalance=None, cv_ret_bps=None, ret_bps=None):
    """log p(book imbalance, other venue's return | regime, own return `ret_bps`), shape (num_bins, 4)
    (0 without data); a bin where the other venue did not move carries no cross-venue evidence (as for
    returns)."""
    ll = jnp.zeros((dt_s.shape[0], NUM_STATES), dt_s.dtype)
    if imbalance is not None:
        ll += dist.Normal(_imbalance_means(q), q.imbalance_sd).log_prob(imbalance[:, None])
    if cv_ret_bps is not None:
        moved, cond, marginal = cv_law(p, q, dt_s, ret_bps)
        cv = jnp.where(moved, cond.log_prob(cv_ret_bps[:, None]), marginal.log_prob(cv_ret_bps[:, None]))
        ll += jnp.where(cv_ret_bps[:, None] == 0.0, 0.0, cv)
    return ll


def regime_hmm_model(ret_bps, dt_s, n_buy, n_sell, mean_as_bps, has_as, switch_prior=SWITCH_PRIOR, start=None,
                     imbalance=None, cv_ret_bps=None, heavy_tails=False, pointwise=False, shared_fill_rate=False):
    """NumPyro model (module docstring), states marginalised by `scaled_log_evidence`. The bins
    share one width (dt_s[0]); `switch_prior` is (median per s, log sd) of each switch rate;
    `start` marks each session's first bin (the regime path restarts there); `imbalance` (book
    imbalance at each bin's end) and `cv_ret_bps` (the other venue's return per bin) are optional;
    `heavy_tails`: Student-t returns (degrees of freedom learnt); `pointwise`: also record each
    bin's one-step predictive log density log p(bin t | bins < t) as "log_lik" (for PSIS-LOO);
    `shared_fill_rate`: one fill rate for every regime (`models.workflow` sets it when the public
    tape's prints stand in for fills: `calibration.derive` then gives the online filter one rate for
    all regimes - no own fills are seen, so their absence must say nothing - and the model is fitted
    as the filter will use it. With a rate per regime, the tape's count levels, not the market's
    regimes, decided the states on the perp session, and 4 NUTS chains split between labellings,
    r_hat 2.2; with one rate they agree, 1.007)."""
    p = regime_params_from_sample(_priors(switch_prior, heavy_tails, fill_rate_prior_median(n_buy, n_sell, dt_s),
                                          shared_fill_rate))
    if heavy_tails:
        numpyro.deterministic("return_df", p.return_df)
    q = _book_venue_priors(imbalance, cv_ret_bps)
    numpyro.deterministic("generator_per_s", p.rates_per_s)
    numpyro.deterministic("fill_rate_per_s", p.fill_rate_per_s)
    numpyro.deterministic("sigma_trend_bps_sqrt_s", p.sigma_bps_sqrt_s[0])
    numpyro.deterministic("sigma_volatile_bps_sqrt_s", p.sigma_bps_sqrt_s[3])
    trans = _transition_matrix(p.rates_per_s, dt_s[0])
    ll = emission_log_lik(p, ret_bps, dt_s, n_buy, n_sell, mean_as_bps, has_as)
    ll += book_venue_log_lik(p, q, dt_s, imbalance, cv_ret_bps, ret_bps)
    log_init = jnp.full(NUM_STATES, -jnp.log(NUM_STATES))
    numpyro.factor("hmm", scaled_log_evidence(ll, trans, log_init, start))
    if pointwise:
        _, norms, _, shift = _scaled_forward(ll, trans, log_init, _starts(ll, start))
        numpyro.deterministic("log_lik", jnp.log(norms) + shift)


def regime_hmm_enumerated_model(ret_bps, dt_s, n_buy, n_sell, mean_as_bps, has_as, switch_prior=SWITCH_PRIOR,
                                start=None, imbalance=None, cv_ret_bps=None, heavy_tails=False, shared_fill_rate=False):
    """The same model written the textbook NumPyro way: the regime of each bin is a discrete sample
    site in a `contrib.control_flow.scan`, summed out by NumPyro's enumeration (funsor), with the
    emissions written as observed sites rather than through `emission_log_lik`. Same priors and
    likelihood, so the same log density; it is the reference the benchmark compares speed and
    posteriors against, not the one to use."""
    from numpyro.contrib.control_flow import scan

    p = regime_params_from_sample(_priors(switch_prior, heavy_tails, fill_rate_prior_median(n_buy, n_sell, dt_s),
                                          shared_fill_rate))
    q = _book_venue_priors(imbalance, cv_ret_bps)
    trans = transition_matrix(p.rates_per_s, dt_s[0])
    init = jnp.full(NUM_STATES, 1.0 / NUM_STATES)

    start = jnp.zeros_like(ret_bps).at[0].set(1.0) if start is None else jnp.asarray(start).at[0].set(1.0)
    has_imb, has_cv = imbalance is not None, cv_ret_bps is not None
    imbalance = jnp.zeros_like(ret_bps) if imbalance is None else imbalance
    cv_ret_bps = jnp.zeros_like(ret_bps) if cv_ret_bps is None else cv_ret_bps

    def step(carry, x):
        prev, t = carry
        ret, dt, nb, ns, mas, has, s, imb, cv = x
        probs = jnp.where(s > 0, init, trans[prev])
        z = numpyro.sample("regime", dist.Categorical(probs), infer={"enumerate": "parallel"})
        n = nb + ns
        scale = p.sigma_bps_sqrt_s[z] * jnp.sqrt(dt)
        ret_law = (dist.Normal(p.drift_bps_s[z] * dt, scale) if p.return_df is None
                   else dist.StudentT(p.return_df, p.drift_bps_s[z] * dt, scale))
        numpyro.sample("ret", ret_law.mask(ret != 0.0), obs=ret)
        numpyro.sample("n_fills", dist.GammaPoisson(p.count_concentration,
                                                    p.count_concentration / (p.fill_rate_per_s[z] * dt)), obs=n)
        k_s = p.side_concentration
        numpyro.sample("n_buy", dist.BetaBinomial(p.p_buy[z] * k_s, (1 - p.p_buy[z]) * k_s, n), obs=nb)
        c = p.as_within_bin_corr
        sd = p.as_sd_bps * jnp.sqrt(c + (1 - c) / jnp.maximum(n, 1.0))
        numpyro.sample("mean_as", dist.Normal(p.as_mean_bps[z], sd).mask(has > 0), obs=mas)
        if has_imb:
            numpyro.sample("imbalance", dist.Normal(_imbalance_means(q)[z], q.imbalance_sd), obs=imb)
        if has_cv:  # (the same conditional law as `cv_law`, written for one bin and its regime)
            mu, b, s_cv = p.drift_bps_s[z] * dt, q.cv_beta, q.cv_sd_bps_sqrt_s
            var = jnp.where(ret != 0.0, s_cv**2, b**2 * p.sigma_bps_sqrt_s[z] ** 2 + s_cv**2)
            law = dist.Normal(b * jnp.where(ret != 0.0, ret, mu), jnp.sqrt(var * dt))
            numpyro.sample("cv_ret", law.mask(cv != 0.0), obs=cv)
        return (z, t + 1), None

    scan(step, (jnp.array(0), jnp.array(0)),
         (ret_bps, dt_s, n_buy, n_sell, mean_as_bps, has_as, start, imbalance, cv_ret_bps))


def smoothed_regimes(p: RegimeModelParams, data, start=None, extra_log_lik=None) -> np.ndarray:
    """P(regime at bin t | all bins) by forward-backward (log space), shape (num_bins, 4); the
    path restarts at each session start (`start`); `extra_log_lik` adds the optional emissions."""
    ll = np.asarray(emission_log_lik(p, *data)) + (0.0 if extra_log_lik is None else np.asarray(extra_log_lik))
    return _forward_backward(ll, np.asarray(transition_matrix(p.rates_per_s, data[1][0])), start)


def _forward_backward(ll, a, start) -> np.ndarray:
    """P(regime at bin t | all bins) from the emission log-likelihoods `ll` (T, 4) and the transition
    matrix `a`, in log space; the path restarts at each session start."""
    ll = np.asarray(ll)
    start = np.asarray(_starts(jnp.asarray(ll), start))
    t_n = ll.shape[0]
    log_a = np.log(np.maximum(a, 1e-300))
    alpha = np.empty_like(ll)
    prev = np.full(NUM_STATES, -np.log(NUM_STATES))
    for t in range(t_n):
        cur = (np.full(NUM_STATES, -np.log(NUM_STATES)) if start[t] > 0 else prev) + ll[t]
        cur -= np.logaddexp.reduce(cur)
        alpha[t] = cur
        prev = np.logaddexp.reduce(cur[:, None] + log_a, axis=0)
    beta = np.zeros_like(ll)
    for t in range(t_n - 2, -1, -1):
        if start[t + 1] > 0:
            continue  # beta_t = 0 (log 1): the next session does not depend on this bin
        nxt = beta[t + 1] + ll[t + 1]
        beta[t] = np.logaddexp.reduce(log_a + nxt[None, :], axis=1)
        beta[t] -= np.logaddexp.reduce(beta[t])
    post = alpha + beta
    post -= np.logaddexp.reduce(post, axis=1, keepdims=True)
    return np.exp(post)


def _params_and_log_lik(sample: dict, data: dict):
    """(RegimeModelParams, log p(bin t | regime) with the optional emissions, shape (T, 4)) under one
    parameter point `sample` (a posterior draw or the medians; {site: array}) on the model's data
    `data` ({DATA_NAMES..., optional "imbalance", "cv_ret_bps"}; other keys ignored)."""
    s = {k: jnp.asarray(v) for k, v in sample.items()}
    p = regime_params_from_sample(s)
    q = BookVenueParams(*(s.get(k) for k in BookVenueParams._fields))
    imb, cv = data.get("imbalance"), data.get("cv_ret_bps")
    ll = emission_log_lik(p, *(jnp.asarray(data[k]) for k in DATA_NAMES))
    ll += book_venue_log_lik(p, q, jnp.asarray(data["dt_s"]), None if imb is None else jnp.asarray(imb),
                             None if cv is None else jnp.asarray(cv), jnp.asarray(data["ret_bps"]))
    return p, ll


def smoothed_regimes_at_medians(idata, data: dict) -> np.ndarray:
    """`smoothed_regimes` under the posterior-median parameters of a `regime_hmm_model` fit:
    P(regime at bin t | all bins), shape (num_bins, 4). `data` holds the model's arrays by name
    (DATA_NAMES; other keys ignored). The medians are one point, not the posterior: a path to read
    and to compare with a known truth, not an integral over parameter uncertainty."""
    from bayesmm.models.fit import posterior_medians

    p, ll = _params_and_log_lik(posterior_medians(idata), data)
    return _forward_backward(ll, np.asarray(transition_matrix(p.rates_per_s, data["dt_s"][0])), data.get("start"))


@jax.jit
def draw_path(key, log_lik, transition, start):
    """One regime path z_0..z_T-1 drawn from P(path | all bins) (forward filtering, backward sampling):
    `log_lik` (T, 4) the emissions' log-likelihoods, `transition` the one-bin transition matrix,
    `start` 1.0 at each session's first bin (the first bin always is one; each session's path starts
    from the uniform law, as the model's). Backwards: z_T-1 ~ filtered_T-1, then z_t ~ filtered_t *
    A[:, z_t+1] within a session and z_t ~ filtered_t where the next bin starts another session."""
    start = _starts(log_lik, start)
    filtered, _, _, _ = _scaled_forward(log_lik, transition, jnp.full(NUM_STATES, -jnp.log(NUM_STATES)), start)
    u = jax.random.uniform(key, (filtered.shape[0],), filtered.dtype)
    linked = jnp.concatenate([1.0 - start[1:], jnp.zeros(1, start.dtype)])

    def back(z_next, x):
        f, ui, link = x
        w = jnp.where(link > 0, f * transition[:, z_next], f)
        z = jnp.minimum(jnp.sum(jnp.cumsum(w / jnp.sum(w)) < ui), NUM_STATES - 1)
        return z, z

    _, path = jax.lax.scan(back, jnp.asarray(0), (filtered, u, linked), reverse=True)
    return path


def sample_path(sample: dict, data: dict, key) -> np.ndarray:
    """A regime path drawn from P(path | all bins, parameters `sample`) (`draw_path`) on the model's
    data `data` (as `smoothed_regimes_at_medians` takes them; shape (T,), ints). The latent side of a
    posterior predictive check whose statistic depends on the hidden path (the regime-duration check,
    `models.checks.ppc`): a path drawn with each posterior draw is a path the model believes; the
    argmax of the smoothed marginals is not one (it may change state wherever two marginals cross,
    paying none of the transition matrix's cost for it)."""
    p, ll = _params_and_log_lik(sample, data)
    start = jnp.zeros(ll.shape[0], ll.dtype) if data.get("start") is None else jnp.asarray(data["start"], ll.dtype)
    return np.asarray(draw_path(key, ll, transition_matrix(p.rates_per_s, jnp.asarray(data["dt_s"])[0]), start))


def bins_from_market_path(key, path, bin_steps: int = 10, fill_prob: float = 0.25, as_horizon_bins: int = 5):
    """Bin a `sim.market` path into the HMM's data, with our fills simulated as takers that hit us
    with probability `fill_prob` (a taker's sell is our buy) and each fill's AS measured
    `as_horizon_bins` later. Returns (data tuple, true regime per bin)."""
    n = path.t_s.shape[0] // bin_steps
    ret = np.asarray(path.ret_bps)[: n * bin_steps].reshape(n, bin_steps).sum(axis=1)
    k1, k2 = jax.random.split(key)
    sells = np.asarray(path.taker_sells)[: n * bin_steps].reshape(n, bin_steps).sum(axis=1)
    buys = np.asarray(path.taker_buys)[: n * bin_steps].reshape(n, bin_steps).sum(axis=1)
    n_buy = np.asarray(jax.random.binomial(k1, sells, fill_prob)).astype(float)
    n_sell = np.asarray(jax.random.binomial(k2, buys, fill_prob)).astype(float)
    mid = np.asarray(path.mid_px)[bin_steps - 1: n * bin_steps: bin_steps]
    later = np.concatenate([mid[as_horizon_bins:], np.full(as_horizon_bins, mid[-1])])
    move = (mid - later) / mid * 1e4  # positive when the mid fell: bad for our buys
    nf = n_buy + n_sell
    mean_as = np.where(nf > 0, (n_buy * move - n_sell * move) / np.maximum(nf, 1), 0.0)
    has = ((nf > 0) & (np.arange(n) < n - as_horizon_bins)).astype(float)
    regime = np.asarray(path.regime)[bin_steps - 1: n * bin_steps: bin_steps]
    dt = np.full(n, float(path.t_s[0]) * bin_steps)
    return (ret, dt, n_buy, n_sell, mean_as * has, has), regime


DATA_NAMES = ("ret_bps", "dt_s", "n_buy", "n_sell", "mean_as_bps", "has_as")


def regime_dominated_session(key, num_bins: int, switch_per_s: float = 1 / 300):
    """Simulate a `sim.market` session whose regimes dominate its dynamics and bin it at 1 s.

    The market's default drift and volatility relax towards their regime's level over ~20 s and
    wander around it (drift sd ~1 bps/s against a trend of 2); an HMM with one emission law per
    regime reads that wander as extra switches (fitted exit rates came out 2-10x the truth). Here
    they relax in ~2 s with small wander, so the four regimes are what the data show: the setting
    in which the HMM's generator is recoverable. Returns (data dict for the model, true regime per bin).
    """
    from bayesmm.sim.market import market_params, simulate

    m = market_params(regime_switch_per_s=switch_per_s, theta_mu_per_s=0.5, sigma_mu_bps_s_sqrt_s=0.2,
                      theta_sigma_per_s=0.5, xi_per_sqrt_s=0.05)
    k1, k2 = jax.random.split(key)
    data, truth = bins_from_market_path(k2, simulate(k1, m, num_bins * 10))
    return dict(zip(DATA_NAMES, data, strict=True)), truth
