"""Markout: what each of our fills was worth a moment later, the market maker's measure of adverse
selection.

For a fill at price px on side s (+1 we bought, -1 we sold) at time t, its markout over h seconds is

    markout_h = s (px - ref(t + h)) / px x 1e4   bps,

ref being the mid (or the belief's fair value, the mid moved by its offset) h seconds later: positive
is a loss to us (we bought above, or sold below, where the price went). A fill whose horizon runs past
the end of the run has no markout (NaN, not counted).

Host-side (numpy) over a run's outputs (`sim.run.LoopOutput`, one run or a batch of seeds): the fills
table (`fills_table`, one row per step and side with a fill: what `bayesmm backtest --fills` writes),
each fill's markouts, and per quoter the mean with a bootstrap 90% interval per side, fill counts,
fill rate and P&L (`summarize_markout`). Several seeds are resampled as clusters (a seed's fills
share its market path), one recording's fills one by one.
"""

from __future__ import annotations

import numpy as np

HORIZONS_S = (1.0, 5.0, 30.0)
"""The markout horizons, s."""

FILL_COLUMNS = ("quoter", "seed", "t_s", "side", "price", "size", "count", "level", "mid_px", "fair_value_bps")


def _rows(out, seed: int, spacing_bps: float) -> dict[str, np.ndarray]:
    """One run's fills (per step and side): the average fill price, its ladder level (nearest level to
    that price below our live touch, `spacing_bps` apart), the mid and fair value at the fill."""
    o = {k: np.asarray(v) for k, v in out._asdict().items()}
    cols = {k: [] for k in FILL_COLUMNS if k != "quoter"}
    for side, name in ((1.0, "bid"), (-1.0, "ask")):
        qty, value, count = o[f"{name}_fill_qty"], o[f"{name}_fill_value"], o[f"{name}_fill_count"]
        i = np.flatnonzero(qty > 0)
        px = value[i] / qty[i]
        depth = side * (o["mid_px"][i] - px) / o["mid_px"][i] * 1e4
        touch = np.nan_to_num(o[f"{name}_depth_bps"][i], nan=depth)
        level = np.maximum(np.rint((depth - touch) / spacing_bps), 0.0) if spacing_bps > 0 else np.zeros(len(i))
        for k, v in (("seed", np.full(len(i), seed)), ("t_s", o["t_s"][i]), ("side", np.full(len(i), side)),
                     ("price", px), ("size", qty[i]), ("count", count[i]), ("level", level),
                     ("mid_px", o["mid_px"][i]), ("fair_value_bps", o["fair_value_bps"][i])):
            cols[k].append(v)
    rows = {k: np.concatenate(v) for k, v in cols.items()}
    order = np.argsort(rows["t_s"], kind="stable")
    return {k: v[order] for k, v in rows.items()}


def markouts(t_s, price, side, path_t_s, path_mid, path_fair_bps=None, horizons_s=HORIZONS_S) -> dict:
    """{"markout_<h>s_bps": per fill, and with `path_fair_bps` "markout_fair_<h>s_bps"}: module
    docstring; the reference is the last step at or before t + h on the path (NaN past its end)."""
    t_s, price, side = (np.asarray(x, float) for x in (t_s, price, side))
    path_t_s, path_mid = np.asarray(path_t_s, float), np.asarray(path_mid, float)
    out = {}
    for h in horizons_s:
        j = np.searchsorted(path_t_s, t_s + h + 1e-9, side="right") - 1
        ok = (t_s + h <= path_t_s[-1] + 1e-9) & (j >= 0)
        j = np.clip(j, 0, len(path_t_s) - 1)
        refs = {"": path_mid[j]}
        if path_fair_bps is not None:
            refs["fair_"] = path_mid[j] * (1.0 + np.asarray(path_fair_bps, float)[j] / 1e4)
        for tag, ref in refs.items():
            out[f"markout_{tag}{h:g}s_bps"] = np.where(ok, side * (price - ref) / price * 1e4, np.nan)
    return out


def fills_table(outs, quoter: str, spacing_bps: float = 0.0, horizons_s=HORIZONS_S) -> dict[str, np.ndarray]:
    """Every fill of a run (`LoopOutput`) or of a batch of seeds (leading seed axis) with its markouts:
    {column: array} (FILL_COLUMNS, then the markouts)."""
    t_s = np.asarray(outs.t_s)
    batch = [outs] if t_s.ndim == 1 else [type(outs)(*(np.asarray(x)[k] for x in outs)) for k in range(t_s.shape[0])]
    tables = []
    for seed, out in enumerate(batch):
        rows = _rows(out, seed, spacing_bps)
        rows.update(markouts(rows["t_s"], rows["price"], rows["side"], np.asarray(out.t_s), np.asarray(out.mid_px),
                             np.asarray(out.fair_value_bps), horizons_s))
        tables.append(rows)
    table = {k: np.concatenate([t[k] for t in tables]) for k in tables[0]}
    table["quoter"] = np.full(len(table["t_s"]), quoter, dtype=object)
    return table


def bootstrap_mean(values, clusters=None, reps: int = 2000, level: float = 0.90, seed: int = 0):
    """(mean, low, high): the mean of the finite `values` and its bootstrap `level` interval,
    resampling whole clusters (e.g. seeds) when given, else single values; (nan, nan, nan) when none."""
    values = np.asarray(values, float)
    clusters = np.zeros(len(values), int) if clusters is None else np.asarray(clusters)
    keep = np.isfinite(values)
    values, clusters = values[keep], clusters[keep]
    if not len(values):
        return np.nan, np.nan, np.nan
    ids, inverse = np.unique(clusters, return_inverse=True)
    rng = np.random.default_rng(seed)
    if len(ids) > 1:  # cluster bootstrap: resample clusters, the mean over their fills
        sums, counts = np.bincount(inverse, values), np.bincount(inverse)
        pick = rng.integers(0, len(ids), (reps, len(ids)))
        boot = sums[pick].sum(axis=1) / np.maximum(counts[pick].sum(axis=1), 1)
    else:
        boot = _resampled_means(values, rng, reps)
    return (float(values.mean()), *_interval(boot, level))


def _resampled_means(values: np.ndarray, rng, reps: int) -> np.ndarray:
    """The means of `reps` resamples (with replacement) of `values`."""
    return values[rng.integers(0, len(values), (reps, len(values)))].mean(axis=1)


def _interval(boot: np.ndarray, level: float) -> tuple[float, float]:
    """The central `level` interval of bootstrap draws."""
    tail = (1.0 - level) / 2
    return float(np.quantile(boot, tail)), float(np.quantile(boot, 1 - tail))


def interval_text(m: dict | None, spec: str = "+.2f") -> str:
    """'mean [low, high]' of a {"mean", "low", "high"} summary; '-' when undefined."""
    if m is None or m["mean"] is None:
        return "-"
    return f"{m['mean']:{spec}} [{m['low']:{spec}}, {m['high']:{spec}}]"


def summarize_markout(table: dict, duration_s: float, pnl: float | None = None, horizons_s=HORIZONS_S,
                      clustered: bool = False) -> dict:
    """Per side ("both", "bid", "ask"): fills, and per horizon the mean markout (mid and fair value)
    with its bootstrap 90% interval; the fill rate (fills per minute of `duration_s`, per seed when
    clustered) and the P&L given. Fills are weighted one per row (one step's fills on one side).
    Undefined figures (no fill with a markout) are None, so the result is strict JSON."""
    side = np.asarray(table["side"], float)
    seeds = np.asarray(table["seed"]) if clustered else None
    runs = len(np.unique(seeds)) if clustered and len(side) else 1
    out = {"fills": int(len(side)), "fill_rate_per_min": len(side) / max(runs, 1) / (duration_s / 60.0),
           "pnl": pnl}
    for name, mask in (("both", np.ones(len(side), bool)), ("bid", side > 0), ("ask", side < 0)):
        row = {"fills": int(mask.sum())}
        for h in horizons_s:
            for tag in ("", "fair_"):
                key = f"markout_{tag}{h:g}s_bps"
                if key in table:
                    stats = bootstrap_mean(np.asarray(table[key])[mask], None if seeds is None else seeds[mask])
                    row[key] = {k: (v if v == v else None) for k, v in zip(("mean", "low", "high"), stats, strict=True)}
        out[name] = row
    return out


def format_markout(summaries: dict, horizon_s: float = 5.0) -> str:
    """A table, one quoter a line: fills (bid/ask), fill rate, P&L and the mean `horizon_s` markout
    against the mid, both sides and per side, with 90% intervals (positive = a loss to us)."""
    key = f"markout_{horizon_s:g}s_bps"
    lines = [f"  {'quoter':<15} {'fills':>6} {'bid/ask':>9} {'per min':>8} {'P&L':>11}   "
             f"{horizon_s:g}s markout bps, mean [90%]: both / bid / ask (+ = loss to us)"]

    for q, s in summaries.items():
        pnl = "-" if s["pnl"] is None else f"{s['pnl']:.5g}"
        lines.append(f"  {q:<15} {s['fills']:>6} {s['bid']['fills']:>4}/{s['ask']['fills']:<4} "
                     f"{s['fill_rate_per_min']:>8.2f} {pnl:>11}   "
                     + " / ".join(interval_text(s[side].get(key)) for side in ("both", "bid", "ask")))
    return "\n".join(lines)


def bootstrap_difference(a, b, reps: int = 2000, level: float = 0.90, seed: int = 0):
    """(mean(a) - mean(b), low, high): the difference of two groups' means of their finite values and
    its bootstrap `level` interval, each group resampled on its own (two quoters' fills are different
    fills); (nan, nan, nan) when either has none."""
    a, b = (np.asarray(x, float) for x in (a, b))
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if not len(a) or not len(b):
        return np.nan, np.nan, np.nan
    rng = np.random.default_rng(seed)
    boot = _resampled_means(a, rng, reps) - _resampled_means(b, rng, reps)
    return (float(a.mean() - b.mean()), *_interval(boot, level))


def write_fills(path, tables: list[dict], meta: dict):
    """Every fill of some quoter runs (`fills_table`s) as one Parquet file, `meta` (the session, the
    run's length "duration_s", each quoter's {"pnl"} under "quoters") in its metadata."""
    import json
    from pathlib import Path

    import pyarrow as pa
    import pyarrow.parquet as pq

    from bayesmm.events.atomic import write_atomic

    cols = {k: np.concatenate([t[k] for t in tables]) for k in tables[0]}
    table = pa.table({k: (pa.array(v.tolist(), pa.string()) if k == "quoter" else v) for k, v in cols.items()})
    table = table.replace_schema_metadata({"bayesmm.fills": json.dumps(meta)})
    return write_atomic(Path(path), lambda tmp: pq.write_table(table, str(tmp), compression="zstd"))


def read_fills(path) -> tuple[dict, dict]:
    """({column: array}, metadata) of a file `write_fills` wrote."""
    import json

    import pyarrow.parquet as pq

    table = pq.read_table(path)
    raw = (table.schema.metadata or {}).get(b"bayesmm.fills")
    if raw is None:
        raise ValueError(f"{path}: not a fills file (write one with `bayesmm backtest SESSION --fills {path}`)")
    meta = json.loads(raw)
    return {k: table.column(k).to_numpy(zero_copy_only=False) for k in table.column_names}, meta


def quoter_summaries(cols: dict, meta: dict) -> dict:
    """{quoter: `summarize_markout`} of a fills file's columns and metadata (`read_fills`)."""
    out = {}
    for q, info in meta["quoters"].items():
        keep = cols["quoter"] == q
        out[q] = summarize_markout({k: v[keep] for k, v in cols.items()}, meta["duration_s"], info["pnl"])
    return out
