"""Event kinds and their small-integer codes.

Pure constants with no I/O, so `bayesmm/online/` (which production mirrors) can import them. The
order is fixed: the integer code of a kind is part of the exported filter's contract.
"""

KINDS: tuple[str, ...] = (
    "mid_tick",
    "book_update",
    "trade_print",
    "own_fill",
    "adverse_selection",
    "cv_tick",
    "own_quote",
)
MID_TICK, BOOK_UPDATE, TRADE_PRINT, OWN_FILL, ADVERSE_SELECTION, CV_TICK, OWN_QUOTE = range(len(KINDS))
KIND_ID: dict[str, int] = {name: code for code, name in enumerate(KINDS)}
NUM_KINDS = len(KINDS)
