"""Trade and fill ids are unique keys: a repeat (a message re-received, a re-sent trades message)
is dropped and counted; the same id with other values is an error naming both lines."""

from __future__ import annotations

from bayesmm.events.errors import IngestError
from bayesmm.events.lines import IngestReport


class SeenIds:
    """The ids seen so far in one stream, with the line and values each first came with."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.first: dict = {}

    def is_new(self, key, values: tuple, path: str, line: int, report: IngestReport) -> bool:
        """True the first time `key` is seen; False (counted as `duplicate_<what>`) for an exact
        repeat; an `IngestError` naming both lines when the repeat's values differ."""
        if key not in self.first:
            self.first[key] = (line, values)
            return True
        first_line, before = self.first[key]
        if before != values:
            report.skip(IngestError(path, line, "id", f"{self.what} id {key!r} repeats line {first_line} with other "
                                                      f"values: {before} then {values}"))
            return False
        report.counts[f"duplicate_{self.what}"] += 1
        return False
