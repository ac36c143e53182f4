"""`bayesmm calibrate`, `bayesmm check-config` and `bayesmm score`: sessions -> a validated config;
a config file checked against its schema and its golden vectors; a replay scored out of sample."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

from bayesmm.calibration.score import COIN_FLIP_LOG_SCORE, FLAT_SD, GRID_S, HORIZONS_S
from bayesmm.fit_cmd import add_fit_settings, fit_settings


def _print_scores(title: str, by_route: dict) -> None:
    horizons = list(next(iter(by_route.values())))
    print(f"  {title}: mean log score (coin flip {COIN_FLIP_LOG_SCORE:.4f}; higher is better) / Brier")
    print("    " + f"{'':<12}" + "".join(f"{h:>18}" for h in horizons))
    for route, sc in by_route.items():
        cells = "".join(f"{sc[h]['log_score']:>10.4f} / {sc[h]['brier']:.3f}" if sc[h]["n"] else f"{'-':>18}"
                        for h in horizons)
        print(f"    {route:<12}{cells}")
    if "peer" in by_route:
        print("    (peer: a plain logistic regression on the book's public features, fitted to the training sessions)")


def _svi_diag(d: dict) -> str:
    """An SVI fit's diagnostic as printed: its guide's Pareto k-hat, when recorded."""
    return f"SVI, Pareto k-hat {d['psis_khat']:.2f}" if d.get("psis_khat") is not None else "SVI"


def print_summary(report: dict) -> None:
    """The short printed summary of a calibration (every number is also in calibration.json)."""
    print("fits:")
    for name, r in report["fits"].items():
        d = r["diagnostics"]
        diag = (f"r_hat {d['max_rhat']:.3f}, ESS {d['min_ess_bulk']:.0f}/{d['min_ess_tail']:.0f}, "
                f"{d['divergences']} divergences" if d.get("method") == "nuts" else _svi_diag(d))
        ppc = ", ".join(f"{k} {v['ppp']:.2f}" + ("" if v.get("gated", True) else " (not gated)")
                        for k, v in r["ppc"].items())
        print(f"  {name:<11} {diag}; PPC p-values: {ppc}")
    if report["gate_failures"]:
        print(f"gate: {len(report['gate_failures'])} failure(s)" + (" (exported anyway: --force)"
                                                                    if report.get("forced") else ""))
        for f in report["gate_failures"]:
            print(f"  - {f}")
    print("parameters (derive: posterior median [90%], its prior's, and the share of the prior's spread the data "
          "removed; tune: optimum [90% block bootstrap]):")
    for key, row in report["routes"].items():
        d, t = row.get("derive"), row.get("tune")
        dtxt = f"{d['median']:.4g} [{d['q05']:.4g}, {d['q95']:.4g}]" if d else "-"
        ptxt = (f"prior {d['prior_median']:.4g} [{d['prior_q05']:.4g}, {d['prior_q95']:.4g}] learnt "
                + ("-" if d.get("learnt") is None else f"{d['learnt']:.0%}")) if d and "prior_median" in d else ""
        ttxt = f"{t['value']:.4g} [{t['q05']:.4g}, {t['q95']:.4g}]" if t else "-"
        flag = "   <- the routes disagree" if row.get("disagree") else ""
        print(f"  {key:<34} derive {dtxt:<30} {ptxt:<44} tune {ttxt}{flag}")
    sel = report["selection"]
    print(f"route: {sel['why']}")
    for split, by_route in report["scores"].items():
        _print_scores(split, by_route)
    for line in report.get("failures_in_sample", []):
        print(f"  MODEL FAILURE: {line}")
    for i, trace in enumerate(report.get("belief_on_test", [])):
        cells = ", ".join(f"{h}: sd {trace['sd'][h]:.3f}, ECE {trace['ece'][h]:.3f}" for h in trace["sd"])
        flat = [h for h, v in trace["sd"].items() if v < FLAT_SD]
        print(f"  the exported belief on test session {i + 1}: {cells}"
              + (f"  <- FLAT (sd below {FLAT_SD}) at {', '.join(flat)}" if flat else ""))


def cmd_calibrate(args) -> int:
    import jax

    jax.config.update("jax_enable_x64", True)
    from bayesmm.calibration.calibrate import CalibrationRefused, Gate, calibrate
    from bayesmm.calibration.config import load_config
    from bayesmm.events import read_session

    sessions = [read_session(p) for p in args.sessions]
    tests = [read_session(p) for p in args.holdout]
    gate = Gate(**{f.name: getattr(args, f.name) for f in fields(Gate)})  # (each field has its option)
    base = load_config(args.config) if args.config else None
    try:
        report = calibrate(sessions, args.out, fit_settings(args), folds=args.folds, force=args.force, gate=gate,
                           base=base, test_sessions=tests, models=tuple(args.models), quiet=args.quiet)
    except CalibrationRefused as exc:
        print(f"bayesmm calibrate: refused: {exc}\n  (the report is in {Path(args.out) / 'calibration.json'})")
        return 3
    print_summary(report)
    if args.validate_sim:
        from bayesmm.calibration.calibrate import report_json
        from bayesmm.calibration.simulation_check import validate_in_simulation
        from bayesmm.events.atomic import write_atomic

        print(f"simulation check: {args.validate_sim} recording(s) of each validation market, calibrated the same way")
        sim = validate_in_simulation(seeds=args.validate_sim, settings=fit_settings(args), quiet=args.quiet)
        print_simulation_check(sim)
        report["simulation_check"] = sim
        write_atomic(Path(args.out) / "calibration.json", report_json(report))
        from bayesmm.calibration.report import write_report

        write_report(args.out)
    print(f"wrote {args.out}/config.toml, config.schema.json, golden.parquet, calibration.json, report.html, fits/")
    return 0


def print_simulation_check(sim: dict) -> None:
    """Coverage of the derived intervals and the Brier scores for the hidden drift sign."""
    from bayesmm.calibration.coverage import coverage_summary, is_informed

    print(f"  derived 90% intervals covering the truth: {coverage_summary(sim)}")
    print(f"  {'market':<15}{'seed':>5}  {'covered':<48} Brier for the hidden sign: calibrated / truth-implied "
          f"(exported by the same rule) / defaults")
    for r in sim["runs"]:
        cov = " ".join(f"{k.split('.')[-1].split('_')[0]}:{'y' if v['covered'] else 'N'}"
                       + ("" if is_informed(v, sim["learnt_threshold"]) else "(prior)")
                       for k, v in r["coverage"].items())
        b = r["brier"]
        print(f"  {r['market']:<15}{r['seed']:>5}  {cov:<48} {b['calibrated']:.4f} / {b['truth']:.4f} "
              f"({b['truth_exported']:.4f} x {r['truth_shrink']:g}) / {b['defaults']:.4f}  ({r['route']} x "
              f"{r['shrink']:g})")
    m = sim["brier_mean"]
    print(f"  mean Brier: calibrated {m['calibrated']:.4f}, truth-implied {m['truth']:.4f} (ratio "
          f"{sim['brier_ratio_to_truth']:.3f}), truth-implied exported by the same rule {m['truth_exported']:.4f} "
          f"(ratio {sim['brier_ratio_to_truth_exported']:.3f})")


def cmd_check_config(args) -> int:
    import jax

    jax.config.update("jax_enable_x64", True)
    from bayesmm.calibration import golden
    from bayesmm.calibration.config import ConfigError, load_config, load_provenance

    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"bayesmm check-config: {exc}")
        return 1
    print(f"{args.config}: valid against the schema and the code's ranges")
    prov = load_provenance(args.config)
    if prov.get("forced"):
        print("  FORCED export: the fits failed the gate:")
        for r in prov.get("forced_reasons", []):
            print(f"    - {r}")
    gpath = Path(args.golden) if args.golden else Path(args.config).with_name("golden.parquet")
    if not gpath.exists():
        if args.golden:
            print(f"bayesmm check-config: {gpath}: no such golden file")
            return 1
        print(f"  no golden vectors beside it ({gpath}): nothing to re-run")
        return 0
    result = golden.check(cfg, gpath)
    if not result["config_matches"]:
        print(f"  note: {gpath} was made for another configuration (its config_sha256 differs)")
    if result["ok"]:
        print(f"  golden vectors: {result['streams']} streams, {result['values']:,} values, bit-identical")
        return 0
    m = result["mismatch"]
    print(f"  golden vectors: MISMATCH in stream {m['stream']!r}, event {m['event']}, field {m['field']}: "
          f"expected {m['expected']!r}, got {m['got']!r}")
    return 1


def cmd_score(args) -> int:
    import numpy as np
    import pyarrow.parquet as pq

    from bayesmm.calibration.score import score_trajectory, table_forecasts
    from bayesmm.events import read_session, to_arrays

    session = read_session(args.session)
    table = pq.read_table(args.beliefs)
    a = to_arrays(session)
    if table.num_rows != len(a.t_s) or not np.allclose(table.column("t_s").to_numpy(), a.t_s, atol=1e-6):
        raise ValueError(f"{args.beliefs} is not a replay of {args.session} (row count or times differ): "
                         f"replay this session with `bayesmm replay` first")
    filt = table_forecasts(table, args.horizons)
    rows = {"belief": score_trajectory(a.t_s, a.mid, a.valid, filt, args.horizons, args.every_s)}
    if args.train:
        from bayesmm.calibration.peer import fit_peer

        peer = fit_peer([to_arrays(read_session(p)) for p in args.train], args.horizons)
        rows["peer"] = score_trajectory(a.t_s, a.mid, a.valid, peer.forecasts(a), args.horizons, args.every_s)
    if args.json:
        print(json.dumps({who: {h: {k: (None if isinstance(v, float) and not np.isfinite(v) else v)
                                    for k, v in s.items()} for h, s in sc.items()} for who, sc in rows.items()}))
        return 0
    print(f"{args.beliefs} against {args.session}: the sign of the mid move over each horizon, every "
          f"{args.every_s:g} s, ties dropped" + (f"; the peer (a logistic regression on the book's public "
                                                f"features) fitted to {', '.join(args.train)}" if args.train else ""))
    print(f"  {'':<7} {'horizon':>8} {'points':>7} {'log score':>10} {'coin flip':>10} {'Brier':>7} {'ECE':>6} "
          f"{'by chance':>9} {'sd p':>6} {'share down':>11}")
    for who, sc in rows.items():
        for h, s in sc.items():
            print(f"  {who:<7} {h:>8} {s['n']:>7} {s['log_score']:>10.4f} {s['coin_flip_log_score']:>10.4f} "
                  f"{s['brier']:>7.4f} {s['ece']:>6.3f} {s['ece_by_chance']:>9.3f} {s['sd_p_down']:>6.3f} "
                  f"{s['share_down']:>11.3f}")
    print("  (by chance: the ECE an exactly calibrated forecast shows on the same points)")
    return 0


def cmd_pairs(args) -> int:
    import jax

    jax.config.update("jax_enable_x64", True)
    from bayesmm.calibration.pairs import run_pairs, summarise

    if not args.summary_only:
        run_pairs(args.data, args.out, fit_settings(args), quiet=args.quiet, force=args.force)
    summarise(args.out)
    print((Path(args.out) / "pairs.md").read_text())
    return 0


def cmd_report(args) -> int:
    from bayesmm.calibration.report import write_report

    print(f"wrote {write_report(args.dir)}")
    return 0


def _add_gate_options(q) -> None:
    """The gate's thresholds (`models.gate.Gate`), each with its default."""
    from bayesmm.models.gate import Gate

    g = Gate()
    q.add_argument("--max-rhat", type=float, default=g.max_rhat, help="gate: the largest r_hat a NUTS fit may have")
    q.add_argument("--min-ess", type=float, default=g.min_ess, help="gate: the smallest bulk and tail ESS")
    q.add_argument("--max-divergences", type=int, default=g.max_divergences, help="gate: divergent transitions allowed")
    q.add_argument("--min-bfmi", type=float, default=g.min_bfmi, help="gate: the smallest BFMI of a NUTS chain")
    q.add_argument("--max-khat", type=float, default=g.max_khat,
                   help="gate: the largest Pareto k-hat of an SVI guide's importance ratios (Yao et al. 2018: above "
                        "0.7 the approximation is unreliable)")
    q.add_argument("--ppc-low", type=float, default=g.ppc_low, help="gate: the lowest posterior predictive p-value")
    q.add_argument("--ppc-high", type=float, default=g.ppc_high, help="gate: the highest posterior predictive p-value")


def add_parsers(sub) -> None:
    from bayesmm.calibration.calibrate import FIT
    from bayesmm.models.workflow import MODEL_NAMES

    q = sub.add_parser("calibrate", help="recorded sessions -> a validated production config (fit, derive, tune, "
                                         "select, validate, export)")
    q.add_argument("sessions", nargs="+", help="session Parquet files of one instrument (fitted jointly)")
    q.add_argument("--out", required=True, metavar="DIR", help="output directory")
    q.add_argument("--holdout", nargs="*", default=[], metavar="SESSION",
                   help="held-out later sessions, scored out of sample (never used to fit)")
    q.add_argument("--models", nargs="+", choices=MODEL_NAMES, default=list(MODEL_NAMES),
                   help="offline models to fit (default: all four; the toxicity model only where fills have AS)")
    add_fit_settings(q, FIT.method)
    q.add_argument("--folds", type=int, default=2, help="contiguous blocks of each session for the cross-validated "
                   "choice of route and of each horizon's scales (default 2)")
    q.add_argument("--config", help="base configuration (quoter, orders, ...) to calibrate on top of")
    q.add_argument("--force", action="store_true", help="export even if the fits fail the gate (marked as forced)")
    _add_gate_options(q)
    q.add_argument("--validate-sim", type=int, default=0, metavar="N",
                   help="also calibrate N simulated recordings of each validation market and check the derived "
                        "intervals and the filter against the simulator's truth (~5 min each on 2 cores)")
    q.add_argument("--quiet", action="store_true", help="no progress bars or stage lines")
    q.set_defaults(func=cmd_calibrate)

    q = sub.add_parser("check-config", help="validate a config against its schema and re-run its golden vectors")
    q.add_argument("config", help="a config file (config.toml from `bayesmm calibrate` or `sweep --write-config`)")
    q.add_argument("--golden", help="golden vectors (default: golden.parquet beside the config)")
    q.set_defaults(func=cmd_check_config)

    q = sub.add_parser("pairs", help="calibrate on each bundled real pair's earlier session and score the later one, "
                                     "beside the peer: DIR/pairs.md and pairs.json")
    q.add_argument("--data", default="data", help="folder of the bundled recordings (default: data)")
    q.add_argument("--out", default="out/pairs", metavar="DIR", help="output directory, one calibration per pair")
    add_fit_settings(q, FIT.method)
    q.add_argument("--force", action="store_true", help="export each pair's config even if its fits fail the gate "
                   "(marked as forced; pairs.md says so)")
    q.add_argument("--summary-only", action="store_true", help="only rebuild the table from the folder's calibrations")
    q.add_argument("--quiet", action="store_true", help="no progress lines")
    q.set_defaults(func=cmd_pairs)

    q = sub.add_parser("report", help="write DIR/report.html: one self-contained page of a calibration's evidence")
    q.add_argument("dir", help="a calibration's output directory")
    q.set_defaults(func=cmd_report)

    q = sub.add_parser("score", help="score a replay's forecasts (each horizon's p_down) against the sign of the "
                                     "forward mid move, beside a logistic peer fitted to --train sessions")
    q.add_argument("session", help="the session the replay is of (Parquet, `bayesmm ingest`)")
    q.add_argument("beliefs", help="the replay of that session (`bayesmm replay ... --out`)")
    q.add_argument("--train", nargs="+", default=[], metavar="SESSION",
                   help="sessions to fit the peer to (the ones the config was calibrated on): prints it beside")
    q.add_argument("--horizons", type=float, nargs="+", default=list(HORIZONS_S), help="horizons, s")
    q.add_argument("--every-s", type=float, default=GRID_S, help="grid step of the scored points, s")
    q.add_argument("--json", action="store_true", help="print the scores as one JSON object")
    q.set_defaults(func=cmd_score)
