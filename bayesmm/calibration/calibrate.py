r"""`calibrate`: recorded sessions -> a validated production config, in six stages.

1. **fit** the four offline models jointly to the sessions (shared parameters, separate latent
   paths), with diagnostics and posterior predictive checks; the **gate** lists what failed.
2. **derive** every online parameter the fits inform, draw by draw (`calibration.derive`).
3. **tune** the evidence weights by the filter's own predictive log score (`calibration.tune`).
4. **select** on held-out data, per horizon (`calibration.select`): by blocked cross-validation in
   time, each session is cut into `folds` contiguous blocks; for each block every route - the drift
   belief tuned, derived, or read from the fitted regime HMM (`derive.regime_verdict_config`) - and
   the book model are recomputed without it (the fits on the other blocks, jointly, as separate
   sessions; the tuner scoring only their points) and scored on it, against the sign of the forward
   mid move at each horizon; the held-out scores of all blocks are pooled. For each horizon the
   book's forecast and the drift belief's log-odds are each scaled (and the book's features kept all
   or the imbalance alone) as that horizon's held-out log score says; both at 0 is a coin flip, so no
   horizon is worse than a coin flip on the held-out blocks, and a book that predicts the next second
   is kept there while a drift belief that predicts nothing is dropped. The route with the best mean
   held-out gain wins; its full-data parameters, with each horizon's choice, are exported.
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
from dataclasses import asdict
from pathlib import Path

import jax
import numpy as np

from bayesmm.calibration import derive as derive_mod
from bayesmm.calibration import golden
from bayesmm.calibration import peer as peer_mod
from bayesmm.calibration import select as select_mod
from bayesmm.calibration.config import write_config
from bayesmm.calibration.schema import config_schema
from bayesmm.calibration.score import (
    COIN_FLIP_LOG_SCORE,
    HORIZONS_S,
    horizon_column,
    replay_forecasts,
    score_trajectory,
    scores_of,
)
from bayesmm.calibration.tune import tune
from bayesmm.calibration.venue import session_config
from bayesmm.events.atomic import write_atomic
from bayesmm.events.features import to_arrays
from bayesmm.models.fit import FitSettings, load_fit
from bayesmm.models.gate import Gate, gate_failures  # noqa: F401  (re-exported: calibrate's gate)
from bayesmm.models.workflow import MODEL_NAMES, fit_session, model_data, sessions_list
from bayesmm.online.params import Config, config_to_dict, default_config, replace

TOLERANCE = 0.003  # a route may be this much below a coin flip's log score at a horizon (the issue's)
class CalibrationRefused(RuntimeError):
    """The fits failed the gate and `force` was not given: nothing was exported."""


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
    """`score.scores_of` the config's per-horizon forecasts (`p_down_h`, replayed on each session)."""
    return scores_of(lambda a: replay_forecasts(cfg, a, horizons_s), arrays, horizons_s, t_ranges, reliability_bins)


def _gains(scores: dict) -> list[float]:
    """(log score - ln 0.5) per horizon with points."""
    return [v["log_score"] - COIN_FLIP_LOG_SCORE for v in scores.values() if v["n"] > 0] or [0.0]


def _mean_gain(scores: dict) -> float:
    return float(np.mean(_gains(scores)))


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


def _cross_validated(sessions, arrays, names, folds, settings: FitSettings, base, horizons_s,
                     bins: dict | None = None):
    """Every route recomputed without each block (module docstring, stage 4): per route, the
    config of each fold (and under "book", each fold's derived config, whose book forecast selection
    scales), and the blocks to score them on. `bins`: each model's bin width, as the fit of all the
    data chose it. The refits are SVI where `settings` say "auto": they are not gated (their configs
    are judged by their held-out scores), and a refit by NUTS per fold would multiply its cost."""
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
            fold = settings.replace(draws=min(settings.draws, FOLD_DRAWS),
                                    method="svi" if settings.method == "auto" else settings.method)
            _, _, d_cfg, _ = _fits_and_derive(train_sessions, [to_arrays(p) for p in train_sessions], names, tmp,
                                              fold, False, base, checks=False, bins=bins)
        t_cfg, _ = tune(tune_base(base, d_cfg), train_arrays, horizons_s, t_ranges=train_ranges, seed=settings.seed,
                        num_bootstrap=0)
        for route, cfg in route_configs(d_cfg, t_cfg, names).items():
            routes.setdefault(route, []).append(cfg)
        routes.setdefault("book", []).append(d_cfg)
    return routes, blocks


def _select(route_cfgs: dict, cfg_derive: Config, fold_cfgs: dict, blocks, arrays, horizons_s):
    """Stage 4 (`calibration.select`): per route, each horizon's book and drift-belief scales chosen
    on the held-out blocks (each fold's configs replayed, its book forecast scaled); the route with
    the best mean held-out gain. Returns (the report's "selection", the exported config)."""
    flow_s = float(cfg_derive.book.flow_window_s)
    points = [select_mod.pool([select_mod.held_out_points({r: fold_cfgs[r][k] for r in route_cfgs}, a,
                                                          blocks[k][i], flow_s, horizons_s)
                               for i, a in enumerate(arrays)]) for k in range(len(blocks))]
    columns = [horizon_column(h) for h in horizons_s]
    if len(set(columns)) < len(columns):
        raise ValueError(f"horizons {list(horizons_s)} share a forecast of the belief's {list(HORIZONS_S)}")
    routes = {}
    for r in route_cfgs:
        choices = select_mod.choose(points, fold_cfgs["book"], r, columns, horizons_s)
        routes[r] = {"mean_gain": select_mod.mean_gain(choices),
                     "horizons": {f"{h:g}s": c._asdict() for h, c in zip(horizons_s, choices, strict=True)},
                     "heldout": {f"{h:g}s": {"n": c.n, "log_score": c.log_score, "brier": c.brier}
                                 for h, c in zip(horizons_s, choices, strict=True)}}
    order = list(route_cfgs)
    chosen = max(order, key=lambda r: (round(routes[r]["mean_gain"], 12), -order.index(r)))
    final = select_mod.apply(route_cfgs[chosen], cfg_derive, routes[chosen]["horizons"].values(), columns)
    per_h = "; ".join(f"{h}: {c['features']} book x {c['book_scale']:g}, drift belief x {c['belief_scale']:g}"
                      for h, c in routes[chosen]["horizons"].items())
    others = "; ".join(f"{r}: {routes[r]['mean_gain']:+.4f}" for r in order if r != chosen)
    why = (f"{chosen}: its held-out mean log score over a coin flip was {routes[chosen]['mean_gain']:+.4f} "
           f"(the other routes' drift beliefs: {others}); per horizon {per_h}")
    flat = [h for h, c in routes[chosen]["horizons"].items() if c["book_scale"] == 0 and c["belief_scale"] == 0]
    if flat:
        why += (f"; at {', '.join(flat)} no evidence generalised to the held-out blocks, so the forecast there "
                "is 1/2 until a longer recording shows otherwise")
    # the imbalance maker's alpha (a peer quoter, `online.quoter.PRESETS`), fitted on the same sessions
    alpha = peer_mod.imbalance_skew_bps(arrays, float(final.book.fair_value_horizon_s))
    final = replace(final, quoter={"imbalance_skew_bps": alpha})
    return {"routes": routes, "chosen": chosen, "why": why, "imbalance_skew_bps": alpha}, final


def belief_trace(cfg: Config, arrays, every_s: float = 1.0, horizons_s=HORIZONS_S) -> list[dict]:
    """Per session: each horizon's forecast on a regular grid of `every_s` (what the report plots) with
    its sd over the session, its expected calibration error against the sign of the mid's move and the
    ECE an exactly calibrated forecast would show on the same points by chance (`score.score_trajectory`
    on its scoring grid), and which horizon is the quoter's p_down (`headline`)."""
    out = []
    for a in arrays:
        p = replay_forecasts(cfg, a, horizons_s)
        scored = score_trajectory(a.t_s, a.mid, a.valid, p, horizons_s)
        grid = np.arange(a.t_s[0], a.t_s[-1], every_s)
        rows = np.searchsorted(a.t_s, grid, side="right") - 1
        trace = {"t_s": grid.tolist(), "headline": f"{HORIZONS_S[horizon_column(cfg.book.fair_value_horizon_s)]:g}s",
                 **{name: {k: v[key] for k, v in scored.items()}
                    for name, key in (("sd", "sd_p_down"), ("ece", "ece"), ("ece_by_chance", "ece_by_chance"))}}
        for h in horizons_s:
            trace[f"p_down_{h:g}s"] = p[h][rows].tolist()
        out.append(trace)
    return out


def route_configs(derived_cfg: Config, tuned_cfg: Config, names) -> dict[str, Config]:
    """The routes selection compares, in the order that breaks a tie: the tuned weights (first:
    they were chosen by the score that selection uses), the derived config (its forecast is the book
    model's, when that was fitted: `derive.book_config`) and, when the regime model was fitted, its
    own verdict (`derive.regime_verdict_config`, every horizon reading it alone). Selection takes
    each route's drift belief and pools it with the derived book forecast (`calibration.select`)."""
    routes = {"tune": tuned_cfg, "derive": derived_cfg}
    if "regime" in names:
        routes["regime"] = replace(derive_mod.regime_verdict_config(derived_cfg),
                                   book=config_to_dict(default_config())["book"])
    return routes


def _git_commit() -> str:
    try:
        root = Path(__file__).resolve().parents[2]
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
    """Prints '[k/6] stage ...' with the time since the start, and keeps each finished stage's
    duration (`seconds`: {stage: s}, the stage named by the word before its colon) for the report;
    the fits and the tuner draw their own progress."""

    def __init__(self, quiet: bool):
        self.quiet, self.k, self.t0 = quiet, 0, time.perf_counter()
        self.seconds: dict[str, float] = {}
        self._current: tuple[str, float] | None = None

    def __call__(self, name: str):
        now = time.perf_counter()
        if self._current is not None:
            self.seconds[self._current[0]] = round(now - self._current[1], 3)
        self._current = (name.split(":")[0], now)
        self.k += 1
        if not self.quiet:
            print(f"[{self.k}/6] {name} (t+{now - self.t0:.0f} s)", flush=True)


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


def _fits_and_derive(sessions, arrays, names, fit_dir, settings: FitSettings, progress, base,
                     checks: bool = True, bins: dict | None = None, max_khat: float = Gate.max_khat):
    """Fit, derive, and the derived config: (fit report, derived list, config, the same parameters
    derived from the models' priors - `derive.prior_fits` - or None without `checks`).
    `arrays`: the sessions' `to_arrays`, for what is derived from the mid returns; `checks`: as in
    `models.workflow.fit_session` (off for the cross-validation's refits, which need neither);
    `bins`: each model's bin width (None: `fit_session` chooses; the report's "bin_s" says which)."""
    report = fit_session(sessions, names, fit_dir, settings, progress=progress, checks=checks, bin_s=bins,
                         max_khat=max_khat)
    seed = settings.seed
    bins = {n: r["bin_s"] for n, r in report.items()}
    fits = {n: load_fit(Path(fit_dir) / f"{n}.nc") for n in names}
    book_fit = fits.pop("book", None)
    from_tape = bool(sum(s.counts()["own_fill"] for s in sessions) == 0)
    data = {"regime": model_data("regime", sessions, bins["regime"])[1]} if "regime" in names else {}
    derived = derive_mod.derive(fits, data, from_tape, seed=seed)
    prior = (derive_mod.derive(derive_mod.prior_fits(fits, sessions, seed=seed, bins=bins), data, from_tape, seed=seed)
             if checks else None)
    noise = derive_mod.return_noise(arrays, seed=seed)
    derived += [noise] if noise is not None else []
    cfg = derive_mod.derived_config(base, derived)
    if book_fit is not None:
        cfg = derive_mod.book_config(cfg, book_fit, arrays)
    return report, derived, cfg, prior


FIT = FitSettings(method="svi")
"""How calibration fits by default: SVI, whose guides the gate judges by their Pareto k-hat. `--method
auto` refits by NUTS each model whose guide fails it (`models.workflow.fit_model`), at the cost of
a NUTS fit per such model, and its chains face the gate's r_hat, ESS, divergence and BFMI rules;
`--method nuts` fits every model so."""


def calibrate(sessions, out_dir, settings: FitSettings = FIT, folds: int = 2, force: bool = False,
              gate: Gate | None = None, base: Config | None = None, horizons_s=HORIZONS_S, test_sessions=(),
              models=MODEL_NAMES, quiet: bool = False, export: bool = True) -> dict:
    """Run the six stages (module docstring) and write the outputs into `out_dir`. Returns the
    calibration report (what calibration.json holds; the exported Config under "final_config" when
    not `export`, which stops after validation - how the simulation check runs it). Raises
    CalibrationRefused when the gate fails and not `force` (calibration.json is still written,
    config.toml is not). `settings`: how the models are fitted (`models.fit.FitSettings`; the
    cross-validation's refits too, by SVI where they say "auto")."""
    jax.config.update("jax_enable_x64", True)
    if not 2 <= folds <= 10:
        raise ValueError(f"folds must be between 2 and 10 (blocks of each session), got {folds}")
    sessions, test_sessions, out = sessions_list(sessions), list(test_sessions), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stage, base, gate = _Stages(quiet), session_config(sessions[0], base or default_config()), gate or Gate()
    names = [m for m in models if _fittable(m, sessions)]
    report: dict = {"started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "method": settings.method,
                    "seed": settings.seed, "svi_restarts": settings.svi_restarts, "fit_settings": asdict(settings),
                    "folds": folds, "horizons_s": list(horizons_s),
                    "gate": asdict(gate), **_sessions_record(sessions, test_sessions)}

    stage("fit: the offline models, jointly on the sessions")
    arrays = [to_arrays(s) for s in sessions]
    fit_report, derived, cfg_derive, prior_derived = _fits_and_derive(sessions, arrays, names, out / "fits", settings,
                                                                      not quiet, base, max_khat=gate.max_khat)
    failures = gate_failures(fit_report, gate)
    report |= {"fits": {k: {kk: vv for kk, vv in v.items() if kk != "summary"} | {"summary": v["summary"]}
                        for k, v in fit_report.items()}, "gate_failures": failures}
    if failures and not force:
        _refuse(report, out, failures)

    stage("derive: online parameters from the posteriors (and from the priors, to say what the data taught)")
    report["derive"] = derive_mod.table(derived, prior_derived)

    stage("tune: evidence weights by the filter's predictive log score")
    with _progress("tune (L-BFGS iterations)", quiet) as progress:
        cfg_tune, tuned = tune(tune_base(base, cfg_derive), arrays, horizons_s, seed=settings.seed,
                              progress=progress)
    report["tune"] = {k: {"value": v, "q05": lo, "q95": hi} for k, v in tuned.values.items()
                      for lo, hi in [tuned.interval[k]]}
    report["tune_train_log_score"] = tuned.train_log_score

    stage(f"select: each route recomputed without each of {folds} blocks of each session, scored on it")
    fold_cfgs, blocks = _cross_validated(sessions, arrays, names, folds, settings, base, horizons_s,
                                         {n: r["bin_s"] for n, r in fit_report.items()})
    route_cfgs = route_configs(cfg_derive, cfg_tune, names)
    report["selection"], final = _select(route_cfgs, cfg_derive, fold_cfgs, blocks, arrays, horizons_s)

    stage("validate: scores in sample, held out, and on the test sessions")
    report |= _validation({"defaults": default_config(), **route_cfgs, "calibrated": final}, arrays, test_sessions,
                          report["selection"], horizons_s)
    report |= {"routes": routes_table(report["derive"], report["tune"]), "config": config_to_dict(final)}
    if not export:
        return {**report, "final_config": final, **{f"{r}_config": c for r, c in route_cfgs.items()},
                "derived": derived, "prior_derived": prior_derived}

    stage("export: config, schema, golden vectors, report")
    report |= {"stage_s": stage.seconds, "forced": bool(failures) and force,
               "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    return _export(report, final, sessions[0], out, failures if force else [])


def _refuse(report: dict, out: Path, failures: list[str]) -> None:
    """Write calibration.json and the report of a calibration the gate refused, and raise."""
    report["refused"] = True
    write_atomic(out / "calibration.json", report_json(report))
    from bayesmm.calibration.report import write_report

    write_report(out)
    raise CalibrationRefused("the fits failed the gate (pass --force to export anyway, marked as forced):\n  "
                             + "\n  ".join(failures))


def _sessions_record(sessions, test_sessions) -> dict:
    """What calibration.json records of the sessions it fitted and scored (provenance)."""
    return {"sessions": [{"instrument": s.meta.instrument, "venue": s.meta.venue, "events": len(s),
                          "span_s": s.span_s(), "sha256": _session_sha256(s), "counts": s.counts(),
                          "segments": s.segments(), "repairs": dict(s.meta.repairs),
                          "sources": [dict(x) for x in s.meta.sources]} for s in sessions],
            "test_sessions": [{"sha256": _session_sha256(s), "span_s": s.span_s(),
                               "sources": [dict(x) for x in s.meta.sources]} for s in test_sessions]}


def _validation(configs: dict, arrays, test_sessions, selection: dict, horizons_s) -> dict:
    """The validate stage's entries: the peer, every config's scores in sample, held out (the
    selection's) and on the test sessions, the routes that fail a coin flip in sample, and the
    export's forecasts over time on the test sessions."""
    peer = peer_mod.fit_peer(arrays, horizons_s)
    scores = {"training (all)": {**{k: _scores(c, arrays, horizons_s) for k, c in configs.items()},
                                 "peer": peer_mod.scores(peer, arrays, horizons_s)},
              "held-out blocks (routes recomputed without them)": {
                  "defaults": _scores(configs["defaults"], arrays, horizons_s),
                  **{r: v["heldout"] for r, v in selection["routes"].items()}}}
    out = {"peer": peer.summary(), "scores": scores,
           "failures_in_sample": [f"{route}: log score {v['log_score']:.4f} at {h} is below a coin flip's "
                                  f"{COIN_FLIP_LOG_SCORE:.4f} on its own training data (a model failure)"
                                  for route, by_h in scores["training (all)"].items()
                                  if route not in ("defaults",) for h, v in by_h.items()
                                  if v["n"] and v["log_score"] < COIN_FLIP_LOG_SCORE - TOLERANCE]}
    if test_sessions:
        test_arrays = [to_arrays(s) for s in test_sessions]
        scores["test sessions (out of sample)"] = {
            **{k: _scores(c, test_arrays, horizons_s, reliability_bins=10) for k, c in configs.items()},
            "peer": peer_mod.scores(peer, test_arrays, horizons_s, reliability_bins=10)}
        out["belief_on_test"] = belief_trace(configs["calibrated"], test_arrays)
    return out


def _export(report: dict, final: Config, session, out: Path, forced_reasons: list[str]) -> dict:
    """Write config.schema.json, config.toml (with provenance), golden.parquet, calibration.json and
    the report into `out`; returns the report with the golden vectors' summary."""
    write_atomic(out / "config.schema.json", json.dumps(config_schema(), indent=2))
    write_config(final, out / "config.toml", provenance(report, forced_reasons))
    table = golden.build(final, session)
    golden.write(table, out / "golden.parquet")
    report["golden"] = {"rows": table.num_rows, "streams": golden.read(out / "golden.parquet")[1]["streams"],
                        "config_sha256": golden.config_hash(final)}
    write_atomic(out / "calibration.json", report_json(report))
    from bayesmm.calibration.report import write_report

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
        "route": sel["chosen"], "why": sel["why"],
        "per_horizon": {h: {k: c[k] for k in ("features", "book_scale", "belief_scale")}
                        for h, c in sel["routes"][sel["chosen"]]["horizons"].items()},
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
