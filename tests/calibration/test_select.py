"""Per-horizon selection (`calibration.select`): a coin flip at both scales 0, the book kept where it
predicts and the drift belief dropped where it does not, and never worse than a coin flip on the
points it judges."""

from __future__ import annotations

import numpy as np

from bayesmm.calibration import select
from bayesmm.calibration.score import COIN_FLIP_LOG_SCORE, GRID_S
from bayesmm.online.params import HORIZONS_S, default_config, replace

BOOK = replace(default_config(), book=dict(imbalance_weight=(-2.0, -1.0, -0.5, -0.2), ofi_weight=(0.3, 0.3, 0.3, 0.3),
                                           imbalance_var=(0.1, 0.1, 0.1, 0.1), trend_var=(0.2, 0.2, 0.2, 0.2)))


def _points(seed: int, n: int, book_informs: bool) -> list[select.Points]:
    """Per horizon: features drawn uniformly, outcomes drawn with P(fall) = sigmoid(-2 x imbalance) at
    the 1 s horizon when the book informs (a coin flip otherwise, and at every other horizon), and a
    drift belief's log-odds that is pure noise."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(len(HORIZONS_S)):
        x = rng.uniform(-1, 1, (n, 4))
        p = 1 / (1 + np.exp(2.0 * x[:, 0])) if (book_informs and k == 0) else np.full(n, 0.5)
        down = (rng.uniform(size=n) < p).astype(float)
        out.append(select.Points({"r": rng.normal(0, 2, n)}, x, down))
    return out


def test_both_scales_zero_is_a_coin_flip():
    """scaled_book(cfg, 0, 0) sets every weight and variance to 0: every forecast is exactly 1/2."""
    from bayesmm.online.book import horizon_log_odds

    cfg = select.scaled_book(BOOK, 0.0, 0.0)
    z = np.asarray(horizon_log_odds(np.array([3.0, -5.0]), np.array([[0.9, -0.2, 0.5, 1.0], [-1.0, 1, 1, 1]]), cfg))
    assert np.all(z == 0.0)


def test_the_book_is_kept_where_it_predicts_and_the_noise_is_dropped():
    """With outcomes that follow the imbalance at 1 s only and a drift belief of pure noise, 2,000
    held-out points per horizon in each of two folds: at 1 s the book is kept (scale > 0) and the
    belief dropped; at the other horizons both are dropped (nothing predicts: a coin flip, scale 0
    for both, the ties going to the smaller scales); every choice at least a coin flip's score."""
    folds = [_points(1, 2000, True), _points(2, 2000, True)]
    choices = select.choose(folds, [BOOK, BOOK], "r", list(range(len(HORIZONS_S))))
    assert choices[0].book_scale >= 0.5 and choices[0].belief_scale == 0.0
    assert choices[0].log_score > COIN_FLIP_LOG_SCORE + 0.1
    for c in choices[1:]:
        assert c.belief_scale == 0.0
        assert c.log_score >= COIN_FLIP_LOG_SCORE - 1e-12
    cfg = select.apply(default_config(), BOOK, choices, list(range(len(HORIZONS_S))))
    assert float(np.asarray(cfg.book.imbalance_weight)[0]) < 0 and np.all(np.asarray(cfg.book.belief_weight) == 0)


def test_nothing_predicts_nothing_is_kept():
    """Outcomes independent of everything: the selection's held-out gain is at most what chance gives
    a 98-way choice on 2 x 2,000 points (a few thousandths), and the exported forecast is near 1/2."""
    folds = [_points(3, 2000, False), _points(4, 2000, False)]
    choices = select.choose(folds, [BOOK, BOOK], "r", list(range(len(HORIZONS_S))))
    assert all(c.log_score >= COIN_FLIP_LOG_SCORE - 1e-12 for c in choices)
    assert select.mean_gain(choices) < 0.005


def test_a_gain_within_its_noise_is_not_kept():
    """A weak effect (P(fall) = sigmoid(-0.3 x imbalance)) at the 30 s horizon on 2 x 300 s of the
    scoring grid (`GRID_S` apart) - twenty independent 30 s windows: its held-out gain is below one
    standard error, and the horizon says 1/2; the strong 1 s effect of the same folds is kept."""
    rng = np.random.default_rng(7)
    n = int(round(300 / GRID_S))

    def fold():
        out = []
        for k in range(len(HORIZONS_S)):
            x = rng.uniform(-1, 1, (n, 4))
            w = -2.0 if k == 0 else (-0.3 if k == 2 else 0.0)
            down = (rng.uniform(size=n) < 1 / (1 + np.exp(-w * x[:, 0]))).astype(float)
            out.append(select.Points({"r": np.zeros(n)}, x, down))
        return out

    choices = select.choose([fold(), fold()], [BOOK, BOOK], "r", list(range(len(HORIZONS_S))), HORIZONS_S)
    assert choices[0].book_scale > 0
    assert choices[2].book_scale == 0.0 and choices[2].belief_scale == 0.0
