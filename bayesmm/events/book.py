"""Order-book helpers shared by the venue readers: checked numbers, a top-K depth book, and
the book_update / mid_tick emission that every venue uses."""

from __future__ import annotations

import math
import re
from bisect import bisect_left, bisect_right, insort

from bayesmm.events.builder import EventBuilder
from bayesmm.events.errors import IngestError

DEFAULT_TOP_K = 10
_INF = math.inf


_PLAIN = re.compile(r"[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?")


def number(value, path: str, line: int, field: str) -> float:
    """A venue number: a JSON number or a plain decimal string ("61800.10", "1e-5"). Anything
    Python's float() would also take - "6_1800.1", full-width digits, padded " 61800.1", true,
    "nan", "inf" - is an `IngestError`: a feed that sends them is not sending what we think."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise IngestError(path, line, field, f"not a number: {value!r}")
    if isinstance(value, str) and not _PLAIN.fullmatch(value.removeprefix("-")):
        raise IngestError(path, line, field, f"not a plain decimal number: {value!r}")
    return float(value)


def price(value, path: str, line: int, field: str) -> float:
    """A finite, positive price from a JSON string or number, else `IngestError`."""
    x = number(value, path, line, field)
    if not (x > 0 and math.isfinite(x)):
        raise IngestError(path, line, field, f"price must be finite and > 0, got {value!r}")
    return x


MAX_QUANTITY = 1e15  # base units at one level or in one trade; SHIB's whole supply is ~1e15


def quantity(value, path: str, line: int, field: str, allow_zero: bool = True) -> float:
    """A finite, non-negative (or positive) quantity of at most MAX_QUANTITY, else `IngestError`.

    The bound: a size of 1e308 is finite, but the sum of two such levels (the top-K depth) is inf,
    which `check_session` then rejected as a `SessionError` instead of an error naming the line."""
    x = number(value, path, line, field)
    if not math.isfinite(x) or x < 0 or (x == 0 and not allow_zero):
        raise IngestError(path, line, field, f"quantity must be finite and {'>=' if allow_zero else '>'} 0, "
                          f"got {value!r}")
    if x > MAX_QUANTITY:
        raise IngestError(path, line, field, f"implausible quantity {value!r} (over {MAX_QUANTITY:g})")
    return x


def check_id(value, path: str, line: int, field: str) -> None:
    """A trade id, when present, must be a non-negative JSON integer: "77" or 77.0 would be keyed
    apart from 77, so a trade re-sent with its id quoted was counted twice."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise IngestError(path, line, field, f"a trade id must be a non-negative integer, got {value!r}")


def side_levels(levels, path: str, line: int, field: str) -> list[tuple[float, float]]:
    """[[px, qty], ...] (strings or numbers) as checked (price, qty) pairs.

    A fast path converts and range-checks plain decimal strings in bulk; otherwise the slow path
    checks each level, naming the offending one, and returns them (levels sent as JSON numbers are
    valid: they once reached an AssertionError here).
    """
    if not isinstance(levels, list):
        raise IngestError(path, line, field, f"expected a list of [price, qty], got {type(levels).__name__}")
    try:
        out = [(float(p), float(q)) for p, q in levels]
        plain = all(type(p) is str and type(q) is str and _PLAIN.fullmatch(p) and _PLAIN.fullmatch(q)
                    for p, q in levels)
        if plain and all(0.0 < p < _INF and 0.0 <= q <= MAX_QUANTITY for p, q in out):
            return out
    except (TypeError, ValueError):
        pass
    checked = []
    for lvl in levels:
        if not isinstance(lvl, list | tuple) or len(lvl) != 2:
            raise IngestError(path, line, field, f"expected [price, qty], got {lvl!r}")
        checked.append((price(lvl[0], path, line, field), quantity(lvl[1], path, line, field)))
    return checked


class DepthBook:
    """A price-level book kept from incremental diffs (qty 0 deletes a level).

    Prices are kept in sorted lists so the top K levels inside the current touch are a bisect
    and a slice, not a sort.
    """

    def __init__(self) -> None:
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self._bid_px: list[float] = []
        self._ask_px: list[float] = []
        self.version = 0

    def clear(self) -> None:
        self.__init__()

    def apply(self, bids: list[tuple[float, float]], asks: list[tuple[float, float]]) -> None:
        """Set each (price, qty) level; qty 0 removes it."""
        for levels, book, prices in ((bids, self.bids, self._bid_px), (asks, self.asks, self._ask_px)):
            for px, qty in levels:
                if qty == 0.0:
                    if book.pop(px, None) is not None:
                        del prices[bisect_left(prices, px)]
                else:
                    if px not in book:
                        insort(prices, px)
                    book[px] = qty
        self.version += 1

    def top_k(self, best_bid: float, best_ask: float, k: int) -> tuple[float, float]:
        """Quantities on the best k bid levels <= best_bid and the best k ask levels >= best_ask.

        Bounding by the touch from the (faster) top-of-book stream ignores stale levels that
        the diff stream has not removed yet.
        """
        hi = bisect_right(self._bid_px, best_bid)
        lo = bisect_left(self._ask_px, best_ask)
        bid_qty = sum(self.bids[p] for p in self._bid_px[max(0, hi - k):hi])
        ask_qty = sum(self.asks[p] for p in self._ask_px[lo:lo + k])
        return bid_qty, ask_qty


def imbalance_and_depth(bid_qty: float, ask_qty: float) -> tuple[float, float]:
    """(bid - ask)/(bid + ask) and bid + ask; NaN imbalance when both sides are empty."""
    total = bid_qty + ask_qty
    return ((bid_qty - ask_qty) / total if total > 0 else math.nan), total


MAX_SPREAD = 0.10  # a book wider than 10% of its mid is not a market maker's book
MAX_JUMP = 0.10  # a mid more than 10% from the level before it is a large move, to be confirmed
CONFIRM = 2  # further books or prints at the new level that confirm a large move


class _Pending:
    """A large move not yet confirmed: its level, the lines that went there and their rows."""

    def __init__(self, mid: float, level_before: float, emitted_before: float, path: str, line: int, what: str):
        self.mid, self.level_before, self.emitted_before = mid, level_before, emitted_before
        self.origin = (path, line, what)
        self.rows: list[int] = []
        self.lines: dict[tuple[str, int], str] = {}
        self.spans: dict[tuple[str, int], list[int]] = {}  # each line's rows: [first, end)
        self.support = 0


class BookEmitter:
    """Emits book_update for each top-of-book observation and mid_tick when the mid changes, and
    tells a move from damage.

    A book whose bid is not below its ask, or whose spread exceeds MAX_SPREAD of its mid, is an
    `IngestError` at once (counted and skipped with --lenient): one side's absurd value (an ask of
    1e308, a bid of 1e-300) makes the spread absurd. A book or trade print more than MAX_JUMP from the
    current level is a **large move**, held pending: it is emitted, and confirmed when CONFIRM further
    books or prints stay within MAX_JUMP of it (both sides of the book moved together, trades print
    there) - then it is the new level, counted (`large_moves`, and the largest in bps,
    `large_move_largest_bps`). It is **damage** when, before that, a book returns to the old level (it
    was reverted at once), or a book or print lands far from both, or the recording ends: its lines'
    events are taken back out, and each such line is an `IngestError` naming it (with --lenient,
    skipped and counted: as if the line had been deleted). Flash crashes of 10-90% within seconds
    are real on perpetual venues, and exactly what a market maker needs to study; an isolated value
    orders of magnitude off, reverted at once, is not a market."""

    def __init__(self, builder: EventBuilder, report=None) -> None:
        self.builder = builder
        self.report = report
        self.last_mid = math.nan  # the confirmed level
        self._emitted_mid = math.nan  # the mid of the last mid_tick emitted
        self._pending: _Pending | None = None
        self._line: tuple[str, int] | None = None  # the line being read, and its first row
        self._line_first = 0
        self._refused: set[tuple[str, int]] = set()  # damaged lines: the rest of such a line emits nothing

    def _enter(self, path: str, line: int) -> bool:
        """Note the line an emission comes from; False when that line was refused as damage (its other
        events are dropped with it, as if the line had been deleted)."""
        if (path, line) != self._line:
            self._line, self._line_first = (path, line), len(self.builder.rows)
        return (path, line) not in self._refused

    def _extend(self) -> None:
        """The pending move's lines' spans cover what the current line has emitted so far."""
        if self._pending is not None and self._line in self._pending.spans:
            self._pending.spans[self._line][1] = len(self.builder.rows)

    @staticmethod
    def _near(x: float, level: float) -> bool:
        return not math.isfinite(level) or abs(x / level - 1.0) <= MAX_JUMP

    def _damage(self) -> None:
        """The pending move was damage: take its events back out, restore the mid, and refuse (or,
        leniently, skip) each of its lines."""
        pend, self._pending = self._pending, None
        rows = set(pend.rows).union(*(range(a, b) for a, b in pend.spans.values()))
        for i in sorted(rows, reverse=True):
            del self.builder.rows[i]
        if self._line in pend.spans:  # the line being read is refused: its later events go too
            self._line_first = len(self.builder.rows)
        self._refused.update(pend.spans)
        self._emitted_mid = pend.emitted_before
        path, line, what = pend.origin
        errors = [IngestError(path, line, "bid/ask" if what == "book" else what,
                              f"implausible {'book' if what == 'book' else 'trade price'}: mid {pend.mid} is "
                              f"{pend.mid / pend.level_before - 1:+.1%} from the level {pend.level_before}, and "
                              f"nothing confirmed it (no {CONFIRM} books or prints there before it reverted or the "
                              "recording ended)")]
        errors += [IngestError(p, ln, f, f"at the unconfirmed level {pend.mid} (see line {line})")
                   for (p, ln), f in pend.lines.items() if (p, ln) != (path, line)]
        for err in errors:
            if self.report is None:
                raise err
            self.report.skip(err)

    def _record(self, path: str, line: int, what: str, first_row: int) -> None:
        pend = self._pending
        pend.rows.extend(range(first_row, len(self.builder.rows)))
        pend.lines.setdefault((path, line), what)
        pend.spans.setdefault((path, line), [self._line_first, len(self.builder.rows)])

    def _confirm_if_supported(self) -> None:
        pend = self._pending
        if pend.support >= CONFIRM:
            self._pending = None
            self.last_mid = pend.mid
            if self.report is not None:
                size_bps = int(round(abs(pend.mid / pend.level_before - 1.0) * 1e4))
                self.report.counts["large_moves"] += 1
                self.report.counts["large_move_largest_bps"] = max(self.report.counts["large_move_largest_bps"],
                                                                   size_bps)

    def _classify(self, x: float, path: str, line: int, what: str) -> bool:
        """Settle a pending move against a new book or print at x; True when x belongs to the
        (new or continuing) pending move, whose rows then include what is emitted for it."""
        if self._pending is not None:
            if self._near(x, self._pending.mid):
                self._pending.support += 1
                return True
            self._damage()  # reverted, or a third level: the pending was not a market
        if self._near(x, self.last_mid):
            return False
        self._pending = _Pending(x, self.last_mid, self._emitted_mid, path, line, what)
        return True

    def emit(self, t_ns: int, bid: float, ask: float, bid_sz: float, ask_sz: float, imb: float,
             depth: float, path: str, line: int) -> None:
        if bid >= ask:
            raise IngestError(path, line, "bid/ask", f"crossed or locked book: bid {bid} >= ask {ask}")
        mid = 0.5 * (bid + ask)
        if not (math.isfinite(mid) and (ask - bid) / mid <= MAX_SPREAD):
            raise IngestError(path, line, "bid/ask", f"implausible book: bid {bid}, ask {ask} (spread over "
                              f"{MAX_SPREAD:.0%} of the mid)")
        if not self._enter(path, line):
            return
        pending = self._classify(mid, path, line, "book")
        if (path, line) in self._refused:
            return
        first = len(self.builder.rows)
        self.builder.book_update(t_ns, bid, ask, bid_sz, ask_sz, imb, depth)
        if mid != self._emitted_mid:
            self._emitted_mid = mid
            self.builder.mid_tick(t_ns, mid)
        if pending:
            self._record(path, line, "book", first)
            self._confirm_if_supported()
        else:
            self.last_mid = mid
        self._extend()

    def check_trade(self, px: float, path: str, line: int, field: str) -> None:
        """A trade print is checked before its line is accepted: one far (over MAX_JUMP) from both the
        level and a pending move is an `IngestError` at once when a move is pending (a third level);
        otherwise `trade` settles it."""
        pend = self._pending
        if pend is not None and not self._near(px, pend.mid) and not self._near(px, self.last_mid):
            raise IngestError(path, line, field, f"implausible trade price {px} ({px / self.last_mid - 1:+.1%} from "
                              f"the mid {self.last_mid}, {px / pend.mid - 1:+.1%} from the pending move's {pend.mid})")

    def trade(self, t_ns: int, px: float, size: float, side: int, path: str, line: int, field: str) -> None:
        """Emit a trade print; one far from the level starts (or supports) a large move (class docstring)."""
        if not self._enter(path, line):
            return
        pending = self._classify(px, path, line, field) if math.isfinite(self.last_mid) else False
        if (path, line) in self._refused:
            return
        first = len(self.builder.rows)
        self.builder.trade_print(t_ns, px, size, side)
        if pending:
            self._record(path, line, field, first)
            self._confirm_if_supported()
        self._extend()

    def finish(self) -> None:
        """At the recording's end a move still pending was never confirmed: damage."""
        if self._pending is not None:
            self._damage()
