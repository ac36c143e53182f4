r"""The belief's fast path for replays and micro-batches: `belief.update`'s arithmetic, restructured
so that a scan does only what depends on the state.

`belief.update` is written for reading: time passes, then `lax.switch` dispatches on the event's
kind to one of seven branches, and the regime transition matrix expm(Q dt) sits behind a
`lax.cond`. Compiled inside `lax.scan` on a CPU that is several times as many separately dispatched
kernels per event as this path's scan (each `switch` branch returns a copy of the whole state;
`benchmarks/_hlo.py` counts them from the compiled program, `make bench` reports both). The same
update is split in two:

1. `event_terms(events, params)`, for a whole batch at once (vectorised: SIMD on a CPU, parallel on
   a GPU): everything of an event that does not depend on the state - the decay and forgetting
   factors of its dt, the OU prediction's factors, the regime transition matrix over its dt (a
   Taylor polynomial in precomputed powers of Q, one small matrix product for the batch, squared
   where dt is long), its regime log-likelihood (each kind's emission, selected by kind), its
   state-free evidence, and one mask per kind (the event valid and of that kind).
2. `step(state, terms, params)`, one per event inside `lax.scan`: the state-dependent rest, every
   kind's update computed and kept where its mask says so (a few dozen scalar operations: no
   branch copies, no `cond`), and the regime posterior normalised once per event (the reference
   normalises after the survival term and again after the emission: the same numbers, in one
   step).

The read-out runs after the scan over all the states (`replay.scan_from`). Each event's arithmetic
is `belief.update`'s, in the same order where rounding could tell; what differs is how the work is
grouped, and the regime transition matrix, whose Taylor terms are formed as powers of Q times
powers of dt rather than as repeated products of Q dt (equal to ~1e-16 relative: the terms are
below 0.05^k / k!). `tests/online/test_fused.py` holds every trajectory equal to the reference's
scan of `belief.update` to 1e-12 in float64: the recordings, drawn streams of every kind,
gaps, restarts, invalid events, Student-t and Gaussian returns, and the gradient the tuner takes.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.flatten_util import ravel_pytree
from jax.scipy.stats import norm

from bayesmm.events.kinds import (
    ADVERSE_SELECTION,
    BOOK_UPDATE,
    CV_TICK,
    MID_TICK,
    NUM_KINDS,
    OWN_FILL,
    OWN_QUOTE,
    TRADE_PRINT,
)
from bayesmm.online import adapt as adapt_mod
from bayesmm.online import book
from bayesmm.online.belief import (
    BURST_BUFFER,
    NO_QUOTE_BPS,
    BeliefState,
    Event,
    _same_side_in_window,
    _vol_prior,
    add_evidence,
    as_term,
    burst_term,
    decay_span_s,
    held_depth_bps,
    informed_weight,
    init,
    markov_decayed,
    return_log_lik,
    return_weight,
    static_forecast,
    survival_rate,
)
from bayesmm.online.kernels import _MAX_SQUARINGS, _matmul_small, ou_stationary_var, squarings
from bayesmm.online.params import Config

_TAYLOR_TERMS = 10  # Q^0 .. Q^9, the reference's 9-term series (`kernels.transition_matrix`)


class EventTerms(NamedTuple):
    """The state-free part of each event's update (leading axis: the events). Masks are 0/1 in the
    float dtype; `restart` marks a segment start (the state restarts from the prior)."""

    dt_s: jax.Array
    restart: jax.Array
    decay: jax.Array  # e^{-theta_decay dt}: the evidence's decay
    theta_dt: jax.Array  # theta_decay dt (the Markov decay's argument)
    span_s: jax.Array  # the survival term's integral of the decay over dt, s
    vol_forget: jax.Array
    tox_decay: jax.Array
    fill_decay: jax.Array
    ou_decay: jax.Array
    ou_decay2: jax.Array
    ou_added_var: jax.Array
    transition: jax.Array  # (4, 4): expm(Q dt)
    regime_log_lik: jax.Array  # (4,): the survival term (no fill in dt) plus the event's emission
    evidence: jax.Array  # the event's state-free log-likelihood ratio (trade, AS, other venue)
    is_mid: jax.Array  # a valid mid tick with a return (ret_dt_s > 0)
    is_book: jax.Array
    is_fill: jax.Array
    is_as: jax.Array
    is_quote: jax.Array
    side: jax.Array
    ret_bps: jax.Array
    ret_rate_bps_s: jax.Array
    ret_span_s: jax.Array
    ret_dt_s: jax.Array
    as_bps: jax.Array
    as_informed_weight: jax.Array
    imbalance: jax.Array
    depth_bps: jax.Array
    flow_decay: jax.Array  # the book's flows' decay over dt (`online.book`)
    flow_increment: jax.Array  # (book.FLOW_SIZE,): the event's increments of the book's flows


def _taylor_powers(rates_per_s):
    """Q^k / k!, k = 0..9, shape (10, 4, 4), as the reference's series forms them (term_k = term_{k-1}
    Q / k), with Q in place of Q dt."""
    eye = jnp.eye(rates_per_s.shape[-1], dtype=rates_per_s.dtype)
    terms = [eye]
    for k in range(1, _TAYLOR_TERMS):
        terms.append(_matmul_small(terms[-1], rates_per_s) / k)
    return jnp.stack(terms)


def transition_matrices(rates_per_s, dt_s):
    """expm(Q dt) for a batch of dt (shape (n, 4, 4)): `kernels.transition_matrix`'s scaling and
    squaring, vectorised. The Taylor series of Q dt / 2^s is sum_k (Q^k / k!) h^k with h = dt / 2^s:
    one (n, 10) x (10, 16) product. The squarings run only when some dt needs them (a fixed-length
    masked loop, so the whole is reverse-differentiable): within a segment (gaps restart it) dt is
    under a minute, and at the default rates s > 0 only from dt ~ 25 s."""
    n = dt_s.shape[0]
    row_norm = jnp.max(jnp.sum(jnp.abs(rates_per_s), axis=-1))
    norm_dt = row_norm * dt_s
    s = squarings(norm_dt)
    h = dt_s / jnp.exp2(s)
    coeff = h[:, None] ** jnp.arange(_TAYLOR_TERMS, dtype=h.dtype)
    k = rates_per_s.shape[-1]
    series = (coeff @ _taylor_powers(rates_per_s).reshape(_TAYLOR_TERMS, k * k)).reshape(n, k, k)

    def squared(m):
        return lax.scan(lambda m, i: (jnp.where((i < s)[:, None, None], _matmul_small(m, m), m), None), m,
                        jnp.arange(_MAX_SQUARINGS, dtype=s.dtype))[0]

    return lax.cond(jnp.any(s > 0), squared, lambda m: m, series)


def _first(conditions, values):
    """The value of the first condition that holds, else 0 (`jnp.select` as nested `where`s: select's
    argmax over the conditions is a reduction that XLA constant-folds, for seconds, when the events
    are constants of the program - the tuner's closure over its sessions)."""
    out = jnp.zeros((), values[0].dtype)
    for cond, value in zip(conditions[::-1], values[::-1], strict=True):
        out = jnp.where(cond, value, out)
    return out


def _emission_and_evidence(events: Event, p: Config, mask, is_mid, ret, ret_dt, ret_span, side, as_bps):
    """Each event's regime log-likelihood (its kind's emission: a return's, a print's side, a fill's
    side and arrival, an AS) and its state-free log-likelihood ratio of down (tape, AS, other venue)."""
    r, e = p.regime, p.evidence
    mid_lik = return_log_lik(ret[:, None], ret_dt[:, None], ret_span[:, None], p)
    trade_lik = jnp.log(jnp.where(side[:, None] > 0, r.p_taker_buy, 1.0 - r.p_taker_buy))
    fill_lik = jnp.log(jnp.where(side[:, None] > 0, r.p_buy_fill, 1.0 - r.p_buy_fill)) + jnp.log(r.fill_rate_per_s)
    as_lik = norm.logpdf(as_bps[:, None], r.as_mean_bps, r.as_sd_bps)
    is_as = mask(ADVERSE_SELECTION)
    emission = _first([is_mid[:, None], mask(TRADE_PRINT)[:, None], mask(OWN_FILL)[:, None], is_as[:, None]],
                      [mid_lik, trade_lik, fill_lik, as_lik])
    cv_ret = jnp.where(mask(CV_TICK), events.cv_ret_bps, 0.0)
    evidence = _first([mask(TRADE_PRINT), is_as, mask(CV_TICK)],
                      [-e.lambda_trade * side, as_term(side, as_bps, p), -e.lambda_cv_per_bps * cv_ret])
    return emission, evidence


def book_terms(events: Event, p: Config):
    """The book's part of `event_terms`: (the imbalance at book updates, else 0; the flows' decay over
    each event's dt; the flows' increments, `online.book.flow_increment`). Also what the book model's
    data are computed from (`models.book.book_features`), so that it is fitted to what the filter reads."""
    valid = events.valid > 0
    kind = jnp.clip(events.kind, 0, NUM_KINDS - 1)
    is_book, is_trade = valid & (kind == BOOK_UPDATE), valid & (kind == TRADE_PRINT)
    is_mid = valid & (kind == MID_TICK) & (events.ret_dt_s > 0)
    increment = book.flow_increment(is_book[:, None], is_trade[:, None], is_mid[:, None], events.ofi[:, None],
                                    events.side[:, None], events.ret_bps[:, None])[:, 0, :]
    return jnp.where(is_book, events.imbalance, 0.0), book.flow_decay(events.dt_s, p), increment


def event_terms(events: Event, params: Config) -> EventTerms:
    """The state-free part of `belief.update` for a batch of events (module docstring); every value
    is finite whatever the event's kind (a masked-out value would otherwise poison a gradient)."""
    p = params
    dtype = events.dt_s.dtype
    one = jnp.ones((), dtype)
    dt = jnp.maximum(events.dt_s, 0.0)
    valid = events.valid > 0
    kind = jnp.clip(events.kind, 0, NUM_KINDS - 1)

    def mask(code):
        return valid & (kind == code)

    restart = events.segment_start > 0
    # time passing (`belief._time_passes`)
    theta = p.evidence.theta_decay_per_s
    x = theta * dt
    ou_decay = jnp.exp(-p.drift.theta_mu_per_s * dt)
    stationary = ou_stationary_var(p.drift.sigma_mu_bps_s_sqrt_s, p.drift.theta_mu_per_s)
    survival = -p.regime.fill_rate_per_s * dt[:, None]
    # mid tick (`belief._on_mid_tick`)
    has_dt = events.ret_dt_s > 0
    is_mid = mask(MID_TICK) & has_dt
    ret = jnp.where(is_mid, events.ret_bps, 0.0)
    ret_dt = jnp.where(has_dt, events.ret_dt_s, 1.0)
    ret_span = ret_dt + p.drift.return_noise_s
    # trade print, own fill, adverse selection
    side = jnp.where(mask(TRADE_PRINT) | mask(OWN_FILL) | mask(ADVERSE_SELECTION) | mask(OWN_QUOTE),
                     events.side, 0.0)
    is_as = mask(ADVERSE_SELECTION)
    a = jnp.where(is_as, events.as_bps, 0.0)
    emission, evidence = _emission_and_evidence(events, p, mask, is_mid, ret, ret_dt, ret_span, side, a)
    is_quote = mask(OWN_QUOTE)
    depth = jnp.where(is_quote, events.depth_bps, NO_QUOTE_BPS)
    f = lambda b: b.astype(dtype)  # noqa: E731
    imbalance, flow_decay, flow_increment = book_terms(events, p)
    return EventTerms(
        dt_s=dt, restart=f(restart), decay=jnp.exp(-theta * dt), theta_dt=x, span_s=decay_span_s(theta, dt),
        vol_forget=jnp.exp(-p.volatility.forget_per_s * dt),
        tox_decay=p.toxicity.decay_per_window ** (dt / p.toxicity.window_s),
        fill_decay=jnp.exp(-dt / p.volatility.fill_window_s),
        ou_decay=ou_decay, ou_decay2=ou_decay**2, ou_added_var=stationary * (1.0 - ou_decay**2),
        transition=transition_matrices(jnp.asarray(p.regime.rates_per_s, dtype), dt),
        regime_log_lik=jnp.where(restart[:, None], 0.0, survival) + emission,
        evidence=evidence, is_mid=f(is_mid), is_book=f(mask(BOOK_UPDATE)), is_fill=f(mask(OWN_FILL)),
        is_as=f(is_as), is_quote=f(is_quote & (side != 0)), side=side, ret_bps=ret,
        ret_rate_bps_s=ret / ret_dt, ret_span_s=ret_span, ret_dt_s=ret_dt, as_bps=a,
        as_informed_weight=informed_weight(a, events.spread_bps),
        imbalance=imbalance,
        depth_bps=held_depth_bps(depth) * one,
        flow_decay=flow_decay,
        flow_increment=flow_increment,
    )


def step(s: BeliefState, e: EventTerms, p: Config, with_flow: bool = True, with_adapt: bool = True) -> BeliefState:
    """One event's state-dependent update (`belief.update` given the event's `EventTerms`): time
    passes (or the state restarts), then each kind's evidence is added where its mask is 1.
    `with_flow` False leaves the book's flows as they are, `with_adapt` False what the horizons learnt
    online (`scan_states` computes each for the whole batch after the scan: nothing else in the state
    depends on them)."""
    restart = e.restart > 0
    prior = init(p)

    def fresh_or(name, passed):
        return jnp.where(restart, getattr(prior, name), passed)

    lo, age, sides, head = _directional(s, e, p, fresh_or)
    # drift (OU Kalman) and volatility (inverse gamma) on the mid's return
    alpha0, beta0 = _vol_prior(p)
    mean = fresh_or("drift_mean_bps_s", s.drift_mean_bps_s * e.ou_decay)
    var = fresh_or("drift_var", s.drift_var * e.ou_decay2 + e.ou_added_var)
    alpha = fresh_or("vol_alpha", alpha0 + (s.vol_alpha - alpha0) * e.vol_forget)
    beta = fresh_or("vol_beta", beta0 + (s.vol_beta - beta0) * e.vol_forget)
    sigma2 = beta / (alpha - 1.0)
    w = return_weight(e.ret_bps, sigma2, e.ret_span_s, p)
    obs_var = sigma2 * e.ret_span_s / e.ret_dt_s**2 / w
    gain = var / (var + obs_var)
    is_mid = e.is_mid > 0
    # toxicity and the realised AS
    tox = p.toxicity
    prior_in = tox.prior_informed_fills
    informed = fresh_or("tox_informed", prior_in + (s.tox_informed - prior_in) * e.tox_decay)
    uninformed = fresh_or("tox_uninformed",
                          tox.prior_uninformed_fills + (s.tox_uninformed - tox.prior_uninformed_fills) * e.tox_decay)
    joint = _regimes(s, e, fresh_or)
    depth = fresh_or("quote_depth_bps", s.quote_depth_bps)
    quote_slot = jnp.arange(2) == jnp.where(e.side > 0, 0, 1)
    new = BeliefState(
        log_odds_ev=lo,
        drift_mean_bps_s=jnp.where(is_mid, mean + gain * (e.ret_rate_bps_s - mean), mean),
        drift_var=jnp.where(is_mid, (1.0 - gain) * var, var),
        vol_alpha=alpha + jnp.where(is_mid, 0.5, 0.0),
        vol_beta=beta + jnp.where(is_mid, 0.5 * w * e.ret_bps**2 / e.ret_span_s, 0.0),
        fill_count=fresh_or("fill_count", s.fill_count * e.fill_decay) + e.is_fill,
        tox_informed=informed + e.is_as * e.as_informed_weight,
        tox_uninformed=uninformed + e.is_as * (1.0 - e.as_informed_weight),
        as_sum_bps=fresh_or("as_sum_bps", s.as_sum_bps * e.tox_decay) + e.is_as * e.as_bps,
        as_weight=fresh_or("as_weight", s.as_weight * e.tox_decay) + e.is_as,
        regime_log_probs=joint,
        fill_age_s=age,
        fill_side=sides,
        fill_head=head,
        imbalance=jnp.where(e.is_book > 0, e.imbalance, fresh_or("imbalance", s.imbalance)),
        quote_depth_bps=jnp.where((e.is_quote > 0) & quote_slot, e.depth_bps, depth),
        book_flow=(fresh_or("book_flow", s.book_flow * e.flow_decay) + e.flow_increment) if with_flow else s.book_flow,
        t_s=s.t_s + e.dt_s,
        adapt=s.adapt,
    )
    return adapted(s.adapt, s.t_s, e, new, p) if with_adapt else new


def _directional(s: BeliefState, e: EventTerms, p: Config, fresh_or):
    """(evidence log-odds, fill ages, fill sides, ring head) after the event: the log-odds decayed
    (linear, blended with the Markov chain's), the survival term, the event's evidence; the ring
    buffer of recent fills and this fill's burst term."""
    lo = s.log_odds_ev
    linear = lo * e.decay
    stale = linear + p.evidence.markov_decay_weight * (markov_decayed(lo, e.theta_dt) - linear)
    lo = fresh_or("log_odds_ev", add_evidence(stale, survival_rate(s, p) * e.span_s, p))
    slot = jnp.arange(BURST_BUFFER) == fresh_or("fill_head", s.fill_head)
    write = (e.is_fill > 0) & slot
    age = jnp.where(write, 0.0, fresh_or("fill_age_s", s.fill_age_s + e.dt_s))
    sides = jnp.where(write, e.side, fresh_or("fill_side", s.fill_side))
    head = fresh_or("fill_head", s.fill_head)
    head = jnp.where(e.is_fill > 0, (head + 1) % BURST_BUFFER, head)
    burst = burst_term(_same_side_in_window(s._replace(fill_age_s=age, fill_side=sides), e.side, p), p)
    lo = add_evidence(lo, jnp.where(e.is_fill > 0, (p.evidence.lambda_fill + burst) * e.side, e.evidence), p)
    return lo, age, sides, head


def _regimes(s: BeliefState, e: EventTerms, fresh_or):
    """The regime log-posterior after the event: predicted over dt, conditioned on the survival term
    and the emission, normalised once."""
    lp = s.regime_log_probs
    m = jnp.max(lp)
    pushed = jnp.sum(e.transition * jnp.exp(lp - m)[:, None], axis=0)
    predicted = jnp.log(jnp.maximum(pushed, jnp.finfo(pushed.dtype).tiny)) + m
    joint = fresh_or("regime_log_probs", predicted) + e.regime_log_lik
    return joint - jax.scipy.special.logsumexp(joint)


def adapted(a: adapt_mod.AdaptState, t_old_s, e: EventTerms, new: BeliefState, p: Config) -> BeliefState:
    """`new` with the horizons' online learning carried over the event (`belief._adapted`'s, from
    its terms)."""
    a = adapt_mod.step(a, t_old_s, e.dt_s, e.restart > 0, jnp.where(e.is_mid > 0, e.ret_bps, 0.0), p)
    eta, var = static_forecast(new, p)
    return new._replace(adapt=a._replace(last_eta=eta, last_var=var))


def scan_states(state: BeliefState, events: Event, params: Config, adapt: bool = True
                ) -> tuple[BeliefState, BeliefState]:
    """(the state after the last event, the states after each event, leading axis the events) from
    `state`: `event_terms` for the batch, then `lax.scan(step)`.

    The scan carries the state as one flat vector and reads each event's terms as one row of a
    matrix: a scan over the pytrees reads ~30 separate arrays and writes ~17 per event, each its own
    kernel (`benchmarks/bench_replay.py` measures the loop)."""
    terms = event_terms(events, params)
    flows = book_flows(state.book_flow, terms.restart, terms.flow_decay, terms.flow_increment)
    flat_terms = jax.vmap(lambda row: ravel_pytree(row)[0])(terms)
    unravel_terms = ravel_pytree(jax.tree_util.tree_map(lambda x: jnp.zeros(x.shape[1:], x.dtype), terms))[1]
    core = state._replace(adapt=None)  # the scan carries neither the flows' nor the online learning's work
    flat_state, unravel_state = ravel_pytree(core)

    def body(flat, row):
        one = unravel_state(flat)._replace(adapt=state.adapt)
        new = step(one, unravel_terms(row), params, with_flow=False, with_adapt=False)
        new = ravel_pytree(new._replace(adapt=None))[0]
        return new, new

    last, flat_states = lax.scan(body, flat_state, flat_terms)
    states = jax.vmap(unravel_state)(flat_states)._replace(book_flow=flows)
    last = unravel_state(last)._replace(book_flow=flows[-1] if flows.shape[0] else state.book_flow)
    if not adapt:  # nothing learnt online: every state keeps the starting belief (`online.replay.run`)
        n = flows.shape[0]
        kept = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (n, *jnp.shape(x))), state.adapt)
        return last._replace(adapt=state.adapt), states._replace(adapt=kept)
    last_adapt, states = adapt_states(state, states, terms, params)
    return last._replace(adapt=last_adapt), states


def adapt_states(start: BeliefState, states: BeliefState, terms: EventTerms, params: Config):
    """(the online learning after the last event, `states` with each event's `adapt` filled in), by
    `online.adapt.batch` over the static forecasts of all the states (`belief.static_forecast`, one
    batched computation) and the events' times and mid returns. In the states, the belief (mean, cov)
    and the static forecast are each event's; the pending forecasts are the last event's (the read-out
    needs neither)."""
    eta, var = jax.vmap(static_forecast, in_axes=(0, None))(states._replace(adapt=None), params)
    n = eta.shape[0]
    t_old = jnp.concatenate([start.t_s[None], states.t_s])[:n]
    ret = jnp.where(terms.is_mid > 0, terms.ret_bps, 0.0)
    last, means, covs = adapt_mod.batch(start.adapt, t_old, terms.dt_s, terms.restart, ret, eta, var, params)
    filled = last._replace(mean=means, cov=covs, last_eta=eta, last_var=var,
                           **{k: jnp.broadcast_to(getattr(last, k), (n, *jnp.shape(getattr(last, k))))
                              for k in ("pending_eta", "pending_var", "pending_mid_bps", "pending_n", "mid_bps")})
    return last, states._replace(adapt=filled)


def book_flows(start, restart, flow_decay, flow_increment):
    """The book's decayed flow sums after each event of the batch (`online.book`), from `start`: the
    linear recurrence s_n = a_n s_{n-1} + b_n (a_n the decay over the event's dt, 0 at a restart; b_n
    its increments) by an associative scan - composing (a, b) pairs - rather than inside the
    sequential scan: the flows depend on nothing else in the state."""
    a = jnp.where(restart[:, None] > 0, 0.0, flow_decay[:, None]) * jnp.ones_like(flow_increment)
    b = flow_increment
    if b.shape[0] == 0:
        return b
    b = b.at[0].add(a[0] * start)

    def compose(left, right):
        (a1, b1), (a2, b2) = left, right
        return a1 * a2, a2 * b1 + b2

    return lax.associative_scan(compose, (a, b))[1]
