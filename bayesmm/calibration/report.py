"""One self-contained HTML report of a calibration (`bayesmm report DIR`, also written by
`calibrate`): what a reviewer, or whoever deploys the config, reads before trusting it.

It gathers from DIR: calibration.json (every number `calibrate` printed), config.toml's
provenance, the fits' PPC plots (fits/*_ppc.png), and any scenario plots the demo wrote beside them
(selloff_*.png). Sections: the data (sessions, events per kind, segments), the fits (diagnostics,
PPC p-values and plots, what the gate said), the parameters (both routes with their intervals, the
disagreements, what kept its value and why), the selection (route, each horizon's scales, why), the scores (in
sample, held out, out of sample; a plot), the reliability of p_down on the test sessions, the
simulation check when one was run, and the sweep when one was written into DIR/sweep (winner vs
base in sample and held out, the frontier). Images are embedded as data URIs and the styles are inline: the
file opens anywhere with no network.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np

from bayesmm.events.atomic import write_atomic

_CSS = """
body { font-family: -apple-system, Segoe UI, Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 1.8em; }
table { border-collapse: collapse; margin: .6em 0; font-size: .9em; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: right; }
th { background: #f4f4f4; } td.l, th.l { text-align: left; }
.bad { color: #b00020; font-weight: 600; } .ok { color: #1b5e20; } .note { color: #555; font-size: .9em; }
img { max-width: 100%; border: 1px solid #eee; margin: .4em 0; }
"""


def _e(x) -> str:
    return html.escape(str(x))


def _num(x, fmt: str = ".4g") -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "-"
    if isinstance(x, list):
        return "[" + ", ".join(_num(v, fmt) for v in x) + "]"
    return format(x, fmt) if isinstance(x, int | float) else _e(x)


def _img_png(data: bytes, alt: str) -> str:
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'


def _figure(fig, alt: str) -> str:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return _img_png(buf.getvalue(), alt)


def _table(header: list[str], rows: list[list[str]], left: int = 1) -> str:
    th = "".join(f'<th class="{"l" if i < left else ""}">{_e(h)}</th>' for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f'<td class="{"l" if i < left else ""}">{c}</td>' for i, c in enumerate(r))
                   + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def _scores_figure(scores: dict) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bayesmm.calibration.score import COIN_FLIP_LOG_SCORE

    splits = list(scores)
    fig, axes = plt.subplots(1, len(splits), figsize=(4.2 * len(splits), 3.4), squeeze=False)
    for ax, split in zip(axes[0], splits, strict=True):
        for route, sc in scores[split].items():
            hs = [h for h in sc if sc[h]["n"]]
            ax.plot([sc[h]["n"] and float(h[:-1]) for h in hs], [sc[h]["log_score"] for h in hs], "o-", label=route)
        ax.axhline(COIN_FLIP_LOG_SCORE, color="grey", lw=0.8, ls="--", label="coin flip")
        ax.set_title(split, fontsize=9)
        ax.set_xlabel("horizon (s)")
        ax.set_ylabel("mean log score")
        ax.set_ylim(max(ax.get_ylim()[0], COIN_FLIP_LOG_SCORE - 0.15), ax.get_ylim()[1])
        ax.legend(fontsize=7)
    return _figure(fig, "mean log score of p_down for the sign of the mid move, by horizon")


def _reliability_figure(test_scores: dict) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    horizons = [h for h in next(iter(test_scores.values())) if "reliability" in next(iter(test_scores.values()))[h]]
    if not horizons:
        return "<p class='note'>No reliability data in this calibration.json.</p>"
    fig, axes = plt.subplots(1, len(horizons), figsize=(3.6 * len(horizons), 3.4), squeeze=False)
    for ax, h in zip(axes[0], horizons, strict=True):
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
        for route in ("defaults", "calibrated"):
            rel = test_scores[route][h].get("reliability")
            if rel is None:
                continue
            c = np.asarray(rel["count"])
            ok = c > 0
            ax.scatter(np.asarray(rel["mean_p_down"])[ok], np.asarray(rel["share_down"])[ok],
                       s=10 + 80 * c[ok] / c.max(), label=route, alpha=0.7)
        ax.set_title(f"{h} ahead", fontsize=9)
        ax.set_xlabel("p_down (binned)")
        ax.set_ylabel("share of moves down")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.legend(fontsize=7)
    return _figure(fig, "reliability of p_down on the test sessions")


def _belief_figure(traces: list[dict]) -> str:
    """Each horizon's exported forecast over time on each test session."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(traces), 1, figsize=(10, 2.8 * len(traces)), squeeze=False)
    for i, (ax, tr) in enumerate(zip(axes[:, 0], traces, strict=True)):
        t = np.asarray(tr["t_s"])
        for h in tr["sd"]:
            ax.plot(t, tr[f"p_down_{h}"], lw=0.8, label=f"{h} ahead (sd {_num(tr['sd'][h], '.3f')}, ECE "
                    f"{_num(tr['ece'][h], '.3f')})")
        ax.axhline(0.5, color="grey", lw=0.6, ls="--")
        ax.set_ylim(0, 1)
        ax.set_xlabel("time since the session's start (s)")
        ax.set_ylabel("P(mid falls)")
        ax.set_title(f"test session {i + 1}: the exported forecasts, read every second", fontsize=9)
        ax.legend(fontsize=7, ncol=2, loc="upper right")
    return _figure(fig, "the exported belief's forecasts over time on the test sessions")


def _warnings(r: dict) -> list[str]:
    """What a reviewer must see first, in red: a flat exported belief, a route worse than a coin flip
    on its own training data, a failed gate."""
    from bayesmm.calibration.score import FLAT_SD

    out = []
    for i, tr in enumerate(r.get("belief_on_test", [])):
        flat = [h for h, v in tr["sd"].items() if v is not None and v < FLAT_SD]
        if flat:
            out.append(f"The exported belief is flat on test session {i + 1} at {', '.join(flat)}: its forecast's "
                       f"sd is below {FLAT_SD} (it says about 1/2 whatever happens).")
    out += [f"Model failure: {x}" for x in r.get("failures_in_sample", [])]
    out += [f"Gate: {x}" for x in r.get("gate_failures", [])]
    return out


def _verdict(r: dict, warnings: list[str]) -> str:
    """What to deploy and why, in a few sentences: the gate, the exported forecast against the peer and a
    coin flip on the test sessions, and what to do next."""
    from bayesmm.calibration.score import COIN_FLIP_LOG_SCORE

    if r.get("refused"):
        return ("<p class='bad'>Do not deploy: the fits failed the gate and nothing was exported. Read the gate's "
                "failures below, change the model or the data until the fits describe the recording, and "
                "calibrate again (<code>--force</code> exports anyway, marked as forced).</p>")
    test = r.get("scores", {}).get("test sessions (out of sample)")
    lines = [f"Config: <code>config.toml</code> beside this report (route {_e(r['selection']['chosen'])})"
             + (", <span class='bad'>forced past a failed gate</span>" if r.get("forced") else
                ", the fits passed the gate") + "."]
    if test and "peer" in test:
        cells = []
        for h, v in test["calibrated"].items():
            if not v["n"]:
                continue
            peer = test["peer"][h]["log_score"]
            ok = v["log_score"] >= peer - 0.01 and v["log_score"] >= COIN_FLIP_LOG_SCORE - 0.003
            cells.append(f"<span class='{'ok' if ok else 'bad'}'>{_e(h)}: {_num(v['log_score'])} "
                         f"(peer {_num(peer)})</span>")
        lines.append("On the test sessions, the exported forecast's log score against the peer's (a coin flip "
                     f"scores {COIN_FLIP_LOG_SCORE:.4f}): " + ", ".join(cells) + ".")
    if warnings:
        lines.append("<span class='bad'>Before deploying, read the warnings below.</span> Next: a longer or "
                     "more recent training recording, then calibrate again and compare.")
    else:
        lines.append("Next: replay the config on the newest recording (<code>bayesmm replay --config</code>, "
                     "<code>bayesmm score --train</code>) before it goes live, and recalibrate as the market changes.")
    return "<p>" + " ".join(lines) + "</p>"


def _sweep_section(d: Path) -> list[str]:
    """The spec section-8 sweep written into DIR/sweep (`bayesmm sweep --out DIR/sweep`), if any: the
    winner against the base in sample and held out, and the frontier."""
    path = d / "sweep.json"
    if not path.exists():
        return []
    r = json.loads(path.read_text())
    c = r["check"]
    out = [f"<h2>Sweep (spec section 8)</h2><p>{r['sets']} sets ({_e(r['search'])}) on "
           + ", ".join(f"{_e(t['name'])} ({t['seeds']} seeds)" for t in r["targets"])
           + (f"; {_e(r['kept_base'])}" if r.get("kept_base") else
              "; winner: " + ", ".join(f"{_e(k)} = {_num(v)}" for k, v in r["winner"].items()))
           + (f". <span class='bad'>{_e(c['flag'])}</span>" if c.get("flag") else ".") + "</p>"]
    rows = [[_e(split.replace("_", " ")), who, _num(c[split][who]["score"]), _num(c[split][who]["max_abs_position"]),
             _num(c[split][who]["pnl"]), _num(c[split][who]["reduce_only_fraction"], ".2f"),
             "yes" if c[split][who]["feasible"] else "<span class='bad'>no</span>"]
            for split in ("in_sample", "held_out") if split in c for who in ("winner", "base")]
    out.append(_table(["data", "set", "score", "max |position|", "P&L", "reduce-only", "feasible"], rows, left=2))
    if (d / "frontier.png").exists():
        out.append(_img_png((d / "frontier.png").read_bytes(), "sweep frontier"))
    return out


def _markout_section(path: Path) -> list[str]:
    """Markout per fill of the quoters backtested on a recorded session (`bayesmm backtest --fills
    DIR/fills.parquet`), if any: per quoter the fills, fill rate, P&L and the mean markout at each
    horizon against the mid with its bootstrap 90% interval (`sim.markout`)."""
    if not path.exists():
        return []
    from bayesmm.sim.markout import HORIZONS_S, interval_text, quoter_summaries, read_fills

    cols, meta = read_fills(path)
    out = [f"<h2>Markout per fill</h2><p>The backtest on {_e(meta['venue'])} {_e(meta['instrument'])} "
           f"({meta['duration_s']:.0f} s; `bayesmm backtest --fills`): for each fill, the mid h seconds later "
           "against the fill price, bps, positive = a loss to us; the mean with its bootstrap 90% interval. "
           "Lower is better: a quoter that is picked off less. P&amp;L in the "
           f"{'base asset' if meta['inverse'] else 'quote currency'}.</p>"]
    rows = []
    for q, s in quoter_summaries(cols, meta).items():
        cells = [interval_text(s["both"][f"markout_{h:g}s_bps"]) for h in HORIZONS_S]
        rows.append([_e(q), f"{s['bid']['fills']} / {s['ask']['fills']}", _num(s["fill_rate_per_min"], ".2f"),
                     _num(s["pnl"]), *cells])
    out.append(_table(["quoter", "fills bid / ask", "fills per min", "P&L", *(f"markout {h:g} s" for h in HORIZONS_S)],
                      rows))
    return out


def build_report(directory: str | Path) -> str:
    """The report's HTML for a calibration directory (module docstring)."""
    d = Path(directory)
    path = d / "calibration.json"
    if not path.exists():
        raise ValueError(f"{d}: no calibration.json (run `bayesmm calibrate ... --out {d}` first)")
    r = json.loads(path.read_text())
    parts = _header(r) + _data_section(r) + _fits_section(r, d)
    if "routes" in r:
        parts += _parameters_section(r)
    if "scores" in r:
        parts += _scores_section(r)
    parts += _simulation_section(r.get("simulation_check"))
    parts += _sweep_section(d / "sweep")
    parts += _markout_section(d / "fills.parquet")
    for png in sorted(d.glob("selloff_*.png")):
        parts.append(f"<h3>{_e(png.stem)}</h3>" + _img_png(png.read_bytes(), png.stem))
    return ("<!doctype html><html><head><meta charset='utf-8'><title>bayesmm calibration report</title>"
            f"<style>{_CSS}</style></head><body>" + "\n".join(parts) + "</body></html>")


def _header(r: dict) -> list[str]:
    """Title, status line, the verdict with its warnings, and the exported belief over time."""
    parts = [f"<h1>Calibration report: {_e(r['sessions'][0]['instrument'])} on {_e(r['sessions'][0]['venue'])}</h1>"]
    sel = r.get("selection")
    status = ("<span class='bad'>REFUSED: the fits failed the gate</span>" if r.get("refused") else
              "<span class='bad'>FORCED export: the fits failed the gate</span>" if r.get("forced") else
              "<span class='ok'>the fits passed the gate</span>")
    parts.append(f"<p>{_e(r.get('started', ''))} - method {_e(r['method'])}, seed {_e(r['seed'])}: {status}."
                 + (f" Exported route: <b>{_e(sel['chosen'])}</b>. {_e(sel['why'])}."
                    if sel else "") + "</p>")
    warn = _warnings(r)
    parts.append("<h2>Verdict</h2>" + _verdict(r, warn))
    if warn:
        parts.append("<ul>" + "".join(f"<li class='bad'>{_e(x)}</li>" for x in warn) + "</ul>")
    if r.get("belief_on_test"):
        parts.append("<h2>The exported belief on the test sessions</h2>" + _belief_figure(r["belief_on_test"]))
    return parts


def _data_section(r: dict) -> list[str]:
    rows = []
    for i, s in enumerate(r["sessions"]):
        counts = ", ".join(f"{k} {v:,}" for k, v in s.get("counts", {}).items() if v)
        segs = s.get("segments", [])
        files = ", ".join(f"{_e(x.get('path', ''))} ({_e(x.get('role', ''))})" for x in s["sources"])
        rows.append([f"training {i + 1}", files, _num(s["span_s"], ",.1f"), _e(counts), str(len(segs) or 1),
                     _e(s["sha256"][:16]) + "..."])
    for i, s in enumerate(r.get("test_sessions", [])):
        files = ", ".join(_e(x.get("path", "")) for x in s["sources"])
        rows.append([f"test {i + 1}", files, _num(s["span_s"], ",.1f"), "", "", _e(s["sha256"][:16]) + "..."])
    return ["<h2>Data</h2>", _table(["session", "files", "span (s)", "events", "segments", "sha256"], rows, left=2)]


def _fits_section(r: dict, d: Path) -> list[str]:
    """Each model's diagnostics and PPC p-values (red outside the gate's band, gated or not), the
    gate's failures, the PPC figures."""
    rows = []
    for name, f in r["fits"].items():
        dg = f["diagnostics"]
        diag = (f"r_hat {_num(dg.get('max_rhat'), '.3f')}, ESS {_num(dg.get('min_ess_bulk'), '.0f')}/"
                f"{_num(dg.get('min_ess_tail'), '.0f')}, {dg.get('divergences')} divergences"
                if dg.get("method") == "nuts" else f"SVI, Pareto k-hat {_num(dg.get('psis_khat'), '.2f')}")
        lo, hi = r.get("gate", {}).get("ppc_low", 0.01), r.get("gate", {}).get("ppc_high", 0.99)
        ppc = ", ".join((f"<span class='{'bad' if not lo <= v['ppp'] <= hi else ''}'>{_e(k)} "
                         f"{_num(v['ppp'], '.2f')}{'' if v.get('gated', True) else ' (not gated)'}</span>")
                        for k, v in f["ppc"].items())
        rows.append([_e(name), diag, ppc])
    parts = ["<h2>Fits</h2>", _table(["model", "diagnostics", "posterior predictive p-values"], rows, left=3)]
    if r.get("gate_failures"):
        parts.append("<p class='bad'>Gate failures:</p><ul>" + "".join(f"<li>{_e(x)}</li>" for x in r["gate_failures"])
                     + "</ul>")
    for png in sorted((d / "fits").glob("*_ppc.png")):
        parts.append(f"<h3>{_e(png.stem)}</h3>" + _img_png(png.read_bytes(), png.stem))
    return parts


def exported_value(config: dict, key: str):
    """The exported config's value of a dotted key (group.field), or None where it has none."""
    group, _, field = key.partition(".")
    return config.get(group, {}).get(field)


def _same(a, b) -> bool:
    return a is not None and b is not None and bool(np.allclose(np.asarray(a, float), np.asarray(b, float),
                                                                rtol=1e-9, atol=1e-12))


def _parameters_section(r: dict) -> list[str]:
    """Per parameter either route informs: the exported value, each route's value with its interval,
    the route whose value was exported, and the other's marked not exported."""
    parts = ["<h2>Parameters: the two routes</h2><p class='note'>exported: the value in config.toml. derive: "
             "posterior median [90%] from the fits, beside the same parameter derived from the models' priors and "
             "the share of the prior's 90% width (squared, log scale) the data removed (near 0: the interval is the "
             "prior's); tune: the optimum of the filter's own log score [90% block bootstrap]. A route's value that "
             "is not the exported one is marked <i>not exported</i>. The provenance of each exported value is in "
             "config.toml.</p>"]
    rows = []
    for key, row in r["routes"].items():
        dv, tv = row.get("derive"), row.get("tune")
        value = exported_value(r.get("config", {}), key)
        has_prior = bool(dv) and "prior_median" in dv

        def mark(text, route_value, value=value):
            return text if _same(route_value, value) else f"{text} <i class='note'>not exported</i>"

        rows.append([_e(key), _num(value) if value is not None and np.ndim(value) == 0 else "-",
                     mark(f"{_num(dv['median'])} [{_num(dv['q05'])}, {_num(dv['q95'])}]", dv["median"]) if dv else "-",
                     f"{_num(dv['prior_median'])} [{_num(dv['prior_q05'])}, {_num(dv['prior_q95'])}]"
                     if has_prior else "-",
                     f"{dv['learnt']:.0%}" if has_prior and dv.get("learnt") is not None else "-",
                     mark(f"{_num(tv['value'])} [{_num(tv['q05'])}, {_num(tv['q95'])}]", tv["value"]) if tv else "-",
                     "<span class='bad'>disagree</span>" if row.get("disagree") else ""])
    parts.append(_table(["parameter", "exported", "derive", "prior", "learnt", "tune", ""], rows))
    kept = [[_e(k), _e(v["kept"])] for k, v in r.get("derive", {}).items() if "kept" in v]
    if kept:
        parts.append("<h3>Kept at their base values</h3>" + _table(["parameter", "why"], kept, left=2))
    return parts


def _scores_section(r: dict) -> list[str]:
    parts = ["<h2>Scores</h2><p class='note'>Mean log score of p_down for the sign of the mid move over each "
             "horizon (a coin flip scores ln 0.5 = -0.6931; higher is better), and Brier.</p>"]
    for split, by_route in r["scores"].items():
        horizons = list(next(iter(by_route.values())))
        rows = [[_e(route)] + [f"{_num(sc[h]['log_score'])} / {_num(sc[h]['brier'], '.3f')}" for h in horizons]
                for route, sc in by_route.items()]
        parts.append(f"<h3>{_e(split)}</h3>" + _table(["filter", *horizons], rows))
    parts.append(_scores_figure(r["scores"]) + "<p class='note'>Each panel's axis stops 0.15 below a coin flip's "
                 "score: a route below that is off the plot; its numbers are in the tables above.</p>")
    test = r["scores"].get("test sessions (out of sample)")
    if test:
        parts.append("<h3>Reliability of p_down, out of sample</h3>" + _reliability_figure(test))
    return parts


def _simulation_section(sim: dict | None) -> list[str]:
    parts = ["<h2>Validation in simulation</h2>"]
    if not sim:
        return parts + ["<p class='note'>Not run with this calibration (`bayesmm calibrate ... --validate-sim N`).</p>"]
    from bayesmm.calibration.coverage import coverage_summary, is_informed

    parts.append(f"<p>Derived 90% intervals covering the simulator's truth: {_e(coverage_summary(sim))}. "
                 "Marked *: prior-bound (the data removed less of the prior's spread than that).</p>")
    rows = [[_e(x["market"]), str(x["seed"]), _e(x["route"]), _num(x["shrink"]),
             " ".join(("" if v["covered"] else "<span class='bad'>") + _e(k.split(".")[-1])
                      + ("" if "learnt_threshold" not in sim or is_informed(v, sim["learnt_threshold"]) else "*")
                      + ("" if v["covered"] else "</span>") for k, v in x["coverage"].items()),
             _num(x["brier"]["calibrated"]), _num(x["brier"]["truth"]),
             f"{_num(x['brier'].get('truth_exported'))} (x {_num(x.get('truth_shrink'))})",
             _num(x["brier"]["defaults"])]
            for x in sim["runs"]]
    parts.append(_table(["market", "seed", "route", "shrink", "intervals (red: missed)", "Brier calibrated",
                         "Brier truth-implied", "truth-implied, exported by the same rule", "Brier defaults"],
                        rows, left=3))
    return parts


def write_report(directory: str | Path) -> Path:
    """Write DIR/report.html (atomically)."""
    return write_atomic(Path(directory) / "report.html", build_report(directory))
