"""Calibrate-then-score on the bundled real pairs, and the table of what the exported belief did out
of sample beside the peer and a coin flip (`bayesmm pairs`, `make pairs`).

The pairs: Binance spot BTCUSDT 20240808 -> 20240809, the USD-M BTCUSDT perp's first half -> its
second half, Binance COIN-M ETHUSD 20240808 -> 20240809. For each, `calibrate` runs on the earlier
session with the later one as its test session (never used to fit), and the later session's scores
are read from its calibration.json. The aims each pair is judged against (`AIMS`) are written beside
the numbers, met or not, into `pairs.json` and `pairs.md`: generated files, so that no document
carries a number the code did not just measure.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bayesmm.calibration.score import COIN_FLIP_LOG_SCORE, GRID_S

PAIRS = {
    "spot BTCUSDT 0808 -> 0809": ("binance-spot-btcusdt-20240808.gz", "binance-spot-btcusdt-20240809.gz"),
    "perp BTCUSDT first half -> second half": ("binance-usdm-btcusdt-20240808.gz", None),
    "COIN-M ETHUSD 0808 -> 0809": ("binance-coinm-ethusd-perp-20240808.gz", "binance-coinm-ethusd-perp-20240809.gz"),
}
AIMS = {"peer_margin": 0.01, "coin_margin": 0.003, "one_second_gain": 0.05, "min_sd": 0.05, "max_ece": 0.05}
"""The exported forecast's log score on the test session at least the peer's - 0.01 and a coin flip's
- 0.003 at every horizon; at 1 s a coin flip's + 0.05 (spot and perp halves); the quoter's p_down (the
forecast at the config's fair-value horizon) with an sd at least 0.05 and an ECE at most 0.05 (spot 0809);
the derive route at least a coin flip at 1 and 5 s."""


def _sessions(data_dir: Path, train: str, test: str | None, work: Path):
    from bayesmm.events import ingest, write_session

    first, _ = ingest(data_dir / train, progress=False)
    if test is None:
        half = first.span_s() / 2
        a, b = first.between(0.0, half), first.between(half, 2 * half + 1.0)
    else:
        a, b = first, ingest(data_dir / test, progress=False)[0]
    paths = work / "train.parquet", work / "test.parquet"
    write_session(a, paths[0])
    write_session(b, paths[1])
    return a, b


def run_pairs(data_dir: str | Path, out_dir: str | Path, settings=None, quiet: bool = True,
              force: bool = False) -> dict:
    """Calibrate each pair into out_dir/<n>/, its models fitted as `settings` say (`models.fit.FitSettings`,
    default calibrate's), exported despite a failed gate with `force` (marked so, `calibrate`), and
    write out_dir/pairs.json and pairs.md (`summarise`)."""
    from bayesmm.calibration.calibrate import FIT, calibrate

    data_dir, out_dir = Path(data_dir), Path(out_dir)
    for i, (name, (train, test)) in enumerate(PAIRS.items()):
        work = out_dir / str(i + 1)
        work.mkdir(parents=True, exist_ok=True)
        if not quiet:
            print(f"[pair {i + 1}/{len(PAIRS)}] {name}", flush=True)
        a, b = _sessions(data_dir, train, test, work)
        calibrate([a], work, settings or FIT, test_sessions=[b], quiet=True, force=force)
        backtest_test_session(b, work)
    return summarise(out_dir)


def backtest_test_session(session, work: Path) -> None:
    """Every quoter preset on the test session with the pair's calibrated config: work/fills.parquet
    (every fill with its markouts), and the pair's report rewritten with its markout section."""
    from bayesmm.calibration.config import load_config
    from bayesmm.calibration.report import write_report
    from bayesmm.online.quoter import PRESETS
    from bayesmm.sim.backtest import backtest_quoters, fills_meta
    from bayesmm.sim.markout import write_fills

    runs = backtest_quoters(session, tuple(PRESETS), load_config(work / "config.toml"))
    write_fills(work / "fills.parquet", [r["fills"] for r in runs.values()], fills_meta(session, runs))
    write_report(work)


def summarise(out_dir: str | Path) -> dict:
    """pairs.json and pairs.md from the pairs' calibration.json files in out_dir/<n>/."""
    from bayesmm.sim.markout import quoter_summaries, read_fills

    out_dir = Path(out_dir)
    rows, fills = {}, {}
    for i, name in enumerate(PAIRS):
        path = out_dir / str(i + 1) / "calibration.json"
        if not path.exists():
            continue
        r = json.loads(path.read_text())
        test = r["scores"]["test sessions (out of sample)"]
        trace = r["belief_on_test"][0]
        per_h = {}
        for h, v in test["calibrated"].items():
            peer, derive = test["peer"][h]["log_score"], test["derive"][h]["log_score"]
            per_h[h] = {"calibrated": v["log_score"], "peer": peer, "derive": derive,
                        "defaults": test["defaults"][h]["log_score"], "coin_flip": COIN_FLIP_LOG_SCORE,
                        "sd_p_down": trace["sd"][h], "ece": trace["ece"][h], "n": v["n"],
                        "ece_by_chance": trace.get("ece_by_chance", {}).get(h, float("nan")),
                        "headline": h == trace.get("headline"),
                        "meets_peer": v["log_score"] >= peer - AIMS["peer_margin"],
                        "meets_coin": v["log_score"] >= COIN_FLIP_LOG_SCORE - AIMS["coin_margin"],
                        "derive_meets_coin": derive >= COIN_FLIP_LOG_SCORE}
        fills_path = out_dir / str(i + 1) / "fills.parquet"
        fills[name] = read_fills(fills_path) if fills_path.exists() else None
        rows[name] = {"route": r["selection"]["chosen"], "why": r["selection"]["why"],
                      "gate_failures": r["gate_failures"], "horizons": per_h,
                      "markout": quoter_summaries(*fills[name]) if fills[name] else None}
    pooled = pooled_markout([cols for cols, _ in filter(None, fills.values())])
    (out_dir / "pairs.json").write_text(json.dumps({"pairs": rows, "aims": AIMS, "met": aims_met(rows),
                                                    "pooled_markout": pooled}, indent=2, default=float))
    (out_dir / "pairs.md").write_text(markdown(rows) + markout_markdown(rows, pooled))
    return rows


def pooled_markout(fills: list[dict], horizon_s: float = 5.0) -> dict | None:
    """The pairs' test sessions pooled (each session's fills columns, `sim.markout.read_fills`): per
    quoter the fills and the mean `horizon_s` markout with its bootstrap 90% interval, and the Bayesian
    quoter's mean less glft's with its interval (negative: picked off less)."""
    from bayesmm.sim.markout import bootstrap_difference, bootstrap_mean

    values: dict[str, list] = {}
    for cols in fills:
        for q in dict.fromkeys(cols["quoter"]):
            values.setdefault(q, []).append(cols[f"markout_{horizon_s:g}s_bps"][cols["quoter"] == q])
    if not values:
        return None
    pooled = {q: np.concatenate(v) for q, v in values.items()}
    out = {"horizon_s": horizon_s, "quoters": {}}
    for q, v in pooled.items():
        mean, lo, hi = bootstrap_mean(v)
        out["quoters"][q] = {"fills": int(np.isfinite(v).sum()), "mean": mean, "low": lo, "high": hi}
    if "bayesian" in pooled and "glft" in pooled:
        d, lo, hi = bootstrap_difference(pooled["bayesian"], pooled["glft"])
        out["bayesian_minus_glft"] = {"mean": d, "low": lo, "high": hi, "meets": bool(d <= 0)}
    return out


def markout_markdown(rows: dict, pooled: dict | None) -> str:
    """The markout tables: per pair, every preset on the test session with the calibrated config; and
    the sessions pooled."""
    from bayesmm.sim.markout import format_markout, interval_text

    lines = ["", "# Markout per fill on the test sessions", "",
             "Every quoter preset backtested on each pair's test session with the pair's calibrated config "
             "(`sim/markout.py`): the mid 5 s after each fill against its price, bps, positive = a loss to us; "
             "means with bootstrap 90% intervals.", ""]
    for name, r in rows.items():
        if r.get("markout"):
            lines += [f"## {name}", "", "```", format_markout(r["markout"]), "```", ""]
    if pooled:
        lines += ["## Pooled over the test sessions", "", "| quoter | fills | mean 5 s markout bps [90%] |",
                  "|---|---|---|"]
        lines += [f"| {q} | {v['fills']} | {interval_text(v, '+.3f')} |" for q, v in pooled["quoters"].items()]
        d = pooled.get("bayesian_minus_glft")
        if d:
            lines += ["", f"bayesian - glft: {interval_text(d, '+.3f')} bps "
                          f"(aim <= 0: {'met' if d['meets'] else 'NOT met'})"]
    return "\n".join(lines) + "\n"


def markdown(rows: dict) -> str:
    """The pairs' table as Markdown (what `make pairs` prints and writes)."""
    lines = ["# Calibrated on the earlier session, scored on the later one", "",
             "Mean log score of each horizon's exported forecast for the sign of the mid's move (ties dropped, "
             f"points {GRID_S:g} s apart; a coin flip scores {COIN_FLIP_LOG_SCORE:.4f}; higher is better), "
             "beside the peer (a "
             "plain logistic regression on the book's public features, fitted to the same training session) and "
             "the derive route (the book model's forecast alone); the forecast's sd and ECE on the test session, "
             "and the ECE an exactly calibrated forecast would show on the same points by chance. '(p_down)' marks the "
             "quoter's headline forecast. Generated by `bayesmm pairs`.", ""]
    for name, r in rows.items():
        gate = ("passed" if not r["gate_failures"] else
                "FAILED, exported with --force: " + "; ".join(r["gate_failures"]))
        lines += [f"## {name}", "", f"route {r['route']}; gate: {gate}",
                  "", "| horizon | calibrated | peer | derive | defaults | sd p_down | ECE | ECE by chance | points | "
                      ">= peer - 0.01 | >= coin - 0.003 |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for h, v in r["horizons"].items():
            name_h = f"{h} (p_down)" if v.get("headline") else h
            lines.append(f"| {name_h} | {v['calibrated']:.4f} | {v['peer']:.4f} | {v['derive']:.4f} "
                         f"| {v['defaults']:.4f} | {v['sd_p_down']:.3f} | {v['ece']:.3f} | {v['ece_by_chance']:.3f} "
                         f"| {v['n']} | {'yes' if v['meets_peer'] else 'no'} | {'yes' if v['meets_coin'] else 'no'} |")
        lines.append("")
    lines += ["## Aims", ""] + [f"- {name}: " + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in met.items())
                               for name, met in aims_met(rows).items()]
    return "\n".join(lines) + "\n"


def aims_met(rows: dict) -> dict:
    """Each aim of `AIMS`, per pair where it applies: met or not."""
    out = {}
    for name, r in rows.items():
        hs = r["horizons"]
        out[name] = {"peer_and_coin_every_horizon": all(v["meets_peer"] and v["meets_coin"] for v in hs.values()),
                     "derive_beats_coin_1s_5s": all(hs[h]["derive_meets_coin"] for h in ("1s", "5s") if h in hs)}
        if not name.startswith("COIN-M") and "1s" in hs:
            out[name]["one_second_gain"] = hs["1s"]["calibrated"] >= COIN_FLIP_LOG_SCORE + AIMS["one_second_gain"]
        if name.startswith("spot"):  # the quoter's p_down: the headline horizon's forecast
            head = [v for v in hs.values() if v.get("headline")]
            out[name]["moves_and_calibrated"] = bool(head and head[0]["sd_p_down"] >= AIMS["min_sd"]
                                                     and head[0]["ece"] <= AIMS["max_ece"])
    return out
