"""The quoter's market from the tape (`calibration.tape`): the fill intensity recovered from prints
drawn with a known A e^{-kappa delta}, a maker's AS worked by hand, and the session's defaults
reading them (`calibration.venue`)."""

from __future__ import annotations

import numpy as np
import pytest

from bayesmm.calibration.tape import fit_intensity, print_adverse_selection_bps
from bayesmm.events.features import EventArrays
from bayesmm.events.kinds import KIND_ID


def _tape(depth_bps, side, t_s, mid):
    """Alternating mid ticks and prints: print k at t_s[k] at depth_bps[k] from the mid before it."""
    n = 2 * len(t_s)
    col = {f: np.zeros(n) for f in EventArrays._fields}
    kind = np.tile([KIND_ID["mid_tick"], KIND_ID["trade_print"]], len(t_s)).astype(np.int32)
    m = np.repeat(mid, 2)
    px = np.repeat(mid * (1 + side * depth_bps / 1e4), 2)
    col.update(t_s=np.repeat(t_s, 2), kind=kind, mid=m, valid=np.ones(n), side=np.repeat(side, 2),
               price=np.where(kind == KIND_ID["trade_print"], px, np.nan))
    return EventArrays(**col)


def test_intensity_recovers_a_known_exponential():
    """20,000 prints over 1,000 s at Exp(kappa = 0.8 / bps) depths: A = 20 per s and kappa = 0.8 within
    5% (the rate at depth d is A e^{-kappa d} exactly in expectation)."""
    rng = np.random.default_rng(0)
    n = 20_000
    t = np.sort(rng.uniform(0, 1000, n))
    a = _tape(rng.exponential(1 / 0.8, n), rng.choice([-1.0, 1.0], n), t, np.full(n, 100.0))
    fit = fit_intensity([a])
    assert fit.kappa_per_bps == pytest.approx(0.8, rel=0.05)
    assert fit.fill_intensity_per_s == pytest.approx(n / (t[-1] - t[0]), rel=0.05)
    assert fit.prints == n and fit.used.sum() >= 3


def test_intensity_refuses_a_tape_too_thin():
    a = _tape(np.array([0.1, 0.2]), np.array([1.0, -1.0]), np.array([0.0, 1.0]), np.full(2, 100.0))
    with pytest.raises(ValueError, match="too few prints"):
        fit_intensity([a])


def test_maker_adverse_selection_by_hand():
    """A buy at t = 0 with the mid 100 then 100.01 at t = 1 s: the maker who sold lost +1 bps at 1 s; a
    sell at t = 1 with the mid 100.01 then 100.02 at t = 2 s: the taker lost, AS -0.99990 bps; the
    print at t = 2 has no horizon left."""
    t = np.array([0.0, 1.0, 2.0])
    a = _tape(np.zeros(3), np.array([1.0, -1.0, 1.0]), t, np.array([100.0, 100.01, 100.02]))
    as_bps = print_adverse_selection_bps([a], 1.0)
    np.testing.assert_allclose(as_bps, [1.0, -(100.02 / 100.01 - 1) * 1e4], rtol=1e-9)


def test_session_defaults_read_the_tape():
    """The defaults on the spot recording quote with its own intensity and AS, not the spec's HYPE
    figures (kappa 0.2 per bps, A 1 per s, AS 20 bps)."""
    from bayesmm.calibration.venue import session_config
    from bayesmm.events import ingest, to_arrays
    from tests.conftest import SPOT

    s = ingest(SPOT)[0]
    cfg = session_config(s)
    fit = fit_intensity([to_arrays(s)])
    assert float(cfg.quoter.kappa_per_bps) == fit.kappa_per_bps != 0.2
    assert float(cfg.quoter.fill_intensity_per_s) == fit.fill_intensity_per_s
    as_bps = print_adverse_selection_bps([to_arrays(s)], s.meta.as_horizon_s)
    assert float(cfg.toxicity.as_prior_bps) == pytest.approx(max(np.mean(as_bps), 0.0), abs=1e-12)
