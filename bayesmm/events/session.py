"""A session: one columnar, time-sorted event table plus its metadata, stored as Parquet.

Columns (absent values are NaN for floats, 0 for `side`, -1 for `fill_id`, "" for `venue`):

| column     | type    | unit / meaning                                                        |
|------------|---------|-----------------------------------------------------------------------|
| t_ns       | int64   | event time, ns since the Unix epoch (local receive time of the line)  |
| kind       | string  | one of `events.kinds.KINDS`                                           |
| price      | float64 | mid (mid_tick), trade / fill price, other venue's mid (cv_tick), our best |
|            |         | order's price on `side` (own_quote; NaN: none rests)                  |
| size       | float64 | trade / fill quantity, base units                                     |
| side       | int8    | trade_print: aggressor (+1 taker bought); own_fill, adverse_selection: ours (+1 buy); |
|            |         | own_quote: which of our orders (+1 bid)                               |
| bid_px     | float64 | best bid (book_update)                                                |
| ask_px     | float64 | best ask (book_update)                                                |
| bid_sz     | float64 | best bid quantity                                                     |
| ask_sz     | float64 | best ask quantity                                                     |
| imbalance  | float64 | top-K depth imbalance (bid - ask)/(bid + ask) in [-1, 1]; NaN until a depth book is known |
| depth_qty  | float64 | total quantity on the top-K levels of both sides; NaN until known     |
| fill_id    | int64   | own_fill id, repeated on its adverse_selection event                  |
| as_bps     | float64 | adverse selection of a fill: mid move against us over as_horizon_s, bps |
| venue      | string  | the other venue's name (cv_tick)                                      |

The depth column is `depth_qty`, so that the unit is in the name.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bayesmm.events.atomic import write_atomic
from bayesmm.events.errors import SessionError
from bayesmm.events.kinds import KINDS

SCHEMA = pa.schema(
    [
        ("t_ns", pa.int64()),
        ("kind", pa.string()),
        ("price", pa.float64()),
        ("size", pa.float64()),
        ("side", pa.int8()),
        ("bid_px", pa.float64()),
        ("ask_px", pa.float64()),
        ("bid_sz", pa.float64()),
        ("ask_sz", pa.float64()),
        ("imbalance", pa.float64()),
        ("depth_qty", pa.float64()),
        ("fill_id", pa.int64()),
        ("as_bps", pa.float64()),
        ("venue", pa.string()),
    ]
)
COLUMNS: tuple[str, ...] = tuple(SCHEMA.names)
_META_KEY = b"bayesmm.session"
SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)
"""Version 2 added the instrument's contract terms (`SessionMeta.contract_size`, `.inverse`); a version-1
file reads with the defaults (a linear instrument sized in units of the base asset)."""


@dataclass(frozen=True)
class SessionMeta:
    """What a session is, and where it came from.

    Attributes:
        instrument: the traded instrument, e.g. "BTCUSDT".
        venue: where it trades, e.g. "binance-usdm", "hyperliquid".
        tick_size: the price grid, quote currency.
        fee_bps: our maker fee, bps of notional (positive = we pay).
        as_horizon_s: how long after a fill its adverse selection is measured, seconds.
        sources: the files read, each {"path", "sha256", "role"}.
        repairs: counts of what the reader repaired or skipped, by name.
        max_gap_s: a silence longer than this (no event at all) is a recording gap: the session is
            cut into segments there (`Session.segments`), and no filter, fit or statistic spans one.
        contract_size: what one unit of size is: units of the base asset for a linear instrument
            (1 for spot and most perps), quote currency per contract for an inverse one (Binance
            COIN-M ETHUSD: 10 USD).
        inverse: an inverse (coin-margined) contract: P&L settles in the base asset, and a position
            of q contracts is worth q x contract_size / price of it.
    """

    instrument: str
    venue: str
    tick_size: float
    fee_bps: float = 1.5
    as_horizon_s: float = 5.0
    sources: tuple[dict, ...] = ()
    repairs: dict = field(default_factory=dict)
    max_gap_s: float = 60.0
    contract_size: float = 1.0
    inverse: bool = False

    def to_dict(self) -> dict:
        """Plain JSON-able dict (with the schema version)."""
        d = dataclasses.asdict(self)
        d["sources"] = [dict(s) for s in self.sources]
        d["schema_version"] = SCHEMA_VERSION
        return d

    @classmethod
    def from_dict(cls, d: dict) -> SessionMeta:
        """Inverse of `to_dict`; unknown keys are an error, not silently dropped."""
        d = dict(d)
        version = d.pop("schema_version", SCHEMA_VERSION)
        if version not in READABLE_VERSIONS:
            raise SessionError(-1, "schema_version", f"unsupported version {version!r}", "metadata")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise SessionError(-1, unknown[0], f"unknown metadata keys {unknown}", "metadata")
        d["sources"] = tuple(dict(s) for s in d.get("sources", ()))
        return cls(**d)


@dataclass(frozen=True)
class Session:
    """A validated event table (pyarrow) and its metadata."""

    table: pa.Table
    meta: SessionMeta

    def __len__(self) -> int:
        return self.table.num_rows

    def column(self, name: str) -> np.ndarray:
        """One column as a NumPy array (strings as an object array)."""
        return self.table.column(name).to_numpy(zero_copy_only=False)

    def counts(self) -> dict[str, int]:
        """Number of events of each kind (every kind listed, zeros included)."""
        kinds, n = np.unique(self.column("kind").astype(str), return_counts=True)
        got = dict(zip(kinds.tolist(), n.tolist(), strict=True))
        return {k: int(got.get(k, 0)) for k in KINDS}

    def span_s(self) -> float:
        """Seconds from the first to the last event."""
        t = self.column("t_ns")
        return float(t[-1] - t[0]) / 1e9 if len(t) else 0.0

    def segments(self) -> list[tuple[float, float]]:
        """(start_s, end_s) of each stretch without a gap longer than `meta.max_gap_s`, in seconds
        since the first event (the last event of a segment at end_s; [(0, span)] without gaps)."""
        t = self.column("t_ns")
        if not len(t):
            return []
        rel = (t - t[0]) / 1e9
        cut = np.flatnonzero(np.diff(rel) > self.meta.max_gap_s)
        starts = np.concatenate([[0.0], rel[cut + 1]])
        ends = np.concatenate([rel[cut], [rel[-1]]])
        return list(zip(starts.tolist(), ends.tolist(), strict=True))

    def segment_pieces(self) -> list[Session]:
        """One Session per segment (same metadata): what the fits take as separate latent paths."""
        return [self.between(a, b + 1e-9) for a, b in self.segments()]

    def between(self, start_s: float, end_s: float) -> Session:
        """The events whose time since the session's first event lies in [start_s, end_s), with
        the same metadata (a training or held-out part of a recording)."""
        t = self.column("t_ns")
        rel = (t - t[0]) / 1e9 if len(t) else t
        keep = np.flatnonzero((rel >= start_s) & (rel < end_s))
        return Session(self.table.take(keep), self.meta)


def write_session(session: Session, path: str | Path) -> None:
    """Write a session to Parquet; table and metadata round-trip exactly through `read_session`."""
    check_session(session)
    meta = {_META_KEY: json.dumps(session.meta.to_dict(), sort_keys=True).encode()}
    table = session.table.replace_schema_metadata(meta)
    write_atomic(path, lambda tmp: pq.write_table(table, str(tmp), compression="zstd"))


def read_session(path: str | Path) -> Session:
    """Read and validate a session written by `write_session`."""
    path = Path(path)
    if not path.exists():
        raise SessionError(-1, "path", f"no such file {str(path)!r}", str(path))
    try:
        table = pq.read_table(str(path))
    except (pa.ArrowInvalid, OSError) as exc:
        raw = path.name.endswith((".gz", ".txt", ".jsonl", ".log"))
        why = "a raw recording? run `bayesmm ingest` on it first to make a session" if raw else str(exc)
        raise SessionError(-1, "file", f"not a Parquet file (a session): {why}", str(path)) from exc
    raw = (table.schema.metadata or {}).get(_META_KEY)
    if raw is None:
        raise SessionError(-1, "metadata", "no bayesmm session metadata in this Parquet file", str(path))
    meta = SessionMeta.from_dict(json.loads(raw))
    session = Session(table.replace_schema_metadata(None), meta)
    check_session(session, where=str(path))
    return session


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _py(value):
    """A NumPy scalar as the plain Python value (so messages read 'weird', not np.str_('weird'))."""
    return value.item() if hasattr(value, "item") else value


def check_session(session: Session, where: str = "session") -> None:
    """Check the schema and every per-kind invariant; raise `SessionError` naming the first bad row.

    Checks: exact column names and types (unknown or missing columns are errors), known kinds,
    time non-decreasing, finite positive prices, books not crossed, sides in {-1, +1} where they
    matter, positive sizes, and that every adverse_selection event refers to an earlier own_fill.
    """
    _check_schema(session.table, where)
    _check_meta(session.meta, where)
    if session.table.num_rows == 0:
        return
    col = {c: session.table.column(c).to_numpy(zero_copy_only=False) for c in COLUMNS}
    kind = col["kind"].astype(str)
    bad = ~np.isin(kind, KINDS)
    if bad.any():
        i = _first_bad(bad)
        raise SessionError(i, "kind", f"unknown kind {_py(kind[i])!r}", where)
    t = col["t_ns"]
    back = np.diff(t) < 0
    if back.any():
        i = _first_bad(back) + 1
        raise SessionError(i, "t_ns", f"time runs backwards: {_py(t[i])} < {_py(t[i - 1])}", where)
    _check_rows(col, kind, where)
    _check_adverse_selection(col, kind, where)


def _check_schema(table: pa.Table, where: str) -> None:
    """Exactly the schema's columns, each of its type (a large string reads as a string)."""
    names = table.schema.names
    unknown = [c for c in names if c not in COLUMNS]
    if unknown:
        raise SessionError(-1, unknown[0], f"unknown column(s) {unknown}", where)
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        raise SessionError(-1, missing[0], f"missing column(s) {missing}", where)
    for f in SCHEMA:
        got = table.schema.field(f.name).type
        if got != f.type and not (pa.types.is_large_string(got) and f.type == pa.string()):
            raise SessionError(-1, f.name, f"type {got} (expected {f.type})", where)


def _check_meta(m: SessionMeta, where: str) -> None:
    """The session's constants: positive tick, horizon and gap length, a finite fee."""
    for name in ("tick_size", "as_horizon_s", "max_gap_s"):
        value = getattr(m, name)
        if not (np.isfinite(value) and value > 0):
            raise SessionError(-1, name, f"must be > 0, got {value!r}", where)
    if not np.isfinite(m.fee_bps):
        raise SessionError(-1, "fee_bps", f"must be finite, got {m.fee_bps!r}", where)


def _check_rows(col: dict, kind: np.ndarray, where: str) -> None:
    """Each kind's fields: finite positive prices and sizes, sides +-1, uncrossed books, imbalance in
    [-1, 1], fill ids, finite AS, no infinity anywhere, a venue on other venues' ticks."""

    def need(rows: np.ndarray, name: str, ok: np.ndarray, what: str) -> None:
        bad = rows & ~ok
        if bad.any():
            i = _first_bad(bad)
            raise SessionError(i, name, f"{kind[i]}: {what}, got {_py(col[name][i])!r}", where)

    with np.errstate(invalid="ignore"):
        priced = np.isin(kind, ("mid_tick", "trade_print", "own_fill", "cv_tick"))
        need(priced, "price", np.isfinite(col["price"]) & (col["price"] > 0), "price must be finite and > 0")
        sized = np.isin(kind, ("trade_print", "own_fill"))
        need(sized, "size", np.isfinite(col["size"]) & (col["size"] > 0), "size must be finite and > 0")
        quotes = kind == "own_quote"
        need(quotes, "price", np.isnan(col["price"]) | (col["price"] > 0), "price must be > 0 or NaN (no order)")
        sided = np.isin(kind, ("trade_print", "own_fill", "adverse_selection", "own_quote"))
        need(sided, "side", np.abs(col["side"]) == 1, "side must be +1 or -1")
        book = kind == "book_update"
        for name in ("bid_px", "ask_px"):
            need(book, name, np.isfinite(col[name]) & (col[name] > 0), "must be finite and > 0")
        for name in ("bid_sz", "ask_sz"):
            need(book, name, np.isfinite(col[name]) & (col[name] >= 0), "must be finite and >= 0")
        need(book, "ask_px", col["ask_px"] > col["bid_px"], "crossed or locked book (ask <= bid)")
        imb = col["imbalance"]
        need(book, "imbalance", np.isnan(imb) | (np.abs(imb) <= 1.0), "must be in [-1, 1] or NaN")
        need(kind == "own_fill", "fill_id", col["fill_id"] >= 0, "own fills need a fill_id >= 0")
        need(kind == "adverse_selection", "as_bps", np.isfinite(col["as_bps"]), "must be finite")
        everywhere = np.ones(len(kind), bool)
        for name in ("price", "size", "bid_px", "ask_px", "bid_sz", "ask_sz", "imbalance", "depth_qty", "as_bps"):
            need(everywhere, name, ~np.isinf(col[name]), "must not be infinite (NaN marks an absent value)")
        need(kind == "cv_tick", "venue", col["venue"].astype(str) != "", "cv_tick needs a venue")


def _check_adverse_selection(col: dict, kind: np.ndarray, where: str) -> None:
    """Every adverse_selection event refers to an own_fill earlier in the session."""
    adverse = kind == "adverse_selection"
    if adverse.any():
        fill_rows = np.flatnonzero(kind == "own_fill")
        first_row = dict(zip(col["fill_id"][fill_rows][::-1].tolist(), fill_rows[::-1].tolist(), strict=True))
        for i in np.flatnonzero(adverse):
            j = first_row.get(int(col["fill_id"][i]))
            if j is None or j > i:
                raise SessionError(int(i), "fill_id", f"adverse_selection for no earlier own_fill "
                                   f"(fill_id {col['fill_id'][i]})", where)
