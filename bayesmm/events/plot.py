"""A picture of a session: mid, spread and signed trade flow over time."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from bayesmm.events.features import to_arrays  # noqa: E402
from bayesmm.events.kinds import CV_TICK, OWN_FILL, TRADE_PRINT  # noqa: E402
from bayesmm.events.session import Session  # noqa: E402


def _drawn_texts(fig) -> list:
    """The texts a figure shows: its own, and per axes its titles, axis labels, the labels of the ticks
    inside the view, legend entries and annotations."""
    texts = list(fig.texts) + ([fig._suptitle] if getattr(fig, "_suptitle", None) is not None else [])
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        texts += [ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label, *ax.texts]
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            pad = 1e-9 * max(1.0, abs(hi - lo))
            for tick in axis.get_major_ticks():
                if lo - pad <= tick.get_loc() <= hi + pad:
                    texts += [tick.label1, tick.label2]
        if ax.get_legend() is not None:
            texts += list(ax.get_legend().get_texts())
    seen, out = set(), []
    for t in texts:
        if id(t) not in seen and t.get_visible() and str(t.get_text()).strip():
            seen.add(id(t))
            out.append(t)
    return out


def overlapping_labels(fig) -> list[tuple[str, str]]:
    """Pairs of the texts a drawn figure shows (titles, axis labels, tick labels inside the view,
    legend entries, annotations) whose boxes on the canvas overlap: what makes a figure illegible."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = []
    for text in _drawn_texts(fig):
        box = text.get_window_extent(renderer)
        if box.width > 0 and box.height > 0:
            boxes.append((str(text.get_text()), box.shrunk(0.98, 0.9)))
    return [(boxes[i][0], boxes[j][0]) for i in range(len(boxes)) for j in range(i + 1, len(boxes))
            if boxes[i][1].overlaps(boxes[j][1])]


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
