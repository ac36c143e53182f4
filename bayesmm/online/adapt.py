r"""Each horizon's forecast learns, online, how well it is doing on this session: a dynamic logistic
recalibration updated by the forecast's own resolved outcomes (`AdaptState`; config `[book]`'s
`adapt_*` keys).

Why: the book model (`models.book`) says that a session's weights and trend differ from the
population's, block by block (its `block_sd` and `trend_sd`); the static forecast averages over that
(the new-session predictive, `online.book`). But the session's own outcomes say which way it differs:
every forecast of the mid's move over h resolves h seconds later. Per horizon, with eta_h the
forecast's linear predictor (b L + w . x) and V_h its predictive variance (t + v . x^2), read

    logit P(fall over h) = a_h + s_h eta_h

with an offset a_h (this stretch's trend) and a scale s_h (how strongly the book's reading holds
now): the book model with a block's deviation of its weights restricted to a common scale. A Gaussian
belief N(m_h, P_h) over (a_h, s_h) has prior mean (0, 1) and variances `adapt_trend_var` (the model's
per-block trend variance) and `adapt_scale_var` (the model's per-block weight spread relative to the
forecast's own strength, `calibration.derive.adapt_scale_var`). The read-out is the probit
approximation with the model's variance less what the session has taught:

    (m_a + m_s eta) / sqrt(1 + pi/8 max(0, V + x'P x - x'P0 x)),   x = (1, eta),

so before any outcome (P = P0) it is the static forecast exactly, the model's predictive for a new
session; as outcomes arrive the mean moves and the variance shrinks. With both prior variances 0 it
stays the static forecast (the default, and a coin-flip horizon).

O(1) per event, fixed-size state: per horizon `SLOTS` pending forecasts on a grid of spacing h /
SLOTS (the forecast in force at each grid time and the mid then). When time crosses a grid point the
slot's forecast, made one horizon earlier, resolves against the mid now (a tie, no move, teaches
nothing: ties are not forecast), and the slot takes the forecast now. Each resolution is one
Laplace step of Bayesian logistic regression (the extended Kalman filter's step for a logistic
observation), weighted 1/SLOTS: the windows of SLOTS successive grid points overlap, so together they
count once per horizon, the composite likelihood the book model's fit uses for overlapping windows.
Between outcomes the belief relaxes to its prior as an Ornstein-Uhlenbeck process with time constant
`adapt_timescale_s` (the model's block length): m -> m0 + (m - m0) r, P -> P0 + (P - P0) r^2, r =
e^{-dt / timescale}, so an old stretch's lesson fades as the model says a block's effects do.

Mirror image: a mirrored stream negates eta and every outcome, so m_a negates and m_s stays: the
read-out negates (tests/online/test_regime_sign.py).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from bayesmm.online.kernels import select_tree
from bayesmm.online.params import HORIZONS_S, NUM_HORIZONS, Config

SLOTS = 8
"""Pending forecasts per horizon: the grid's spacing is horizon / SLOTS."""
_NEVER = -(2**30)  # a slot's grid index before it holds a forecast


class AdaptState(NamedTuple):
    """Per horizon (leading axis `NUM_HORIZONS`): the belief N(mean, cov) over (offset, scale), the
    pending forecasts (linear predictor, predictive variance, the mid then, their grid index), the
    mid's cumulative return since the start, bps, and the static forecast in force (what the next
    grid point records)."""

    mean: jax.Array  # (H, 2)
    cov: jax.Array  # (H, 2, 2)
    pending_eta: jax.Array  # (H, SLOTS)
    pending_var: jax.Array  # (H, SLOTS)
    pending_mid_bps: jax.Array  # (H, SLOTS)
    pending_n: jax.Array  # (H, SLOTS) int32
    mid_bps: jax.Array
    last_eta: jax.Array  # (H,)
    last_var: jax.Array  # (H,)


def prior(p: Config, dtype):
    """(m0, P0) per horizon: mean (0, 1), covariance diag(adapt_trend_var, adapt_scale_var)."""
    b = p.book
    m0 = jnp.broadcast_to(jnp.asarray([0.0, 1.0], dtype), (NUM_HORIZONS, 2))
    var = jnp.stack([jnp.broadcast_to(jnp.asarray(b.adapt_trend_var, dtype), (NUM_HORIZONS,)),
                     jnp.broadcast_to(jnp.asarray(b.adapt_scale_var, dtype), (NUM_HORIZONS,))], axis=-1)
    return m0, var[..., :, None] * jnp.eye(2, dtype=dtype)


def init(p: Config, dtype) -> AdaptState:
    """Nothing learnt, nothing pending."""
    m0, p0 = prior(p, dtype)
    zeros = jnp.zeros((NUM_HORIZONS, SLOTS), dtype)
    return AdaptState(mean=m0, cov=p0, pending_eta=zeros, pending_var=zeros, pending_mid_bps=zeros,
                      pending_n=jnp.full((NUM_HORIZONS, SLOTS), _NEVER, jnp.int32), mid_bps=jnp.zeros((), dtype),
                      last_eta=jnp.zeros((NUM_HORIZONS,), dtype), last_var=jnp.zeros((NUM_HORIZONS,), dtype))


def _quad(x, cov):
    return jnp.einsum("...i,...ij,...j->...", x, cov, x)


def read(mean, cov, eta, var, p0):
    """Each horizon's log-odds (module docstring): (m_a + m_s eta) / sqrt(1 + pi/8 max(0, V + x'Px -
    x'P0x)) with x = (1, eta), V = `var` the static forecast's predictive variance, P0 the prior's."""
    x = jnp.stack([jnp.ones_like(eta), eta], axis=-1)
    v = jnp.maximum(var + _quad(x, cov) - _quad(x, p0), 0.0)
    return jnp.sum(mean * x, axis=-1) / jnp.sqrt(1.0 + jnp.pi / 8.0 * v)


def log_odds(s: AdaptState, eta, var, p: Config):
    """`read` with the state's belief and the config's prior: each horizon's forecast log-odds."""
    return read(s.mean, s.cov, eta, var, prior(p, s.mid_bps.dtype)[1])


def _learn(mean, cov, eta, var, p0, down, weight):
    """One weighted Laplace step of Bayesian logistic regression on (1, eta) with outcome `down`, the
    predicted probability read as `read` does."""
    x = jnp.stack([jnp.ones_like(eta), eta], axis=-1)
    px = jnp.einsum("...ij,...j->...i", cov, x)
    s2 = jnp.maximum(jnp.sum(x * px, axis=-1), 0.0)
    prob = jax.nn.sigmoid(read(mean, cov, eta, var, p0))
    w = weight * prob * (1.0 - prob)
    cov_new = cov - px[..., :, None] * px[..., None, :] * (w / (1.0 + w * s2))[..., None, None]
    mean_new = mean + weight[..., None] * jnp.einsum("...ij,...j->...i", cov_new, x) * (down - prob)[..., None]
    return mean_new, cov_new


def _tie_bps(mid_bps):
    """Moves within this of 0 are ties: the cumulative return's rounding, not a move (a real move is at
    least half a tick, 5e-4 bps on BTC at $100k; 1e-6 bps is far below it and far above float64's
    rounding of a session's cumulative return, so the two ways `step` and `batch` sum it agree). In
    float32 the rounding term rules: past a cumulative move of ~70 bps, half-tick moves count as ties,
    and `step` and `batch` may then disagree on a move that nets to nearly zero (replays run in float64)."""
    return jnp.maximum(1e-6, 64.0 * jnp.finfo(mid_bps.dtype).eps * jnp.abs(mid_bps))


def _relax_and_learn(mean, cov, dt, resolves, down, eta_then, var_then, p: Config):
    """The belief after dt: relaxed toward the prior, then one Laplace step per horizon that resolves
    (`step`'s and `batch`'s arithmetic, shared)."""
    m0, p0 = prior(p, mean.dtype)
    r = jnp.exp(-dt / p.book.adapt_timescale_s)
    mean = m0 + (mean - m0) * r
    cov = p0 + (cov - p0) * r**2
    learnt = _learn(mean, cov, eta_then, var_then, p0, down, jnp.full(eta_then.shape, 1.0 / SLOTS, mean.dtype))
    return jnp.where(resolves[:, None], learnt[0], mean), jnp.where(resolves[:, None, None], learnt[1], cov)


def _grid(t_s, dtype):
    """The grid index of time t_s on each horizon's grid (spacing horizon / SLOTS): shape (..., H)."""
    spacing = jnp.asarray(HORIZONS_S, dtype) / SLOTS
    return jnp.floor(jnp.asarray(t_s)[..., None] / spacing).astype(jnp.int32)


def step(s: AdaptState, t_old_s, dt_s, restart, ret_bps, p: Config) -> AdaptState:
    """One event: time passes from t_old_s by dt_s (the belief relaxes; grid points crossed resolve
    and record the forecast in force, `s.last_eta` and `s.last_var`, and the mid before this event),
    then the event's mid return `ret_bps` (0 for any other event) moves the mid. At a restart
    (`restart` true) all starts afresh, nothing pending. The caller sets `last_eta` and `last_var` to
    the static forecast after the event (`belief.static_forecast`). The reference: `batch` does the
    same for a whole batch, faster, and tests/online/test_fused.py holds the two equal."""
    dtype = s.mid_bps.dtype
    dt = jnp.maximum(dt_s, 0.0)
    n_old, n_new = _grid(t_old_s, dtype), _grid(t_old_s + dt, dtype)
    crossed = n_new > n_old
    pick = jnp.arange(SLOTS) == (n_new % SLOTS)[:, None]  # (H, SLOTS)
    eta_then, var_then, mid_then = (jnp.sum(jnp.where(pick, x, 0.0), axis=-1)
                                    for x in (s.pending_eta, s.pending_var, s.pending_mid_bps))
    n_then = jnp.sum(jnp.where(pick, s.pending_n, 0), axis=-1)
    move = s.mid_bps - mid_then
    resolves = crossed & (n_then == n_new - SLOTS) & (jnp.abs(move) > _tie_bps(s.mid_bps))
    mean, cov = _relax_and_learn(s.mean, s.cov, dt, resolves, (move < 0).astype(dtype), eta_then, var_then, p)
    write = crossed[:, None] & pick
    new = s._replace(mean=mean, cov=cov, pending_eta=jnp.where(write, s.last_eta[:, None], s.pending_eta),
                     pending_var=jnp.where(write, s.last_var[:, None], s.pending_var),
                     pending_mid_bps=jnp.where(write, s.mid_bps, s.pending_mid_bps),
                     pending_n=jnp.where(write, n_new[:, None], s.pending_n), mid_bps=s.mid_bps + ret_bps)
    fresh = init(p, dtype)._replace(mid_bps=jnp.zeros((), dtype) + ret_bps)
    return select_tree(restart, fresh, new)


def batch(start: AdaptState, t_old_s, dt_s, restart, ret_bps, eta, var, p: Config):
    """`step` over a batch of events (leading axis n; eta and var (n, H): the static forecast after each
    event), for the fast path: (the state after the last event, each event's belief mean (n, H, 2) and
    covariance (n, H, 2, 2)). Which forecast resolves at which event, against which mid, depends only
    on the events' times, the mid's path and the static forecasts, all known before the belief runs:
    it is found for the whole batch at once (a forecast recorded at grid index g is the first event
    whose grid index reaches g, so one sorted search per horizon finds it), and the sequential scan
    carries only the (offset, scale) belief, a few dozen numbers."""
    n, dtype = eta.shape[0], start.mid_bps.dtype
    if n == 0:
        return start, jnp.zeros((0, *start.mean.shape), dtype), jnp.zeros((0, *start.cov.shape), dtype)
    dt, rs = jnp.maximum(dt_s, 0.0), restart > 0
    mid_after = lax.associative_scan(lambda x, y: (x[0] * y[0], y[0] * x[1] + y[1]),
                                     (jnp.where(rs, 0.0, 1.0).astype(dtype), ret_bps))
    mid_after = mid_after[1] + mid_after[0] * start.mid_bps
    mid_before = jnp.concatenate([start.mid_bps[None], mid_after[:-1]])
    eta_before = jnp.concatenate([start.last_eta[None], eta[:-1]])
    var_before = jnp.concatenate([start.last_var[None], var[:-1]])
    n_old, n_new = _grid(t_old_s, dtype), _grid(t_old_s + dt, dtype)  # (n, H)
    crossed = (n_new > n_old) & ~rs[:, None]
    events = jnp.arange(n)
    last_restart = lax.cummax(jnp.where(rs, events, -1))
    g = n_new - SLOTS
    idx = jax.vmap(lambda col, q: jnp.searchsorted(col, q, side="left"), in_axes=1, out_axes=1)(n_new, g)
    at = jnp.clip(idx, 0, n - 1)
    cols = jnp.arange(NUM_HORIZONS)[None, :]
    in_batch = ((idx < n) & (n_new[at, cols] == g) & crossed[at, cols] & (at > last_restart[:, None])
                & (at < events[:, None]))
    slot = g % SLOTS
    from_start = ~in_batch & (start.pending_n[cols, slot] == g) & (last_restart[:, None] < 0)
    eta_then = jnp.where(in_batch, eta_before[at, cols], start.pending_eta[cols, slot])
    var_then = jnp.where(in_batch, var_before[at, cols], start.pending_var[cols, slot])
    move = mid_before[:, None] - jnp.where(in_batch, mid_before[at], start.pending_mid_bps[cols, slot])
    resolves = crossed & (in_batch | from_start) & (jnp.abs(move) > _tie_bps(mid_before)[:, None])
    rows = jnp.concatenate([dt[:, None], rs[:, None].astype(dtype), resolves.astype(dtype),
                            (move < 0).astype(dtype), eta_then, var_then], axis=1)
    m0, p0 = prior(p, dtype)
    h = NUM_HORIZONS

    def body(flat, row):
        mean, cov = flat[: 2 * h].reshape(h, 2), flat[2 * h:].reshape(h, 2, 2)
        mean, cov = _relax_and_learn(mean, cov, row[0], row[2:2 + h] > 0, row[2 + h:2 + 2 * h],
                                     row[2 + 2 * h:2 + 3 * h], row[2 + 3 * h:], p)
        mean, cov = jnp.where(row[1] > 0, m0, mean), jnp.where(row[1] > 0, p0, cov)
        out = jnp.concatenate([mean.ravel(), cov.ravel()])
        return out, out

    _, out = lax.scan(body, jnp.concatenate([start.mean.ravel(), start.cov.ravel()]), rows)
    means, covs = out[:, : 2 * h].reshape(n, h, 2), out[:, 2 * h:].reshape(n, h, 2, 2)
    return _batch_end(start, means[-1], covs[-1], mid_after[-1], eta[-1], var[-1], crossed, n_new, last_restart,
                      eta_before, var_before, mid_before), means, covs


def _batch_end(start: AdaptState, mean, cov, mid_bps, last_eta, last_var, crossed, n_new, last_restart, eta_before,
               var_before, mid_before) -> AdaptState:
    """The state after a batch (`batch`): each slot holds the last forecast the batch recorded in it
    since its last restart, else the starting state's (none if the batch restarted)."""
    n = n_new.shape[0]
    events = jnp.arange(n)[:, None, None]
    mask = (crossed[:, :, None] & (n_new[:, :, None] % SLOTS == jnp.arange(SLOTS))
            & (events > last_restart[-1]))  # (n, H, SLOTS)
    j = jnp.max(jnp.where(mask, events, -1), axis=0)  # (H, SLOTS)
    at = jnp.maximum(j, 0)
    cols = jnp.arange(NUM_HORIZONS)[:, None]
    keep, empty = last_restart[-1] < 0, init_like(start)

    def choose(batch_value, start_value, empty_value):
        return jnp.where(j >= 0, batch_value, jnp.where(keep, start_value, empty_value))

    return start._replace(
        mean=mean, cov=cov, mid_bps=mid_bps, last_eta=last_eta, last_var=last_var,
        pending_eta=choose(eta_before[at, cols], start.pending_eta, empty.pending_eta),
        pending_var=choose(var_before[at, cols], start.pending_var, empty.pending_var),
        pending_mid_bps=choose(mid_before[at], start.pending_mid_bps, empty.pending_mid_bps),
        pending_n=choose(n_new[at, cols], start.pending_n, empty.pending_n))


def init_like(s: AdaptState) -> AdaptState:
    """Nothing pending, in the shapes and dtypes of `s` (the belief's fields are not read)."""
    zeros = jnp.zeros_like(s.pending_eta)
    return s._replace(pending_eta=zeros, pending_var=zeros, pending_mid_bps=zeros,
                      pending_n=jnp.full_like(s.pending_n, _NEVER))
