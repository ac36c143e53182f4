"""Hyperliquid WebSocket recordings (l2Book, bbo, trades, userFills) and userFills JSON.

- l2Book -> book_update (+ mid_tick on a mid change); imbalance and depth from its top-K levels.
- bbo -> book_update (+ mid_tick); one-sided bbo messages are counted and skipped.
- trades -> trade_print; `side` "B" means the aggressor bought (+1), "A" that it sold (-1).
- userFills -> own_fill from *our* side of the fill: "B" means we bought (+1, bearish evidence).
  Snapshot fills (`isSnapshot`) are history from before the recording and are counted, not used.
- `read_fills_json`: an account's fills as returned by the info endpoint (`{"type": "userFills"}`),
  a JSON list of the same fill objects, timed by their `time` in ms.
- a field outside the known set of its object (below) is counted as a note,
  `unknown_field <kind>.<field>` (e.g. `unknown_field trades.X`), and otherwise ignored.
"""

from __future__ import annotations

import hashlib

import orjson

from bayesmm.events.book import DEFAULT_TOP_K, BookEmitter, check_id, imbalance_and_depth, price, quantity
from bayesmm.events.builder import EventBuilder
from bayesmm.events.dedupe import SeenIds
from bayesmm.events.errors import IngestError, one_instrument
from bayesmm.events.lines import FieldNotes, IngestReport, read_raw

_SIDES = {"B": 1, "A": -1}
BACKLOG_MS = 5_000  # trades older than this on arrival are the subscription's backlog
_CONTROL = ("subscriptionResponse", "pong", "post", "error")


# The fields each object may carry: the venue's documented types (WebSocket "Subscriptions" data
# formats WsBook, WsLevel, WsBbo, WsTrade, WsUserFills, WsFill; the info endpoint's userFills; the
# Python SDK's types) and every field of the recordings in data/. Anything else is counted, not an error.
_CHANNEL = frozenset({"channel", "data"})  # the message wrapper
_L2BOOK = frozenset({"coin", "levels", "time"})
_BBO = frozenset({"coin", "time", "bbo"})
_LEVEL = frozenset({"px", "sz", "n"})  # a level of l2Book and bbo
_TRADES = frozenset({"coin", "side", "px", "sz", "hash", "time", "tid", "users"})  # one trade of a trades message
_USER_FILLS = frozenset({"isSnapshot", "user", "fills"})
FILL_FIELDS = frozenset({"coin", "px", "sz", "side", "time", "startPosition", "dir", "closedPnl", "hash", "oid",
                         "crossed", "fee", "tid", "feeToken",  # the older schema lacks tid and feeToken
                         "builderFee", "liquidation", "cloid", "twapId"})  # present only on some fills
KNOWN_FIELDS = {"channel": _CHANNEL, "l2Book": _L2BOOK, "l2Book.level": _LEVEL, "bbo": _BBO, "bbo.level": _LEVEL,
                "trades": _TRADES, "userFills": _USER_FILLS, "userFills.fill": FILL_FIELDS}  # kind -> known fields


_KEY_FIELDS = ("oid", "hash", "time", "px", "sz", "startPosition")


def fill_key(f: dict) -> int:
    """A fill's id when it has no trade id `tid` (the older userFills schema): a stable 62-bit hash
    of oid, hash, time, px, sz and startPosition. Partial fills of one order share oid, hash and
    time, and may share price and size too; their startPosition (our position before each) tells
    them apart."""
    text = "|".join(str(f.get(k, "")) for k in _KEY_FIELDS)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 2


def fill_fields(f, path: str, line: int, coin: str | None, report: IngestReport | None = None
                ) -> tuple[float, float, int, int, int]:
    """(price, size, side, fill_id, time_ms) of one Hyperliquid fill object, checked.

    side is ours: "B" (we bought) -> +1. fill_id is the trade id `tid`; a fill without one (the
    older schema) is keyed by `fill_key`, counted in `report` as `fills_without_tid`.
    """
    if not isinstance(f, dict):
        raise IngestError(path, line, "fills", f"expected a fill object, got {type(f).__name__}")
    try:
        px, sz = price(f["px"], path, line, "px"), quantity(f["sz"], path, line, "sz", allow_zero=False)
        side, time_ms, fcoin = f["side"], f["time"], f["coin"]
    except KeyError as exc:
        raise IngestError(path, line, exc.args[0], "missing in fill") from None
    if side not in _SIDES:
        raise IngestError(path, line, "side", f"expected 'B' or 'A', got {side!r}")
    if coin is not None and fcoin != coin:
        raise IngestError(path, line, "coin", f"fill for {fcoin!r} in a {coin!r} session")
    if "tid" in f:
        tid = f["tid"]
    elif report is not None:
        missing = [k for k in ("oid", "hash") if k not in f]
        if missing:
            raise IngestError(path, line, missing[0], "missing in a fill without tid (needed to key it)")
        report.counts["fills_without_tid (keyed on oid, hash, time, px, sz, startPosition)"] += 1
        tid = fill_key(f)
    else:
        raise IngestError(path, line, "tid", "missing in fill")
    if isinstance(tid, bool) or not isinstance(tid, int) or tid < 0 or isinstance(time_ms, bool) \
            or not isinstance(time_ms, int) or time_ms < 0:
        raise IngestError(path, line, "tid/time", f"expected non-negative integers, got {tid!r}, {time_ms!r}")
    return px, sz, _SIDES[side], tid, time_ms


class HyperliquidParser:
    """Turns decoded Hyperliquid WebSocket messages into events. One instance per recording."""

    def __init__(self, path: str, builder: EventBuilder, report: IngestReport, top_k: int = DEFAULT_TOP_K,
                 coin: str | None = None):
        self.path, self.builder, self.report, self.top_k = path, builder, report, top_k
        self.emitter = BookEmitter(builder, report)
        self.symbol = coin
        self._trade_ids = SeenIds("trades")
        self._fill_ids = SeenIds("fills")
        self._fields = FieldNotes(path)

    def venue(self) -> str:
        return "hyperliquid"

    def contract(self) -> tuple[float, bool]:
        """(contract size, inverse): Hyperliquid perps are linear, sized in units of the coin."""
        return 1.0, False

    def _coin(self, line: int, coin) -> None:
        self.symbol = one_instrument(self.path, line, "coin", coin, self.symbol)

    def handle(self, t_ns: int, line: int, msg: dict) -> None:
        """Dispatch one message; raises `IngestError` naming the line and field when it is bad (its
        unknown fields are counted once it is accepted: `FieldNotes`)."""
        self._fields.read(self._dispatch, self.report, t_ns, line, msg)

    def _dispatch(self, t_ns: int, line: int, msg: dict) -> None:
        channel, data = msg.get("channel"), msg.get("data")
        self._fields.check("channel", msg, _CHANNEL)
        if channel == "l2Book":
            self._l2book(t_ns, line, data)
        elif channel == "trades":
            self._trades(t_ns, line, data)
        elif channel == "bbo":
            self._bbo(t_ns, line, data)
        elif channel == "userFills":
            self._user_fills(t_ns, line, data)
        elif channel in _CONTROL:
            self.report.counts[f"control:{channel}"] += 1
        else:
            raise IngestError(self.path, line, "channel", f"unknown channel {channel!r}")

    def _unread_levels(self, kind: str, *sides) -> None:
        """The unknown fields of levels in a message dropped unread (a one-sided book)."""
        for levels in sides:
            for lvl in levels if isinstance(levels, list) else ():
                if isinstance(lvl, dict):
                    self._fields.check(kind, lvl, _LEVEL)

    def _level(self, line: int, lvl, field: str, kind: str) -> tuple[float, float]:
        if not isinstance(lvl, dict) or "px" not in lvl or "sz" not in lvl:
            raise IngestError(self.path, line, field, f"expected a level {{px, sz, n}}, got {lvl!r}"[:200])
        self._fields.check(kind, lvl, _LEVEL)
        return price(lvl["px"], self.path, line, field + ".px"), quantity(lvl["sz"], self.path, line, field + ".sz")

    def _l2book(self, t_ns: int, line: int, d) -> None:
        if not isinstance(d, dict) or not isinstance(d.get("levels"), list) or len(d["levels"]) != 2:
            raise IngestError(self.path, line, "levels", "l2Book needs data.levels = [bids, asks]")
        self._coin(line, d.get("coin"))
        self._fields.check("l2Book", d, _L2BOOK)
        bids, asks = d["levels"]
        if not bids or not asks:
            self._unread_levels("l2Book.level", bids, asks)
            self.report.counts["l2book_one_sided"] += 1
            return
        # every level is checked (a NaN on level 15 passed unseen when only the top K were read)
        bid_levels = [self._level(line, lvl, "levels[0]", "l2Book.level") for lvl in bids]
        ask_levels = [self._level(line, lvl, "levels[1]", "l2Book.level") for lvl in asks]
        k = self.top_k
        imb, depth = imbalance_and_depth(sum(q for _, q in bid_levels[:k]), sum(q for _, q in ask_levels[:k]))
        (bid, bid_sz), (ask, ask_sz) = bid_levels[0], ask_levels[0]
        self.emitter.emit(t_ns, bid, ask, bid_sz, ask_sz, imb, depth, self.path, line)

    def _bbo(self, t_ns: int, line: int, d) -> None:
        if not isinstance(d, dict) or not isinstance(d.get("bbo"), list) or len(d["bbo"]) != 2:
            raise IngestError(self.path, line, "bbo", "bbo needs data.bbo = [bid, ask]")
        self._coin(line, d.get("coin"))
        self._fields.check("bbo", d, _BBO)
        bid_lvl, ask_lvl = d["bbo"]
        if bid_lvl is None or ask_lvl is None:
            self._unread_levels("bbo.level", [bid_lvl, ask_lvl])
            self.report.counts["bbo_one_sided"] += 1
            return
        (bid, bid_sz), (ask, ask_sz) = (self._level(line, bid_lvl, "bbo[0]", "bbo.level"),
                                        self._level(line, ask_lvl, "bbo[1]", "bbo.level"))
        imb, depth = imbalance_and_depth(bid_sz, ask_sz)
        self.emitter.emit(t_ns, bid, ask, bid_sz, ask_sz, imb, depth, self.path, line)

    def _trades(self, t_ns: int, line: int, d) -> None:
        """Every trade of the message is checked before any is kept, so a bad one skips the whole
        line under --lenient (the trades before it were kept once: a skipped line half-applied)."""
        if not isinstance(d, list):
            raise IngestError(self.path, line, "data", "trades needs a list of trades")
        checked = []
        for tr in d:
            if not isinstance(tr, dict):
                raise IngestError(self.path, line, "data", f"expected a trade object, got {tr!r}"[:200])
            self._coin(line, tr.get("coin"))
            self._fields.check("trades", tr, _TRADES)
            side = tr.get("side")
            if side not in _SIDES:
                raise IngestError(self.path, line, "side", f"expected 'B' or 'A', got {side!r}")
            px = price(tr.get("px"), self.path, line, "px")
            sz = quantity(tr.get("sz"), self.path, line, "sz", allow_zero=False)
            time_ms, tid = tr.get("time"), tr.get("tid")
            if time_ms is not None and (isinstance(time_ms, bool) or not isinstance(time_ms, int) or time_ms < 0):
                # a quoted time once skipped the backlog check below: old trades were kept as new
                raise IngestError(self.path, line, "time", f"expected ms since 1970, got {time_ms!r}")
            check_id(tid, self.path, line, "tid")
            # history the venue sends on subscription, stamped with our receive time it would look
            # like a burst that never happened; its prices are not judged against today's mid
            backlog = time_ms is not None and t_ns // 1_000_000 - time_ms > BACKLOG_MS
            if not backlog:
                self.emitter.check_trade(px, self.path, line, "px")
            checked.append((backlog, tid, px, sz, side))
        for backlog, tid, px, sz, side in checked:
            if backlog:
                self.report.counts["trades_backlog_dropped (over 5 s old on arrival)"] += 1
            elif tid is None or self._trade_ids.is_new(tid, (px, sz, side), self.path, line, self.report):
                self.emitter.trade(t_ns, px, sz, _SIDES[side], self.path, line, "px")

    def _user_fills(self, t_ns: int, line: int, d) -> None:
        if not isinstance(d, dict) or not isinstance(d.get("fills"), list):
            raise IngestError(self.path, line, "fills", "userFills needs data.fills = [...]")
        self._fields.check("userFills", d, _USER_FILLS)
        for f in d["fills"]:
            if isinstance(f, dict):  # a fill that is not is refused below (or skipped as a snapshot's)
                self._fields.check("userFills.fill", f, FILL_FIELDS)
        if d.get("isSnapshot"):
            self.report.counts["snapshot_fills_skipped"] += len(d["fills"])
            return
        checked = [fill_fields(f, self.path, line, self.symbol, self.report) for f in d["fills"]]  # all, then keep
        for px, sz, side, tid, _ in checked:
            if self._fill_ids.is_new(tid, (px, sz, side), self.path, line, self.report):
                self.builder.own_fill(t_ns, px, sz, side, tid)

    def finish(self) -> None:
        """A large move still unconfirmed at the end is damage (`BookEmitter.finish`)."""
        self.emitter.finish()


def read_fills_json(path: str, builder: EventBuilder, report: IngestReport, coin: str | None,
                    span_ns: tuple[int, int] | None = None) -> int:
    """Add an account's fills (userFills info response: a JSON list) as own_fill events.

    Each fill is timed at its exchange `time` (ms). An account's fills cover every coin it trades
    and every day: fills of another coin (`fills_other_coin:<coin>`) and fills outside the
    recording's time span `span_ns` (`fills_outside_recording`) are counted and left out, not
    errors. The older schema's missing `tid` and `feeToken` are tolerated with a counted note. A
    fill repeated (same id, same values) is dropped and counted (`duplicate_fills`); the same id
    with other values is an error naming both entries. Returns the number of fills added.
    """
    path = str(path)
    try:
        fills = orjson.loads(read_raw(path))
    except orjson.JSONDecodeError as exc:
        raise IngestError(path, 0, "json", f"not JSON: {exc}") from None
    if isinstance(fills, dict) and isinstance(fills.get("fills"), list):
        fills = fills["fills"]
    if not isinstance(fills, list):
        raise IngestError(path, 0, "fills", "expected a JSON list of fills")
    added, seen = 0, SeenIds("fills")
    for i, f in enumerate(fills, start=1):
        if isinstance(f, dict) and coin is not None and "coin" in f and f["coin"] != coin:
            report.counts[f"fills_other_coin:{f['coin']}"] += 1
            if not f.keys() <= FILL_FIELDS:
                report.unknown_fields("userFills.fill", f, FILL_FIELDS)
            continue
        try:
            px, sz, side, tid, time_ms = fill_fields(f, path, i, coin, report)
        except IngestError as err:
            report.skip(err)
            continue
        if "feeToken" not in f:
            report.counts["fills_without_feeToken"] += 1
        if not f.keys() <= FILL_FIELDS:
            report.unknown_fields("userFills.fill", f, FILL_FIELDS)
        if not seen.is_new(tid, (px, sz, side, time_ms), path, i, report):
            continue
        t_ns = time_ms * 1_000_000
        if span_ns is not None and not span_ns[0] <= t_ns <= span_ns[1]:
            report.counts["fills_outside_recording"] += 1
            continue
        builder.own_fill(t_ns, px, sz, side, tid)
        added += 1
    return added
