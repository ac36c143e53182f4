"""`bayesmm simulate` (JSON shape, plot) and `bayesmm backtest` on the real Binance session."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bayesmm.cli import main
from bayesmm.sim.backtest import backtest
from bayesmm.sim_cmd import backtest_config


def test_simulate_json_and_plot(tmp_path, capsys):
    """Two quoters in one call: one JSON object each, one plot each, and each the same numbers as
    a run of that quoter alone on the same seeds."""
    from bayesmm.sim.batch import percentiles, run_scenario
    from bayesmm.sim.scenarios import make_scenario

    png = tmp_path / "s_{quoter}.png"
    assert main(["simulate", "hype_selloff", "--quoter", "current_system", "glft", "--seeds", "4",
                 "--json", "--plot", str(png)]) == 0
    both = json.loads(capsys.readouterr().out)
    assert set(both) == {"current_system", "glft"}
    d = both["current_system"]
    for key in ("max_abs_position", "pnl", "reduce_only_fraction", "fills"):
        assert set(d[key]) == {"median", "p10", "p90"}
        assert d[key]["p10"] <= d[key]["median"] <= d[key]["p90"]
    assert d["max_abs_position"]["median"] >= 4.87  # started long 4.87 and never reduces
    assert d["reduce_only_fraction"]["median"] == 0.0
    alone = percentiles(run_scenario(make_scenario("hype_selloff"), "glft", seeds=4)[2])
    assert both["glft"]["pnl"]["median"] == pytest.approx(alone["pnl"]["median"], rel=1e-12)
    for q in both:
        assert (tmp_path / f"s_{q}.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["simulate", "quiet", "--quoter", "bayesian", "glft", "--plot",
                 str(tmp_path / "x.png")]) != 0
    assert "{quoter}" in capsys.readouterr().err


@pytest.mark.parametrize("quoter", ["bayesian", "current_system"])
def test_backtest_real_session(perp_session, quoter, tmp_path):
    """Both quoters run end to end on the real Binance perp session; the books balance: final
    position = bought - sold, and P&L = cash + position x last mid."""
    out, metrics, report = backtest(perp_session[0], backtest_config(perp_session[0], quoter))
    assert report["trades"] == 21_313 and report["steps"] > 3000
    pos = np.asarray(out.position)
    assert pos[-1] == pytest.approx(float(np.sum(out.bid_fill_qty) - np.sum(out.ask_fill_qty)), abs=1e-12)
    assert float(out.equity[-1]) == pytest.approx(float(out.cash[-1] + pos[-1] * out.mid_px[-1]), abs=1e-9)
    assert metrics["fills"] > 0 and np.isfinite(metrics["pnl"])
    if quoter == "current_system":
        # quotes sit 7.02 bps from the mid when placed; the mid moves between 3 s cycles
        np.testing.assert_allclose(np.nanmedian(np.asarray(out.bid_depth_bps)), 7.02, atol=0.5)


def test_backtest_cli(tmp_path, capsys):
    from tests.conftest import PERP

    session = tmp_path / "perp.parquet"
    assert main(["ingest", str(PERP), "--quiet", "--out", str(session)]) == 0
    capsys.readouterr()
    png = tmp_path / "b.png"
    assert main(["backtest", str(session), "--quoter", "glft", "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "21,313 prints" in out and png.exists()
    assert "not read by the belief" in out  # a busy tape: prints beyond the per-step slots are counted, not dropped
    assert main(["backtest", str(session), "--quoter", "bayesian", "--json"]) == 0

    def no_nan(name):
        raise AssertionError(f"not strict JSON: {name}")

    d = json.loads(capsys.readouterr().out, parse_constant=no_nan)
    assert 0 < d["unfed_print_events"] < 21_313
    assert d["fills_bid"] > 0 and d["fills_ask"] > 0  # the Bayesian quoter fills on both sides of the real perp
    # strict JSON: an undefined metric is null with its reason (no opening position was ever halved)
    assert d["time_to_halve_s"] is None and "never halved" in d["undefined"]["time_to_halve_s"]
    # the markout table counts one fill per step and side; the metrics one per filling taker
    assert 0 < d["markout"]["both"]["fills"] <= d["fills_bid"] + d["fills_ask"]

    # several presets on the same tape, every fill written; the report's markout section reads them back
    fills = tmp_path / "fills.parquet"
    assert main(["backtest", str(session), "--quoter", "glft", "current_system", "--fills", str(fills)]) == 0
    out = capsys.readouterr().out
    assert "markout per fill" in out and out.count("current_system") >= 2
    import pyarrow.parquet as pq

    table = pq.read_table(fills)
    assert set(table.column("quoter").to_pylist()) <= {"glft", "current_system"} and table.num_rows > 0
    t, px, side = (table.column(k).to_numpy() for k in ("t_s", "price", "side"))
    from bayesmm.events import read_session, to_arrays

    a = to_arrays(read_session(session))  # the session's own book: the 5 s markout recomputed from it
    i = np.searchsorted(a.t_s, t + 5.0, side="right") - 1
    ok = np.isfinite(table.column("markout_5s_bps").to_numpy())
    recomputed = side * (px - a.mid[i]) / px * 1e4
    assert np.nanmedian(np.abs(recomputed[ok] - table.column("markout_5s_bps").to_numpy()[ok])) < 0.5  # 0.1 s grid
    from bayesmm.calibration.report import _markout_section

    html = "".join(_markout_section(fills))
    assert "Markout per fill" in html and "current_system" in html



def test_the_cli_offers_every_quoter_preset():
    """`--quoter`'s choices are the quoter's presets (listed in the CLI so that parsing needs no JAX)."""
    from bayesmm.online.quoter import PRESETS
    from bayesmm.sim_cmd import QUOTER_CHOICES

    assert sorted(QUOTER_CHOICES) == sorted(PRESETS)
