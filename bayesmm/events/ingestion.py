"""Recordings -> one validated `Session`: venue detection, parsing, own fills, adverse selection,
a second venue as cv_tick, tick-size inference and provenance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
from tqdm import tqdm

from bayesmm.events.binance import BinanceParser
from bayesmm.events.builder import EventBuilder
from bayesmm.events.errors import IngestError
from bayesmm.events.hyperliquid import HyperliquidParser, read_fills_json
from bayesmm.events.kinds import BOOK_UPDATE, CV_TICK, MID_TICK, OWN_FILL
from bayesmm.events.lines import DEFAULT_TOLERANCE_NS, IngestReport, read_lines, read_raw, sha256_file
from bayesmm.events.session import Session, SessionMeta, check_session

VENUES = ("binance", "hyperliquid")
_PARSERS = {"binance": BinanceParser, "hyperliquid": HyperliquidParser}


def detect_venue(path: str | Path) -> str:
    """'binance' or 'hyperliquid', from the first message of a recording."""
    head = read_raw(path)[:4096]
    if b'"channel"' in head:
        return "hyperliquid"
    if b'"stream"' in head or b'"lastUpdateId"' in head:
        return "binance"
    raise IngestError(str(path), 1, "venue", "cannot tell the venue from the first message; pass --venue")


def parse_recording(path: str | Path, venue: str, report: IngestReport, builder: EventBuilder,
                    tolerance_ns: int = DEFAULT_TOLERANCE_NS, progress: bool = False):
    """Parse one recording into `builder`; returns the parser (it knows the symbol and venue name)."""
    if venue not in _PARSERS:
        raise IngestError(str(path), 0, "venue", f"unknown venue {venue!r} (choose from {VENUES})")
    path = str(path)
    lines = read_lines(path, report, tolerance_ns)
    parser = _PARSERS[venue](path, builder, report)
    loads, handle = orjson.loads, parser.handle
    bar = tqdm(lines, desc=f"ingest {Path(path).name}", unit="msg", disable=not progress, mininterval=0.5,
               leave=False)
    for t_ns, lineno, payload in bar:
        try:
            try:
                msg = loads(payload)
            except orjson.JSONDecodeError as exc:
                raise IngestError(path, lineno, "json", f"malformed JSON: {exc}") from None
            if not isinstance(msg, dict):
                raise IngestError(path, lineno, "json", f"expected an object, got {type(msg).__name__}")
            handle(t_ns, lineno, msg)
        except IngestError as err:
            report.skip(err)
    parser.finish()
    return parser


def add_adverse_selection(builder: EventBuilder, horizon_s: float, report: IngestReport,
                          max_gap_s: float = float("inf")) -> int:
    """For each own_fill, append its adverse_selection event at fill time + horizon.

    AS (bps) = side * (mid_at_fill - mid_at_fill_plus_horizon) / mid_at_fill * 1e4, from the
    recorded mids (the last mid at or before each time): positive when the mid moved against us.
    Fills with no mid before them, or whose horizon runs past the last mid_tick of the recording,
    cannot be measured; they are counted as `adverse_selection_unresolved`. Nor can a fill whose
    horizon spans a recording gap (no event for more than `max_gap_s`: the mid after it says
    nothing about the fill), counted as `adverse_selection_across_gap`.
    """
    rows = builder.rows
    mids = sorted((r[0], r[2]) for r in rows if r[1] == MID_TICK)
    fills = [r for r in rows if r[1] == OWN_FILL]
    if not fills:
        return 0
    if not mids:
        report.counts["adverse_selection_unresolved"] += len(fills)
        return 0
    mid_t = np.array([m[0] for m in mids], dtype=np.int64)
    mid_px = np.array([m[1] for m in mids])
    fill_t = np.array([r[0] for r in fills], dtype=np.int64)
    horizon_ns = round(horizon_s * 1e9)
    i0 = np.searchsorted(mid_t, fill_t, side="right") - 1
    i1 = np.searchsorted(mid_t, fill_t + horizon_ns, side="right") - 1
    ok = (i0 >= 0) & (fill_t + horizon_ns <= mid_t[-1])
    report.counts["adverse_selection_unresolved"] += int(np.count_nonzero(~ok))
    all_t = np.sort(np.array([r[0] for r in rows], dtype=np.int64))
    gap_at = np.flatnonzero(np.diff(all_t) > max_gap_s * 1e9)
    if len(gap_at):  # a gap (all_t[g], all_t[g + 1]) that starts before the horizon ends and ends after the fill
        g_lo, g_hi = all_t[gap_at], all_t[gap_at + 1]
        spans = np.array([np.any((g_lo < t + horizon_ns) & (g_hi > t)) for t in fill_t], dtype=bool)
        report.counts["adverse_selection_across_gap"] += int(np.count_nonzero(ok & spans))
        ok &= ~spans
    for k in np.flatnonzero(ok):
        t, side, fill_id = fills[k][0], fills[k][4], fills[k][11]
        m0, m1 = mid_px[i0[k]], mid_px[i1[k]]
        builder.adverse_selection(t + horizon_ns, side, float(side * (m0 - m1) / m0 * 1e4), fill_id)
    return int(np.count_nonzero(ok))


def count_gaps(t_ns: np.ndarray, max_gap_s: float, report: IngestReport) -> None:
    """Count the recording gaps (silences longer than max_gap_s) and those right after a burst."""
    t = np.sort(t_ns)
    gaps = np.flatnonzero(np.diff(t) > max_gap_s * 1e9)
    report.counts["recording_gaps"] += len(gaps)
    burst = [g for g in gaps if g + 1 - np.searchsorted(t, t[g] - 100_000_000, side="left") > 50]
    report.counts["gaps_after_a_burst"] += len(burst)


def infer_tick_size(builder: EventBuilder) -> float:
    """The smallest positive step between distinct best-bid prices, rounded to 1e-9 (NaN if none)."""
    bids = np.unique(np.array([r[5] for r in builder.rows if r[1] == BOOK_UPDATE]))
    steps = np.diff(bids)
    steps = steps[steps > 1e-12]
    return float(np.round(steps.min(), 9)) if steps.size else float("nan")


def ingest(
    paths: list[str | Path] | str | Path,
    venue: str | None = None,
    fills: str | Path | None = None,
    cross_venue: str | Path | None = None,
    as_horizon_s: float = 5.0,
    fee_bps: float = 1.5,
    tick_size: float | None = None,
    lenient: bool = False,
    tolerance_ns: int = DEFAULT_TOLERANCE_NS,
    progress: bool = False,
    max_gap_s: float = 60.0,
) -> tuple[Session, IngestReport]:
    """Read recordings of one venue (plus optional own fills and a second venue) into a session.

    Args:
        paths: one or more recordings of the same venue and instrument, `<ts_ns> <json>` lines.
        venue: "binance" or "hyperliquid"; detected from the first file when None.
        fills: a Hyperliquid userFills JSON file (our fills), merged in by time.
        cross_venue: a recording of another venue; its mids become cv_tick events.
        as_horizon_s: adverse-selection horizon, seconds.
        fee_bps: our maker fee in bps (Hyperliquid's 1.5 bps by default).
        tick_size: the price grid; inferred from the best-bid steps when None.
        lenient: skip and count bad lines instead of raising `IngestError`.
        tolerance_ns: the largest step back in time repaired by reordering, ns.
        progress: show a progress bar per file.
        max_gap_s: a silence longer than this is a recording gap (the session's segments);
            counted as `recording_gaps`, and as `gaps_after_a_burst` where the recorder fell silent
            right after a burst (over 50 messages in its last 100 ms: a crash mid-sweep, worth a look).

    Returns:
        The validated session and the report of what was repaired or skipped.
    """
    paths = [paths] if isinstance(paths, str | Path) else list(paths)
    _check_arguments(paths, as_horizon_s, max_gap_s)
    report = IngestReport(lenient=lenient)
    venue = venue or detect_venue(paths[0])
    builder = EventBuilder()
    symbol, venue_name, contract, sources = _read_market(paths, venue, report, builder, tolerance_ns, progress)
    if fills is not None:
        times = [r[0] for r in builder.rows]
        span = (min(times), max(times)) if times else None
        report.counts["own_fills_from_file"] += read_fills_json(str(fills), builder, report, symbol, span)
        sources.append({"path": Path(fills).name, "sha256": sha256_file(fills), "role": "own_fills"})
    report.counts["adverse_selection_events"] += add_adverse_selection(builder, as_horizon_s, report, max_gap_s)
    if cross_venue is not None:
        _add_cross_venue(cross_venue, report, builder, tolerance_ns, progress)
        sources.append({"path": Path(cross_venue).name, "sha256": sha256_file(cross_venue), "role": "cross_venue"})
    if not len(builder):
        raise IngestError(str(paths[0]), 0, "events", "the recording(s) produced no events")
    tick = _tick_size(builder, tick_size, paths[0])
    count_gaps(np.array([r[0] for r in builder.rows], dtype=np.int64), max_gap_s, report)
    meta = SessionMeta(instrument=symbol or "unknown", venue=venue_name, tick_size=tick, fee_bps=fee_bps,
                       as_horizon_s=as_horizon_s, sources=tuple(sources), repairs=report.summary(),
                       max_gap_s=max_gap_s, contract_size=contract[0], inverse=contract[1])
    session = Session(builder.table(), meta)
    check_session(session)
    return session, report


def _check_arguments(paths: list, as_horizon_s: float, max_gap_s: float) -> None:
    if not paths:
        raise IngestError("-", 0, "paths", "no recording given")
    if not (as_horizon_s > 0):
        raise IngestError("-", 0, "as_horizon_s", f"must be > 0, got {as_horizon_s!r}")
    if not (max_gap_s > 0):
        raise IngestError("-", 0, "max_gap_s", f"must be > 0, got {max_gap_s!r}")


def _read_market(paths: list, venue: str, report: IngestReport, builder: EventBuilder, tolerance_ns: int,
                 progress: bool) -> tuple[str | None, str, tuple[float, bool], list[dict]]:
    """Parse the market recordings (one instrument) into `builder`: (symbol, venue name, contract
    (size, inverse), sources)."""
    sources, symbol, venue_name, contract = [], None, venue, (1.0, False)
    for path in paths:
        parser = parse_recording(path, venue, report, builder, tolerance_ns, progress)
        if symbol is not None and parser.symbol != symbol:
            raise IngestError(str(path), 0, "instrument", f"{parser.symbol!r} does not match {symbol!r}")
        symbol, venue_name, contract = parser.symbol, parser.venue(), parser.contract()
        sources.append({"path": Path(path).name, "sha256": sha256_file(path), "role": "market"})
    return symbol, venue_name, contract, sources


def _add_cross_venue(path, report: IngestReport, builder: EventBuilder, tolerance_ns: int, progress: bool) -> None:
    """Another venue's recording: its mids become cv_tick events in `builder` (counted as cv_ticks)."""
    other = EventBuilder()
    parser = parse_recording(path, detect_venue(path), report, other, tolerance_ns, progress)
    name = parser.venue()
    for r in other.rows:
        if r[1] == MID_TICK:
            builder.cv_tick(r[0], name, r[2])
    report.counts["cv_ticks"] += sum(1 for r in builder.rows if r[1] == CV_TICK)


def _tick_size(builder: EventBuilder, given: float | None, path) -> float:
    """The price grid: `given`, else inferred from the best bid's steps; an IngestError saying why not."""
    tick = given if given is not None else infer_tick_size(builder)
    if not (tick > 0):
        books = sum(1 for r in builder.rows if r[1] == BOOK_UPDATE)
        why = ("the recording has no book (the tick size is inferred from the steps of the best bid)" if not books
               else f"its {books} book(s) never change the best bid" if tick != tick else f"got {tick}")
        raise IngestError(str(path), 0, "tick_size", f"cannot infer the tick size: {why}; pass --tick-size")
    return tick
