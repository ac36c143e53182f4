"""The tune route on a stream whose predictability is known: the book imbalance announces the next
mid move with probability 0.8, so the optimal weight is positive, its bootstrap interval excludes 0,
and the tuned filter beats a coin flip on a later stream it never saw."""

from __future__ import annotations

import numpy as np

from bayesmm.calibration.calibrate import _scores
from bayesmm.calibration.score import COIN_FLIP_LOG_SCORE
from bayesmm.calibration.tune import TUNABLE, tune
from bayesmm.events.features import EventArrays
from bayesmm.events.kinds import KIND_ID
from bayesmm.online.params import default_config


def _stream(seed: int, seconds: int = 400) -> EventArrays:
    """A book update at every whole second with imbalance +-0.6, and 0.9 s later a 1 bps mid tick in
    the imbalance's direction with probability 0.8 (else against it). The first event is at 0.5 s,
    so the 1 s scoring grid falls half-way through each holding of an imbalance (the filter reads
    imbalance as evidence per second held)."""
    rng = np.random.default_rng(seed)
    rows = [("book_update", 0.5, 0.0, 0.0)]
    for k in range(1, seconds):
        imb = rng.choice([-0.6, 0.6])
        move = np.sign(imb) * (1 if rng.uniform() < 0.8 else -1)
        rows += [("book_update", float(k), imb, 0.0), ("mid_tick", k + 0.9, imb, move)]
    n = len(rows)
    col = {f: np.zeros(n) for f in EventArrays._fields}
    mid, prev_t = 100.0, 0.0
    for i, (kind, t, imb, move) in enumerate(rows):
        col["t_s"][i], col["dt_s"][i], col["kind"][i], col["valid"][i] = t, t - prev_t, KIND_ID[kind], 1.0
        col["imbalance"][i], col["spread_bps"][i] = imb, 1.0
        if kind == "mid_tick":
            mid *= 1 + move / 1e4
            col["ret_bps"][i], col["ret_dt_s"][i] = move, 1.0
        col["mid"][i] = mid
        prev_t = t
    col["kind"] = col["kind"].astype(np.int32)
    return EventArrays(**col)


def test_tune_finds_the_imbalance_signal_and_it_holds_out_of_sample():
    tunables = tuple(t for t in TUNABLE if t.field in ("lambda_imbalance", "theta_decay_per_s",
                                                       "return_weight"))
    cfg, res = tune(default_config(), [_stream(0)], horizons_s=(0.75,), tunables=tunables, num_bootstrap=500)
    lam = res.values["evidence.lambda_imbalance"]
    lo, hi = res.interval["evidence.lambda_imbalance"]
    # the ideal filter says p = 0.8 for the announced side: log-odds ln 4 at |imbalance| 0.6
    assert lo > 0 and lo <= lam <= hi and lo <= np.log(4) / 0.6 <= hi
    # and scores 0.8 ln 0.8 + 0.2 ln 0.2 = -0.5004 on average (up to sampling: 400 moves)
    best = 0.8 * np.log(0.8) + 0.2 * np.log(0.2)
    assert abs(res.train_log_score - best) < 0.05
    later = _scores(cfg, [_stream(1)], (0.75,))["0.75s"]
    assert later["n"] > 300 and later["log_score"] > COIN_FLIP_LOG_SCORE + 0.1
    assert later["log_score"] > best - 0.05
