r"""The second calibration route: choose the online filter's evidence weights by maximising its own
predictive log score on the training sessions, by `jax.grad` through the jitted replay.

The target is observable: the sign of the mid move over each horizon in `horizons_s` from grid
points of the session (`calibration.score.forward_targets`). The objective is the mean over
horizons of the mean log score ln p(outcome), p = sigmoid(log-odds) of that horizon's forecast
(`log_odds_h`) read from the replay at the grid points, minus a
weak Gaussian penalty on each tuned value (a prior, so that a weight the data
say nothing about stays near its neutral value, and a flat direction cannot run away):

    objective(x) = (1/H) sum_h mean_i ln p_h,i(x) - (1/2N) sum_k ((x_k - x0_k) / s_k)^2

with N the points' effective number: each point counts every_s / max(every_s, h), one per
horizon-long window, as in the book model's composite likelihood (`models.book`), since points
closer than their horizon share most of their window; a finer grid does not weaken the prior.

maximised with SciPy's L-BFGS-B (bounded; gradients from JAX in float64). The decay is kept at
or above 0.01/s (half-life <= 69 s, about the longest horizon scored): with a slower decay the
optimiser on the 20240808 spot session ran to an 11.5-minute half-life, summing the session's whole
book imbalance - a proxy for that session's trend that scored ln p = -3.0 on its own held-out
last 30%. What is tuned
(`TUNABLE`) depends on what the sessions contain: the tape, book and other-venue weights
always; own-fill, AS and burst weights only when there are own fills; the decay of the evidence,
the weight of the returns and that of the regime HMM's verdict on the sign (`drift.regime_weight`,
read with the fitted regimes: `calibration.calibrate.tune_base`) always.

**Intervals** by a moving-block bootstrap, in its one-step (linearised) form: the per-point
gradients J (n_points x k, forward mode) and the Hessian H of the objective at the optimum give,
for block-resampled weights w_b, x_b = x_hat - H^{-1} J^T (w_b - 1) / N: the Newton step from
the optimum toward the optimum of the resampled objective. Blocks are `block_s` long (default the
longest horizon, so overlapping targets stay together); 1,000 replicates cost one matrix product.
This is the sandwich estimator's bootstrap; with a five-minute session and 60 s blocks it has
only a handful of independent blocks, and its intervals say so by being wide.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bayesmm.calibration.score import GRID_S, HORIZONS_S, forward_targets, horizon_column
from bayesmm.events.features import EventArrays
from bayesmm.events.kinds import OWN_FILL
from bayesmm.online.params import Config
from bayesmm.online.replay import as_events, run


class Tunable(NamedTuple):
    """One tuned value: `group.field`, bounds (in the value's own units), whether it is optimised
    on a log scale, the neutral value the penalty pulls toward, and the penalty's scale (in the
    optimised coordinate)."""

    group: str
    field: str
    lo: float
    hi: float
    log: bool
    neutral: float
    scale: float


TUNABLE: tuple[Tunable, ...] = (
    Tunable("evidence", "lambda_trade", -2.0, 2.0, False, 0.0, 0.5),
    Tunable("evidence", "lambda_imbalance", -5.0, 5.0, False, 0.0, 1.0),
    Tunable("evidence", "lambda_cv_per_bps", -2.0, 2.0, False, 0.0, 0.5),
    Tunable("evidence", "theta_decay_per_s", 1e-2, 2.0, True, 0.02, 2.0),
    Tunable("drift", "return_weight", 0.0, 3.0, False, 1.0, 1.0),
    Tunable("drift", "regime_weight", 0.0, 3.0, False, 0.0, 1.0),
    Tunable("evidence", "lambda_fill", 0.0, 3.0, False, 0.35, 1.0),
    Tunable("evidence", "lambda_as", 0.0, 3.0, False, 0.15, 1.0),
    Tunable("evidence", "lambda_burst", 0.0, 3.0, False, 0.25, 1.0),
)
_FILL_ONLY = {"lambda_fill", "lambda_as", "lambda_burst"}


def tunables_for(arrays: list[EventArrays]) -> tuple[Tunable, ...]:
    """The tunable values the sessions can inform: own-fill weights only with own fills, the
    other-venue weight only with cv ticks."""
    has_fills = any(np.any(a.kind == OWN_FILL) for a in arrays)
    has_cv = any(np.any(a.cv_ret_bps != 0) for a in arrays)
    return tuple(t for t in TUNABLE if (t.field not in _FILL_ONLY or has_fills)
                 and (t.field != "lambda_cv_per_bps" or has_cv))


def _to_x(t: Tunable, v):
    return jnp.log(v) if t.log else v


def _from_x(t: Tunable, x):
    return jnp.exp(x) if t.log else x


def with_values(cfg: Config, tunables, x) -> Config:
    """`cfg` with the tuned values of coordinate vector x put in (JAX-traceable)."""
    groups = {g: getattr(cfg, g) for g in cfg._fields}
    for i, t in enumerate(tunables):
        groups[t.group] = groups[t.group]._replace(**{t.field: _from_x(t, x[i])})
    return Config(**groups)


class Scoring(NamedTuple):
    """The arrays the objective reads (a pytree: the jitted objective's argument, not its constant)."""

    events: object
    rows: tuple
    down: tuple
    weight: tuple


class Prepared(NamedTuple):
    """A session's replay inputs and scoring points. `scoring` (events, and per horizon rows, down,
    weight: each horizon's points padded to the number of points the whole session has, so that
    every part of a session - the cross-validation's training blocks - has the same shapes and the
    jitted objective compiles once per session length; a padded point weighs 0, a kept one more);
    `t_s` (per horizon, the kept points' times) for the bootstrap."""

    scoring: Scoring
    t_s: tuple


def prepare(arrays: EventArrays, horizons_s=HORIZONS_S, every_s: float = GRID_S, t_range=None) -> Prepared:
    """Events for the replay and the scoring points of each horizon; with `t_range` = (start, end) s
    only the points whose whole window [t, t + horizon] lies inside it (a training or held-out
    part; the whole session is still replayed, and the filter is causal). Each kept point weighs
    1 / (its horizon's kept points x the number of horizons)."""
    rows, down, weight, ts = [], [], [], []
    for h in horizons_s:
        tg = forward_targets(arrays.t_s, arrays.mid, arrays.valid, h, every_s)
        keep = (np.ones(len(tg.rows), bool) if t_range is None
                else (tg.t_s >= t_range[0]) & (tg.t_s + h <= t_range[1]))
        n, pad = int(keep.sum()), len(tg.rows) - int(keep.sum())
        rows.append(jnp.asarray(np.r_[tg.rows[keep], np.zeros(pad, tg.rows.dtype)]))
        down.append(jnp.asarray(np.r_[tg.down[keep], np.zeros(pad)]))
        weight.append(jnp.asarray(np.r_[np.full(n, 1.0 / (max(n, 1) * len(horizons_s))), np.zeros(pad)]))
        ts.append(tg.t_s[keep])
    scoring = Scoring(as_events(arrays, np.float64), tuple(rows), tuple(down), tuple(weight))
    return Prepared(scoring, tuple(ts))


def _point_log_scores(log_odds_h, scoring: Scoring, columns):
    """Per-point ln p(outcome) for every horizon (each read from its forecast's column of log_odds_h),
    concatenated (horizon-major), padded points included."""
    out = []
    for rows, down, column in zip(scoring.rows, scoring.down, columns, strict=True):
        lo = log_odds_h[rows, column]
        out.append(jnp.where(down > 0, -jax.nn.softplus(-lo), -jax.nn.softplus(lo)))
    return jnp.concatenate(out)


def _effective_points(preps: list[Prepared], horizons_s, every_s: float) -> float:
    """The scoring points' effective number: each counts every_s / max(every_s, h), one per horizon-long
    window (module docstring)."""
    return sum(len(t) * every_s / max(every_s, h) for p in preps for t, h in zip(p.t_s, horizons_s, strict=True))


def _points(x, cfg: Config, scoring: Scoring, tunables, columns):
    """Per-point log scores of the config with the tuned values x (padded points included)."""
    return _point_log_scores(run(scoring.events, with_values(cfg, tunables, x), adapt=False).log_odds_h, scoring,
                             columns)


def _score(x, cfg: Config, scorings: tuple, tunables, columns):
    """The mean log score over the sessions (each session's horizons weighted equally, module docstring)."""
    return sum(jnp.sum(jnp.concatenate(s.weight) * _points(x, cfg, s, tunables, columns))
               for s in scorings) / len(scorings)


def _penalty(x, penalty: tuple):
    """The prior's penalty (module docstring); `penalty` = (neutral, scale, effective points)."""
    neutral, scale, n_points = penalty
    return 0.5 * jnp.sum(((x - neutral) / scale) ** 2) / n_points


def _objective(x, cfg: Config, scorings: tuple, penalty: tuple, tunables, columns):
    """The score minus the penalty (module docstring)."""
    return _score(x, cfg, scorings, tunables, columns) - _penalty(x, penalty)


_loss_and_grad = jax.jit(jax.value_and_grad(lambda *a: -_objective(*a)), static_argnums=(4, 5))
"""The negative objective and its gradient, compiled once per shape of the sessions' arrays: the
data are arguments, not constants baked into the program, so the cross-validation's refits (the
same sessions, other training blocks) reuse the whole session's program."""


class TuneResult(NamedTuple):
    """The tuned values: `values` {key: value}, `interval` {key: (q05, q95)}, the objective at the
    optimum (`train_log_score`, penalty excluded), the optimiser's message, and the bootstrap draws."""

    values: dict
    interval: dict
    train_log_score: float
    message: str
    draws: dict


def tune(cfg: Config, arrays: list[EventArrays], horizons_s=HORIZONS_S, every_s: float = GRID_S, t_ranges=None,
         tunables=None, block_s: float | None = None, num_bootstrap: int = 1000, seed: int = 0,
         progress=None) -> tuple[Config, TuneResult]:
    """Maximise the mean log score of `cfg`'s p_down over `arrays` (module docstring). Returns the
    tuned Config and a `TuneResult`. `t_ranges` (one (start, end) s per session) restricts the
    scoring points (the training part of a split); `progress` is called with (iteration, objective)
    if given."""
    from scipy.optimize import minimize

    jax.config.update("jax_enable_x64", True)
    tunables = tunables_for(arrays) if tunables is None else tunables
    t_ranges = [None] * len(arrays) if t_ranges is None else t_ranges
    preps = [prepare(a, horizons_s, every_s, r) for a, r in zip(arrays, t_ranges, strict=True)]
    n_points = _effective_points(preps, horizons_s, every_s)
    if n_points == 0:
        raise ValueError("no scoring points: the sessions are shorter than the horizons, or never move")
    if np.any(np.asarray(cfg.book.adapt_trend_var) > 0) or np.any(np.asarray(cfg.book.adapt_scale_var) > 0):
        raise ValueError("tune replays without the forecasts' online learning (online.adapt): its config's "
                         "book.adapt_trend_var and adapt_scale_var must be 0")
    x0 = jnp.asarray([float(_to_x(t, float(getattr(getattr(cfg, t.group), t.field)))) for t in tunables])
    neutral = jnp.asarray([float(_to_x(t, t.neutral)) for t in tunables])
    scale = jnp.asarray([t.scale for t in tunables])
    columns = tuple(horizon_column(h) for h in horizons_s)
    scorings = tuple(p.scoring for p in preps)
    penalty = (neutral, scale, jnp.asarray(n_points, jnp.float64))
    it = [0]

    def fun(x):
        v, g = _loss_and_grad(jnp.asarray(x), cfg, scorings, penalty, tunables, columns)
        return float(v), np.asarray(g, float)

    def callback(xk):
        it[0] += 1
        if progress is not None:
            progress(it[0], -fun(xk)[0])

    bounds = [(float(_to_x(t, t.lo)) if not (t.log and t.lo <= 0) else None, float(_to_x(t, t.hi)))
              for t in tunables]
    res = minimize(fun, np.asarray(x0), jac=True, method="L-BFGS-B", bounds=bounds, callback=callback,
                   options={"maxiter": 200})
    x_hat = jnp.asarray(res.x)
    draws = (_bootstrap(x_hat, cfg, preps, penalty, tunables, columns, horizons_s, block_s, num_bootstrap, seed,
                        bounds) if num_bootstrap > 0 else np.full((1, len(tunables)), np.nan))
    keys = [f"{t.group}.{t.field}" for t in tunables]
    values = {k: float(_from_x(t, x_hat[i])) for i, (k, t) in enumerate(zip(keys, tunables, strict=True))}
    vals = {k: np.asarray(_from_x(t, draws[:, i])) for i, (k, t) in enumerate(zip(keys, tunables, strict=True))}
    interval = {k: (float(np.quantile(v, 0.05)), float(np.quantile(v, 0.95))) for k, v in vals.items()}
    train_score = -float(res.fun) + float(_penalty(x_hat, penalty))  # res.fun: the loss at x_hat, penalty in
    result = TuneResult(values, interval, train_score, str(res.message), vals)
    return with_values(cfg, tunables, x_hat), result


def _bootstrap(x_hat, cfg, preps, penalty, tunables, columns, horizons_s, block_s, num, seed, bounds):
    """One-step moving-block bootstrap draws of x (module docstring), shape (num, k)."""
    block_s = float(max(horizons_s)) if block_s is None else block_s
    scorings = tuple(p.scoring for p in preps)
    hess = jax.hessian(_objective)(x_hat, cfg, scorings, penalty, tunables, columns)
    jac_rows, w_rows, blocks = [], [], []
    offset = 0
    for p in preps:
        jac = jax.jacfwd(_points)(x_hat, cfg, p.scoring, tunables, columns)  # (padded points, k)
        w = np.asarray(jnp.concatenate(p.scoring.weight))
        jac_rows.append(np.asarray(jac)[w > 0])  # the kept points (a padded one weighs 0)
        w_rows.append(w[w > 0] / len(preps))
        t = np.concatenate(p.t_s)
        b = np.floor((t - t.min()) / block_s).astype(int) if len(t) else np.zeros(0, int)
        blocks.append(b + offset)
        offset += int(b.max()) + 1 if len(b) else 0
    jac = np.concatenate(jac_rows)
    w = np.concatenate(w_rows)
    block = np.concatenate(blocks)
    num_blocks = int(block.max()) + 1
    rng = np.random.default_rng(seed)
    # each replicate draws num_blocks blocks with replacement: a block's multiplicity multiplies its points
    counts = rng.multinomial(num_blocks, np.full(num_blocks, 1.0 / num_blocks), size=num).astype(float)
    dw = (counts[:, block] - 1.0) * w[None, :]  # (num, n_points)
    grad_shift = dw @ jac  # change of the objective's gradient at x_hat under each replicate
    step = np.linalg.solve(np.asarray(hess), -grad_shift.T).T  # Newton step: H dx = -dg
    draws = np.asarray(x_hat)[None, :] + step
    lo = np.array([b[0] if b[0] is not None else -np.inf for b in bounds])
    hi = np.array([b[1] for b in bounds])
    return np.clip(draws, lo, hi)
