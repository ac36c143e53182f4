"""Bad input: each kind raises the project's own error naming file, line and field, or with
--lenient is skipped and counted; repairs (reordering, duplicates) are counted."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bayesmm.events import IngestError, ingest
from tests.conftest import DATA

S = 1_000_000_000


def ticker(bid, ask, bsz="1.0", asz="1.0"):
    return {"stream": "btcusdt@bookTicker", "data": {"e": "bookTicker", "s": "BTCUSDT", "b": str(bid), "B": bsz,
                                                     "a": str(ask), "A": asz}}


def trade(px, qty="0.1", m=False):
    return {"stream": "btcusdt@trade", "data": {"e": "trade", "s": "BTCUSDT", "p": str(px), "q": qty, "m": m}}


def good(n=3):
    return [(i * S, ticker(100.0 + i * 0.1, 100.2 + i * 0.1)) for i in range(n)]


def check_error(path, line, field, **kw):
    with pytest.raises(IngestError) as exc:
        ingest(path, venue="binance", **kw)
    err = exc.value
    assert (err.line, err.field) == (line, field), str(err)
    assert str(path) in str(err) and f":{line}:" in str(err)
    return err


def test_malformed_line(write_recording):
    path = write_recording([*good(2), "this is not a recording line"])
    check_error(path, 3, "ts_ns")  # the first token is not a timestamp
    path = write_recording([*good(2), "5000000000"])
    check_error(path, 3, "line")  # a timestamp with no message


def test_malformed_json(write_recording):
    path = write_recording([*good(2), '5000000000 {"stream": "btcusdt@trade", "data": {'])
    check_error(path, 3, "json")


def test_unknown_message(write_recording):
    path = write_recording([*good(2), (5 * S, {"stream": "btcusdt@kline_1m", "data": {"s": "BTCUSDT"}})])
    check_error(path, 3, "stream")


def test_nan_price(write_recording):
    path = write_recording([*good(2), (5 * S, trade("NaN"))])
    err = check_error(path, 3, "p")
    assert "NaN" in str(err)


def test_non_positive_price(write_recording):
    path = write_recording([*good(2), (5 * S, ticker(-1, 100.0))])
    check_error(path, 3, "b")


def test_crossed_book(write_recording):
    path = write_recording([*good(2), (5 * S, ticker(101.0, 100.0))])
    err = check_error(path, 3, "bid/ask")
    assert "crossed" in str(err)


def test_time_backwards_beyond_tolerance(write_recording):
    path = write_recording([*good(3), (0, trade(100.1))])  # 2 s back, tolerance 1 s
    check_error(path, 4, "ts_ns")


def test_missing_field(write_recording):
    msg = trade(100.1)
    del msg["data"]["m"]
    path = write_recording([*good(2), (5 * S, msg)])
    check_error(path, 3, "m")


def test_lenient_skips_and_counts(write_recording):
    """Each bad line above is skipped under lenient, counted under its field, and the rest is kept."""
    path = write_recording([*good(3), "garbage", (4 * S, trade("NaN")), (5 * S, ticker(101.0, 100.0)),
                            (6 * S, trade(100.3))])
    session, report = ingest(path, venue="binance", lenient=True)
    assert report.counts["skipped:line"] == 1
    assert report.counts["skipped:p"] == 1
    assert report.counts["skipped:bid/ask"] == 1
    assert session.counts()["trade_print"] == 1 and session.counts()["book_update"] == 3
    assert len(report.examples) == 3 and all(":" in e for e in report.examples)
    assert session.meta.repairs["skipped:line"] == 1  # the repair record travels with the session


def test_small_reorder_and_duplicates_are_repaired_and_counted(write_recording):
    """A line 0.5 s out of order is moved into place; an exact duplicate line is dropped; both counted."""
    lines = good(3)
    lines = [lines[0], lines[2], (int(1.5 * S), trade(100.15)), lines[1], lines[1]]
    session, report = ingest(write_recording(lines), venue="binance")
    assert report.counts["reordered_lines"] == 3  # behind the running max: trade at 1.5 s, ticker at 1 s, its copy
    assert report.counts["duplicate_lines"] == 1
    t = session.column("t_ns")
    assert (t[1:] >= t[:-1]).all()
    assert session.counts()["book_update"] == 3


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(
    st.text(max_size=80),
    st.builds(lambda ts, msg: f"{ts} {json.dumps(msg)}", st.integers(0, 10 * S),
              st.dictionaries(st.sampled_from(["stream", "data", "channel", "lastUpdateId", "s", "b", "a"]),
                              st.one_of(st.none(), st.integers(), st.floats(), st.text(max_size=10),
                                        st.lists(st.text(max_size=5), max_size=3)), max_size=4)),
    st.builds(lambda ts, bid, ask: f"{ts} {json.dumps(ticker(bid, ask))}", st.integers(0, 10 * S),
              st.floats(allow_nan=True, allow_infinity=True), st.floats(allow_nan=True, allow_infinity=True)),
), min_size=1, max_size=8))
def test_only_ingest_error_escapes(tmp_path_factory, lines):
    """Arbitrary lines: ingest either succeeds or raises IngestError, never anything else."""
    path = tmp_path_factory.mktemp("fuzz") / "rec.txt"
    path.write_text("\n".join(line.replace("\n", " ") for line in lines), encoding="utf-8", errors="surrogatepass")
    for venue in ("binance", "hyperliquid"):
        try:
            ingest(path, venue=venue)
        except IngestError:
            pass


@pytest.mark.parametrize("value", ["6_1800.1", "６１８００.１", " 100.3", "100.3 ", "inf", "0x10", "1e400"])
def test_numbers_are_plain_decimals(write_recording, value):
    """Python's float() takes underscores, full-width digits and padding; a venue never sends them."""
    path = write_recording([*good(2), (5 * S, trade(value))])
    check_error(path, 3, "p")


def test_boolean_and_overlong_values(write_recording):
    path = write_recording([*good(2), (5 * S, {**trade(100.1), "data": {**trade(100.1)["data"], "q": True}})])
    check_error(path, 3, "q")
    huge = "9" * 5_000_000  # a 5 MB field: the message shows 200 characters and says how long it was
    path = write_recording([*good(2), f'{5 * S} {{"stream": "btcusdt@trade", "data": {{"e": "trade", "s": "BTCUSDT", '
                                      f'"p": "{huge}x", "q": "0.1", "m": false}}}}'])
    err = check_error(path, 3, "p")
    assert len(str(err)) < 400 and "(5,000,0" in str(err) and "characters)" in str(err) and "b'" not in str(err)


def test_timestamp_out_of_range(write_recording):
    """A 25-digit timestamp is a named error (it was an OverflowError), in lenient mode a counted skip."""
    path = write_recording([*good(2), "1" * 25 + " " + json.dumps(trade(100.1))])
    check_error(path, 3, "ts_ns")
    _, report = ingest(path, venue="binance", lenient=True)
    assert report.counts["skipped:ts_ns"] == 1


@pytest.mark.parametrize(("bid", "ask"), [(100.0, 1e308), (1e-300, 100.2), (60.0, 60.2)])
def test_implausible_book_is_rejected(write_recording, bid, ask):
    """An ask of 1e308, a bid of 1e-300, or a mid 40% from the previous book's: errors naming the
    line (counted and skipped with --lenient), never a session whose belief goes NaN."""
    path = write_recording([*good(2), (5 * S, ticker(bid, ask)), (6 * S, ticker(100.3, 100.5))])
    err = check_error(path, 3, "bid/ask")
    assert "implausible" in str(err)
    session, report = ingest(path, venue="binance", lenient=True)
    assert report.counts["skipped:bid/ask"] == 1 and len(session.column("t_ns")) == 3 + 3


def test_repeated_trade_ids(write_recording):
    """A trade re-received (same id, same values) is dropped and counted; the same id with another
    price is an error naming both lines."""
    t1 = {**trade(100.1), "data": {**trade(100.1)["data"], "t": 77}}
    path = write_recording([*good(2), (5 * S, t1), (5 * S + 1000, t1)])
    session, report = ingest(path, venue="binance")
    assert session.counts()["trade_print"] == 1 and report.counts["duplicate_trades"] == 1
    t2 = {**trade(100.2), "data": {**trade(100.2)["data"], "t": 77}}
    path = write_recording([*good(2), (5 * S, t1), (6 * S, t2)])
    err = check_error(path, 4, "id")
    assert "repeats line 3" in str(err)


def test_truncated_gzip_keeps_the_intact_prefix(tmp_path):
    """A gzip cut short: an error naming the file without --lenient; with it, the intact lines are
    kept and the loss counted (it used to lose the whole file)."""
    import gzip as _gzip

    lines = "".join(f"{ts} {json.dumps(msg)}\n" for ts, msg in good(400))
    blob = _gzip.compress(lines.encode())
    path = tmp_path / "cut.gz"
    path.write_bytes(blob[: len(blob) * 2 // 3])
    with pytest.raises(IngestError, match="corrupt or truncated gzip"):
        ingest(path, venue="binance")
    session, report = ingest(path, venue="binance", lenient=True)
    kept = session.counts()["book_update"]
    assert 0 < kept < 400
    assert report.counts["gzip_truncated (the intact prefix was kept, its last partial line dropped)"] == 1


def test_no_book_named_as_the_cause(write_recording, tmp_path):
    """A trades-only recording: the tick size error says there is no book; with --tick-size it
    ingests, and a backtest says why it cannot run (it was an IndexError)."""
    from bayesmm.cli import main

    path = write_recording([(i * S, trade(100.0 + 0.1 * i)) for i in range(5)])
    err = check_error(path, 0, "tick_size")
    assert "no book" in str(err)
    out = tmp_path / "t.parquet"
    assert main(["ingest", str(path), "--venue", "binance", "--tick-size", "0.01", "--quiet", "--out", str(out)]) == 0
    assert main(["backtest", str(out)]) == 2


# ----------------------------------------------------------------------------- unknown fields

NEW = "newField"  # a field no venue sends (yet)


def _depth(first, last, bids, asks):
    return {"stream": "btcusdt@depth@100ms", "data": {"e": "depthUpdate", "E": 1, "s": "BTCUSDT", "U": first,
                                                      "u": last, "b": bids, "a": asks}}


def _binance_lines():
    """Every Binance message kind, at least twice: REST snapshots, depth diffs, bookTickers, trades
    and aggregate trades."""
    snap = {"lastUpdateId": 10, "bids": [["100.0", "2.0"], ["99.9", "1.0"]], "asks": [["100.2", "1.5"]]}
    agg = {"stream": "btcusdt@aggTrade", "data": {"e": "aggTrade", "E": 1, "s": "BTCUSDT", "a": 5, "p": "100.1",
                                                  "q": "0.2", "f": 1, "l": 2, "T": 1, "m": True, "M": True}}
    agg2 = {**agg, "data": {**agg["data"], "a": 6, "p": "100.2"}}
    t1, t2 = trade(100.1), trade(100.2, m=True)
    t1["data"]["t"], t2["data"]["t"] = 77, 78
    return [(0, snap), (1 * S, _depth(11, 12, [["100.0", "3.0"]], [])), (2 * S, ticker(100.0, 100.2)),
            (3 * S, t1), (4 * S, agg), (5 * S, {**snap, "lastUpdateId": 20}),
            (6 * S, _depth(21, 22, [], [["100.3", "1.0"]])), (7 * S, ticker(100.1, 100.3)), (8 * S, t2),
            (9 * S, agg2)]


def _hl_fill(tid, px, side="B"):
    return {"coin": "BTC", "px": str(px), "sz": "0.01", "side": side, "time": 1000, "startPosition": "0.0",
            "dir": "Open Long", "closedPnl": "0.0", "hash": "0x1", "oid": tid, "crossed": False, "fee": "0.1",
            "tid": tid, "feeToken": "USDC"}


def _hl_lines():
    """Every Hyperliquid object kind, at least twice: l2Book and its levels, bbo and its levels,
    trades, userFills and its fills (a control message too)."""
    def book(bid, ask):
        return {"channel": "l2Book", "data": {"coin": "BTC", "time": 1, "levels": [
            [{"px": str(bid), "sz": "1.0", "n": 2}, {"px": str(bid - 1), "sz": "2.0", "n": 1}],
            [{"px": str(ask), "sz": "1.5", "n": 1}]]}}

    def bbo(bid, ask):
        return {"channel": "bbo", "data": {"coin": "BTC", "time": 1, "bbo": [{"px": str(bid), "sz": "1.0", "n": 2},
                                                                             {"px": str(ask), "sz": "1.0", "n": 1}]}}

    def trades(*tids):
        return {"channel": "trades", "data": [{"coin": "BTC", "side": "B", "px": "100001.0", "sz": "0.1",
                                               "hash": "0x2", "time": 2 * S // 1_000_000, "tid": t,
                                               "users": ["0xa", "0xb"]} for t in tids]}

    def fills(*tids):
        return {"channel": "userFills", "data": {"user": "0xabc", "fills": [_hl_fill(t, 100000.0) for t in tids]}}

    return [(0, {"channel": "subscriptionResponse", "data": {"method": "subscribe"}}), (1 * S, book(100000, 100002)),
            (2 * S, trades(1, 2)), (3 * S, bbo(100000, 100001)), (4 * S, fills(7, 8)), (5 * S, book(100001, 100003)),
            (6 * S, bbo(100001, 100002)), (7 * S, trades(3)), (8 * S, fills(9))]


def _objects(venue, kind, msg):
    """The objects of one message that are of `kind` (where a new field would go)."""
    if venue == "binance":
        if kind == "depthSnapshot":
            return [msg] if "lastUpdateId" in msg else []
        if "lastUpdateId" in msg:
            return []
        if kind == "stream":
            return [msg]
        suffix = msg["stream"].split("@", 1)[1]
        return [msg["data"]] if suffix.split("@")[0] == kind else []
    channel, data = msg["channel"], msg["data"]
    top, _, part = kind.partition(".")
    if kind == "channel":
        return [msg]
    if channel != top:
        return []
    if kind == "trades":
        return list(data)
    if not part:
        return [data]
    return {"l2Book.level": lambda: [lvl for side in data.get("levels", []) for lvl in side],
            "bbo.level": lambda: list(data["bbo"]), "userFills.fill": lambda: list(data["fills"])}[kind]()


_KINDS = [("binance", k) for k in ("stream", "bookTicker", "trade", "aggTrade", "depth", "depthSnapshot")] + \
    [("hyperliquid", k) for k in ("channel", "l2Book", "l2Book.level", "bbo", "bbo.level", "trades", "userFills",
                                  "userFills.fill")]


@pytest.mark.parametrize(("venue", "kind"), _KINDS)
def test_unknown_field_is_counted_per_kind_and_name(write_recording, tmp_path, venue, kind):
    """A new field in every object of one kind: counted once per occurrence under
    `unknown_field <kind>.<name>`, recorded in the session's repairs and printed by `bayesmm ingest`;
    the session and every other count are those of the undamaged recording."""
    from bayesmm.cli import main
    from bayesmm.events import read_session

    base_lines = _binance_lines() if venue == "binance" else _hl_lines()
    base, base_report = ingest(write_recording(base_lines, "base.txt"), venue=venue)
    lines, n = json.loads(json.dumps(base_lines)), 0
    for _, msg in lines:
        for obj in _objects(venue, kind, msg):
            obj[NEW] = {"any": ["value", 1.5]}
            n += 1
    assert n >= 2, f"the base recording has {n} {kind} objects"
    path = write_recording([tuple(x) for x in lines], "new.txt")
    session, report = ingest(path, venue=venue)
    key = f"unknown_field {kind}.{NEW}"
    assert report.counts[key] == n
    assert {k: v for k, v in report.counts.items() if k != key} == dict(base_report.counts)
    assert session.meta.repairs[key] == n
    assert len(session) == len(base)
    for name in base.table.column_names:
        np.testing.assert_array_equal(session.column(name), base.column(name), err_msg=name)
    out = tmp_path / "s.parquet"
    assert main(["ingest", str(path), "--venue", venue, "--quiet", "--out", str(out)]) == 0
    assert read_session(out).meta.repairs[key] == n


def test_unknown_field_printed_by_ingest(write_recording, tmp_path, capsys):
    from bayesmm.cli import main

    lines = [*good(2), (5 * S, {**ticker(100.3, 100.5), "extra": 1})]
    lines[0][1]["data"]["X"] = "new"
    out = tmp_path / "s.parquet"
    assert main(["ingest", str(write_recording(lines)), "--venue", "binance", "--quiet", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "unknown_field bookTicker.X=1" in printed and "unknown_field stream.extra=1" in printed


def test_unknown_field_of_a_refused_line_is_not_counted(write_recording):
    """A line refused for another reason leaves no unknown-field count (--lenient: a skip is a deletion)."""
    bad = trade("NaN")
    bad["data"][NEW] = 1
    path = write_recording([*good(2), (5 * S, bad), (6 * S, {**trade(100.3), "extra": 1})])
    check_error(path, 3, "p")
    _, report = ingest(path, venue="binance", lenient=True)
    assert report.counts["skipped:p"] == 1
    unknown = {k: v for k, v in report.counts.items() if k.startswith("unknown_field")}
    assert unknown == {"unknown_field stream.extra": 1}


def test_unknown_field_names_are_shown_bounded(write_recording):
    """A field name of 5,000 characters, or one with a newline, is shown escaped and cut short."""
    lines = good(3)
    lines[1][1]["data"]["y" * 5000] = 1
    lines[2][1]["data"]["a\nb"] = 1
    _, report = ingest(write_recording(lines), venue="binance")
    keys = [k for k in report.counts if k.startswith("unknown_field")]
    assert sorted(keys) == sorted([f"unknown_field bookTicker.'{'y' * 40}'...(5,000 characters)",
                                   "unknown_field bookTicker.'a\\nb'"]), keys


def test_unknown_fill_field_in_a_fills_file(tmp_path):
    """The info endpoint's userFills JSON: a new field of a fill is counted like the stream's."""
    from bayesmm.events.builder import EventBuilder
    from bayesmm.events.hyperliquid import read_fills_json
    from bayesmm.events.lines import IngestReport

    path = tmp_path / "fills.json"
    path.write_text(json.dumps([{**_hl_fill(1, 100.0), NEW: 1}, _hl_fill(2, 101.0), {**_hl_fill(3, 5.0), "coin": "ETH",
                                                                                    NEW: 2}]))
    report = IngestReport()
    assert read_fills_json(str(path), EventBuilder(), report, "BTC") == 2
    assert report.counts[f"unknown_field userFills.fill.{NEW}"] == 2


@pytest.mark.parametrize("name", sorted(p.name for p in DATA.glob("*.gz")))
def test_real_recordings_have_no_unknown_fields(name, perp_session):
    """Every field of every real recording (both venues, spot and futures) is known: nothing is
    counted as unknown, so a count in a user's ingest means the venue sent something new."""
    _, report = perp_session if name.startswith("binance-usdm") else ingest(DATA / name)
    assert report.counts["raw_messages"] > 0
    assert not [k for k in report.counts if k.startswith("unknown_field")], name


def test_real_fills_have_no_unknown_fields():
    from bayesmm.events.builder import EventBuilder
    from bayesmm.events.hyperliquid import read_fills_json
    from bayesmm.events.lines import IngestReport

    report = IngestReport()
    assert read_fills_json(str(DATA / "hyperliquid-userfills-2023-sdk.json"), EventBuilder(), report, None) == 500
    assert not [k for k in report.counts if k.startswith("unknown_field")]


def test_many_unknown_field_names_are_capped(write_recording):
    """150 new names in one message: the first 100 are listed, the rest counted together."""
    lines = good(2)
    lines[1][1]["data"].update({f"f{i:03d}": i for i in range(150)})
    _, report = ingest(write_recording(lines), venue="binance")
    unknown = {k: v for k, v in report.counts.items() if k.startswith("unknown_field")}
    assert len(unknown) == 101 and unknown["unknown_field bookTicker.(other names)"] == 50
    assert unknown["unknown_field bookTicker.f000"] == 1 and "unknown_field bookTicker.f149" not in unknown


@pytest.mark.parametrize("venue", ["binance", "hyperliquid"])
def test_a_second_instrument_or_none_is_refused_on_either_venue(write_recording, venue):
    """A recording holds one instrument (`events.errors.one_instrument`, one check for both venues): a
    message naming another, or none, is an error naming its line and the venue's field."""
    from tests.events.test_hyperliquid import _l2

    if venue == "binance":
        field, first = "s", [(0, ticker(100.0, 100.2))]
        other, missing = ticker(100.0, 100.2), ticker(100.0, 100.2)
        other["data"]["s"] = "ETHUSDT"
        del missing["data"]["s"]
    else:
        field, first = "coin", [(0, _l2("BTC", 100.0, 100.2))]
        other, missing = _l2("ETH", 100.0, 100.2), _l2("BTC", 100.0, 100.2)
        del missing["data"]["coin"]
    for msg, reason in ((other, "in a"), (missing, "missing")):
        with pytest.raises(IngestError) as exc:
            ingest(write_recording([*first, (S, msg)]), venue=venue)
        assert (exc.value.line, exc.value.field) == (2, field) and reason in exc.value.reason, str(exc.value)
