"""A session as a struct of arrays for JAX, with the per-event features the online filters read.

Every array has one entry per event, float64 (cast later to the filter's dtype), NaN-free:
a feature that does not apply to an event is 0 there, and the filter reads it only for the
kinds it belongs to. Times are computed here on the host in float64 (a float32 epoch time
would resolve only minutes), so the filters see small relative times and gaps.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from bayesmm.events.kinds import BOOK_UPDATE, CV_TICK, KIND_ID, KINDS, MID_TICK
from bayesmm.events.session import Session


class EventArrays(NamedTuple):
    """Per-event features (a pytree of equal-length arrays).

    Attributes:
        t_s: seconds since the session's first event.
        dt_s: seconds since the previous event (0 for the first).
        kind: the kind's integer code (`events.kinds`).
        price: the event's price (mid, trade, fill or other venue's mid), quote currency; 0 if none.
        size: trade / fill quantity, base units; 0 if none.
        side: +1 / -1 as in the session (aggressor for trades, ours for fills and AS); 0 if none.
        as_bps: adverse selection of a fill (adverse_selection events), bps; 0 elsewhere.
        mid: the latest mid at this event, quote currency (0 before the first book).
        spread_bps: the latest (ask - bid) / mid, bps (0 before the first book).
        ret_bps: on mid_tick, the mid return since the previous mid_tick, bps; 0 elsewhere.
        ret_dt_s: on mid_tick, seconds since the previous mid_tick; 0 elsewhere.
        imbalance: the latest top-of-book imbalance (bid size - ask size) / (bid size + ask size)
            in [-1, 1] (0 before the first book). Top of book, not the session's top-K depth
            imbalance, because every feed has it from its first message (a Binance depth book
            needs a snapshot, which the 20240809 spot recording lacks): a weight calibrated on
            one recording must mean the same on the next.
        cv_ret_bps: on cv_tick, the other venue's mid return since its previous tick, bps; 0 elsewhere.
        valid: 1 once a mid is known; filters treat events before that as time passing only.
        segment_start: 1 at the first event after a recording gap (`Session.segments`), 0 elsewhere:
            the filters restart there. No return, cross-venue return or dt spans a gap (they are
            0 at a segment's first event and first tick).
        depth_bps: on own_quote, how far our best order on `side` rests from the mid, bps
            (side x (mid - price) / mid; NaN when none rests); 0 elsewhere.
        ofi: on book_update, the order-flow imbalance at the touch since the previous book (Cont,
            Kukanov & Stoikov 2014), as a share of the touch sizes involved, in [-1, 1] (`touch_ofi`);
            0 elsewhere and at a segment's first book.
    """

    t_s: np.ndarray
    dt_s: np.ndarray
    kind: np.ndarray
    price: np.ndarray
    size: np.ndarray
    side: np.ndarray
    as_bps: np.ndarray
    mid: np.ndarray
    spread_bps: np.ndarray
    ret_bps: np.ndarray
    ret_dt_s: np.ndarray
    imbalance: np.ndarray
    cv_ret_bps: np.ndarray
    valid: np.ndarray
    segment_start: np.ndarray
    depth_bps: np.ndarray
    ofi: np.ndarray


def touch_ofi(bid_px, ask_px, bid_sz, ask_sz, first) -> np.ndarray:
    r"""The order-flow imbalance of each book update at the touch (Cont, Kukanov & Stoikov 2014):

        e_n = q^b_n [P^b_n >= P^b_{n-1}] - q^b_{n-1} [P^b_n <= P^b_{n-1}]
              - q^a_n [P^a_n <= P^a_{n-1}] + q^a_{n-1} [P^a_n >= P^a_{n-1}]

    (bids joining or the bid rising: buying pressure; asks joining or the ask falling: selling), divided
    by q^b_n + q^a_n + q^b_{n-1} + q^a_{n-1} so that it lies in [-1, 1] whatever the instrument's size
    unit. Arrays are the book updates in order; `first` marks those with no previous book (0 there).
    Odd in the mirror image: swapping bid and ask (prices reflected) negates it."""
    bid_px, ask_px, bid_sz, ask_sz = (np.asarray(x, float) for x in (bid_px, ask_px, bid_sz, ask_sz))
    n = len(bid_px)
    if n == 0:
        return np.zeros(0)
    pb, pa, qb, qa = (np.r_[x[:1], x[:-1]] for x in (bid_px, ask_px, bid_sz, ask_sz))
    e = (bid_sz * (bid_px >= pb) - qb * (bid_px <= pb) - ask_sz * (ask_px <= pa) + qa * (ask_px >= pa))
    total = bid_sz + ask_sz + qb + qa
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(total > 0, e / total, 0.0)
    out = np.where(np.asarray(first, bool) | ~np.isfinite(out), 0.0, out)
    out[0] = 0.0
    return np.clip(out, -1.0, 1.0)


def _ffill(values: np.ndarray, have: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Forward-fill values at rows where `have`; returns (filled, known-mask)."""
    idx = np.where(have, np.arange(len(values)), -1)
    idx = np.maximum.accumulate(idx) if len(idx) else idx
    known = idx >= 0
    return np.where(known, values[np.maximum(idx, 0)], 0.0), known


def _returns_at(rows: np.ndarray, prices: np.ndarray, t_s: np.ndarray, n: int,
                segment: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """bps return and seconds since the previous entry of `rows`, placed at those rows; 0 where the
    previous entry lies in an earlier segment (no return spans a recording gap)."""
    ret, gap = np.zeros(n), np.zeros(n)
    if len(rows) > 1:
        p = prices[rows]
        same = segment[rows[1:]] == segment[rows[:-1]]
        ret[rows[1:]] = np.where(same, (p[1:] / p[:-1] - 1.0) * 1e4, 0.0)
        gap[rows[1:]] = np.where(same, np.diff(t_s[rows]), 0.0)
    return ret, gap


def kind_codes(kinds) -> np.ndarray:
    """The integer code (`events.kinds`) of each kind name (a column of the session's Arrow table,
    or anything Arrow can read), by Arrow's `index_in` over the kind names in code order: a per-row
    dictionary lookup was a third of `to_arrays` on the bundled perp session, sorting the strings
    (`np.unique`) half of that. A name that is no kind raises, naming it."""
    import pyarrow as pa
    import pyarrow.compute as pc

    codes = pc.index_in(kinds, value_set=pa.array(KINDS))
    if codes.null_count:
        bad = sorted(set(pc.filter(kinds, pc.is_null(codes)).to_pylist()))
        raise ValueError(f"unknown event kind(s) {bad}; the kinds are {list(KINDS)}")
    return codes.to_numpy(zero_copy_only=False).astype(np.int32)


def to_arrays(session: Session) -> EventArrays:
    """The session's events and features as NumPy arrays (see `EventArrays`)."""
    col = session.column
    n = len(session)
    t_ns = col("t_ns")
    t_s = (t_ns - t_ns[0]).astype(np.float64) / 1e9 if n else np.zeros(0)
    dt_s = np.diff(t_s, prepend=t_s[:1]) if n else np.zeros(0)
    seg_start = (dt_s > session.meta.max_gap_s).astype(np.float64)
    kind = kind_codes(session.table.column("kind"))
    price = np.nan_to_num(col("price"))
    bid, ask = col("bid_px"), col("ask_px")
    book = kind == BOOK_UPDATE
    mid_raw = np.where(kind == MID_TICK, price, np.where(book, 0.5 * (bid + ask), np.nan))
    mid, valid = _ffill(np.nan_to_num(mid_raw), np.isfinite(mid_raw))
    with np.errstate(invalid="ignore", divide="ignore"):
        spread_raw = (ask - bid) / (0.5 * (bid + ask)) * 1e4
        tob = (col("bid_sz") - col("ask_sz")) / (col("bid_sz") + col("ask_sz"))
    spread_bps, _ = _ffill(np.nan_to_num(spread_raw), book)
    imbalance, _ = _ffill(np.nan_to_num(tob), book)
    segment = np.cumsum(seg_start)
    ofi = np.zeros(n)
    rows = np.flatnonzero(book & np.isfinite(bid) & np.isfinite(ask) & np.isfinite(col("bid_sz"))
                          & np.isfinite(col("ask_sz")))
    if len(rows):
        first = np.r_[True, segment[rows[1:]] != segment[rows[:-1]]]
        ofi[rows] = touch_ofi(bid[rows], ask[rows], col("bid_sz")[rows], col("ask_sz")[rows], first)
    ret_bps, ret_dt_s = _returns_at(np.flatnonzero(kind == MID_TICK), price, t_s, n, segment)
    cv_ret = np.zeros(n)
    venues = col("venue").astype(str)
    for v in np.unique(venues[kind == CV_TICK]):
        cv_ret += _returns_at(np.flatnonzero((kind == CV_TICK) & (venues == v)), price, t_s, n, segment)[0]
    return EventArrays(
        t_s=t_s, dt_s=dt_s, kind=kind, price=price, size=np.nan_to_num(col("size")),
        side=col("side").astype(np.float64), as_bps=np.nan_to_num(col("as_bps")), mid=mid,
        spread_bps=spread_bps, ret_bps=ret_bps, ret_dt_s=ret_dt_s, imbalance=imbalance,
        cv_ret_bps=cv_ret, valid=valid.astype(np.float64), segment_start=seg_start,
        depth_bps=_quote_depths(kind, col("price"), col("side").astype(np.float64), mid), ofi=ofi,
    )


def _quote_depths(kind: np.ndarray, price: np.ndarray, side: np.ndarray, mid: np.ndarray) -> np.ndarray:
    """depth_bps of own_quote rows (see `EventArrays`); NaN (none rests) also before the first mid."""
    quote = kind == KIND_ID["own_quote"]
    with np.errstate(invalid="ignore", divide="ignore"):
        depth = side * (mid - price) / mid * 1e4
    return np.where(quote, np.where(mid > 0, depth, np.nan), 0.0)
