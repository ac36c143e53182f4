"""The peer (`calibration.peer`): its windowed features against a brute-force loop, and its fit
against known coefficients."""

from __future__ import annotations

import numpy as np

from bayesmm.calibration.peer import _fit_logistic, peer_features
from bayesmm.events.features import EventArrays
from bayesmm.events.kinds import KIND_ID


def _arrays(seed: int, n: int = 400) -> EventArrays:
    rng = np.random.default_rng(seed)
    kind = rng.choice([KIND_ID["book_update"], KIND_ID["trade_print"], KIND_ID["mid_tick"]], n).astype(np.int32)
    dt = rng.exponential(0.3, n)
    mid = 100 * np.exp(np.cumsum(rng.normal(0, 1e-4, n)))
    col = {f: np.zeros(n) for f in EventArrays._fields}
    col.update(t_s=np.cumsum(dt), dt_s=dt, kind=kind, side=rng.choice([-1.0, 1.0], n), mid=mid, valid=np.ones(n),
               imbalance=rng.uniform(-1, 1, n), ofi=rng.uniform(-1, 1, n))
    return EventArrays(**col)


def test_windowed_features_equal_a_brute_force_loop():
    """For each event: the OFI and net aggressor side summed over the book updates and prints in
    (t - 5, t], the mid's return since the last event at or before t - 5, in bps (0 while none is)."""
    a = _arrays(0)
    got = peer_features(a, 5.0)
    for i in range(len(a.t_s)):
        inside = (a.t_s > a.t_s[i] - 5.0) & (np.arange(len(a.t_s)) <= i)
        ofi = np.sum(a.ofi[inside & (a.kind == KIND_ID["book_update"])])
        flow = np.sum(a.side[inside & (a.kind == KIND_ID["trade_print"])])
        before = np.flatnonzero(a.t_s <= a.t_s[i] - 5.0)
        j = before[-1] if len(before) else 0
        move = (a.mid[i] / a.mid[j] - 1) * 1e4
        np.testing.assert_allclose(got[i], [a.imbalance[i], ofi, flow, move], atol=1e-9, err_msg=str(i))


def test_logistic_fit_recovers_known_coefficients():
    """20,000 outcomes drawn from sigmoid(0.3 + z . (1.5, -0.8, 0, 0.4)) with standard-normal z: each
    coefficient within 4 standard errors (~0.02-0.03 at this size) of the truth."""
    rng = np.random.default_rng(5)
    z = rng.normal(size=(20000, 4))
    truth = np.array([1.5, -0.8, 0.0, 0.4])
    y = (rng.uniform(size=20000) < 1 / (1 + np.exp(-(0.3 + z @ truth)))).astype(float)
    a, w = _fit_logistic(z, y)
    assert abs(a - 0.3) < 0.1
    np.testing.assert_allclose(w, truth, atol=0.1)


def test_imbalance_alpha_is_the_least_squares_slope():
    """A session whose mid moves 2 bps x the imbalance held at the start of each 1 s window (plus noise
    independent of it) gives alpha ~ 2 (within 4 standard errors); its mirror image (imbalance and
    moves negated, to first order in the move) gives the same alpha."""
    from bayesmm.calibration.peer import imbalance_skew_bps

    rng = np.random.default_rng(1)
    n = 4000  # one event per 0.5 s: the imbalance set at whole seconds, the mid moving at the half
    t = 0.5 * np.arange(1, n + 1)
    imb = np.repeat(rng.uniform(-1, 1, n // 2), 2)
    step = np.where(np.arange(n) % 2 == 1, 2.0 * imb + rng.normal(0, 1.0, n), 0.0)  # bps, applied at t + 0.5
    mid = 100 * np.exp(np.cumsum(np.r_[0.0, step[:-1]]) / 1e4)
    col = {f: np.zeros(n) for f in EventArrays._fields}
    col.update(t_s=t, mid=mid, valid=np.ones(n), imbalance=imb)
    a = EventArrays(**col)
    alpha = imbalance_skew_bps([a], horizon_s=1.0)
    assert abs(alpha - 2.0) < 4 * 1.0 / np.sqrt(np.sum(imb[::2] ** 2))
    mirror = a._replace(mid=1e4 / mid, imbalance=-imb)
    assert abs(imbalance_skew_bps([mirror], horizon_s=1.0) - alpha) < 1e-3
