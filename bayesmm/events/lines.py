"""The recording line format `<ts_ns> <json>` (gzip or plain): reading, ordering, de-duplication.

Lines are read whole into memory (a recording of hours is a few GB at most; research sessions
are far smaller), ordered by their timestamp, and exact duplicates dropped. Small steps back in
time (within `tolerance_ns`) are repaired by a stable sort and counted; larger ones are errors.
"""

from __future__ import annotations

import gzip
import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bayesmm.events.errors import IngestError

DEFAULT_TOLERANCE_NS = 1_000_000_000  # 1 s: reorder steps back smaller than this, reject larger


MAX_UNKNOWN_NAMES = 100  # distinct unknown-field names listed one by one in a report
MAX_NAME = 40  # characters of an unknown field's name shown in its count's key


def field_label(name: str) -> str:
    """A field name as shown in a count's key: as it is when short and printable, else escaped
    (`ascii`) and cut to MAX_NAME characters with the length said."""
    if 0 < len(name) <= MAX_NAME and name.isprintable() and name.strip() == name:
        return name
    label = ascii(name[:MAX_NAME])
    return label if len(name) <= MAX_NAME else f"{label}...({len(name):,} characters)"


RECENT_LINES = 10_000
"""Lines whose counts a later refusal can take back (a pending move is settled within a few books)."""


class Counts(Counter):
    """A Counter that notes each key's value before its first change since `changes` was last cleared:
    what a line changed is read from that note, not from a copy and a difference of every count per
    line, which would tax every line of a recording for the few that change a count."""

    def __init__(self, *args, **kwargs) -> None:
        self.changes: dict = {}
        super().__init__(*args, **kwargs)

    def __setitem__(self, key, value) -> None:
        if key not in self.changes:
            self.changes[key] = self.get(key, 0)
        super().__setitem__(key, value)

    def added_since(self) -> Counter:
        """What the counts gained since `changes` was cleared (positive changes only)."""
        return Counter({k: self[k] - v for k, v in self.changes.items() if self[k] > v})


class FieldNotes:
    """The unknown fields of the message being read, counted (`IngestReport.unknown_fields`) only
    once the message is accepted: a refused (or, with --lenient, skipped) line leaves no count
    behind, as if it had been deleted. One per parser, reading the file at `path`."""

    def __init__(self, path) -> None:
        self.path = str(path)
        self._pending: list[tuple[str, dict, frozenset]] = []

    def check(self, kind: str, obj: dict, known: frozenset) -> None:
        """Note `obj` (a message of `kind`) if it has a field outside `known`."""
        if not obj.keys() <= known:
            self._pending.append((kind, obj, known))

    def read(self, dispatch, report: IngestReport, t_ns: int, line: int, msg) -> None:
        """`dispatch(t_ns, line, msg)` (which raises `IngestError` for a bad message), then count its
        notes; what the line added to the report's counts is remembered (`IngestReport.line_counted`)."""
        self._pending.clear()  # left by a message refused half-way
        report.counts.changes.clear()
        dispatch(t_ns, line, msg)
        for kind, obj, known in self._pending:
            report.unknown_fields(kind, obj, known)
        self._pending.clear()
        if report.counts.changes:
            report.line_counted(self.path, line, report.counts.added_since())


@dataclass
class IngestReport:
    """What a reader did besides converting: repairs, skips (lenient mode) and their first examples.

    Attributes:
        counts: name -> count, e.g. "reordered_lines", "duplicate_lines", "skipped:price",
            "unknown_field bookTicker.X" (a field the reader does not know, see `unknown_fields`).
        examples: the first few error messages of skipped lines, so a lenient run says what it skipped.
        lenient: whether bad lines were skipped instead of raising.
    """

    counts: Counts = field(default_factory=Counts)
    examples: list[str] = field(default_factory=list)
    lenient: bool = False
    _recent: dict = field(default_factory=dict, repr=False)  # (path, line) -> what it counted

    def line_counted(self, path: str, line: int, added: Counter) -> None:
        """Remember what an accepted line added to the counts, for the last RECENT_LINES lines that
        added anything: a line can be refused after it was read (a large move it started that no
        later book confirmed, `events.book.BookEmitter`), and then its counts go with it."""
        if added:
            self._recent[(path, line)] = added
            if len(self._recent) > RECENT_LINES:
                del self._recent[next(iter(self._recent))]

    def skip(self, err: IngestError) -> None:
        """Count a skipped line under its field (lenient mode), or raise it (strict mode); what the
        line had counted when it was read is taken back, as if it had been deleted."""
        if not self.lenient:
            raise err
        taken = self._recent.pop((err.path, err.line), Counter())
        self.counts.subtract(taken)
        for k in taken:
            if not self.counts[k]:
                del self.counts[k]
        self.counts[f"skipped:{err.field}"] += 1
        if len(self.examples) < 10:
            self.examples.append(str(err))

    def unknown_fields(self, kind: str, obj: dict, known: frozenset) -> None:
        """Count each field of `obj` (a message of `kind`) that is not in `known`, once per occurrence,
        as `unknown_field <kind>.<field>`: a note, not an error (venues add fields over time), but
        never dropped unseen. Odd or long names are shown clipped and escaped; past
        MAX_UNKNOWN_NAMES distinct names, new ones are counted together as `<kind>.(other names)`."""
        for name in sorted(obj.keys() - known):
            key = f"unknown_field {kind}.{field_label(name)}"
            if key not in self.counts and sum(k.startswith("unknown_field ") for k in self.counts) >= MAX_UNKNOWN_NAMES:
                key = f"unknown_field {kind}.(other names)"
            self.counts[key] += 1

    def summary(self) -> dict[str, int]:
        """Counts as a plain sorted dict (what goes into the session metadata)."""
        return {k: int(v) for k, v in sorted(self.counts.items()) if v}


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes (provenance for the session metadata)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_raw(path: str | Path, report: IngestReport | None = None) -> bytes:
    """The file's bytes, gunzipped if it starts with the gzip magic number."""
    path = Path(path)
    if not path.exists():
        raise IngestError(str(path), 0, "path", "no such file")
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            if report is None or not report.lenient:
                raise IngestError(str(path), 0, "gzip", f"corrupt or truncated gzip stream: {exc} (--lenient keeps "
                                                        "the intact part)") from exc
            data = _gzip_prefix(data)
            report.counts["gzip_truncated (the intact prefix was kept, its last partial line dropped)"] += 1
            data = data[: data.rfind(b"\n") + 1]
    return data


def _gzip_prefix(data: bytes) -> bytes:
    """As much of a damaged gzip stream as decompresses."""
    import zlib

    d = zlib.decompressobj(wbits=31)
    out = []
    for i in range(0, len(data), 1 << 16):
        try:
            out.append(d.decompress(data[i:i + (1 << 16)]))
        except zlib.error:
            break
    return b"".join(out)


def read_lines(
    path: str | Path,
    report: IngestReport,
    tolerance_ns: int = DEFAULT_TOLERANCE_NS,
) -> list[tuple[int, int, bytes]]:
    """Split a recording into (ts_ns, line number, json payload), time-ordered and de-duplicated.

    Args:
        path: the recording (gzip or plain).
        report: receives repair counts; in lenient mode malformed lines are counted there and skipped.
        tolerance_ns: the largest step back in time that is repaired by reordering, ns.

    Returns:
        The lines sorted by ts_ns (stable, so equal stamps keep file order), without exact duplicates.
    """
    path = str(path)
    out: list[tuple[int, int, bytes]] = []
    raw_lines = read_raw(path, report).split(b"\n")
    report.counts["raw_messages"] += sum(1 for r in raw_lines if r.strip())
    for lineno, raw in enumerate(raw_lines, start=1):
        line = raw.strip()
        if not line:
            continue
        try:
            out.append(_stamp_and_payload(path, lineno, line))
        except IngestError as err:
            report.skip(err)
    return _without_duplicates(_in_time_order(path, out, report, tolerance_ns), report) if out else out


def _stamp_and_payload(path: str, lineno: int, line: bytes) -> tuple[int, int, bytes]:
    """(ts_ns, line number, payload) of one '<ts_ns> <json>' line, or an IngestError naming what is wrong."""
    head, sep, payload = line.partition(b" ")
    if not sep or not payload.strip():
        raise IngestError(path, lineno, "line", f"expected '<ts_ns> <json>', got {line[:60]!r}")
    if not head.isdigit():
        raise IngestError(path, lineno, "ts_ns", f"not a non-negative integer: {head[:30]!r}")
    if len(head) > 19 or int(head) > 2**63 - 1:
        raise IngestError(path, lineno, "ts_ns", f"out of range (ns since 1970 fit in 19 digits): "
                                                 f"{head[:30].decode(errors='replace')}")
    return int(head), lineno, payload.strip()


def _in_time_order(path: str, out: list, report: IngestReport, tolerance_ns: int) -> list:
    """The lines sorted by time (stable); a line more than `tolerance_ns` behind the latest before it
    is skipped and counted, one within it is reordered and counted."""
    ts = np.fromiter((r[0] for r in out), dtype=np.int64, count=len(out))
    behind = np.maximum.accumulate(ts) - ts
    if behind.max() <= 0:
        return out
    keep = behind <= tolerance_ns
    for i in np.flatnonzero(~keep):
        report.skip(IngestError(path, out[i][1], "ts_ns", f"time runs backwards by {behind[i] / 1e9:.3f} s "
                                f"(tolerance {tolerance_ns / 1e9:.3f} s)"))
    report.counts["reordered_lines"] += int(np.count_nonzero(keep & (behind > 0)))
    order = np.argsort(ts, kind="stable")
    return [out[i] for i in order if keep[i]]


def _without_duplicates(out: list, report: IngestReport) -> list:
    """The lines without exact repeats of a payload at the same stamp (counted as duplicate_lines)."""
    deduped: list[tuple[int, int, bytes]] = []
    seen: set[bytes] = set()
    current_ts = -1
    for rec in out:
        if rec[0] != current_ts:
            current_ts, seen = rec[0], set()
        if rec[2] in seen:
            report.counts["duplicate_lines"] += 1
            continue
        seen.add(rec[2])
        deduped.append(rec)
    return deduped
