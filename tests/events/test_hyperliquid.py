"""Hyperliquid WebSocket ingestion and own fills with their adverse selection."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from bayesmm.events import ingest
from tests.conftest import HL, raw_messages


def test_hyperliquid_sample_sides_and_mids():
    """Trade sides ("B" -> +1, "A" -> -1) and mids ((best bid + best ask)/2 of l2Book) match the raw
    file; trades more than 5 s old on arrival (the history a subscription sends: the first trades
    message carries 30 trades up to 49 s old) are dropped and counted, not stamped as a burst."""
    session, report = ingest(HL)
    raw = raw_messages(HL)
    sides, mids, last, backlog = [], [], None, 0
    for ts, m in raw:
        if m["channel"] == "trades":
            fresh = [t for t in m["data"] if ts // 1_000_000 - t["time"] <= 5_000]
            backlog += len(m["data"]) - len(fresh)
            sides += [1 if t["side"] == "B" else -1 for t in fresh]
        elif m["channel"] == "l2Book":
            bids, asks = m["data"]["levels"]
            mid = (float(bids[0]["px"]) + float(asks[0]["px"])) / 2
            if mid != last:
                mids.append(mid)
                last = mid
    kind = session.column("kind").astype(str)
    np.testing.assert_array_equal(session.column("side")[kind == "trade_print"], sides)
    np.testing.assert_array_equal(session.column("price")[kind == "mid_tick"], mids)
    assert session.meta.venue == "hyperliquid" and session.meta.instrument == "BTC"
    assert backlog > 20 and report.counts["trades_backlog_dropped (over 5 s old on arrival)"] == backlog
    assert len(sides) + backlog == sum(len(m["data"]) for _, m in raw if m["channel"] == "trades")


def _l2(coin, bid, ask, bid_sz=1.0, ask_sz=1.0):
    return {"channel": "l2Book", "data": {"coin": coin, "time": 0, "levels": [
        [{"px": str(bid), "sz": str(bid_sz), "n": 1}], [{"px": str(ask), "sz": str(ask_sz), "n": 1}]]}}


def _fill(side, px, tid, time_ms, coin="HYPE"):
    """A fill object in the documented userFills format."""
    return {"coin": coin, "px": str(px), "sz": "0.5", "side": side, "time": time_ms, "startPosition": "0",
            "dir": "Open Long" if side == "B" else "Open Short", "closedPnl": "0.0", "hash": "0x" + "0" * 64,
            "oid": 1000 + tid, "crossed": False, "fee": "0.002", "tid": tid, "feeToken": "USDC"}


@pytest.fixture
def hype_recording(write_recording):
    """HYPE mids 28.40 (t=0..), 28.30 from t=2 s, 28.20 from t=6 s; a WS userFills buy at t=1 s."""
    s = 1_000_000_000
    return write_recording([
        (0, _l2("HYPE", 28.39, 28.41)),
        (1 * s, {"channel": "userFills", "data": {"user": "0xabc", "fills": [_fill("B", 28.39, 7, 1000)]}}),
        (1 * s, {"channel": "userFills", "data": {"isSnapshot": True, "user": "0xabc",
                                                  "fills": [_fill("A", 27.0, 1, 5)]}}),
        (2 * s, _l2("HYPE", 28.29, 28.31)),
        (6 * s, _l2("HYPE", 28.19, 28.21)),
        (20 * s, _l2("HYPE", 28.19, 28.23)),
    ], "hype.txt")


def test_ws_user_fills_and_adverse_selection(hype_recording):
    """Our WS buy fill at t=1 s (mid 28.40) -> AS at t=6 s, mid 28.20: +(28.40-28.20)/28.40*1e4 bps."""
    session, report = ingest(hype_recording, as_horizon_s=5.0)
    kind = session.column("kind").astype(str)
    fills = np.flatnonzero(kind == "own_fill")
    assert len(fills) == 1 and session.column("side")[fills[0]] == 1 and session.column("fill_id")[fills[0]] == 7
    adv = np.flatnonzero(kind == "adverse_selection")
    assert len(adv) == 1
    t = session.column("t_ns")
    assert t[adv[0]] - t[fills[0]] == 5_000_000_000
    assert session.column("as_bps")[adv[0]] == pytest.approx((28.40 - 28.20) / 28.40 * 1e4, rel=1e-12)
    assert session.column("side")[adv[0]] == 1 and session.column("fill_id")[adv[0]] == 7
    assert report.counts["snapshot_fills_skipped"] == 1


def test_fills_json_merge(hype_recording, tmp_path):
    """Fills from the userFills endpoint (JSON list, time in ms): a sell at t=2.5 s (mid 28.30) gains
    when the mid falls to 28.20 -> AS = -(28.30-28.20)/28.30*1e4; a fill near the end is unresolved."""
    path = tmp_path / "fills.json"
    path.write_text(json.dumps([_fill("A", 28.31, 11, 2500), _fill("B", 28.19, 12, 18_000)]))
    session, report = ingest(hype_recording, fills=path, as_horizon_s=5.0)
    kind = session.column("kind").astype(str)
    fid = session.column("fill_id")
    row = np.flatnonzero((kind == "adverse_selection") & (fid == 11))[0]
    assert session.column("side")[row] == -1
    assert session.column("t_ns")[row] == 7_500_000_000
    assert session.column("as_bps")[row] == pytest.approx(-(28.30 - 28.20) / 28.30 * 1e4, rel=1e-12)
    assert report.counts["adverse_selection_unresolved"] == 1  # fill 12: 18 s + 5 s > last mid at 20 s
    assert [s["role"] for s in session.meta.sources] == ["market", "own_fills"]
    # the AS event arrives after the fill, never at it
    for f in (7, 11):
        rows = np.flatnonzero(fid == f)
        assert kind[rows[0]] == "own_fill" and kind[rows[1]] == "adverse_selection"


def test_real_userfills_of_another_day_and_other_coins(tmp_path):
    """The SDK's 500 real fills (2023, 15 coins, no tid/feeToken) with the 2025 BTC recording: none
    belongs to the session, and the report says where every one went (independently counted here)."""
    import json as _json

    from bayesmm.events import ingest
    from tests.conftest import DATA, HL

    path = DATA / "hyperliquid-userfills-2023-sdk.json"
    fills = _json.loads(path.read_text())
    session, report = ingest(HL, fills=path)
    assert session.counts()["own_fill"] == 0
    by_coin = {}
    for f in fills:
        by_coin[f["coin"]] = by_coin.get(f["coin"], 0) + 1
    for coin, n in by_coin.items():
        if coin != "BTC":
            assert report.counts[f"fills_other_coin:{coin}"] == n
    assert report.counts["fills_outside_recording"] == by_coin["BTC"] == 17
    assert sum(v for k, v in report.counts.items() if k.startswith("fills_other_coin:")) == 500 - 17


def test_older_schema_partial_fills_and_repeats(tmp_path, write_recording):
    """Fills without tid are keyed on oid/hash/time/px/sz/startPosition: two partial fills of one
    order at the same price and size stay apart; an exact repeat is dropped and counted; a tid
    repeated with other values is an error naming both entries."""
    import json as _json

    from bayesmm.events import ingest
    from bayesmm.events.errors import IngestError
    from tests.conftest import HL

    with gzip.open(HL, "rt") as f:
        t0_ms = int(f.readline().split(" ", 1)[0]) // 1_000_000
    base = {"coin": "BTC", "px": "105050.0", "sz": "0.01", "side": "B", "time": t0_ms + 500, "oid": 7, "hash": "0xab",
            "crossed": False, "fee": "0.0", "dir": "Open Long", "closedPnl": "0.0"}
    fills = [{**base, "startPosition": "0.0"}, {**base, "startPosition": "0.01"}, {**base, "startPosition": "0.01"}]
    path = tmp_path / "fills.json"
    path.write_text(_json.dumps(fills))
    session, report = ingest(HL, fills=path)
    own = session.column("fill_id")[session.column("kind") == "own_fill"]
    assert len(own) == 2 and own[0] != own[1]
    assert report.counts["duplicate_fills"] == 1
    assert report.counts["fills_without_tid (keyed on oid, hash, time, px, sz, startPosition)"] == 3
    assert report.counts["fills_without_feeToken"] == 3
    clash = [{**base, "tid": 9, "startPosition": "0"}, {**base, "tid": 9, "px": "105051.0", "startPosition": "0"}]
    path.write_text(_json.dumps(clash))
    with pytest.raises(IngestError, match=r"fills.json:2: field .id.: fills id 9 repeats line 1 with other values"):
        ingest(HL, fills=path)
