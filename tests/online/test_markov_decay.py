"""The Markov decay of the evidence (`evidence.markov_decay_weight` 1, `online.belief.markov_decayed`):
checked against the forward filter of a two-state hidden Markov chain computed here from the
chain's own transition matrix (scipy's expm), on a tape drawn from that chain."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.linalg import expm

from bayesmm.online.belief import markov_decayed
from bayesmm.online.params import default_config, replace
from bayesmm.online.replay import run
from tests.online.helpers import stream

Q = 1 / 30.0  # the sign flips at this rate, 1/s (whipsaw's)
LAM_U, LAM_I = 1.0, 0.6  # uninformed takers per side and informed takers (on the sign's side), 1/s
LAM = float(np.log1p(LAM_I / LAM_U))  # a print's log-LR of down against up


def _config(markov: float):
    """The tape's weight and the chain's rate (theta = 2q), nothing else moving the evidence."""
    return replace(default_config(), evidence=dict(lambda_trade=LAM, lambda_fill=0.0, lambda_burst=0.0,
                                                   theta_decay_per_s=2 * Q,
                                                   markov_decay_weight=markov, max_log_odds=1e6,
                                                   max_event_log_odds=1e6, survival_weight=0.0))


def _tape(rng, n: int):
    """(dt, side) of n prints of a market whose sign flips at rate Q: prints arrive at 2 lambda_u +
    lambda_i whatever the sign (so their times say nothing), a print is a sell with probability
    (lambda_u + lambda_i) / (2 lambda_u + lambda_i) in a downtrend."""
    down, rows = rng.random() < 0.5, []
    for _ in range(n):
        dt = rng.exponential(1 / (2 * LAM_U + LAM_I))
        if rng.random() < 0.5 * (1 - np.exp(-2 * Q * dt)):
            down = not down
        sell = rng.random() < (LAM_U + LAM_I) / (2 * LAM_U + LAM_I)
        rows.append((dt, -1.0 if sell == down else 1.0))
    return rows


def _hmm_log_odds(rows) -> np.ndarray:
    """log P(down) - log P(up) after each print: predict with expm(Q dt), condition on the side."""
    gen = np.array([[-Q, Q], [Q, -Q]])
    p, out = np.array([0.5, 0.5]), []
    for dt, side in rows:
        p = p @ expm(gen * dt)
        p = p * (np.array([LAM_U + LAM_I, LAM_U]) if side < 0 else np.array([LAM_U, LAM_U + LAM_I]))
        p = p / p.sum()
        out.append(np.log(p[0]) - np.log(p[1]))
    return np.array(out)


def test_markov_decay_is_the_two_state_chains_exact_filter():
    """400 prints of a sign that flips every 30 s on average: with markov_decay_weight 1 the evidence
    log-odds equal the chain's forward filter to 1e-9 after every print; the spec's log-odds decay
    (markov_decay_weight 0) does not - it holds a confident belief through a flip (differences of whole
    units of log-odds)."""
    rows = _tape(np.random.default_rng(7), 400)
    ev = stream([{"kind": "trade_print", "side": side, "dt_s": dt} for dt, side in rows])
    exact = _hmm_log_odds(rows)
    got = np.asarray(run(ev, _config(1.0)).log_odds)
    np.testing.assert_allclose(got, exact, atol=1e-9, rtol=1e-9)
    spec = np.asarray(run(ev, _config(0.0)).log_odds)
    assert np.max(np.abs(spec - exact)) > 1.0
    assert np.max(np.abs(exact)) > 4.0  # the stream does reach confident beliefs


@settings(max_examples=200, deadline=None)
@given(st.floats(-60.0, 60.0), st.floats(0.0, 50.0))
def test_markov_decayed_is_odd_bounded_and_finite(log_odds, theta_dt):
    """Mirror symmetry (a flipped belief decays to the flipped result), never past 1/2 and never
    growing, the identity at dt = 0, and finite in float32 at any log-odds the filter can hold."""
    f = lambda x, dt=theta_dt: float(markov_decayed(jnp.float64(x), jnp.float64(dt)))  # noqa: E731
    out = f(log_odds)
    assert out == pytest.approx(-f(-log_odds), abs=1e-12)
    assert abs(out) <= abs(log_odds) + 1e-12 and out * log_odds >= 0
    assert f(log_odds, 0.0) == pytest.approx(log_odds, abs=1e-9)
    assert np.isfinite(float(markov_decayed(jnp.float32(log_odds), jnp.float32(theta_dt))))


def test_markov_decay_linearises_to_the_spec_rule():
    """For small log-odds the chain's rule is the spec's L e^{-theta dt} (to second order in L)."""
    for theta_dt in (1e-4, 0.1, 1.0, 5.0):
        small = 1e-4
        assert float(markov_decayed(jnp.float64(small), jnp.float64(theta_dt))) == pytest.approx(
            small * np.exp(-theta_dt), rel=1e-7)
