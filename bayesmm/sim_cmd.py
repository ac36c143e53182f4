"""`bayesmm simulate` and `bayesmm backtest`: closed-loop runs on a scenario (many seeds) or on a
recorded session (queue model on the real tape), their metrics and plots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

QUOTER_CHOICES = ["bayesian", "current_system", "glft", "glft_micro", "imbalance"]  # online.quoter.PRESETS
_SHOWN = ("max_abs_position", "pnl", "reduce_only_fraction", "quoted_fraction", "two_sided_fraction", "fills",
          "fills_bid", "fills_ask", "as_per_fill_bps",
          "fill_sharpe", "equity_sharpe", "sharpe_gap", "time_to_halve_s", "bearish_fills_before_reduce_only")


def plot_run(out, out_path, title: str, true_mu=None) -> Path:
    """4 panels over time: mid with our live touch quotes and fills; position; P&L; p_down (with the
    true sign of the drift shaded when known)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bayesmm.events.plot import save_figure

    o = {k: np.asarray(v) for k, v in out._asdict().items()}
    t, mid = o["t_s"], o["mid_px"]
    fig, ax = plt.subplots(4, 1, figsize=(11, 10), sharex=True, height_ratios=[3, 1.2, 1.2, 1.2])
    ax[0].plot(t, mid, color="k", lw=0.8, label="mid")
    ax[0].plot(t, mid * (1 - o["bid_depth_bps"] / 1e4), color="tab:green", lw=0.6, alpha=0.8, label="our bid")
    ax[0].plot(t, mid * (1 + o["ask_depth_bps"] / 1e4), color="tab:red", lw=0.6, alpha=0.8, label="our ask")
    b, a = o["bid_fill_qty"] > 0, o["ask_fill_qty"] > 0
    ax[0].scatter(t[b], o["bid_fill_value"][b] / o["bid_fill_qty"][b], marker="^", color="tab:green", s=18,
                  label="we bought", zorder=3)
    ax[0].scatter(t[a], o["ask_fill_value"][a] / o["ask_fill_qty"][a], marker="v", color="tab:red", s=18,
                  label="we sold", zorder=3)
    ax[0].legend(fontsize=7, loc="best")
    ax[0].set_title(title)
    ax[1].plot(t, o["position"], color="tab:blue")
    ro = o["mode"] != 0
    ax[1].fill_between(t, o["position"].min(), o["position"].max(), where=ro, color="orange", alpha=0.2,
                       label="reduce-only")
    ax[1].axhline(0, color="grey", lw=0.5)
    ax[1].set_ylabel("position")
    ax[1].legend(fontsize=7, loc="best")
    ax[2].plot(t, o["equity"], color="tab:purple")
    ax[2].axhline(0, color="grey", lw=0.5)
    ax[2].set_ylabel("P&L")
    ax[3].plot(t, o["p_down"], color="tab:red", lw=0.8, label="p_down")
    if true_mu is not None:
        ax[3].fill_between(t, 0, 1, where=np.asarray(true_mu) < 0, color="grey", alpha=0.2, label="true drift < 0")
    ax[3].set_ylim(-0.02, 1.02)
    ax[3].set_ylabel("p_down")
    ax[3].set_xlabel("time (s)")
    ax[3].legend(fontsize=7, loc="best")
    return save_figure(fig, out_path)


def _print_table(summary: dict) -> None:
    print(f"  {'metric':<34} {'median':>10} {'p10':>10} {'p90':>10}   n")
    for k in _SHOWN:
        v = summary[k]
        if v["median"] is None:
            print(f"  {k:<34} {'-':>10} {'-':>10} {'-':>10}   0")
        else:
            print(f"  {k:<34} {v['median']:>10.4g} {v['p10']:>10.4g} {v['p90']:>10.4g}   {v['n']}")


def cmd_simulate(args) -> int:
    import jax

    import bayesmm.sim  # noqa: F401
    from bayesmm.calibration.config import load_config
    from bayesmm.sim.batch import percentiles, run_scenario
    from bayesmm.sim.markout import fills_table, format_markout, summarize_markout
    from bayesmm.sim.scenarios import make_scenario

    if args.report:
        return _quality_report(args)
    if args.scenario is None:
        raise ValueError("name a scenario (or --report for the quality table of every scenario)")
    quoters = list(dict.fromkeys(args.quoter))
    if args.plot and len(quoters) > 1 and "{quoter}" not in args.plot:
        raise ValueError(f"--plot {args.plot}: with several quoters the path needs '{{quoter}}', "
                         "e.g. out/s_{quoter}.png")
    scenario = make_scenario(args.scenario)
    base = load_config(args.config) if args.config else None
    args.seeds = 100 if args.seeds is None else args.seeds
    args.first_seed = 0 if args.first_seed is None else args.first_seed
    summaries, markout = {}, {}
    for quoter in quoters:  # one process: the quoters share the compiled loop (their configs differ in values only)
        paths, outs, metrics = run_scenario(scenario, quoter, seeds=args.seeds, first_seed=args.first_seed,
                                            base=base, matched=base is None)
        summary = summaries[quoter] = percentiles(metrics)
        markout[quoter] = summarize_markout(fills_table(outs, quoter), scenario.duration_s,
                                            float(np.mean(metrics["pnl"])), clustered=True)
        if not args.json:
            print(f"{args.scenario} / {quoter}: {args.seeds} seeds x {scenario.duration_s:g} s")
            _print_table(summary)
        if args.plot:
            first = jax.tree_util.tree_map(lambda x: x[0], outs)
            p = plot_run(first, args.plot.replace("{quoter}", quoter),
                         f"{args.scenario}, {quoter} quoter (seed {args.first_seed})", true_mu=paths.mu_bps_s[0])
            if not args.json:
                print(f"wrote {p}")
    if args.json:
        plain = {q: {**{k: {kk: vv for kk, vv in v.items() if kk != "n"} for k, v in sm.items()},
                     "markout": markout[q]} for q, sm in summaries.items()}
        print(json.dumps(plain[quoters[0]] if len(quoters) == 1 else plain))
    else:
        print(f"markout per fill, {args.seeds} seeds pooled (intervals resample seeds; P&L: the mean over seeds):")
        print(format_markout(markout))
    return 0


def _quality_report(args) -> int:
    from bayesmm.calibration.config import load_config
    from bayesmm.sim.quality import format_table, quality_table
    from bayesmm.sim.scenarios import SCENARIOS

    rows = quality_table([args.scenario] if args.scenario else SCENARIOS,
                         load_config(args.config) if args.config else None,
                         seeds=32 if args.seeds is None else args.seeds,
                         first_seed=1000 if args.first_seed is None else args.first_seed)
    print(json.dumps(rows) if args.json else format_table(rows))
    return 0


def backtest_config(session, quoter: str, config_path=None):
    """The configuration a backtest runs (`calibration.venue.bot_config`): the file's (`--config`)
    or the spec's defaults on the session's instrument, with the quoter preset applied."""
    from bayesmm.calibration.config import load_config
    from bayesmm.calibration.venue import bot_config

    return bot_config(session, quoter, load_config(config_path) if config_path else None)


def cmd_backtest(args) -> int:
    from bayesmm.calibration.config import load_config
    from bayesmm.events import read_session
    from bayesmm.sim.backtest import backtest_quoters, fills_meta
    from bayesmm.sim.markout import format_markout, write_fills

    session = read_session(args.session)
    quoters = list(dict.fromkeys(args.quoter))
    if args.plot and len(quoters) > 1 and "{quoter}" not in args.plot:
        raise ValueError(f"--plot {args.plot}: with several quoters the path needs '{{quoter}}', "
                         "e.g. out/backtest_{quoter}.png")
    runs = backtest_quoters(session, quoters, load_config(args.config) if args.config else None)
    for quoter, r in runs.items():
        if not args.json:
            _print_backtest(session, quoter, r["out"], r["metrics"], r["report"])
        if args.plot:
            p = plot_run(r["out"], args.plot.replace("{quoter}", quoter),
                         f"backtest on {session.meta.venue} {session.meta.instrument}, {quoter}")
            if not args.json:
                print(f"wrote {p}")
    if args.fills:
        write_fills(args.fills, [r["fills"] for r in runs.values()], fills_meta(session, runs))
        if not args.json:
            print(f"wrote {args.fills} ({sum(len(r['fills']['t_s']) for r in runs.values()):,} fills)")
    if args.json:  # strict JSON: an undefined metric is null, and "undefined" says why
        from bayesmm.sim.metrics import undefined_reasons

        plain = {}
        for q, r in runs.items():
            undefined = undefined_reasons(r["metrics"])
            plain[q] = {**{k: (None if k in undefined else v) for k, v in r["metrics"].items()},
                        "undefined": undefined, "markout": r["markout"]}
        print(json.dumps(plain[quoters[0]] if len(quoters) == 1 else plain))
    else:
        unit = "base asset" if session.meta.inverse else "quote currency"
        print(f"markout per fill on {session.meta.venue} {session.meta.instrument} (P&L in the {unit}; "
              "one fill = one step's fills on one side):")
        print(format_markout({q: r["markout"] for q, r in runs.items()}))
    return 0


def _print_backtest(session, quoter: str, out, metrics: dict, report: dict) -> None:
    """The human-readable metrics of one backtest run, with a warning when it made no fills."""
    from bayesmm.sim.metrics import undefined_reasons

    undefined = undefined_reasons(metrics)
    print(f"{session.meta.venue} {session.meta.instrument} / {quoter}: {report['steps']:,} steps of 0.1 s, "
          f"{report['trades']:,} prints, all matched" + (f" ({report['volume_moved']:.6g} of the volume of sweeps "
          "through more than MAX_TRADES / 2 prices in a step moved to a nearby less extreme price)"
                                                          if report["volume_moved"] else ""))
    if metrics["unfed_print_events"]:
        from bayesmm.sim.run import MAX_PRINT_EVENTS

        print(f"  {metrics['unfed_print_events']:,.0f} prints matched but not read by the belief (beyond "
              f"{MAX_PRINT_EVENTS} per aggressor side in a step; `bayesmm replay` reads them all)")
    for k in _SHOWN:
        value = f"{'undefined':>12}  ({undefined[k]})" if k in undefined else f"{metrics[k]:>12.5g}"
        print(f"  {k:<34} {value}")
    if metrics["fills"] == 0:
        from bayesmm.events import to_arrays

        a = to_arrays(session)
        spread = float(np.median(a.spread_bps[a.valid > 0]))
        depth = float(np.nanmedian(np.asarray(out.bid_depth_bps)))
        print(f"  warning: the {quoter} quoter made no fills: its bid sat a median {depth:.2f} bps from the "
              f"mid, where the book's half-spread is a median {spread / 2:.2f} bps (quotes too wide for this "
              f"instrument? see `bayesmm quote SESSION --at ...`)")


def add_parsers(sub) -> None:
    from bayesmm.sim.scenarios import SCENARIOS

    q = sub.add_parser("simulate", help="closed-loop runs of a quoter on a synthetic scenario")
    q.add_argument("scenario", nargs="?", choices=SCENARIOS, help="the scenario (required unless --report)")
    q.add_argument("--quoter", choices=QUOTER_CHOICES, nargs="+", default=["bayesian"],
                   help="one or more quoters, run on the same seeds (--json: one object per quoter when several; "
                        "--plot: a path with '{quoter}' in it)")
    q.add_argument("--seeds", type=int, help="seeds (default 100; 32 with --report)")
    q.add_argument("--first-seed", type=int, help="first seed (default 0; 1000, held out, with --report)")
    q.add_argument("--config", help="the bot's configuration (config.toml); default: the belief the scenario's "
                   "truth implies (bayesmm/sim/truth.py), on the scenario's venue")
    q.add_argument("--json", action="store_true", help="print one JSON object: metric -> {median, p10, p90}")
    q.add_argument("--plot", help="PNG of the first seed: mid, quotes, fills, position, P&L, p_down")
    q.add_argument("--report", action="store_true", help="the filter-quality table instead (sim/quality.py): per "
                   "scenario (all, or the one named), Brier, ECE and regime accuracy of p_down against the hidden "
                   "drift "
                   "sign for the truth-implied, calibrated (--config), default, oracle and current-system beliefs, "
                   "on held-out seeds (--first-seed, default 1000; --seeds, default 32 with --report)")
    q.set_defaults(func=cmd_simulate)

    q = sub.add_parser("backtest", help="the closed loop on a recorded session (queue model on the real tape)")
    q.add_argument("session", help="a session file (Parquet, from `bayesmm ingest`) to trade against")
    q.add_argument("--quoter", choices=QUOTER_CHOICES, nargs="+", default=["bayesian"],
                   help="one or more quoter presets, each run on the same tape (--json: one object per quoter when "
                        "several; --plot: a path with '{quoter}' in it); the markout table compares them")
    q.add_argument("--config", help="configuration file (config.toml); default: the spec's values on the "
                   "session's instrument (grid, fee and sizes from the session)")
    q.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    q.add_argument("--plot", help="PNG of the run: mid, quotes, fills, position, P&L, p_down")
    q.add_argument("--fills", metavar="FILE.parquet", help="write every fill (quoter, time, side, price, size, "
                   "ladder level, the mid and fair value then, markouts at 1/5/30 s) to this Parquet file")
    q.set_defaults(func=cmd_backtest)
