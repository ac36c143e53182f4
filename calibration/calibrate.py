r"""`calibrate`: recorded sessions -> a validated production config, in six stages.

1. **fit** the four offline models jointly to the sessions (shared parameters, separate latent
   paths), with diagnostics and posterior predictive checks; the **gate** lists what failed.
2. **derive** every online parameter the fits inform, draw by draw (`calibration.derive`).
3. **tune** the evidence weights by the filter's own predictive log score (`calibration.tune`).
4. **select** a route on held-out data - the derived config, the fitted regime HMM's own verdict on
   the sign (`derive.regime_verdict_config`, when the regime model was fitted) or the tuned weights
   - by blocked cross-validation in time: each session is cut into `folds` contiguous blocks; for
   each block every route is recomputed without it (the fits on the other blocks, jointly, as
   separate sessions; the tuner scoring only their points) and scored on it, against the sign of the
   forward mid move at each horizon; the held-out scores of all blocks are pooled. (A single held-
   out tail was tried first: on the 5-minute 20240808 spot session its last 30% held two independent
   60 s windows, too few to judge.) Each route's evidence is also **shrunk** there: all evidence
   weights (and the weights of the returns and of the regime's verdict) are multiplied by a tau in
   `SHRINK_GRID`, chosen the way the result is judged: the largest mean held-out gain in log score
   over a coin flip among the taus whose gain at every horizon is at least -`TOLERANCE` (0.003). tau
   = 0 is a filter that says 1/2 (log score ln 0.5 exactly) and is always admissible, so the
   selected filter is never worse than a coin flip on the held-out blocks beyond the tolerance; on a
   recording where no evidence generalises that is what it becomes, and the report says so. The
   route with the highest held-out gain wins; its full-data parameters, shrunk by its tau, are
   exported.
5. **validate**: scores of the spec's defaults, each route and the export on the held-out part and
   on any later `test` sessions (out of sample).
6. **export**: config.toml (with provenance), config.schema.json, golden.parquet, calibration.json,
   fits/*.nc - each written atomically. A failed gate refuses the export unless `force` (and stops
   the run right after the fits: nothing downstream is worth computing on fits that failed), and a
   forced config says so in its provenance, with the reasons.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import jax
import numpy as np

from calibration import derive as derive_mod
from calibration import golden
from calibration.config import write_config
from calibration.schema import config_schema
from calibration.score import COIN_FLIP_LOG_SCORE, HORIZONS_S, brier, forward_targets, log_score
from calibration.tune import tune
from calibration.venue import session_config
from events.atomic import write_atomic
from events.features import to_arrays
from models.fit import SVI_RESTARTS, load_fit
from models.workflow import MODEL_NAMES, PPC_RANGE, fit_session, model_data, sessions_list
from online.params import EVIDENCE_WEIGHTS, Config, config_to_dict, default_config, replace
from online.replay import as_events, run
from sim.scoring import reliability

SHRINK_GRID = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0)
TOLERANCE = 0.003  # a route may be this much below a coin flip's log score at a horizon (the issue's)
class CalibrationRefused(RuntimeError):
    """The fits failed the gate and `force` was not given: nothing was exported."""


@dataclass(frozen=True)
class Gate:
    """What a fit must pass before its config is exported (options of `calibrate`).

    Attributes: max_rhat (1.01), min_ess (100, bulk and tail), max_divergences (0), and the
    interval [ppc_low, ppc_high] = [0.01, 0.99] every posterior predictive p-value must lie in.
    """

    max_rhat: float = 1.01
    min_ess: float = 100.0
    max_divergences: int = 0
    ppc_low: float = PPC_RANGE[0]
    ppc_high: float = PPC_RANGE[1]


def gate_failures(fit_report: dict, gate: Gate) -> list[str]:
    """Every way the fits fail the gate, as '<model>: <what>' lines (empty when they pass)."""
    out = []
    for name, r in fit_report.items():
        d = r["diagnostics"]
        if d.get("method") == "nuts":
            if not d["max_rhat"] <= gate.max_rhat:
                out.append(f"{name}: r_hat {d['max_rhat']:.3f} > {gate.max_rhat}")
            for k in ("min_ess_bulk", "min_ess_tail"):
                if not d[k] >= gate.min_ess:
                    out.append(f"{name}: {k.removeprefix('min_').replace('_', ' ')} {d[k]:.0f} < {gate.min_ess:g}")
            if d["divergences"] > gate.max_divergences:
                out.append(f"{name}: {d['divergences']} divergent transitions")
        for stat, v in r["ppc"].items():
            if v.get("gated", True) and not gate.ppc_low <= v["ppp"] <= gate.ppc_high:
                out.append(f"{name}: PPC p-value of {stat} = {v['ppp']:.2f} outside [{gate.ppc_low}, {gate.ppc_high}]")
    return out


def shrink(cfg: Config, tau: float) -> Config:
    """Every evidence weight and the returns' and regime's weights multiplied by tau (tau = 0:
    p_down = 1/2 always)."""
    ev = {k: float(getattr(cfg.evidence, k)) * tau for k in EVIDENCE_WEIGHTS}
    return replace(cfg, evidence=ev, drift={k: float(getattr(cfg.drift, k)) * tau
                                            for k in ("return_weight", "regime_weight")})


def tune_base(base: Config, derived_cfg: Config) -> Config:
    """Where the tuner starts: the base with the fitted regime HMM (`derived_cfg.regime`), so that
    the weight of the regime's verdict on the drift's sign (`drift.regime_weight`) is tuned for
    the regimes the fits found, not the spec's default chain. Nothing else of the derived route
    enters: with the regime's weight at 0 the regime does not move p_down at all. (The derived
    returns' noise does not enter either: Roll's estimate is 0 on both real spot sessions, whose
    mid ticks come milliseconds apart, where the default 1 s keeps the Kalman and volatility
    updates sane; the route of the regime's verdict, which needs the noise right, has its own.)"""
    return replace(base, regime=derived_cfg.regime._asdict())


def _scores(cfg: Config, arrays, horizons_s, t_ranges=None, reliability_bins: int = 0) -> dict:
    """{horizon: {n, log_score, brier}} pooled over sessions (points restricted to t_ranges); with
    `reliability_bins`, also the reliability curve (mean p_down, frequency of a fall, count per bin)."""
    pts = {f"{h:g}s": ([], []) for h in horizons_s}
    for i, a in enumerate(arrays):
        p = np.asarray(run(as_events(a, np.float64), cfg).p_down)
        lo, hi = (t_ranges[i] if t_ranges else (-np.inf, np.inf))
        for h in horizons_s:
            tg = forward_targets(a.t_s, a.mid, a.valid, h)
            keep = (tg.t_s >= lo) & (tg.t_s + h <= hi)
            pts[f"{h:g}s"][0].append(p[tg.rows[keep]])
            pts[f"{h:g}s"][1].append(tg.down[keep])
    out = {}
    for k, (ps, ys) in pts.items():
        p, y = np.concatenate(ps), np.concatenate(ys)
        out[k] = {"n": len(y), "log_score": log_score(p, y), "brier": brier(p, y)}
        if reliability_bins and len(y):
            mean_p, freq, count = reliability(p, y, reliability_bins)
            out[k]["reliability"] = {"mean_p_down": mean_p.tolist(), "share_down": freq.tolist(),
                                     "count": count.tolist()}
    return out


def _gains(scores: dict) -> list[float]:
    """(log score - ln 0.5) per horizon with points."""
    return [v["log_score"] - COIN_FLIP_LOG_SCORE for v in scores.values() if v["n"] > 0] or [0.0]


def _admissible(scores: dict) -> bool:
    return min(_gains(scores)) >= -TOLERANCE


def _mean_gain(scores: dict) -> float:
    return float(np.mean(_gains(scores)))


def _pool(parts: list[dict]) -> dict:
    """Per-horizon scores of several point sets pooled (weighted by their point counts)."""
    out = {}
    for h in parts[0]:
        n = sum(p[h]["n"] for p in parts)
        out[h] = {"n": n, **{k: (sum(p[h][k] * p[h]["n"] for p in parts if p[h]["n"]) / n if n else float("nan"))
                             for k in ("log_score", "brier")}}
    return out


def best_shrink(fold_cfgs: list[Config], arrays, horizons_s, fold_ranges: list[list]) -> tuple[float, dict]:
    """The tau of SHRINK_GRID with the largest mean gain over a coin flip on the held-out points
    (each fold's config scored on its own block, pooled) among the admissible taus (no horizon
    below -TOLERANCE; tau = 0 always is), ties to the smaller tau; and the pooled scores of every tau."""
    table = {tau: _pool([_scores(shrink(c, tau), arrays, horizons_s, r) for c, r in zip(fold_cfgs, fold_ranges,
                                                                                      strict=True)])
             for tau in SHRINK_GRID}
    best = max((tau for tau in SHRINK_GRID if _admissible(table[tau]) or tau == 0.0),
               key=lambda tau: (round(_mean_gain(table[tau]), 12), -tau))
    return best, table


def time_blocks(arrays, folds: int) -> list[list[tuple[float, float]]]:
    """Per fold, per session: the (start, end) s of the fold's block (the last one open-ended)."""
    out = []
    for k in range(folds):
        per = []
        for a in arrays:
            t0, span = a.t_s[0], a.t_s[-1] - a.t_s[0]
            per.append((t0 + span * k / folds, t0 + span * (k + 1) / folds if k < folds - 1 else np.inf))
        out.append(per)
    return out


FOLD_DRAWS = 200  # draws of a cross-validation refit (the Monte Carlo sd of their median: ~9% of the posterior sd)


def _cross_validated(sessions, arrays, names, folds, method, draws, warmup, chains, seed, base, horizons_s,
                     svi_restarts: int = SVI_RESTARTS, bins: dict | None = None):
    """Every route recomputed without each block (module docstring, stage 4): per route, the
    config of each fold and the blocks to score them on. `bins`: each model's bin width, as the
    fit of all the data chose it."""
    blocks = time_blocks(arrays, folds)
    routes: dict[str, list] = {}
    for k in range(folds):
        train_sessions, train_arrays, train_ranges = [], [], []
        for i, (s, a) in enumerate(zip(sessions, arrays, strict=True)):
            for j in range(folds):
                if j == k:
                    continue
                lo, hi = blocks[j][i]
                piece = s.between(lo - a.t_s[0], hi - a.t_s[0])
                if len(piece):
                    train_sessions.append(piece)
                    train_arrays.append(a)
                    train_ranges.append((lo, hi))
        with tempfile.TemporaryDirectory() as tmp:
            # a fold's routes use the posterior medians (`derive.derived_config`): FOLD_DRAWS draws give them
            _, _, d_cfg, _ = _fits_and_derive(train_sessions, [to_arrays(p) for p in train_sessions], names, tmp,
                                              method, min(draws, FOLD_DRAWS), warmup, chains, seed, False, base,
                                              checks=False, svi_restarts=svi_restarts, bins=bins)
        t_cfg, _ = tune(tune_base(base, d_cfg), train_arrays, horizons_s, t_ranges=train_ranges, seed=seed,
                        num_bootstrap=0)
        for route, cfg in route_configs(d_cfg, t_cfg, names).items():
            routes.setdefault(route, []).append(cfg)
    return routes, blocks


def route_configs(derived_cfg: Config, tuned_cfg: Config, names) -> dict[str, Config]:
    """The routes selection compares, in the order that breaks a tie: the tuned weights (first:
    they were chosen by the score that selection uses), the derived config (additive evidence) and,
    when the regime model was fitted, its own verdict (`derive.regime_verdict_config`)."""
    routes = {"tune": tuned_cfg, "derive": derived_cfg}
    if "regime" in names:
        routes["regime"] = derive_mod.regime_verdict_config(derived_cfg)
    return routes


def _git_commit() -> str:
    try:
        root = Path(__file__).resolve().parents[1]
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + ("+uncommitted" if dirty else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _session_sha256(session) -> str:
    """sha256 of the session's events, column by column (numbers as their bytes, strings joined)."""
    h = hashlib.sha256()
    for name in session.table.column_names:
        x = session.column(name)
        h.update("\x1f".join(map(str, x)).encode() if x.dtype == object else np.ascontiguousarray(x).tobytes())
    return h.hexdigest()


@contextlib.contextmanager
def _progress(desc: str, quiet: bool):
    """A tqdm bar fed by the tuner's (iteration, objective) callback; None when quiet."""
    if quiet:
        yield None
        return
    from tqdm import tqdm

    with tqdm(desc=desc, unit="it") as bar:
        def update(_: int, objective: float) -> None:
            bar.update(1)
            bar.set_postfix(penalised_log_score=f"{objective:.4f}")

        yield update


class _Stages:
    """Prints '[k/6] stage ...' and its duration; the fits and the tuner draw their own progress."""

    def __init__(self, quiet: bool):
        self.quiet, self.k, self.t0 = quiet, 0, time.perf_counter()

    def __call__(self, name: str):
        self.k += 1
        if not self.quiet:
            print(f"[{self.k}/6] {name} (t+{time.perf_counter() - self.t0:.0f} s)", flush=True)


def _fittable(name: str, sessions) -> bool:
    """Whether the sessions hold the data the model needs: the toxicity model needs own fills with
    their AS. (Not the tape's prints standing in for them: the prints of one sweep share one mid
    move, which the mixture would read as many independent AS - on the 20240808 spot tape its
    posterior predictive p-values for the AS mean and tail were 1.00.)"""
    if name == "toxicity" and sum(s.counts()["own_fill"] for s in sessions) == 0:
        return False
    try:
        model_data(name, sessions)
    except ValueError:
        return False
    return True


def _fits_and_derive(sessions, arrays, names, fit_dir, method, draws, warmup, chains, seed, progress, base,
                     checks: bool = True, svi_restarts: int = SVI_RESTARTS, bins: dict | None = None):
    """Fit, derive, and the derived config: (fit report, derived list, config, the same parameters
    derived from the models' priors - `derive.prior_fits` - or None without `checks`).
    `arrays`: the sessions' `to_arrays`, for what is derived from the mid returns; `checks`: as in
    `models.workflow.fit_session` (off for the cross-validation's refits, which need neither);
    `bins`: each model's bin width (None: `fit_session` chooses; the report's "bin_s" says which)."""
    report = fit_session(sessions, names, fit_dir, method=method, draws=draws, warmup=warmup, chains=chains,
                         seed=seed, progress=progress, checks=checks, svi_restarts=svi_restarts, bin_s=bins)
    bins = {n: r["bin_s"] for n, r in report.items()}
    fits = {n: load_fit(Path(fit_dir) / f"{n}.nc") for n in names}
    from_tape = bool(sum(s.counts()["own_fill"] for s in sessions) == 0)
    data = {"regime": model_data("regime", sessions, bins["regime"])[1]} if "regime" in names else {}
    derived = derive_mod.derive(fits, data, from_tape, seed=seed)
    prior = (derive_mod.derive(derive_mod.prior_fits(fits, sessions, seed=seed, bins=bins), data, from_tape, seed=seed)
             if checks else None)
    noise = derive_mod.return_noise(arrays, seed=seed)
    derived += [noise] if noise is not None else []
    return report, derived, derive_mod.derived_config(base, derived), prior


def calibrate(sessions, out_dir, method: str = "svi", draws: int = 500, warmup: int = 500, chains: int = 2,
              seed: int = 0, folds: int = 2, force: bool = False, gate: Gate = Gate(), base: Config | None = None,
              horizons_s=HORIZONS_S, test_sessions=(), models=MODEL_NAMES, quiet: bool = False,
              export: bool = True, svi_restarts: int = SVI_RESTARTS) -> dict:
    """Run the six stages (module docstring) and write the outputs into `out_dir`. Returns the
    calibration report (what calibration.json holds; the exported Config under "final_config" when
    not `export`, which stops after validation - how the simulation check runs it). Raises
    CalibrationRefused when the gate fails and not `force` (calibration.json is still written,
    config.toml is not). `svi_restarts`: SVI optimisations per fit, the best kept (`models.fit.fit`;
    the cross-validation's refits too)."""
    jax.config.update("jax_enable_x64", True)
    if not 2 <= folds <= 10:
        raise ValueError(f"folds must be between 2 and 10 (blocks of each session), got {folds}")
    sessions = sessions_list(sessions)
    test_sessions = list(test_sessions)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stage = _Stages(quiet)
    base = session_config(sessions[0], base or default_config())
    names = [m for m in models if _fittable(m, sessions)]
    report: dict = {"started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "method": method,
                    "seed": seed, "svi_restarts": svi_restarts, "folds": folds, "horizons_s": list(horizons_s),
                    "gate": asdict(gate),
                    "sessions": [{"instrument": s.meta.instrument, "venue": s.meta.venue, "events": len(s),
                                  "span_s": s.span_s(), "sha256": _session_sha256(s), "counts": s.counts(),
                                  "segments": s.segments(), "repairs": dict(s.meta.repairs),
                                  "sources": [dict(x) for x in s.meta.sources]} for s in sessions],
                    "test_sessions": [{"sha256": _session_sha256(s), "span_s": s.span_s(),
                                       "sources": [dict(x) for x in s.meta.sources]} for s in test_sessions]}

    stage("fit: the offline models, jointly on the sessions")
    arrays = [to_arrays(s) for s in sessions]
    fit_report, derived, cfg_derive, prior_derived = _fits_and_derive(sessions, arrays, names, out / "fits", method,
                                                                      draws, warmup, chains, seed, not quiet, base,
                                                                      svi_restarts=svi_restarts)
    failures = gate_failures(fit_report, gate)
    report["fits"] = {k: {kk: vv for kk, vv in v.items() if kk != "summary"} | {"summary": v["summary"]}
                      for k, v in fit_report.items()}
    report["gate_failures"] = failures
    if failures and not force:
        report["refused"] = True
        write_atomic(out / "calibration.json", report_json(report))
        from calibration.report import write_report

        write_report(out)
        raise CalibrationRefused("the fits failed the gate (pass --force to export anyway, marked as forced):\n  "
                                 + "\n  ".join(failures))

    stage("derive: online parameters from the posteriors (and from the priors, to say what the data taught)")
    report["derive"] = derive_mod.table(derived, prior_derived)

    stage("tune: evidence weights by the filter's predictive log score")
    with _progress("tune (L-BFGS iterations)", quiet) as progress:
        cfg_tune, tuned = tune(tune_base(base, cfg_derive), arrays, horizons_s, seed=seed, progress=progress)
    report["tune"] = {k: {"value": v, "q05": tuned.interval[k][0], "q95": tuned.interval[k][1]}
                      for k, v in tuned.values.items()}
    report["tune_train_log_score"] = tuned.train_log_score

    stage(f"select: each route recomputed without each of {folds} blocks of each session, scored on it")
    fold_cfgs, blocks = _cross_validated(sessions, arrays, names, folds, method, draws, warmup, chains, seed, base,
                                         horizons_s, svi_restarts, {n: r["bin_s"] for n, r in fit_report.items()})
    route_cfgs = route_configs(cfg_derive, cfg_tune, names)
    selection = {}
    for route in route_cfgs:
        tau, by_tau = best_shrink(fold_cfgs[route], arrays, horizons_s, blocks)
        selection[route] = {"shrink": tau, "heldout": by_tau[tau], "mean_gain": _mean_gain(by_tau[tau]),
                            "by_shrink": {f"{t:g}": {h: v["log_score"] for h, v in s.items()}
                                          for t, s in by_tau.items()}}
    order = list(route_cfgs)
    chosen = max(order, key=lambda r: (round(selection[r]["mean_gain"], 12), -order.index(r)))
    tau = selection[chosen]["shrink"]
    final = shrink(route_cfgs[chosen], tau)
    others = "; ".join(f"{r}: {selection[r]['mean_gain']:+.4f} at {selection[r]['shrink']:g}"
                       for r in order if r != chosen)
    why = (f"{chosen}: its held-out mean log score over a coin flip was {selection[chosen]['mean_gain']:+.4f} "
           f"with its evidence shrunk by {tau:g} (the other routes - {others})")
    if tau == 0.0:
        why += ("; no evidence weight generalised to the held-out blocks, so the exported filter says 1/2 "
                "until a longer recording shows otherwise")
    report["selection"] = {"routes": selection, "chosen": chosen, "shrink": tau, "why": why}

    stage("validate: scores in sample, held out, and on the test sessions")
    configs = {"defaults": default_config(), **route_cfgs, "calibrated": final}
    report["scores"] = {
        "training (all)": {k: _scores(c, arrays, horizons_s) for k, c in configs.items()},
        "held-out blocks (routes recomputed without them)": {
            "defaults": _scores(default_config(), arrays, horizons_s),
            **{r: selection[r]["heldout"] for r in order}},
    }
    if test_sessions:
        test_arrays = [to_arrays(s) for s in test_sessions]
        report["scores"]["test sessions (out of sample)"] = {k: _scores(c, test_arrays, horizons_s,
                                                                        reliability_bins=10)
                                                             for k, c in configs.items()}
    report["routes"] = routes_table(report["derive"], report["tune"])
    report["config"] = config_to_dict(final)
    if not export:
        return {**report, "final_config": final, **{f"{r}_config": c for r, c in route_cfgs.items()},
                "derived": derived, "prior_derived": prior_derived}

    stage("export: config, schema, golden vectors, report")
    report["forced"] = bool(failures) and force
    report["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    write_atomic(out / "config.schema.json", json.dumps(config_schema(), indent=2))
    write_config(final, out / "config.toml", provenance(report, failures if force else []))
    table = golden.build(final, sessions[0])
    golden.write(table, out / "golden.parquet")
    report["golden"] = {"rows": table.num_rows, "streams": golden.read(out / "golden.parquet")[1]["streams"],
                        "config_sha256": golden.config_hash(final)}
    write_atomic(out / "calibration.json", report_json(report))
    from calibration.report import write_report

    write_report(out)
    return report


def routes_table(derived: dict, tuned: dict) -> dict:
    """Per parameter informed by either route: both values and intervals (the derived one with its
    prior's and the share of the prior's spread the data removed, where known), and whether the 90%
    intervals are disjoint (the routes disagree beyond their uncertainty)."""
    out = {}
    for key in sorted(set(k for k, v in derived.items() if "median" in v) | set(tuned)):
        d, t = derived.get(key, {}), tuned.get(key)
        row = {}
        if "median" in d and np.ndim(d["median"]) == 0:
            row["derive"] = {k: d[k] for k in ("median", "q05", "q95", "prior_median", "prior_q05", "prior_q95",
                                               "learnt") if k in d}
        if t is not None:
            row["tune"] = t
        if "derive" in row and "tune" in row:
            row["disagree"] = bool(d["q95"] < t["q05"] or t["q95"] < d["q05"])
        if row:
            out[key] = row
    return out


def provenance(report: dict, forced_reasons: list[str]) -> dict:
    """The [provenance] table of config.toml."""
    sel = report["selection"]
    p = {
        "project_commit": _git_commit(), "date": report["finished"], "method": report["method"],
        "seed": report["seed"], "sessions": [{"sha256": s["sha256"], "span_s": s["span_s"],
                                              "files": [{"path": x.get("path", ""), "sha256": x.get("sha256", ""),
                                                         "role": x.get("role", "")} for x in s["sources"]]}
                                             for s in report["sessions"]],
        "route": sel["chosen"], "shrink": sel["shrink"], "why": sel["why"],
        "fit_diagnostics": {k: {kk: vv for kk, vv in v["diagnostics"].items() if isinstance(vv, int | float | str)}
                            for k, v in report["fits"].items()},
        "ppc_p_values": {k: {s: v["ppp"] for s, v in r["ppc"].items()} for k, r in report["fits"].items()},
        "validation": {split: {route: {h: v["log_score"] for h, v in sc.items()} for route, sc in by_route.items()}
                       for split, by_route in report["scores"].items()},
        "parameters": {k: ({"median": v["median"], "q05": v["q05"], "q95": v["q95"], "source": v["provenance"]}
                           if "median" in v else {"kept_default": v["kept"]}) for k, v in report["derive"].items()},
        "tuned": report["tune"],
        "forced": bool(forced_reasons),
    }
    if forced_reasons:
        p["forced_reasons"] = forced_reasons
    return p


def _json_default(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON-serialisable: {type(x).__name__}")


def _finite(x):
    """A JSON-safe copy: NaN and infinities become null (strict JSON has no NaN)."""
    if isinstance(x, dict):
        return {str(k): _finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_finite(v) for v in x]
    if isinstance(x, np.generic | np.ndarray):
        return _finite(x.tolist())
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x


def report_json(report: dict) -> str:
    """calibration.json's text: strict JSON (NaN as null)."""
    return json.dumps(_finite(report), indent=2, allow_nan=False, default=_json_default)
