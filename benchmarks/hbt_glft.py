"""A GLFT market maker written for the public hftbacktest package (benchmark-only), run on a raw
Binance futures recording: the side-by-side reference for `bench_closed_loop`.

Our own strategy code in hftbacktest's style (its GLFT tutorial's shape): every 100 ms, quote one
level per side at the GLFT closed-form half-spread and inventory skew with fixed kappa and A and a
running volatility estimate, post-only, cancelling and re-placing when the price moves.
Imports hftbacktest and numba, so it needs `requirements-bench.lock`.
"""

from __future__ import annotations

import time

import numpy as np
from hftbacktest import BUY, GTX, LIMIT, BacktestAsset, HashMapMarketDepthBacktest
from hftbacktest.data.utils import binancefutures
from numba import njit


@njit
def glft_strategy(hbt, gamma, kappa, a, order_qty, max_position):
    asset = 0
    tick = hbt.depth(asset).tick_size
    c1 = np.log(1.0 + gamma / kappa) / gamma
    c2 = np.sqrt(gamma / (2.0 * a * kappa) * (1.0 + gamma / kappa) ** (kappa / gamma + 1.0))
    last_mid = np.nan
    var = 1.0
    steps = 0
    while hbt.elapse(100_000_000) == 0:
        steps += 1
        hbt.clear_inactive_orders(asset)
        depth = hbt.depth(asset)
        if not (depth.best_bid > 0 and depth.best_ask > depth.best_bid):
            continue
        mid = (depth.best_bid + depth.best_ask) / 2.0
        if not np.isnan(last_mid):
            r = (mid - last_mid) / tick
            var = 0.99 * var + 0.01 * r * r * 10.0  # ticks^2 per second
        last_mid = mid
        sigma = np.sqrt(var)
        q = hbt.position(asset) / order_qty
        half = c1 + 0.5 * sigma * c2
        skew = sigma * c2
        bid = np.floor((mid - (half + skew * q) * tick) / tick) * tick
        ask = np.ceil((mid + (half - skew * q) * tick) / tick) * tick
        bid = min(bid, depth.best_bid)
        ask = max(ask, depth.best_ask)
        orders = hbt.orders(asset)
        have_bid = False
        have_ask = False
        values = orders.values()
        while values.has_next():
            o = values.get()
            if o.side == BUY:
                if abs(o.price - bid) > 0.5 * tick or hbt.position(asset) >= max_position:
                    if o.cancellable:
                        hbt.cancel(asset, o.order_id, False)
                else:
                    have_bid = True
            else:
                if abs(o.price - ask) > 0.5 * tick or hbt.position(asset) <= -max_position:
                    if o.cancellable:
                        hbt.cancel(asset, o.order_id, False)
                else:
                    have_ask = True
        if not have_bid and hbt.position(asset) < max_position:
            hbt.submit_buy_order(asset, np.uint64(round(bid / tick)), bid, order_qty, GTX, LIMIT, False)
        if not have_ask and hbt.position(asset) > -max_position:
            hbt.submit_sell_order(asset, np.uint64(round(ask / tick)), ask, order_qty, GTX, LIMIT, False)
    return steps


def run_hftbacktest_glft(path: str) -> dict:
    """Convert the recording with hftbacktest's own converter and run the strategy; timed separately."""
    t0 = time.perf_counter()
    data = binancefutures.convert(path, combined_stream=True)
    t_convert = time.perf_counter() - t0

    def build():
        asset = (BacktestAsset().data(data).linear_asset(1.0).constant_order_latency(200_000_000, 200_000_000)
                 .risk_adverse_queue_model().no_partial_fill_exchange().trading_value_fee_model(0.00015, 0.00045)
                 .tick_size(0.1).lot_size(0.001))
        return HashMapMarketDepthBacktest([asset])

    glft_strategy(build(), 0.1, 2.0, 1.0, 0.01, 0.1)  # numba compile
    hbt = build()
    t0 = time.perf_counter()
    steps = glft_strategy(hbt, 0.1, 2.0, 1.0, 0.01, 0.1)
    t_run = time.perf_counter() - t0
    position = hbt.position(0)
    hbt.close()
    return {"convert_s": t_convert, "backtest_s": t_run, "feed_rows": int(len(data)), "steps": int(steps),
            "final_position": float(position)}
