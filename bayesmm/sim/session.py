"""A simulated market path as a recorded session: the public feed a recorder would have written
(book updates, mid ticks, the tape; no own fills), so that calibration can run on data whose
generating parameters - and hence best filter parameters (`sim.truth`) - are known.

Per step of the path: a book update (bid/ask at the mid +- half the regime's spread, top-of-book
sizes leaning with the path's imbalance: bid size / ask size = (1 + imbalance) / (1 - imbalance)),
a mid tick when the mid changed, and one trade print per taker (aggressor side, at the touch it
takes, `taker_size` each), all stamped at the end of the step. Prices are not rounded to a tick
grid (the simulated mid moves continuously), so the tick size recorded is nominal.
"""

from __future__ import annotations

import numpy as np

from bayesmm.events.builder import EventBuilder
from bayesmm.events.session import Session, SessionMeta, check_session
from bayesmm.sim.market import MarketParams, MarketPath


def session_from_path(path: MarketPath, market: MarketParams, t0_ns: int = 1_700_000_000_000_000_000,
                      instrument: str = "SIM", fee_bps: float = 1.5, as_horizon_s: float = 5.0) -> Session:
    """The recorded public feed of one simulated path (module docstring)."""
    t = np.asarray(path.t_s, float)
    mid = np.asarray(path.mid_px, float)
    half = mid * np.asarray(path.spread_bps, float) / 2e4
    imb = np.clip(np.asarray(path.imbalance, float), -0.999, 0.999)
    buys = np.asarray(path.taker_buys).astype(int)
    sells = np.asarray(path.taker_sells).astype(int)
    size = float(market.taker_size)
    b = EventBuilder()
    prev = np.nan
    for i in range(len(t)):
        ts = t0_ns + int(round(t[i] * 1e9))
        b.book_update(ts, mid[i] - half[i], mid[i] + half[i], 1.0 + imb[i], 1.0 - imb[i], float(imb[i]), 2.0)
        if mid[i] != prev:
            b.mid_tick(ts, mid[i])
            prev = mid[i]
        for _ in range(buys[i]):
            b.trade_print(ts, mid[i] + half[i], size, 1)
        for _ in range(sells[i]):
            b.trade_print(ts, mid[i] - half[i], size, -1)
    meta = SessionMeta(instrument=instrument, venue="simulated", tick_size=1e-6, fee_bps=fee_bps,
                       as_horizon_s=as_horizon_s, sources=(), repairs={})
    session = Session(b.table(), meta)
    check_session(session)
    return session
