"""Every venue's tape can be traded: on each recording in data/ every quoter preset keeps a quote in
the book on at least 95% of the backtest's steps; the instrument's contract terms come from the feed
(Binance COIN-M: inverse, 10 USD contracts, whole-contract sizes) and an inverse contract's P&L is
the inverse contract's, settled in the base asset."""

from __future__ import annotations

import numpy as np
import pytest

from bayesmm.calibration.venue import bot_config
from bayesmm.events import ingest
from bayesmm.online.quoter import PRESETS
from bayesmm.sim.backtest import backtest_sets
from bayesmm.sim.batch import stack_params
from bayesmm.sim.feed import feed_path
from tests.conftest import DATA

RECORDINGS = sorted(p.name for p in DATA.glob("*.gz"))


@pytest.fixture(scope="module")
def sessions():
    return {name: ingest(DATA / name)[0] for name in RECORDINGS}


def test_contract_terms_from_the_feed(sessions):
    """COIN-M ETHUSD_PERP is labelled binance-coinm, inverse, 10 USD a contract, sized in whole
    contracts; spot, USD-M and Hyperliquid are linear in units of the coin."""
    for name, s in sessions.items():
        coinm = "coinm" in name
        assert (s.meta.venue == "binance-coinm") == coinm, name
        assert s.meta.inverse == coinm and s.meta.contract_size == (10.0 if coinm else 1.0), name
        cfg = bot_config(s, "bayesian")
        assert float(cfg.venue.inverse) == float(coinm) and float(cfg.venue.contract_size) == s.meta.contract_size
        if coinm:
            assert float(cfg.venue.sz_decimals) == 0 and float(cfg.quoter.order_size_qty) >= 1


ALWAYS = "binance-coinm-ethusd-perp-20240809.gz"  # the inverse contract that once quoted nothing


@pytest.mark.parametrize("name", [n if n == ALWAYS else pytest.param(n, marks=pytest.mark.slow) for n in RECORDINGS])
def test_every_preset_quotes_on_every_recording(sessions, name):
    """Each preset has a live order on >= 95% of the steps (the first quote needs the entry latency).
    Each recording's loop compiles anew (its own number of steps), so all but one are slow tests."""
    s = sessions[name]
    path, _ = feed_path(s, 0.1)
    quoters = sorted(PRESETS)
    m = backtest_sets(path, stack_params([bot_config(s, q) for q in quoters]))
    for i, q in enumerate(quoters):
        assert m["quoted_fraction"][i] >= 0.95, (q, m["quoted_fraction"][i])
        assert np.isfinite(m["pnl"][i]), q


def test_inverse_accounting(sessions):
    """The glft preset on COIN-M ETH 0809: the P&L equals sum over fills of side x qty x 10 x (1/px -
    1/mid_T), less the fee of fee_bps x qty x 10 / px, in ETH (written from the fills, independently of
    the loop's cash)."""
    from bayesmm.sim.backtest import backtest

    s = sessions["binance-coinm-ethusd-perp-20240809.gz"]
    cfg = bot_config(s, "glft")
    out, metrics, _ = backtest(s, cfg)
    o = {k: np.asarray(v) for k, v in out._asdict().items()}
    mid_t, fee = o["mid_px"][-1], float(cfg.venue.maker_fee_bps) / 1e4
    pnl = 0.0
    for side, name in ((1.0, "bid"), (-1.0, "ask")):
        i = o[f"{name}_fill_qty"] > 0
        qty, px = o[f"{name}_fill_qty"][i], o[f"{name}_fill_value"][i] / o[f"{name}_fill_qty"][i]
        pnl += np.sum(side * qty * 10.0 * (1 / px - 1 / mid_t) - fee * qty * 10.0 / px)
    assert metrics["fills"] > 0
    assert metrics["pnl"] == pytest.approx(pnl, abs=1e-12)
    assert abs(metrics["pnl"]) < 1e-2  # ETH: a few contracts of 10 USD move thousandths, not dollars


def test_a_scenario_keeps_its_own_instrument(sessions):
    """A config calibrated on the inverse COIN-M contract, run in the HYPE scenario, trades HYPE: a
    linear perp in units of the coin, with the scenario's fill intensity."""
    from bayesmm.sim.scenarios import make_scenario, scenario_config

    coinm = bot_config(sessions["binance-coinm-ethusd-perp-20240809.gz"], "bayesian")
    assert float(coinm.venue.inverse) == 1.0
    cfg = scenario_config(make_scenario("hype_selloff"), "bayesian", coinm, matched=False)
    assert float(cfg.venue.inverse) == 0.0 and float(cfg.venue.contract_size) == 1.0
    assert float(cfg.quoter.kappa_per_bps) == 0.2 and float(cfg.quoter.fill_intensity_per_s) == 1.0
