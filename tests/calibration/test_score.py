"""Scoring p_down against the observable target: grid points, forward moves, ties and gaps dropped,
checked against a plain loop; the log score's coin flip and its clipping; `bayesmm score` against
an independent computation from the files it reads."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow.parquet as pq
import pytest

from bayesmm.calibration.score import COIN_FLIP_LOG_SCORE, brier, forward_targets, log_score
from bayesmm.cli import main
from bayesmm.events import read_session, to_arrays
from tests.conftest import HL


def _reference(t, mid, horizon, every, max_gap):
    """Grid points and labels by a plain loop over the definition."""
    out = []
    g = t[0] + every
    while g <= t[-1] - horizon + 1e-9:
        now = max(i for i in range(len(t)) if t[i] <= g)
        later = max(i for i in range(len(t)) if t[i] <= g + horizon)
        silent = any(t[i] - t[i - 1] > max_gap and g < t[i] and t[i - 1] < g + horizon for i in range(1, len(t)))
        if mid[later] != mid[now] and not silent:
            out.append((now, float(mid[later] < mid[now])))
        g += every
    return out


def test_targets_match_a_plain_loop_with_ties_and_a_gap():
    rng = np.random.default_rng(0)
    t = np.concatenate([np.sort(rng.uniform(0, 60, 200)), 200 + np.sort(rng.uniform(0, 60, 200))])
    mid = 100 + np.round(np.cumsum(rng.choice([-1, 0, 0, 1], size=400)) * 0.01, 2)
    for horizon in (1.0, 5.0, 30.0):
        got = forward_targets(t, mid, np.ones(400), horizon, every_s=1.0, max_gap_s=60.0)
        want = _reference(t, mid, horizon, 1.0, 60.0)
        assert list(zip(got.rows.tolist(), got.down.tolist(), strict=True)) == want
        assert len(want) > 10
        assert not np.any((got.t_s < 200) & (got.t_s + horizon > 200))  # no window spans the 140 s gap


def test_log_score_coin_flip_and_clipping():
    down = np.array([1.0, 0.0, 1.0, 1.0])
    assert log_score(np.full(4, 0.5), down) == COIN_FLIP_LOG_SCORE == pytest.approx(math.log(0.5))
    assert log_score(np.array([0.0]), np.array([1.0])) == pytest.approx(math.log(1e-6))
    assert brier(np.full(4, 0.5), down) == 0.25 and brier(down, down) == 0.0
    assert math.isnan(log_score(np.zeros(0), np.zeros(0)))


def test_score_cli_against_the_files(tmp_path, capsys):
    session = tmp_path / "hl.parquet"
    beliefs = tmp_path / "b.parquet"
    assert main(["ingest", str(HL), "--quiet", "--out", str(session)]) == 0
    assert main(["replay", str(session), "--out", str(beliefs)]) == 0
    capsys.readouterr()
    assert main(["score", str(session), str(beliefs), "--horizons", "0.5", "1", "--every-s", "0.1", "--json",
                 "--train", str(session)]) == 0
    out = json.loads(capsys.readouterr().out)
    got = out["belief"]
    a = to_arrays(read_session(session))
    p = pq.read_table(beliefs).column("p_down_1s").to_numpy()  # both horizons read the 1 s forecast (nearest)
    assert set(out["peer"]) == set(got) and all(out["peer"][h]["n"] == got[h]["n"] for h in got)
    for h in (0.5, 1.0):
        pts = _reference(a.t_s, a.mid, h, 0.1, 60.0)
        assert got[f"{h:g}s"]["n"] == len(pts) > 0
        want = np.mean([math.log(p[i]) if y else math.log(1 - p[i]) for i, y in pts])
        assert got[f"{h:g}s"]["log_score"] == pytest.approx(want, abs=1e-12)
    other = tmp_path / "other.parquet"
    pq.write_table(pq.read_table(beliefs).slice(0, 10), other)
    assert main(["score", str(session), str(other)]) == 2
    assert "is not a replay of" in capsys.readouterr().err


def test_coverage_is_counted_apart_where_the_prior_holds_the_interval():
    """`coverage_counts`: intervals the recordings informed (learnt >= the threshold) and the rest
    (prior-bound, or with no prior to compare) counted apart, and all together."""
    from bayesmm.calibration.coverage import coverage_counts

    runs = [{"coverage": {"a": {"covered": True, "learnt": 0.9}, "b": {"covered": False, "learnt": 0.1}}},
            {"coverage": {"a": {"covered": False, "learnt": 0.5}, "b": {"covered": True, "learnt": None}}}]
    c = coverage_counts(runs, informed=0.5)
    assert (c["covered"], c["intervals"]) == (2, 4)
    assert c["informed"] == {"covered": 1, "intervals": 2} and c["prior_bound"] == {"covered": 1, "intervals": 2}
    assert coverage_counts(runs, informed=0.95)["informed"] == {"covered": 0, "intervals": 0}
