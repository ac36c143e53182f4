"""What a recorded session says about the venue: the parts of a `Config` that belong to the
instrument rather than to the belief (price grid, size decimals, contract terms, fee, AS horizon), so that
quotes on a real feed are on the right grid and sized for the instrument (a quoter tuned to
HYPE at $28 quotes nothing sensible on BTC at $60,000)."""

from __future__ import annotations

import math

import numpy as np

from bayesmm.events.session import Session
from bayesmm.online.params import Config, default_config, replace


def _decimals(x: float, max_decimals: int = 10) -> int:
    """Fewest decimals that write x exactly (to 1e-9 relative), capped."""
    for d in range(max_decimals + 1):
        if abs(round(x, d) - x) <= 1e-9 * max(abs(x), 1e-12):
            return d
    return max_decimals


def session_overrides(session: Session, base: Config | None = None) -> dict:
    """{group: {field: value}} for the session's instrument: venue grid, contract terms and fee from
    the session's metadata, size decimals from the tape's print sizes, order sizes scaled to the tape
    (one order is about the median print, rounded down to a power of ten; the position limit ten
    orders), with `base`'s risk aversion per unit rescaled so that the risk of one order stays the
    same (gamma is per bps per unit of inventory: 0.01 for 1 HYPE is 1.0 for 0.01 BTC), and the fill
    intensity and a maker's AS from the tape (`_tape_market`). A backtest without a config file so
    reads its own session's tape; a calibrated config carries its training sessions'."""
    base = default_config() if base is None else base
    m = session.meta
    sizes = session.column("size")[session.column("kind") == "trade_print"] if len(session) else np.zeros(0)
    sizes = sizes[np.isfinite(sizes) & (sizes > 0)]
    sz_dec = max((_decimals(float(s), 8) for s in sizes[:5000]), default=2)
    venue = {"tick_size_px": float(m.tick_size), "maker_fee_bps": float(m.fee_bps),
             "price_decimals": float(_decimals(float(m.tick_size))),
             "max_sig_figs": 5.0 if "hyperliquid" in m.venue else 0.0, "sz_decimals": float(sz_dec),
             "contract_size": float(m.contract_size), "inverse": float(m.inverse)}
    out = {"venue": venue, "evidence": {"as_horizon_s": float(m.as_horizon_s)}}
    if len(sizes):
        order = max(10.0 ** math.floor(math.log10(float(np.median(sizes)))), 10.0 ** -sz_dec)
        gamma = float(base.quoter.gamma_per_bps_qty) * float(base.quoter.order_size_qty) / order
        out["quoter"] = {"order_size_qty": order, "max_position_qty": 10 * order, "min_viable_size_qty": order / 10,
                         "max_reduce_size_qty": 10 * order, "gamma_per_bps_qty": gamma}
    return _tape_market(session, out)


def _tape_market(session: Session, out: dict) -> dict:
    """`out` with the quoter's market read from the session's tape (`calibration.tape`): the fill
    intensity A e^{-kappa delta} and the AS a maker suffers at the AS horizon (the toxicity's AS prior,
    floored at 0). A tape too thin to fit (a few seconds of prints) keeps the base's values."""
    from bayesmm.calibration.tape import fit_intensity, print_adverse_selection_bps
    from bayesmm.events.features import to_arrays

    if not len(session):
        return out
    a = to_arrays(session)
    try:
        fit = fit_intensity([a])
    except ValueError:
        return out
    out.setdefault("quoter", {}).update(kappa_per_bps=fit.kappa_per_bps, fill_intensity_per_s=fit.fill_intensity_per_s)
    as_bps = print_adverse_selection_bps([a], float(session.meta.as_horizon_s))
    if len(as_bps):
        out["toxicity"] = {"as_prior_bps": max(float(np.mean(as_bps)), 0.0)}
    return out


def session_config(session: Session, base: Config | None = None) -> Config:
    """`base` (default: the spec's defaults) with the session's venue (`session_overrides`)."""
    base = default_config() if base is None else base
    return replace(base, **session_overrides(session, base))



def bot_config(session: Session, quoter: str, base: Config | None = None) -> Config:
    """The configuration a bot runs on `session`: `base` as given (a config file: its venue is the
    file's), else the spec's defaults on the session's instrument (`session_config`); then the
    quoter preset. What `bayesmm backtest` and the sweep run."""
    from bayesmm.online.quoter import preset

    return preset(quoter, session_config(session) if base is None else base)
