"""The project's own input errors: every one names where the bad input is and what is wrong."""

from __future__ import annotations

MAX_ECHO = 200  # characters of an offending value shown in a message (a 50 MB field is not echoed whole)


def clip(text) -> str:
    """A value as shown in an error: bytes decoded (not b'...'), cut to MAX_ECHO characters with the
    length said."""
    if isinstance(text, bytes | bytearray):
        text = bytes(text).decode("utf-8", errors="replace")
    text = str(text)
    return text if len(text) <= MAX_ECHO else f"{text[:MAX_ECHO]}... ({len(text):,} characters)"


class IngestError(ValueError):
    """A raw feed line that cannot be turned into events.

    Attributes:
        path: the file being read.
        line: 1-based line number in that file (0 when the problem is not one line).
        field: the JSON field or part of the line at fault.
        reason: what is wrong, with the offending value.
    """

    def __init__(self, path: str, line: int, field: str, reason: str):
        self.path, self.line, self.field, self.reason = str(path), int(line), field, clip(reason)
        reason = self.reason
        super().__init__(f"{self.path}:{self.line}: field {field!r}: {reason}")


def one_instrument(path, line: int, field: str, value, seen: str | None) -> str:
    """The recording's instrument after a message naming `value` in `field`: the first message's, which
    every later one must repeat (a recording holds one instrument; a message without one is an error,
    else a first message lacking it would leave the instrument unset and every later one unchecked)."""
    if not isinstance(value, str):
        raise IngestError(path, line, field, f"missing or not an instrument: {value!r}")
    if seen is not None and value != seen:
        raise IngestError(path, line, field, f"{value!r} in a {seen!r} recording")
    return value


class SessionError(ValueError):
    """A session table or its metadata breaks the event schema.

    Attributes:
        row: the 0-based row at fault (-1 when the problem is the whole table or the metadata).
        field: the column or metadata key at fault.
        reason: what is wrong, with the offending value.
    """

    def __init__(self, row: int, field: str, reason: str, where: str = "session"):
        self.row, self.field, self.reason = int(row), field, clip(reason)
        reason = self.reason
        loc = f"row {row}" if row >= 0 else "table"
        super().__init__(f"{where}: {loc}: field {field!r}: {reason}")
