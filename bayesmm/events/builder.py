"""Accumulates events row by row and produces the time-sorted session table."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa

from bayesmm.events.kinds import ADVERSE_SELECTION, BOOK_UPDATE, CV_TICK, KINDS, MID_TICK, OWN_FILL, TRADE_PRINT
from bayesmm.events.session import SCHEMA

NAN = math.nan


class EventBuilder:
    """Append events of any kind; `table()` returns them sorted by time (stable).

    One tuple per event in a list keeps the hot path to a single append; the transposition
    into columns happens once at the end.
    """

    def __init__(self) -> None:
        self.rows: list[tuple] = []

    def __len__(self) -> int:
        return len(self.rows)

    def mid_tick(self, t_ns: int, mid: float) -> None:
        self.rows.append((t_ns, MID_TICK, mid, NAN, 0, NAN, NAN, NAN, NAN, NAN, NAN, -1, NAN, ""))

    def book_update(self, t_ns: int, bid_px: float, ask_px: float, bid_sz: float, ask_sz: float,
                    imbalance: float, depth_qty: float) -> None:
        self.rows.append((t_ns, BOOK_UPDATE, NAN, NAN, 0, bid_px, ask_px, bid_sz, ask_sz,
                          imbalance, depth_qty, -1, NAN, ""))

    def trade_print(self, t_ns: int, price: float, size: float, side: int) -> None:
        self.rows.append((t_ns, TRADE_PRINT, price, size, side, NAN, NAN, NAN, NAN, NAN, NAN, -1, NAN, ""))

    def own_fill(self, t_ns: int, price: float, size: float, side: int, fill_id: int) -> None:
        self.rows.append((t_ns, OWN_FILL, price, size, side, NAN, NAN, NAN, NAN, NAN, NAN, fill_id, NAN, ""))

    def adverse_selection(self, t_ns: int, side: int, as_bps: float, fill_id: int) -> None:
        self.rows.append((t_ns, ADVERSE_SELECTION, NAN, NAN, side, NAN, NAN, NAN, NAN, NAN, NAN,
                          fill_id, as_bps, ""))

    def cv_tick(self, t_ns: int, venue: str, price: float) -> None:
        self.rows.append((t_ns, CV_TICK, price, NAN, 0, NAN, NAN, NAN, NAN, NAN, NAN, -1, NAN, venue))

    def extend(self, other: EventBuilder) -> None:
        self.rows.extend(other.rows)

    def table(self) -> pa.Table:
        """The events as a pyarrow table in `SCHEMA`, stably sorted by t_ns."""
        if not self.rows:
            return SCHEMA.empty_table()
        cols = list(zip(*self.rows, strict=True))
        t = np.asarray(cols[0], dtype=np.int64)
        order = np.argsort(t, kind="stable")
        kinds = np.asarray(KINDS, dtype=object)[np.asarray(cols[1], dtype=np.int64)]
        arrays = []
        for name, values in zip(SCHEMA.names, [cols[0], kinds, *cols[2:]], strict=True):
            typ = SCHEMA.field(name).type
            if typ == pa.string():
                arr = np.asarray(values, dtype=object)[order]
            else:
                arr = np.asarray(values, dtype=typ.to_pandas_dtype())[order]
            arrays.append(pa.array(arr, type=typ))
        return pa.Table.from_arrays(arrays, schema=SCHEMA)
