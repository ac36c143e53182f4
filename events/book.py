"""Order-book helpers shared by the venue readers: checked numbers, a top-K depth book, and
the book_update / mid_tick emission that every venue uses."""

from __future__ import annotations

import math
import re
from bisect import bisect_left, bisect_right, insort

from events.builder import EventBuilder
from events.errors import IngestError

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
    which `validate` then rejected as a `SessionError` instead of an error naming the line."""
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
MAX_JUMP = 0.10  # a mid more than 10% from the previous one (between two book messages) is implausible


class BookEmitter:
    """Emits book_update for each top-of-book observation and mid_tick when the mid changes.

    Plausibility: a book whose spread exceeds MAX_SPREAD of its mid, or whose mid lies more than
    MAX_JUMP from the previous book's, is an `IngestError` (counted and skipped with --lenient):
    an ask of 1e308 or a bid of 1e-300 once passed ingest and left the belief NaN or pinned. A real
    move that large between two messages of a liquid feed would be worth a look too. Trade prints
    are held to the same bound by `check_trade`."""

    def __init__(self, builder: EventBuilder) -> None:
        self.builder = builder
        self.last_mid = math.nan

    def emit(self, t_ns: int, bid: float, ask: float, bid_sz: float, ask_sz: float, imb: float,
             depth: float, path: str, line: int) -> None:
        if bid >= ask:
            raise IngestError(path, line, "bid/ask", f"crossed or locked book: bid {bid} >= ask {ask}")
        mid = 0.5 * (bid + ask)
        if not (math.isfinite(mid) and (ask - bid) / mid <= MAX_SPREAD):
            raise IngestError(path, line, "bid/ask", f"implausible book: bid {bid}, ask {ask} (spread over "
                              f"{MAX_SPREAD:.0%} of the mid)")
        if math.isfinite(self.last_mid) and abs(mid / self.last_mid - 1.0) > MAX_JUMP:
            raise IngestError(path, line, "bid/ask", f"implausible book: mid {mid} is {mid / self.last_mid - 1:+.1%} "
                              f"from the previous book's {self.last_mid}")
        self.builder.book_update(t_ns, bid, ask, bid_sz, ask_sz, imb, depth)
        if mid != self.last_mid:
            self.last_mid = mid
            self.builder.mid_tick(t_ns, mid)

    def check_trade(self, px: float, path: str, line: int, field: str) -> None:
        """A trade print more than MAX_JUMP from the last book's mid is an `IngestError` (no check
        before the first book). A print at 1e308 or 1e-300 used to reach the session as it was:
        finite, so no check caught it, and a fill model would have filled every quote against it."""
        if math.isfinite(self.last_mid) and abs(px / self.last_mid - 1.0) > MAX_JUMP:
            raise IngestError(path, line, field, f"implausible trade price {px} ({px / self.last_mid - 1:+.1%} from "
                              f"the mid {self.last_mid})")
