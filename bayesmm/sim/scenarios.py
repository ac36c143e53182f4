"""Named scenarios: a market, our starting position, a duration and forced sweeps.

- `hype_selloff`: the spec's incident - HYPE near $28.4, a ~5% selloff (trending_down at 3.5 bps/s
  for 150 s), we start long +4.87, informed flow makes fills toxic (AS ~ 3.5 x 5 s ~ 18 bps), and a
  6-fill sweep of our bid in 0.6 s at t = 20 s; 3 s quote cycle.
- `quiet`: mean-reverting, uninformed flow only, flat start.

Every scenario's market defines all four regimes as a market would have them (so the matched
filter knows what a trend looks like); a scenario chooses where it starts and how sticky it is.
The old system's position limit did not bind in the incident, so `max_position` is 25 units.
- `whipsaw`: trending up and down, switching every ~30 s.
- `vol_spike`: mean-reverting with excursions into the volatile regime.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from bayesmm.online.params import Config, OrderParams, QuoterParams, default_config, replace
from bayesmm.online.quoter import PRESETS, preset
from bayesmm.sim.exchange import ExchangeParams, exchange_params
from bayesmm.sim.market import MarketParams, market_params
from bayesmm.sim.run import LoopParams
from bayesmm.sim.truth import matched_config


class Scenario(NamedTuple):
    """Attributes: name; market; exchange; initial_position (units); duration_s; sweep_sells (per-step
    counts of forced sweeping takers); config_overrides ({group: {field: value}} of the bot's
    `Config` for every quoter: the venue's grid, sizes)."""

    name: str
    market: MarketParams
    exchange: ExchangeParams
    initial_position: float
    duration_s: float
    sweep_sells: np.ndarray
    config_overrides: dict

    @property
    def num_steps(self) -> int:
        return int(round(self.duration_s / float(self.market.dt_s)))


def _sweeps(num_steps: int, at_s: float, count: int, dt_s: float) -> np.ndarray:
    s = np.zeros(num_steps)
    start = int(round(at_s / dt_s))
    s[start:start + count] = 1.0
    return s


def _two_trend_generator(rate: float) -> np.ndarray:
    q = np.zeros((4, 4))
    q[0, 1] = q[1, 0] = rate
    q[0, 0] = q[1, 1] = -rate
    return q


def make_scenario(name: str) -> Scenario:
    """The named scenario (see the module docstring)."""
    ex = exchange_params()
    # the instrument's grid and every quantity in its units (a configuration made for another
    # instrument - a BTC calibration - keeps only its unit-free values here: sizes of 0.001 BTC
    # would reduce a 4.87 HYPE position by 0.001 per fill)
    sizes = {f: QuoterParams._field_defaults[f] for f in ("min_viable_size_qty", "max_reduce_size_qty")}
    hype = {"venue": dict(tick_size_px=0.001, max_sig_figs=5.0, price_decimals=4.0, sz_decimals=2.0, maker_fee_bps=1.5,
                          contract_size=1.0, inverse=0.0),  # a linear perp: a COIN-M config must not settle it inverse
            "quoter": dict(order_size_qty=1.0, max_position_qty=25.0, kappa_per_bps=float(ex.kappa_per_bps),
                           fill_intensity_per_s=1.0, **sizes),
            "orders": dict(size_tolerance_qty=OrderParams._field_defaults["size_tolerance_qty"])}
    if name == "hype_selloff":
        m = market_params(mid0_px=28.4, initial_regime_probs=(1, 0, 0, 0), regime_switch_per_s=1e-4,
                          trend_drift_bps_s=3.5, initial_drift_bps_s=-3.5, informed_rate_per_s=(0.8, 0.8, 0.0, 0.3))
        n = 1500
        return Scenario(name, m, ex, 4.87, n * 0.1, _sweeps(n, 20.0, 6, 0.1), hype)
    if name == "quiet":
        m = market_params(initial_regime_probs=(0, 0, 1, 0), regime_switch_per_s=1e-6, sigma_mu_bps_s_sqrt_s=0.05)
        n = 3000
        return Scenario(name, m, ex, 0.0, n * 0.1, np.zeros(n), hype)
    if name == "whipsaw":
        m = market_params(initial_regime_probs=(0.5, 0.5, 0, 0), regime_rates_per_s=_two_trend_generator(1 / 30),
                          trend_drift_bps_s=2.0)
        n = 3000
        return Scenario(name, m, ex, 0.0, n * 0.1, np.zeros(n), hype)
    if name == "vol_spike":
        q = np.zeros((4, 4))
        q[2, 3], q[3, 2] = 1 / 120, 1 / 40
        q[2, 2], q[3, 3] = -q[2, 3], -q[3, 2]
        m = market_params(initial_regime_probs=(0, 0, 1, 0), regime_rates_per_s=q,
                          vol_level_bps_sqrt_s=(3.0, 3.0, 2.0, 8.0),
                          sigma_mu_bps_s_sqrt_s=0.05)
        n = 3000
        return Scenario(name, m, ex, 0.0, n * 0.1, np.zeros(n), hype)
    raise ValueError(f"unknown scenario {name!r} (choose from {SCENARIOS})")


SCENARIOS = ("hype_selloff", "quiet", "whipsaw", "vol_spike")
QUOTERS = tuple(PRESETS)


def scenario_config(s: Scenario, quoter: str, base: Config | None = None, matched: bool = True,
                    tape: bool = True) -> Config:
    """The bot's configuration in a scenario: `base` (default: the spec's defaults) with the
    scenario's venue and sizes, the online belief matched to the scenario's truth (unless
    `matched` is False: then `base`'s belief is kept, e.g. a calibrated one), and the quoter preset.
    `tape`: the matched belief reads the public tape, as the oracle does and a bot on a venue
    with a public trades feed can (`sim.truth.matched_config`); False: it reads our own fills
    instead, the harder case the survival term is for."""
    cfg = replace(default_config() if base is None else base, **s.config_overrides)
    if matched:
        cfg = matched_config(s.market, s.exchange, base=cfg, tape=tape)
    return preset(quoter, cfg)


def loop_params(s: Scenario, quoter: str, base: Config | None = None, matched: bool = True,
                tape: bool = True) -> LoopParams:
    """LoopParams for a scenario and quoter (`scenario_config`)."""
    return LoopParams(scenario_config(s, quoter, base, matched, tape), s.exchange, jnp.asarray(s.market.taker_size),
                      jnp.asarray(s.initial_position, jnp.float64))
