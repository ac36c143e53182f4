"""Binance USD-M futures and spot recordings: bookTicker, trade / aggTrade, depth diffs + snapshot.

- bookTicker -> book_update (+ mid_tick when the mid changes). Imbalance and depth come from the
  top-K levels of the depth book once a snapshot has synchronised it (NaN before: unknown).
- trade -> trade_print; `m = true` means the buyer was the maker, so the aggressor sold (side -1).
- depth diffs are applied after the REST snapshot (`lastUpdateId`); diffs older than the snapshot
  are dropped and counted, and gaps in the update-id sequence are counted.
- a field outside the known set of its message kind (below) is counted as a note,
  `unknown_field <kind>.<field>` (e.g. `unknown_field bookTicker.X`), and otherwise ignored.
"""

from __future__ import annotations

import math

from bayesmm.events.book import (
    DEFAULT_TOP_K,
    BookEmitter,
    DepthBook,
    check_id,
    imbalance_and_depth,
    price,
    quantity,
    side_levels,
)
from bayesmm.events.builder import EventBuilder
from bayesmm.events.dedupe import SeenIds
from bayesmm.events.errors import IngestError, one_instrument
from bayesmm.events.lines import FieldNotes, IngestReport

# The fields each message kind may carry, spot, USD-M and COIN-M futures together: the venue's documented
# payloads (spot web-socket-streams.md, USD-M and COIN-M "WebSocket Market Streams", REST /depth) and every
# field of the recordings in data/ (hftbacktest example data, 2024-08). Anything else is counted, not an error.
_STREAM = frozenset({"stream", "data"})  # the combined-stream wrapper
_BOOK_TICKER = frozenset({"u", "s", "b", "B", "a", "A",  # spot
                          "e", "E", "T",  # futures add the event type, event and transaction times
                          "ps"})  # COIN-M: the pair (ETHUSD) of the contract symbol (ETHUSD_PERP)
_TRADE = frozenset({"e", "E", "T", "s", "t", "p", "q", "m",
                    "M",  # spot: "ignore"
                    "b", "a",  # spot, in the older docs: buyer and seller order ids
                    "X"})  # futures (in the recording; the raw trade stream is not in the USD-M docs): order type
_AGG_TRADE = frozenset({"e", "E", "T", "s", "a", "p", "q", "f", "l", "m", "M"})
_DEPTH = frozenset({"e", "E", "T", "s", "U", "u", "pu", "b", "a", "ps"})  # spot has no T and pu; COIN-M adds ps
_SNAPSHOT = frozenset({"lastUpdateId", "bids", "asks", "E", "T",  # REST /depth; futures add E and T
                       "pair", "symbol"})  # COIN-M
KNOWN_FIELDS = {"stream": _STREAM, "bookTicker": _BOOK_TICKER, "trade": _TRADE, "aggTrade": _AGG_TRADE,
                "depth": _DEPTH, "depthSnapshot": _SNAPSHOT}  # message kind -> its known fields


class BinanceParser:
    """Turns decoded Binance messages into events. One instance per recording file."""

    def __init__(self, path: str, builder: EventBuilder, report: IngestReport, top_k: int = DEFAULT_TOP_K):
        self.path, self.builder, self.report, self.top_k = path, builder, report, top_k
        self.book = DepthBook()
        self.emitter = BookEmitter(builder, report)
        self.synced = False
        self.pending: list[tuple] = []
        self.last_u = -1
        self._fresh = False
        self.symbol: str | None = None
        self.spot: bool | None = None
        self._cache_key: tuple | None = None
        self._cache_val = (math.nan, math.nan)
        self._trade_ids = SeenIds("trades")
        self._fields = FieldNotes(path)

    def _coin_margined(self) -> bool:
        """COIN-M futures: symbols `<pair>_PERP` or `<pair>_<expiry>` whose pair is quoted in USD
        (ETHUSD_PERP); USD-M's are quoted in a stablecoin (BTCUSDT, BTCUSDT_240927)."""
        s = self.symbol or ""
        return not self.spot and "_" in s and s.split("_")[0].endswith("USD")

    def venue(self) -> str:
        return "binance-spot" if self.spot else ("binance-coinm" if self._coin_margined() else "binance-usdm")

    def contract(self) -> tuple[float, bool]:
        """(contract size, inverse): COIN-M contracts are inverse, worth a fixed USD amount each (100 USD
        for BTCUSD, 10 USD for every other pair: Binance's COIN-M contract specifications); spot and
        USD-M quantities are units of the base asset (1, linear)."""
        if not self._coin_margined():
            return 1.0, False
        return (100.0 if (self.symbol or "").startswith("BTCUSD_") else 10.0), True

    def handle(self, t_ns: int, line: int, msg: dict) -> None:
        """Dispatch one message; raises `IngestError` naming the line and field when it is bad (its
        unknown fields are counted once it is accepted: `FieldNotes`)."""
        self._fields.read(self._dispatch, self.report, t_ns, line, msg)

    def _dispatch(self, t_ns: int, line: int, msg: dict) -> None:
        if "lastUpdateId" in msg:
            self._fields.check("depthSnapshot", msg, _SNAPSHOT)
            self._snapshot(line, msg)
            return
        stream, data = msg.get("stream"), msg.get("data")
        if not isinstance(stream, str) or not isinstance(data, dict):
            raise IngestError(self.path, line, "stream", f"unknown message (keys {sorted(msg)[:6]})")
        self._fields.check("stream", msg, _STREAM)
        self._symbol(line, data)
        if stream.endswith("@bookTicker"):
            self._fields.check("bookTicker", data, _BOOK_TICKER)
            self._book_ticker(t_ns, line, data)
        elif stream.endswith("@trade"):
            self._fields.check("trade", data, _TRADE)
            self._trade(t_ns, line, data)
        elif stream.endswith("@aggTrade"):
            self._fields.check("aggTrade", data, _AGG_TRADE)
            self._trade(t_ns, line, data)
        elif "@depth" in stream:
            self._fields.check("depth", data, _DEPTH)
            self._depth(line, data)
        else:
            raise IngestError(self.path, line, "stream", f"unknown stream {stream!r}")

    def _symbol(self, line: int, data: dict) -> None:
        self.symbol = one_instrument(self.path, line, "s", data.get("s"), self.symbol)

    def _book_ticker(self, t_ns: int, line: int, d: dict) -> None:
        p = self.path
        if self.spot is None:
            self.spot = "e" not in d  # futures bookTicker carries an event type, spot does not
        try:
            bid, ask = price(d["b"], p, line, "b"), price(d["a"], p, line, "a")
            bid_sz, ask_sz = quantity(d["B"], p, line, "B"), quantity(d["A"], p, line, "A")
        except KeyError as exc:
            raise IngestError(p, line, exc.args[0], "missing in bookTicker") from None
        imb, depth = math.nan, math.nan
        if self.synced:
            key = (self.book.version, bid, ask)
            if key != self._cache_key:
                self._cache_key = key
                self._cache_val = imbalance_and_depth(*self.book.top_k(bid, ask, self.top_k))
            imb, depth = self._cache_val
        self.emitter.emit(t_ns, bid, ask, bid_sz, ask_sz, imb, depth, p, line)

    def _trade(self, t_ns: int, line: int, d: dict) -> None:
        p = self.path
        try:
            px, qty, maker_buy = price(d["p"], p, line, "p"), quantity(d["q"], p, line, "q", False), d["m"]
        except KeyError as exc:
            raise IngestError(p, line, exc.args[0], "missing in trade") from None
        if not isinstance(maker_buy, bool):
            raise IngestError(p, line, "m", f"expected true/false, got {maker_buy!r}")
        key = "t" if "t" in d else "a"
        tid = d.get(key)  # trade id (trade stream) or aggregate trade id (aggTrade)
        check_id(tid, p, line, key)
        self.emitter.check_trade(px, p, line, "p")
        if tid is not None and not self._trade_ids.is_new(tid, (px, qty, maker_buy), p, line, self.report):
            return
        self.emitter.trade(t_ns, px, qty, -1 if maker_buy else 1, p, line, "p")

    def _levels(self, line: int, d: dict, bids: str, asks: str):
        if bids not in d or asks not in d:
            raise IngestError(self.path, line, bids if bids not in d else asks, "missing in depth message")
        return side_levels(d[bids], self.path, line, bids), side_levels(d[asks], self.path, line, asks)

    def _depth(self, line: int, d: dict) -> None:
        try:
            first, last = int(d["U"]), int(d["u"])
        except (KeyError, TypeError, ValueError):
            raise IngestError(self.path, line, "U/u", "depth diff needs integer update ids U and u") from None
        if self.spot is None:
            self.spot = "pu" not in d
        levels = self._levels(line, d, "b", "a")
        if not self.synced:
            self.pending.append((first, last, d.get("pu"), levels))
            return
        self._apply(first, last, d.get("pu"), levels)

    def _apply(self, first: int, last: int, prev, levels) -> None:
        """Apply one diff on top of the book, counting stale diffs and update-id gaps."""
        if last <= self.last_u:
            self.report.counts["depth_diffs_stale"] += 1
            return
        if self._fresh:  # the first diff after a snapshot must straddle its id
            ok, self._fresh = first <= self.last_u + 1, False
        elif self.spot:
            ok = first == self.last_u + 1
        else:
            ok = prev is not None and int(prev) == self.last_u
        if not ok:
            self.report.counts["depth_sequence_gaps"] += 1
        self.book.apply(*levels)
        self.last_u = last

    def _snapshot(self, line: int, msg: dict) -> None:
        try:
            snap_id = int(msg["lastUpdateId"])
        except (TypeError, ValueError):
            raise IngestError(self.path, line, "lastUpdateId", f"not an integer: {msg['lastUpdateId']!r}") from None
        bids, asks = self._levels(line, msg, "bids", "asks")
        self.book.clear()
        self.book.apply(bids, asks)
        self.synced, self.last_u, self._fresh = True, snap_id, True
        self.report.counts["depth_snapshots"] += 1
        for first, last, prev, levels in self.pending:
            self._apply(first, last, prev, levels)
        self.pending = []

    def finish(self) -> None:
        """Count diffs that never met a snapshot (they could not be placed in a book); a large move
        still unconfirmed at the end is damage (`BookEmitter.finish`)."""
        self.emitter.finish()
        if self.pending:
            self.report.counts["depth_diffs_without_snapshot"] += len(self.pending)
            self.pending = []
