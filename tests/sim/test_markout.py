"""Markout per fill (`sim.markout`) against figures worked by hand, its mirror image, and the
bootstrap interval against the normal closed form."""

from __future__ import annotations

import numpy as np
import pytest

from bayesmm.sim.markout import bootstrap_mean, fills_table, markouts, summarize_markout
from bayesmm.sim.run import LoopOutput


def _run(mid, bid_px=None, ask_px=None, fair=None, dt_s=0.5):
    """A LoopOutput with the given mid path and one-unit fills at the given prices (NaN: no fill)."""
    n = len(mid)
    z = np.zeros(n)
    cols = {f: z.copy() for f in LoopOutput._fields}
    cols["t_s"] = dt_s * np.arange(1, n + 1)
    cols["mid_px"] = np.asarray(mid, float)
    cols["p_regime"] = np.zeros((n, 4))
    cols["fair_value_bps"] = z.copy() if fair is None else np.asarray(fair, float)
    cols["bid_depth_bps"] = cols["ask_depth_bps"] = np.full(n, 1.0)
    for name, px in (("bid", bid_px), ("ask", ask_px)):
        px = np.full(n, np.nan) if px is None else np.asarray(px, float)
        have = np.isfinite(px)
        cols[f"{name}_fill_qty"] = have * 1.0
        cols[f"{name}_fill_value"] = np.where(have, px, 0.0)
        cols[f"{name}_fill_count"] = have * 1.0
    return LoopOutput(**cols)


def test_markout_by_hand():
    """We buy at 99.99 at t = 0.5 s; the mid is 100 until t = 1 s, then 99.9 from t = 1.5 s: at +1 s
    (t = 1.5) the mid is 99.9, a loss of (99.99 - 99.9) / 99.99 x 1e4 = 9.0009 bps; +5 s is past the
    run's end (t = 5.5 > 5): none. A sale at 100.01 at t = 1 s, the mid 99.9 one second later: a
    gain, -(100.01 - 99.9) / 100.01 x 1e4 = -10.999 bps. Against a fair value 5 bps above the mid:
    the reference is 99.9 x 1.0005."""
    mid = [100.0, 100.0] + [99.9] * 8
    bid = [99.99] + [np.nan] * 9
    ask = [np.nan, 100.01] + [np.nan] * 8
    t = fills_table(_run(mid, bid, ask, fair=np.full(10, 5.0)), "q")
    assert list(t["side"]) == [1.0, -1.0] and list(t["t_s"]) == [0.5, 1.0]
    assert t["markout_1s_bps"][0] == pytest.approx((99.99 - 99.9) / 99.99 * 1e4, rel=1e-12)
    assert t["markout_1s_bps"][1] == pytest.approx(-(100.01 - 99.9) / 100.01 * 1e4, rel=1e-12)
    assert np.isnan(t["markout_5s_bps"]).all()  # 5.5 and 6 s: past the run's last step at 5 s
    assert t["markout_fair_1s_bps"][0] == pytest.approx((99.99 - 99.9 * 1.0005) / 99.99 * 1e4, rel=1e-12)
    s = summarize_markout(t, duration_s=5.0, pnl=1.0)
    assert s["bid"]["fills"] == 1 and s["ask"]["fills"] == 1 and s["fill_rate_per_min"] == pytest.approx(24.0)
    assert s["both"]["markout_1s_bps"]["mean"] == pytest.approx(np.mean(t["markout_1s_bps"]), rel=1e-12)


def test_markout_mirrors():
    """Mirroring the world (prices reflected about 100, buys <-> sells) leaves every markout as it was."""
    rng = np.random.default_rng(3)
    mid = 100 + np.cumsum(rng.normal(0, 0.01, 200))
    px = mid + rng.normal(0, 0.01, 200)
    fill = rng.uniform(size=200) < 0.2
    a = fills_table(_run(mid, np.where(fill, px - 0.005, np.nan)), "q")
    b = fills_table(_run(200 - mid, None, np.where(fill, 200 - px + 0.005, np.nan)), "q")
    for h in ("1s", "5s", "30s"):
        k = f"markout_{h}_bps"
        rel = (200 - a["price"]) / a["price"]  # the mirrored fill's price in units of the original's
        np.testing.assert_allclose(b[k] * rel, a[k], rtol=1e-9, atol=1e-9)


def test_markouts_of_the_path_end():
    """A horizon that reaches exactly the last step counts; one beyond it is NaN."""
    m = markouts([1.0, 1.5], [100.0, 100.0], [1.0, 1.0], np.array([1.0, 2.0]), np.array([100.0, 99.0]),
                 horizons_s=(1.0,))
    assert m["markout_1s_bps"][0] == pytest.approx(100.0) and np.isnan(m["markout_1s_bps"][1])


def test_bootstrap_interval_matches_the_normal_closed_form():
    """For 400 iid N(0, 1) values the 90% interval of the mean is about +-1.645 / sqrt(400) = +-0.082;
    clustered by 40 seeds of 10 values each (independent), about the same."""
    x = np.random.default_rng(0).normal(size=400)
    mean, lo, hi = bootstrap_mean(x)
    assert mean == pytest.approx(x.mean()) and (hi - lo) / 2 == pytest.approx(1.645 * x.std() / 20, rel=0.12)
    _, clo, chi = bootstrap_mean(x, np.repeat(np.arange(40), 10))
    assert (chi - clo) / 2 == pytest.approx(1.645 * x.std() / 20, rel=0.25)
    assert all(np.isnan(v) for v in bootstrap_mean([np.nan]))


def test_difference_interval_and_fills_file(tmp_path):
    """Two groups of 400 N(0, 1) and N(0.5, 1) values: the difference's interval is about +-1.645 x
    sqrt(2 / 400) = +-0.116 around -0.5; a fills file reads back what was written."""
    from bayesmm.sim.markout import bootstrap_difference, quoter_summaries, read_fills, write_fills

    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 1, 400), rng.normal(0.5, 1, 400)
    d, lo, hi = bootstrap_difference(a, b)
    assert d == pytest.approx(a.mean() - b.mean()) and lo < d < hi
    assert (hi - lo) / 2 == pytest.approx(1.645 * np.sqrt(a.var() / 400 + b.var() / 400), rel=0.12)
    t = fills_table(_run([100.0] * 4 + [99.0] * 4, [99.9] + [np.nan] * 7), "q")
    meta = {"duration_s": 3.5, "quoters": {"q": {"pnl": 1.0}}}
    write_fills(tmp_path / "f.parquet", [t], meta)
    cols, back = read_fills(tmp_path / "f.parquet")
    assert back == meta and list(cols["quoter"]) == ["q"]
    s = quoter_summaries(cols, back)["q"]
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"t_s": [1.0]}), tmp_path / "other.parquet")
    with pytest.raises(ValueError, match="not a fills file"):
        read_fills(tmp_path / "other.parquet")
    assert s["bid"]["markout_1s_bps"]["mean"] == pytest.approx((99.9 - 100.0) / 99.9 * 1e4)
