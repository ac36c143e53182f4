r"""The book model: the mid's next move over each horizon given the order book and the tape, a
hierarchical Bayesian logistic regression (NumPyro), whose predictive for a new session the online
filter computes in closed form (`online.book`).

For each grid point i of a session (`events.targets.forward_targets`), horizon h (`HORIZONS_S`) and
block b(i) of the session (`BLOCK_S` long: the data's own sessions within the session):

    x_i = (imbalance, ofi, trade_flow, move) at t_i          (`book_features`, each in [-1, 1])
    w_hk ~ N(0, PRIOR_SD^2)                                   population weight
    tau_hk ~ HalfNormal(BLOCK_SD)                            how much a block's weight wanders
    beta_bhk = w_hk + tau_hk z_bhk,  z ~ N(0, 1)             (non-centred)
    s_h ~ HalfNormal(TREND_SD),  a_bh = s_h u_bh, u ~ N(0, 1)      the block's trend (log-odds)
    P(mid at t_i + h < mid at t_i) = sigmoid(a_b(i)h + beta_b(i)h . x_i)      ties excluded

Why this shape. The mid on a tick grid moves when a touch queue empties: the queue imbalance says
which one is likelier to go first (Gould & Bonart 2015), the order flow and the tape how the queues
are being worked (Cont, Kukanov & Stoikov 2014), and the direction of the last moves the bounce
between bid and ask (a move up is followed more often by one down: the negative lag-1
autocorrelation of returns is observation noise around an efficient price, not drift). The features
are odd in the mirror image and the trend a_b has mean 0, so a book and its mirror give mirrored
forecasts. The block level is there because the strength of these effects wanders within a day and
between days: the weights a new session will show are w + tau z, not w, and the predictive for it
integrates over them (its probit approximation, `new_session_moments`, is what the filter computes).
The trend is each block's own drift (a minute in which the mid mostly fell): for a session not yet
seen it is unknown, N(0, s_h^2), and widens the predictive (`book.trend_var`); the online filter's
estimate of it is the drift belief's log-odds, which calibration weighs per horizon
(`book.belief_weight`, `calibration.select`).

**Overlapping windows.** Grid points every `EVERY_S` with a horizon h > EVERY_S share most of their
window, so their outcomes are far from independent; each point's log-likelihood is weighted by
EVERY_S / max(EVERY_S, h) (a composite likelihood whose total weight is that of one point per
horizon-long window), so that a 60 s horizon does not count each minute 240 times.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from bayesmm.events.features import EventArrays
from bayesmm.events.kinds import BOOK_UPDATE
from bayesmm.events.targets import GRID_S, forward_targets
from bayesmm.online.book import FLOW_SIZE, features
from bayesmm.online.fused import book_flows, book_terms
from bayesmm.online.params import BOOK_FEATURES, HORIZONS_S, default_config, replace
from bayesmm.online.replay import as_events

EVERY_S = GRID_S  # the fitting grid, s: the scores' (`events.targets`)
BLOCK_S = 60.0  # a block of a session, s
PRIOR_SD = 2.0  # prior sd of a population weight, log-odds per unit of a feature
BLOCK_SD = 0.5  # scale of the half-normal prior of a block's deviation
TREND_SD = 1.0  # scale of the half-normal prior of the sd of a block's trend, log-odds


@jax.jit
def _filter_flows(events, cfg):
    """The book's imbalance terms and decayed flows after each event, as the filter computes them."""
    imbalance, decay, increment = book_terms(events, cfg)
    restart = (events.segment_start > 0).astype(decay.dtype)
    return imbalance, book_flows(jnp.zeros(FLOW_SIZE, decay.dtype), restart, decay, increment)


def book_features(a: EventArrays, flow_window_s: float) -> np.ndarray:
    """The features the filter holds after each event (`online.book`), shape (num_events, 4), computed
    by the filter's own functions, so that the model is fitted to exactly what the filter will read:
    the events' book terms (`online.fused.book_terms`), the decayed flows by the replay's associative
    scan (`online.fused.book_flows`, restarted at each segment start), the latest book imbalance (0
    from a segment's start until its first book) and `online.book.features`. In float64 whatever the
    process's default (the sums decay over thousands of events). The events are padded (invalid, at
    the end) to a power of two, so that sessions of many lengths share a few compiled programs."""
    n = len(a.t_s)
    size = 1 << max(10, (n - 1).bit_length())
    with jax.enable_x64(True):
        events = jax.tree_util.tree_map(lambda x: jnp.pad(x, (0, size - n)), as_events(a, np.float64))
        cfg = replace(default_config(), book={"flow_window_s": flow_window_s})
        imb, flows = (x[:n] for x in _filter_flows(events, cfg))
        is_book, restart = (a.valid > 0) & (a.kind == BOOK_UPDATE), a.segment_start > 0
        held = np.where(is_book, np.asarray(imb), 0.0)  # what a book or a restart sets
        last = np.maximum.accumulate(np.where(is_book | restart, np.arange(len(held)), -1)) if len(held) else held
        imbalance = np.where(last >= 0, held[np.maximum(last, 0)], 0.0)
        return np.asarray(features(jnp.asarray(imbalance), flows), float)


def book_data(arrays: list[EventArrays], flow_window_s: float = 5.0, every_s: float = EVERY_S,
              block_s: float = BLOCK_S, horizons_s=HORIZONS_S, t_ranges=None) -> dict:
    """The model's data from sessions' arrays: per point its features `x` (n, 4), outcome `down`,
    horizon index, block index (blocks numbered across sessions), likelihood `weight` (module
    docstring), and where it came from (`session`, `row`: the event whose state is read, `t_s`).
    `t_ranges`: per session, keep only the points whose window lies inside (start, end) s."""
    cols = {k: [] for k in ("x", "down", "horizon", "block", "weight", "session", "row", "t_s")}
    offset = 0
    for j, a in enumerate(arrays):
        feats = book_features(a, flow_window_s)
        lo, hi = (t_ranges[j] if t_ranges else (-np.inf, np.inf))
        t0 = float(a.t_s[0]) if len(a.t_s) else 0.0
        num_blocks = 0
        for k, h in enumerate(horizons_s):
            tg = forward_targets(a.t_s, a.mid, a.valid, h, every_s)
            keep = (tg.t_s >= lo) & (tg.t_s + h <= hi)
            rows, t = tg.rows[keep], tg.t_s[keep]
            block = np.floor((t - t0) / block_s).astype(int)
            num_blocks = max(num_blocks, int(block.max()) + 1 if len(block) else 0)
            cols["x"].append(feats[rows])
            cols["down"].append(tg.down[keep])
            cols["horizon"].append(np.full(len(rows), k))
            cols["block"].append(block + offset)
            cols["weight"].append(np.full(len(rows), every_s / max(every_s, h)))
            cols["session"].append(np.full(len(rows), j))
            cols["row"].append(rows)
            cols["t_s"].append(t)
        offset += num_blocks
    out = {k: np.concatenate(v) if v else np.zeros(0) for k, v in cols.items()}
    out["x"] = out["x"].reshape(-1, len(BOOK_FEATURES))
    for k in ("horizon", "block", "session", "row"):
        out[k] = out[k].astype(np.int32)
    out["num_blocks"] = max(offset, 1)
    return out


def book_model(x, down, horizon, block, weight, num_blocks: int, num_horizons: int = len(HORIZONS_S)):
    """NumPyro model (module docstring); sites: `weight` (H, K) population weights, `block_sd` (H, K),
    `block_z` (B, H, K), `trend_sd` (H,), `trend_z` (B, H)."""
    k = x.shape[-1]
    w = numpyro.sample("weight", dist.Normal(0.0, PRIOR_SD).expand([num_horizons, k]).to_event(2))
    tau = numpyro.sample("block_sd", dist.HalfNormal(BLOCK_SD).expand([num_horizons, k]).to_event(2))
    z = numpyro.sample("block_z", dist.Normal(0.0, 1.0).expand([num_blocks, num_horizons, k]).to_event(3))
    s = numpyro.sample("trend_sd", dist.HalfNormal(TREND_SD).expand([num_horizons]).to_event(1))
    u = numpyro.sample("trend_z", dist.Normal(0.0, 1.0).expand([num_blocks, num_horizons]).to_event(2))
    beta = w + tau * z  # (B, H, K)
    logit = (s * u)[block, horizon] + jnp.sum(beta[block, horizon] * x, axis=-1)
    ll = dist.Bernoulli(logits=logit).log_prob(down)
    numpyro.factor("down", jnp.sum(weight * ll))


def fit_kwargs(data: dict) -> dict:
    """The model's keyword data from `book_data`'s output."""
    return {k: data[k] for k in ("x", "down", "horizon", "block", "weight", "num_blocks")}


def new_session_moments(weight_draws: np.ndarray, block_sd_draws: np.ndarray,
                        trend_sd_draws: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The moments of a new session's weights and trend from posterior draws (weights (S, H, K), trend
    sd (S, H)): beta_new = w + tau z, so E = E[w] and Var = Var[w] + E[tau^2]; a_new = s u has mean 0
    and variance E[s^2]. Returns (mean (H, K), variance (H, K), trend variance (H,)): what the
    filter's probit approximation uses (`online.book`)."""
    w, tau, s = np.asarray(weight_draws), np.asarray(block_sd_draws), np.asarray(trend_sd_draws)
    return w.mean(axis=0), w.var(axis=0) + np.mean(tau**2, axis=0), np.mean(s**2, axis=0)


def predictive_new_session(x: np.ndarray, horizon: np.ndarray, weight_draws: np.ndarray,
                           block_sd_draws: np.ndarray, trend_sd_draws: np.ndarray, num_z: int = 32,
                           seed: int = 0) -> np.ndarray:
    """The model's posterior predictive P(fall) at points x (n, K) of horizons `horizon` (n,) for a
    session it has not seen, by Monte Carlo: E over posterior draws and over a new block's z and u of
    sigmoid(s u + (w + tau z) . x)."""
    rng = np.random.default_rng(seed)
    w, tau = np.asarray(weight_draws)[:, horizon], np.asarray(block_sd_draws)[:, horizon]  # (S, n, K)
    s = np.asarray(trend_sd_draws)[:, horizon]  # (S, n)
    out = np.zeros(len(x))
    for _ in range(num_z):
        beta = w + tau * rng.normal(size=tau.shape)
        logit = s * rng.normal(size=s.shape) + np.sum(beta * x[None], axis=-1)
        out += np.mean(1.0 / (1.0 + np.exp(-logit)), axis=0)
    return out / num_z


def simulate_book(seed: int, x: np.ndarray, horizon: np.ndarray, block: np.ndarray, num_blocks: int,
                  weight: np.ndarray, block_sd: np.ndarray, trend_sd: np.ndarray) -> dict:
    """Outcomes drawn from the model at given points (recovery tests): {"down", "beta" (the blocks'
    weights), "trend" (the blocks' trends)}."""
    rng = np.random.default_rng(seed)
    beta = weight[None] + block_sd[None] * rng.normal(size=(num_blocks,) + weight.shape)
    trend = trend_sd[None] * rng.normal(size=(num_blocks,) + trend_sd.shape)
    logit = trend[block, horizon] + np.sum(beta[block, horizon] * x, axis=-1)
    return {"down": (rng.uniform(size=len(x)) < 1.0 / (1.0 + np.exp(-logit))).astype(float), "beta": beta,
            "trend": trend}
