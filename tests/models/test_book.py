"""The book model (`models.book`): its data equal what the online filter holds, it recovers known
weights from outcomes simulated at real feature points, and the filter derived from its fit gives
its posterior predictive at the training instants."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from bayesmm.calibration.derive import book_config
from bayesmm.events import ingest, to_arrays
from bayesmm.events.features import touch_ofi
from bayesmm.models.book import (
    book_data,
    book_features,
    book_model,
    fit_kwargs,
    new_session_moments,
    predictive_new_session,
    simulate_book,
)
from bayesmm.models.fit import fit, flat_draws
from bayesmm.online.belief import init
from bayesmm.online.book import features as filter_features
from bayesmm.online.fused import scan_states
from bayesmm.online.params import HORIZONS_S, default_config, replace
from bayesmm.online.replay import as_events, run
from tests.conftest import SPOT


@pytest.fixture(scope="module")
def spot_arrays():
    session, _ = ingest(SPOT)
    return to_arrays(session)


def test_touch_ofi_by_hand_and_in_the_mirror():
    """Cont, Kukanov & Stoikov's increments e = q_b [Pb >= Pb'] - q_b' [Pb <= Pb'] - q_a [Pa <= Pa'] +
    q_a' [Pa >= Pa'] (primes: the previous book), worked by hand: (1) the bid queue grows 5 -> 7 at the
    same prices: e = 7 - 5 - 5 + 5 = +2, over the sizes 7 + 5 + 5 + 5 = 22; (2) the ask improves to
    100.5 with 3: e = 7 - 7 - 3 + 0 = -3, over 7 + 3 + 7 + 5 = 22. The mirror (bid <-> ask, prices
    reflected about 100) negates each."""
    bid_px = np.array([99.0, 99.0, 99.0])
    ask_px = np.array([101.0, 101.0, 100.5])
    bid_sz = np.array([5.0, 7.0, 7.0])
    ask_sz = np.array([5.0, 5.0, 3.0])
    first = np.array([True, False, False])
    got = touch_ofi(bid_px, ask_px, bid_sz, ask_sz, first)
    np.testing.assert_allclose(got, [0.0, 2.0 / 22.0, -3.0 / 22.0], atol=1e-15)
    mirrored = touch_ofi(200.0 - ask_px, 200.0 - bid_px, ask_sz, bid_sz, first)
    np.testing.assert_allclose(mirrored, -got, atol=1e-15)


def test_model_features_equal_the_filters_state(spot_arrays):
    """The model's data (`book_features`: the filter's event terms, the flows by the replay's
    associative scan, the imbalance held between books) equal the features the filter's sequential
    scan holds after every event of the real spot session (its state through `online.book.features`),
    to 1e-9: the weights fitted on the one are read against the other."""
    cfg = replace(default_config(), book=dict(flow_window_s=3.0))
    a = spot_arrays
    _, states = scan_states(init(cfg), as_events(a, np.float64), cfg)
    got = np.asarray(jax.vmap(filter_features)(states.imbalance, states.book_flow))
    want = book_features(a, 3.0)
    np.testing.assert_allclose(got, want, atol=1e-9)
    assert np.all(np.abs(want) <= 1.0) and np.ptp(want[:, 1:], axis=0).min() > 1.0  # bounded, and they move


def _fit(data, seed=0):
    return fit(book_model, fit_kwargs(data), method="nuts", draws=400, warmup=400, chains=2, seed=seed,
               progress=False)


def test_recovers_known_weights_at_real_feature_points(spot_arrays):
    """Outcomes drawn from the model with known weights (a strong imbalance effect fading with the
    horizon, smaller flow effects of both signs), block deviations and trends, at the real spot
    session's feature points: each true population weight lies in its 90% interval for at least 13 of
    the 16 (a 90% interval misses 1.6 of 16 on average; 4 or more misses has probability ~7%), and
    every one within 4 posterior sds."""
    data = book_data([spot_arrays])
    truth_w = np.array([[-2.0, -0.5, 0.4, 0.6], [-1.0, -0.3, 0.2, 0.2], [-0.4, 0.0, 0.1, -0.3], [-0.3, 0.0, 0.0, -0.4]])
    truth_tau = np.full((4, 4), 0.2)
    truth_s = np.array([0.2, 0.4, 0.8, 1.0])
    sim = simulate_book(3, data["x"], data["horizon"], data["block"], data["num_blocks"], truth_w, truth_tau, truth_s)
    idata = _fit({**data, "down": sim["down"]}, seed=1)
    w = flat_draws(idata.posterior, "weight")
    lo, hi = np.quantile(w, 0.05, axis=0), np.quantile(w, 0.95, axis=0)
    covered = (lo <= truth_w) & (truth_w <= hi)
    assert covered.sum() >= 13, (covered, w.mean(axis=0))
    z = np.abs(w.mean(axis=0) - truth_w) / w.std(axis=0)
    assert z.max() < 4.0, z


def test_derived_filter_equals_its_model_on_the_training_session(spot_arrays):
    """The derived online filter (`derive.book_config`: the new-session predictive's moments, read by
    the probit approximation in closed form) replayed on the training session gives, at the training
    instants, the model's posterior predictive for a session it has not seen (Monte Carlo over the
    posterior draws and a new block's weights and trend). Tolerance: the probit approximation of a
    logistic-normal mean is within ~0.02 where the variance is small and worst, ~0.05, for variances
    of order 1 at the extreme features; the mean absolute difference is held to 0.01. What the
    filter learns from the session's own outcomes (`online.adapt`) is off here: the model's
    predictive for a new session is the forecast before any of its outcomes is known."""
    data = book_data([spot_arrays])
    idata = _fit(data)
    cfg = book_config(default_config(), idata, [spot_arrays])
    assert np.all(np.asarray(cfg.book.adapt_trend_var) > 0) and np.all(np.asarray(cfg.book.adapt_scale_var) > 0)
    cfg = replace(cfg, book=dict(adapt_trend_var=(0.0,) * 4, adapt_scale_var=(0.0,) * 4))
    p = np.asarray(run(as_events(spot_arrays, np.float64), cfg).p_down_h)
    model = predictive_new_session(data["x"], data["horizon"], flat_draws(idata.posterior, "weight"),
                                   flat_draws(idata.posterior, "block_sd"), flat_draws(idata.posterior, "trend_sd"))
    filt = p[data["row"], data["horizon"]]
    diff = np.abs(filt - model)
    assert diff.mean() < 0.01 and diff.max() < 0.06, (diff.mean(), diff.max())
    assert filt.std() > 0.05  # the belief moves
    m, v, t = new_session_moments(flat_draws(idata.posterior, "weight"), flat_draws(idata.posterior, "block_sd"),
                                  flat_draws(idata.posterior, "trend_sd"))
    assert m[0, 0] < -0.5 and len(t) == len(HORIZONS_S)  # a bid-heavy touch: a fall is less likely
