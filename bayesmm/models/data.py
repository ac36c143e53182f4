"""A session as the arrays each offline model needs: per-bin returns and fill statistics, and the
per-fill sides and adverse selections. The bin width is a choice (1 s by default)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from bayesmm.events.features import to_arrays
from bayesmm.events.kinds import ADVERSE_SELECTION, OWN_FILL, TRADE_PRINT
from bayesmm.events.session import Session


class Binned(NamedTuple):
    """Per bin (a pytree of equal-length float arrays):
    ret_bps (mid return over the bin), dt_s (bin width), n_buy / n_sell (own buy / sell fills),
    n_fills, mean_as_bps (mean AS of the fills that start in the bin, 0 if none), has_as (1 if any),
    start (1 at the first bin of each session: the models restart their latent paths there, so
    several sessions are fitted jointly - the same parameters, separate paths - not as one
    stretch of market time), imbalance (top-of-book imbalance at the bin's end, the level the
    online filter reads), cv_ret_bps (the other venues' mid returns summed over the bin, 0 if none)."""

    ret_bps: np.ndarray
    dt_s: np.ndarray
    n_buy: np.ndarray
    n_sell: np.ndarray
    n_fills: np.ndarray
    mean_as_bps: np.ndarray
    has_as: np.ndarray
    start: np.ndarray
    imbalance: np.ndarray
    cv_ret_bps: np.ndarray


class FillData(NamedTuple):
    """Per own fill with a measured AS: bin index, side (+1 our buy), as_bps; and from_tape (the
    public tape's prints stood in for own fills)."""

    bin_index: np.ndarray
    side: np.ndarray
    as_bps: np.ndarray
    from_tape: bool


def _per_bin(t_s: np.ndarray, values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Sum of `values` over the events in each bin (edges[i], edges[i + 1]] (the bins' returns span
    the same intervals); events outside every bin are left out."""
    idx = np.searchsorted(edges, t_s, side="left") - 1
    inside = (idx >= 0) & (idx < len(edges) - 1)
    return np.bincount(idx[inside], weights=values[inside], minlength=len(edges) - 1)


def bin_session(session: Session, bin_s: float = 1.0, fills: str = "auto") -> tuple[Binned, FillData]:
    """Bin the session's valid span into `bin_s` bins; pair each own fill with its AS event.

    fills: "own" (own_fill / adverse_selection events), "tape" (every public trade print taken as a
    fill of its passive side - the fills a quote at the touch would have got - with its AS measured
    from the recorded mids `as_horizon_s` later), or "auto" (own fills if the session has any).
    """
    if fills not in ("auto", "own", "tape"):
        raise ValueError(f"fills must be 'auto', 'own' or 'tape', got {fills!r}")
    if not bin_s > 0:
        raise ValueError(f"bin_s must be > 0, got {bin_s!r}")
    a = to_arrays(session)
    ok = a.valid > 0
    if not ok.any():
        raise ValueError("the session has no mid: nothing to bin")
    t0 = a.t_s[ok][0]
    n = int(np.floor((a.t_s[-1] - t0) / bin_s))
    if n < 2:
        raise ValueError(f"session shorter than two bins of {bin_s} s")
    edges = t0 + bin_s * np.arange(n + 1)
    last = np.searchsorted(a.t_s, edges, side="right") - 1
    mid = a.mid[last]
    ret = (mid[1:] / mid[:-1] - 1.0) * 1e4
    use_tape = fills == "tape" or (fills == "auto" and not np.any(a.kind == OWN_FILL))
    if use_tape:
        rows = np.flatnonzero((a.kind == TRADE_PRINT) & ok & (a.t_s >= t0))
        side_all = -a.side[rows]  # the passive side: a taker's sell fills a resting bid (a buy)
        later = np.searchsorted(a.t_s, a.t_s[rows] + session.meta.as_horizon_s, side="right") - 1
        measurable = a.t_s[rows] + session.meta.as_horizon_s <= a.t_s[-1]
        m0, m1 = a.mid[rows], a.mid[later]
        as_all = side_all * (m0 - m1) / m0 * 1e4
    else:
        rows = np.flatnonzero(a.kind == OWN_FILL)
        side_all = a.side[rows]
        fill_id = session.column("fill_id")
        adverse = np.flatnonzero(a.kind == ADVERSE_SELECTION)
        as_by_id = dict(zip(fill_id[adverse].tolist(), a.as_bps[adverse].tolist(), strict=True))
        measurable = np.array([int(fill_id[f]) in as_by_id for f in rows], dtype=bool)
        as_all = np.array([as_by_id.get(int(fill_id[f]), 0.0) for f in rows])
    fill_bin = np.clip(np.floor((a.t_s[rows] - t0) / bin_s).astype(int), 0, n - 1)
    n_buy = np.bincount(fill_bin[side_all > 0], minlength=n).astype(float)
    n_sell = np.bincount(fill_bin[side_all < 0], minlength=n).astype(float)
    fb, sides, as_bps = fill_bin[measurable], side_all[measurable], as_all[measurable]
    sums = np.bincount(fb, weights=as_bps, minlength=n)
    counts = np.bincount(fb, minlength=n)
    binned = Binned(ret_bps=ret, dt_s=np.full(n, bin_s), n_buy=n_buy, n_sell=n_sell, n_fills=n_buy + n_sell,
                    mean_as_bps=np.where(counts > 0, sums / np.maximum(counts, 1), 0.0),
                    has_as=(counts > 0).astype(float), start=(np.arange(n) == 0).astype(float),
                    imbalance=a.imbalance[last[1:]], cv_ret_bps=_per_bin(a.t_s, a.cv_ret_bps, edges))
    return binned, FillData(bin_index=fb.astype(np.int32), side=sides.astype(float), as_bps=as_bps,
                            from_tape=bool(use_tape))


def bin_sessions(sessions, bin_s: float = 1.0, fills: str = "auto") -> tuple[Binned, FillData]:
    """`bin_session` of each segment of each session (`Session.segments`: recording gaps cut a
    session), concatenated, with `start` marking where each one begins and fill bin indices
    shifted to match: no bin spans a gap, each segment gets its own latent path. Sessions must be
    of one instrument (checked by the caller that opened them); `fills` is resolved per segment
    ("auto": own fills where present)."""
    sessions = [piece for s in sessions for piece in s.segment_pieces()]
    if not sessions:
        raise ValueError("no sessions to bin")
    parts = [bin_session(s, bin_s, fills) for s in sessions]
    offsets = np.cumsum([0] + [len(b.ret_bps) for b, _ in parts[:-1]])
    binned = Binned(*(np.concatenate(xs) for xs in zip(*(b for b, _ in parts), strict=True)))
    fd = FillData(bin_index=np.concatenate([f.bin_index + o for (_, f), o in zip(parts, offsets, strict=True)]
                                           ).astype(np.int32),
                  side=np.concatenate([f.side for _, f in parts]), as_bps=np.concatenate([f.as_bps for _, f in parts]),
                  from_tape=all(f.from_tape for _, f in parts))
    return binned, fd
