"""Build event streams for the filter tests by hand."""

from __future__ import annotations

import numpy as np

from bayesmm.events.kinds import KIND_ID
from bayesmm.online.belief import Event
from bayesmm.online.replay import as_events


def stream(rows, dtype=np.float64) -> Event:
    """rows: dicts with `kind` (name) and any Event fields; dt_s defaults to 0, valid to 1."""
    n = len(rows)
    cols = {f: np.zeros(n) for f in Event._fields}
    cols["valid"][:] = 1.0
    for i, r in enumerate(rows):
        for k, v in r.items():
            cols[k][i] = KIND_ID[v] if k == "kind" else v
    cols["t_s"] = np.cumsum(cols["dt_s"])
    return as_events(Event(**cols), dtype)


def fills(n, side=1, gap_s=3.0):
    """n own fills of one side, gap_s apart (3 s: beyond the 2 s burst window)."""
    return [{"kind": "own_fill", "side": side, "size": 1.0, "dt_s": gap_s} for _ in range(n)]


def row(beliefs, i=-1):
    """The beliefs after event i, as Python floats / arrays."""
    return {k: np.asarray(v)[i] for k, v in beliefs._asdict().items()}
