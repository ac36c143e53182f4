"""Binance perp and spot ingestion, checked against the raw recording parsed independently."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import PERP, SPOT, raw_messages


@pytest.fixture(scope="module")
def perp_raw():
    return raw_messages(PERP)


def test_perp_counts_match_raw_file(perp_session, perp_raw):
    """21,313 trades and one book_update per bookTicker message, counted from the raw lines."""
    session, _ = perp_session
    streams = [m.get("stream", "") for _, m in perp_raw]
    n_ticker = sum(s.endswith("@bookTicker") for s in streams)
    n_trade = sum(s.endswith("@trade") for s in streams)
    counts = session.counts()
    assert n_trade == 21_313
    assert counts["trade_print"] == n_trade
    assert counts["book_update"] == n_ticker == 66_089
    assert counts["own_fill"] == counts["adverse_selection"] == counts["cv_tick"] == 0


def test_perp_span(perp_session, perp_raw):
    """The span runs from the first to the last event-producing line (bookTicker or trade; depth
    lines only feed the book), by receive time (README: ~345 s)."""
    session, _ = perp_session
    ts = [t for t, m in perp_raw if m.get("stream", "").endswith(("@bookTicker", "@trade"))]
    assert session.span_s() == pytest.approx((max(ts) - min(ts)) / 1e9, abs=1e-9)
    assert 340 < session.span_s() < 350


def test_perp_mids_and_sides_match_raw(perp_session, perp_raw):
    """Each mid_tick is (bid+ask)/2 of a bookTicker, emitted exactly when it changes; trade sides follow `m`."""
    session, _ = perp_session
    expected_mids, last = [], None
    expected_sides = []
    for _, m in perp_raw:
        s = m.get("stream", "")
        if s.endswith("@bookTicker"):
            mid = (float(m["data"]["b"]) + float(m["data"]["a"])) / 2
            if mid != last:
                expected_mids.append(mid)
                last = mid
        elif s.endswith("@trade"):
            expected_sides.append(-1 if m["data"]["m"] else 1)
    kind = session.column("kind").astype(str)
    np.testing.assert_array_equal(session.column("price")[kind == "mid_tick"], expected_mids)
    np.testing.assert_array_equal(session.column("side")[kind == "trade_print"], expected_sides)


def test_perp_book_imbalance_from_depth(perp_session):
    """Imbalance is NaN until the depth snapshot arrives, then always in [-1, 1]; the snapshot is counted."""
    session, report = perp_session
    kind = session.column("kind").astype(str)
    imb = session.column("imbalance")[kind == "book_update"]
    known = np.isfinite(imb)
    assert known.mean() > 0.99
    assert np.all(np.abs(imb[known]) <= 1)
    first_known = np.argmax(known)
    assert known[first_known:].all()  # once synchronised, always known
    assert report.counts["depth_snapshots"] == 1
    assert session.meta.tick_size == pytest.approx(0.1)


def test_spot_as_cross_venue(tmp_path):
    """Spot mids become cv_tick events with the spot venue name, one per spot mid change."""
    from bayesmm.events import ingest

    session, _ = ingest(PERP, cross_venue=SPOT)
    spot_only, _ = ingest(SPOT)
    kind = session.column("kind").astype(str)
    assert (kind == "cv_tick").sum() == spot_only.counts()["mid_tick"]
    assert set(session.column("venue")[kind == "cv_tick"]) == {"binance-spot"}
    assert spot_only.meta.venue == "binance-spot" and session.meta.venue == "binance-usdm"
    np.testing.assert_array_equal(session.column("price")[kind == "cv_tick"],
                                  spot_only.column("price")[spot_only.column("kind").astype(str) == "mid_tick"])
