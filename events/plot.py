"""A picture of a session: mid, spread and signed trade flow over time."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from events.features import to_arrays  # noqa: E402
from events.kinds import CV_TICK, OWN_FILL, TRADE_PRINT  # noqa: E402
from events.session import Session  # noqa: E402


def save_figure(fig, out: str | Path, dpi: int = 100) -> Path:
    """Lay out, write (creating the folder) and close a matplotlib figure; returns the path."""
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return out


def plot_session(session: Session, out: str | Path) -> Path:
    """Write a 3-panel PNG: mid (with own fills and any other venue's mid), spread in bps, and the
    cumulative signed trade volume (aggressor buys minus sells). Returns the path written."""
    a = to_arrays(session)
    ok = a.valid > 0
    fig, ax = plt.subplots(3, 1, figsize=(11, 8), sharex=True, height_ratios=[3, 1, 1.5])
    ax[0].plot(a.t_s[ok], a.mid[ok], lw=0.8, color="k", label="mid")
    cv = a.kind == CV_TICK
    if cv.any():
        ax[0].plot(a.t_s[cv], a.price[cv], lw=0.6, alpha=0.6, label="other venue mid")
    for sign, color, label in ((1, "tab:green", "own buy fill"), (-1, "tab:red", "own sell fill")):
        f = (a.kind == OWN_FILL) & (a.side == sign)
        if f.any():
            ax[0].scatter(a.t_s[f], a.price[f], s=14, color=color, label=label, zorder=3)
    ax[0].set_ylabel("price")
    ax[0].legend(loc="best", fontsize=8)
    ax[0].set_title(f"{session.meta.venue} {session.meta.instrument}: {len(session):,} events over "
                    f"{session.span_s():.0f} s")
    ax[1].plot(a.t_s[ok], a.spread_bps[ok], lw=0.6, color="tab:blue")
    ax[1].set_ylabel("spread (bps)")
    tr = a.kind == TRADE_PRINT
    ax[2].plot(a.t_s[tr], np.cumsum(a.side[tr] * a.size[tr]), lw=0.8, color="tab:purple")
    ax[2].axhline(0, color="grey", lw=0.5)
    ax[2].set_ylabel("cum. signed\ntrade volume")
    ax[2].set_xlabel("time since session start (s)")
    return save_figure(fig, out, dpi=110)
