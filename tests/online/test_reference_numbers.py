"""The spec's stage-1 reference numbers reproduced through the public update path
(`online.replay.run` on hand-built event streams). Decay is off and fills are spaced beyond the
burst window unless a test says otherwise."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bayesmm.online.belief import init, update
from bayesmm.online.params import default_config, replace
from bayesmm.online.replay import Filter, run
from tests.online.helpers import fills, row, stream

NO_DECAY = replace(default_config(), evidence=dict(theta_decay_per_s=0.0))


def logit(p):
    return math.log(p / (1 - p))


def test_eight_buy_fills():
    """8 x lambda_fill 0.35 = 2.8 -> p_down = 1/(1+e^-2.8) = 0.9427 (spec: 8 fills ~ 95%)."""
    b = row(run(stream(fills(8)), NO_DECAY))
    assert b["log_odds"] == pytest.approx(2.8, abs=1e-12)
    assert b["p_down"] == pytest.approx(1 / (1 + math.exp(-2.8)), abs=1e-12)
    assert b["p_down"] == pytest.approx(0.943, abs=5e-4)
    assert b["mu_bps_s"] < 0  # bearish


def test_sell_fills_are_bullish():
    b = row(run(stream(fills(3, side=-1)), NO_DECAY))
    assert b["log_odds"] == pytest.approx(-1.05, abs=1e-12)


def test_adverse_selection_term():
    """Buy fill with AS 18 bps, fee 1.5, lambda_AS 0.15, AS_scale 20: 0.15 * 16.5 / 20 = 0.12375."""
    ev = stream([*fills(1), {"kind": "adverse_selection", "side": 1, "as_bps": 18.0, "spread_bps": 7.0,
                             "dt_s": 5.0}])
    b = run(ev, NO_DECAY)
    assert float(b.log_odds[1] - b.log_odds[0]) == pytest.approx(0.12375, abs=1e-12)


def test_as_below_fee_adds_nothing():
    ev = stream([*fills(1), {"kind": "adverse_selection", "side": 1, "as_bps": 1.0, "spread_bps": 7.0}])
    b = run(ev, NO_DECAY)
    assert float(b.log_odds[1] - b.log_odds[0]) == 0.0


def test_six_fill_burst():
    """6 buy fills within 1 s: the burst adds 0.25 + 0.5 + 0.75 = 1.5 (at fills 4, 5, 6) on top of
    6 x 0.35; 1.5 is about 4 independent fills (1.4), the spec's calibration target."""
    b = run(stream(fills(6, gap_s=0.15)), NO_DECAY)
    increments = np.diff(np.asarray(b.log_odds), prepend=0.0)
    np.testing.assert_allclose(increments, [0.35, 0.35, 0.35, 0.6, 0.85, 1.1], atol=1e-12)
    assert float(b.log_odds[-1]) == pytest.approx(6 * 0.35 + 1.5, abs=1e-12)
    np.testing.assert_array_equal(np.asarray(b.burst), [0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(np.asarray(b.burst_count), [1, 2, 3, 4, 5, 6])
    assert float(b.burst_side[-1]) == 1.0


def test_burst_window_expires():
    """Fills 2.5 s apart never form a burst; the burst flag drops once the window has passed."""
    b = run(stream(fills(6, gap_s=2.5)), NO_DECAY)
    assert float(b.log_odds[-1]) == pytest.approx(6 * 0.35, abs=1e-12)
    ev = stream([*fills(4, gap_s=0.1), {"kind": "book_update", "dt_s": 2.5}])
    b = run(ev, NO_DECAY)
    assert float(b.burst[3]) == 1.0 and float(b.burst[4]) == 0.0


def test_decay_is_exact_and_half_life():
    """With no evidence for t seconds the log-odds is multiplied by exp(-theta t) exactly;
    theta = 0.02/s gives a half-life of ln 2 / 0.02 = 34.66 s."""
    p = default_config()
    half_life = math.log(2) / 0.02
    assert half_life == pytest.approx(34.7, abs=0.05)
    for gap in (0.001, 1.0, half_life, 3600.0):
        ev = stream([*fills(1), {"kind": "book_update", "dt_s": gap}])
        b = run(ev, p)
        assert float(b.log_odds[1]) == pytest.approx(0.35 * math.exp(-0.02 * gap), rel=1e-12, abs=1e-300)
    ev = stream([*fills(1), {"kind": "book_update", "dt_s": half_life}])
    assert float(run(ev, p).log_odds[1]) == pytest.approx(0.175, rel=1e-12)


def test_section5_annotated_cycle():
    """Spec section 5: from p_down 0.91, a buy fill with AS 18.4 bps as the 6th of a burst:
    2.3136 + 0.35 + 0.12675 + 0.75 = 3.5404 -> p_down 0.9718 (the spec rounds to 0.98)."""
    state = init(NO_DECAY)
    burst = stream(fills(5, gap_s=0.15))
    for i in range(5):
        state = update(state, type(burst)(*(x[i] for x in burst)), NO_DECAY)
    state = state._replace(log_odds_ev=state.log_odds_ev * 0 + logit(0.91))
    f = Filter(NO_DECAY)
    f.state = state
    last = stream([*fills(1, gap_s=0.15), {"kind": "adverse_selection", "side": 1, "as_bps": 18.4,
                                           "spread_bps": 7.0}])
    b = f.push_many(last)
    expected = logit(0.91) + 0.35 + 0.15 * (18.4 - 1.5) / 20 + 0.75
    assert logit(0.91) == pytest.approx(2.3136, abs=1e-4)
    assert expected == pytest.approx(3.5404, abs=1e-4)
    assert float(b.log_odds[-1]) == pytest.approx(expected, abs=1e-12)
    assert float(b.p_down[-1]) == pytest.approx(0.9718, abs=1e-4)


@pytest.mark.parametrize(("as_bps", "d_informed"), [(18.4, 1.0), (2.0, 0.0), (7.0, 1 / 3)])
def test_toxicity_rule(as_bps, d_informed):
    """Spread 7 bps: AS 18.4 > 14 -> informed += 1; AS 2 < 3.5 -> uninformed += 1;
    AS 7 -> weight (7 - 3.5) / 10.5 = 1/3 to informed, 2/3 to uninformed."""
    p = replace(default_config(), toxicity=dict(decay_per_window=1.0))
    f = Filter(p)
    before = f.state
    f.push_many(stream([*fills(1), {"kind": "adverse_selection", "side": 1, "as_bps": as_bps,
                                    "spread_bps": 7.0}]))
    assert float(f.state.tox_informed - before.tox_informed) == pytest.approx(d_informed, abs=1e-12)
    assert float(f.state.tox_uninformed - before.tox_uninformed) == pytest.approx(1 - d_informed, abs=1e-12)


def test_toxicity_decays_toward_prior_continuously():
    """The evidence part of each alpha decays by 0.95 per 30 s, in continuous time (0.95^(t/30))."""
    p = default_config()
    f = Filter(p)
    f.push_many(stream([*fills(1), {"kind": "adverse_selection", "side": 1, "as_bps": 50.0, "spread_bps": 7.0},
                        {"kind": "book_update", "dt_s": 45.0}]))
    assert float(f.state.tox_informed) == pytest.approx(1.0 + 0.95 ** (45 / 30), abs=1e-12)
