"""Replay a session through the online belief: the per-event trajectory as a table, saved as
Parquet, and its plot (the `bayesmm replay` command)."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bayesmm.events.features import to_arrays
from bayesmm.events.kinds import KINDS
from bayesmm.events.session import Session
from bayesmm.online.params import Config, config_to_dict, default_config
from bayesmm.online.replay import as_events, beliefs_to_columns, run


def replay_session(session: Session, cfg: Config | None = None) -> pa.Table:
    """The belief after every event of the session: columns t_s, kind (name) and every output of
    `online.belief.Beliefs` (p_regime split into p_trending_down, ...), in float64."""
    jax.config.update("jax_enable_x64", True)
    params = cfg if cfg is not None else default_config()
    arrays = to_arrays(session)
    beliefs = run(as_events(arrays, np.float64), params)
    cols = beliefs_to_columns(beliefs, arrays.kind)
    cols["t_s"] = arrays.t_s  # the host's float64 time, exact
    cols["kind"] = np.asarray(KINDS, dtype=object)[cols["kind"]]
    order = ["t_s", "kind"] + [c for c in cols if c not in ("t_s", "kind")]
    table = pa.table({c: cols[c] for c in order})
    meta = {"config": config_to_dict(params), "session": session.meta.to_dict()}
    return table.replace_schema_metadata({b"bayesmm.replay": json.dumps(meta).encode()})


def write_beliefs(table: pa.Table, path: str | Path) -> None:
    """Write a replay table to Parquet (with the parameters and session provenance as metadata)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, str(path), compression="zstd")


def plot_beliefs(table: pa.Table, session: Session, out: str | Path) -> Path:
    """A 5-panel PNG over time: mid; p_down; drift (filter and Kalman); sigma and toxicity;
    regime probabilities (stacked)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bayesmm.events.plot import save_figure
    from bayesmm.online.params import REGIMES

    a = to_arrays(session)
    col = {name: table.column(name).to_numpy() for name in table.column_names if name != "kind"}
    t = col["t_s"]
    ok = a.valid > 0
    fig, ax = plt.subplots(5, 1, figsize=(11, 12), sharex=True)
    ax[0].plot(a.t_s[ok], a.mid[ok], color="k", lw=0.8)
    ax[0].set_ylabel("mid")
    ax[0].set_title(f"online belief on {session.meta.venue} {session.meta.instrument}")
    ax[1].plot(t, col["p_down"], color="tab:red", lw=0.8, label="p_down")
    ax[1].axhline(0.5, color="grey", lw=0.5)
    ax[1].set_ylim(-0.02, 1.02)
    ax[1].legend(loc="upper left", fontsize=8)
    ax[2].plot(t, col["mu_bps_s"], lw=0.8, label="mu (filter)")
    ax[2].plot(t, col["drift_mean_bps_s"], lw=0.8, label="Kalman mean (returns only)")
    ax[2].axhline(0, color="grey", lw=0.5)
    ax[2].set_ylabel("drift (bps/s)")
    ax[2].legend(loc="upper left", fontsize=8)
    ax[3].plot(t, col["sigma_bps_sqrt_s"], lw=0.8, color="tab:blue", label="sigma (bps/sqrt s)")
    ax[3].set_ylabel("sigma (bps/√s)")
    tw = ax[3].twinx()
    tw.plot(t, col["toxicity"], lw=0.8, color="tab:orange", label="toxicity")
    tw.set_ylabel("toxicity")
    tw.set_ylim(0, 1)
    ax[4].stackplot(t, *[col[f"p_{r}"] for r in REGIMES], labels=REGIMES, alpha=0.8)
    ax[4].set_ylim(0, 1)
    ax[4].set_ylabel("P(regime)")
    ax[4].legend(loc="upper left", fontsize=7, ncol=4)
    ax[4].set_xlabel("time since session start (s)")
    return save_figure(fig, out)
