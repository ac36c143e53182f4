"""The survival term (`online.belief`, "Own fills are read against the quotes that made them"):
checked against the likelihood ratio of the fill model it is derived from, computed here directly
from the two hypotheses' Poisson rates, on fills drawn from that model."""

from __future__ import annotations

import numpy as np
import pytest

from bayesmm.online.params import default_config, replace
from bayesmm.online.replay import run
from tests.online.helpers import stream

LAM_U, LAM_I, KAPPA = 1.0, 0.8, 0.2  # per s, per s, per bps
LENGTH = 512  # every stream padded to one length (events that are not valid change nothing): one compilation


def _config(survival_weight: float = 1.0, theta: float = 0.0):
    """The filter matched to the fill model: lambda_fill = ln(1 + lambda_i / lambda_u) and the
    quoter's intensity A = the two sides' mean rate lambda_u + lambda_i / 2; no decay (a static
    sign), no burst term, bounds out of the way."""
    return replace(default_config(),
                   evidence=dict(lambda_fill=float(np.log1p(LAM_I / LAM_U)), lambda_burst=0.0,
                                 theta_decay_per_s=theta, survival_weight=survival_weight, max_log_odds=1e6,
                                 max_event_log_odds=1e6),
                   quoter=dict(fill_intensity_per_s=LAM_U + LAM_I / 2, kappa_per_bps=KAPPA))


def _down_trend_fills(rng, bid_bps: float, ask_bps: float, duration_s: float):
    """Own fills of a downtrend (informed takers sell into our bid) as (time, side) rows."""
    rates = {1: (LAM_U + LAM_I) * np.exp(-KAPPA * bid_bps), -1: LAM_U * np.exp(-KAPPA * ask_bps)}
    rows = [(t, side) for side, r in rates.items() for t in rng.uniform(0, duration_s, rng.poisson(r * duration_s))]
    return sorted(rows)


def _events(fills, bid_bps, ask_bps, duration_s):
    rows = [{"kind": "own_quote", "side": 1.0, "depth_bps": bid_bps},
            {"kind": "own_quote", "side": -1.0, "depth_bps": ask_bps}]
    t = 0.0
    for ft, side in fills:
        rows.append({"kind": "own_fill", "side": side, "size": 1.0, "dt_s": ft - t})
        t = ft
    rows.append({"kind": "book_update", "dt_s": duration_s - t})
    return _padded(rows)


def _padded(rows):
    assert len(rows) <= LENGTH
    return stream(rows + [{"kind": "book_update", "valid": 0.0}] * (LENGTH - len(rows)))


def _exact_log_lr(fills, bid_bps, ask_bps, duration_s):
    """log p(fills | down) - log p(fills | up) of two independent Poisson processes per side."""
    down = {1: (LAM_U + LAM_I) * np.exp(-KAPPA * bid_bps), -1: LAM_U * np.exp(-KAPPA * ask_bps)}
    up = {1: LAM_U * np.exp(-KAPPA * bid_bps), -1: (LAM_U + LAM_I) * np.exp(-KAPPA * ask_bps)}
    return (sum(np.log(down[s] / up[s]) for _, s in fills)
            - sum((down[s] - up[s]) * duration_s for s in (1, -1)))


@pytest.mark.parametrize("bid_bps,ask_bps", [(10.0, 1.0), (1.0, 10.0), (3.0, 3.0), (0.0, 25.0)])
def test_filter_is_the_fill_models_likelihood_ratio(bid_bps, ask_bps):
    """With no decay the evidence log-odds after a stream of quotes and fills is exactly the
    Poisson likelihood ratio of down against up (each fill's side and each quote's time unfilled)."""
    rng = np.random.default_rng(int(bid_bps * 10 + ask_bps))
    fills = _down_trend_fills(rng, bid_bps, ask_bps, 120.0)
    b = run(_events(fills, bid_bps, ask_bps, 120.0), _config())
    assert float(np.asarray(b.log_odds)[-1]) == pytest.approx(_exact_log_lr(fills, bid_bps, ask_bps, 120.0),
                                                              abs=1e-9)


def test_lopsided_quotes_mislead_the_spec_filter_not_this_one():
    """A bot in a downtrend quoting its ask at 1 bps and its bid at 12 (reduce-only and the drift
    shift): over 200 draws of 60 s, the spec's fill evidence alone (survival_weight 0) reads the
    downtrend as an uptrend most of the time; with the survival term the read is right in most
    draws and never of the wrong sign on average (its expectation is a KL divergence)."""
    rng = np.random.default_rng(7)
    with_s, without = [], []
    for _ in range(200):
        fills = _down_trend_fills(rng, 12.0, 1.0, 60.0)
        ev = _events(fills, 12.0, 1.0, 60.0)
        with_s.append(float(np.asarray(run(ev, _config(1.0)).log_odds)[-1]))
        without.append(float(np.asarray(run(ev, _config(0.0)).log_odds)[-1]))
    with_s, without = np.array(with_s), np.array(without)
    assert np.mean(without > 0) < 0.25 and np.mean(without) < 0
    assert np.mean(with_s > 0) > 0.75 and np.mean(with_s) > 0


def test_decay_integrates_the_survival_drift():
    """One quote pair standing T with decay theta: L(T) = r (1 - e^{-theta T}) / theta, r the drift
    D (e^{-kappa d_ask} - e^{-kappa d_bid}), D = lambda_i for the matched filter - in one event or
    split into many."""
    theta, bid, ask = 0.05, 2.0, 8.0
    r = LAM_I * (np.exp(-KAPPA * ask) - np.exp(-KAPPA * bid))
    want = r * (1 - np.exp(-theta * 40.0)) / theta
    for steps in (1, 40):
        rows = [{"kind": "own_quote", "side": 1.0, "depth_bps": bid}, {"kind": "own_quote", "side": -1.0,
                                                                        "depth_bps": ask}]
        rows += [{"kind": "book_update", "dt_s": 40.0 / steps} for _ in range(steps)]
        got = float(np.asarray(run(_padded(rows), _config(theta=theta)).log_odds)[-1])
        assert got == pytest.approx(want, rel=1e-9)


def test_no_quote_no_survival():
    """Without own_quote events (every recording), or after a side is withdrawn (NaN depth), that
    side's survival term is 0."""
    rows = [{"kind": "book_update", "dt_s": 30.0}]
    assert float(np.asarray(run(_padded(rows), _config()).log_odds)[-1]) == 0.0
    rows = [{"kind": "own_quote", "side": 1.0, "depth_bps": 2.0}, {"kind": "own_quote", "side": -1.0,
                                                                   "depth_bps": np.nan},
            {"kind": "book_update", "dt_s": 30.0}]
    got = float(np.asarray(run(_padded(rows), _config()).log_odds)[-1])
    assert got == pytest.approx(-LAM_I * np.exp(-KAPPA * 2.0) * 30.0, rel=1e-12)  # an unfilled bid: bullish


def test_gradient_in_the_decay_at_zero():
    """d L / d theta at theta = 0 for one quote pair standing T: -r T^2 / 2 (the series of
    r (1 - e^{-theta T}) / theta), which the tuner's gradient needs - not the 0 of a constant branch."""
    import jax

    bid, ask, span = 2.0, 8.0, 40.0
    r = LAM_I * (np.exp(-KAPPA * ask) - np.exp(-KAPPA * bid))
    ev = _padded([{"kind": "own_quote", "side": 1.0, "depth_bps": bid},
                  {"kind": "own_quote", "side": -1.0, "depth_bps": ask}, {"kind": "book_update", "dt_s": span}])

    cfg = _config()

    def final(theta):  # a traced value: set on the tuple, not through `replace`'s checks
        return run(ev, cfg._replace(evidence=cfg.evidence._replace(theta_decay_per_s=theta))).log_odds[-1]

    assert float(jax.grad(final)(0.0)) == pytest.approx(-r * span**2 / 2, rel=1e-9)
