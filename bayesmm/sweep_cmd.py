"""`bayesmm sweep`: spec section 8's parameter sweep over scenarios and recorded sessions
(`calibration.sweep`), locally or on Ray."""

from __future__ import annotations

from pathlib import Path


def _targets(names: list[str], base, args, seeds: int, first_seed: int) -> list:
    from bayesmm.calibration.sweep import scenario_target, session_target
    from bayesmm.sim.scenarios import SCENARIOS

    out = []
    for n in names:
        if n in SCENARIOS:
            out.append(scenario_target(n, base, args.quoter, matched=not args.keep_belief, seeds=seeds,
                                       first_seed=first_seed, duration_s=args.duration_s))
        elif Path(n).exists():
            out.append(session_target(n, base, args.quoter))
        else:
            raise ValueError(f"{n!r} is neither a scenario ({', '.join(SCENARIOS)}) nor a session file")
    return out


def cmd_sweep(args) -> int:
    from bayesmm.calibration.config import load_config, load_provenance
    from bayesmm.calibration.space import load_space
    from bayesmm.calibration.sweep import HOLDOUT_FIRST_SEED, held_out_seeds, sweep, write_outputs

    space = load_space(args.space)
    base = load_config(args.config) if args.config else None
    targets = _targets(args.targets, base, args, args.seeds, 0)
    holdout = None  # None: sweep() holds out the scenarios' seeds
    if args.holdout or args.holdout_seeds:  # held-out sessions (or scenarios), plus the scenarios on held-out seeds
        holdout = _targets(args.holdout or [], base, args, args.holdout_seeds or args.seeds, HOLDOUT_FIRST_SEED)
        holdout += held_out_seeds(targets, args.holdout_seeds)
    result = sweep(targets, space, search=args.search, sets=args.sets, batch=args.batch, seed=args.seed,
                   holdout=holdout, backend=args.backend, address=args.address, workers=args.workers,
                   progress=not args.quiet)
    paths = write_outputs(result, args.out, base, load_provenance(args.config) if args.config else None,
                          write_config=args.write_config)
    r, c = result.report, result.check
    print(f"{r['sets']} sets ({r['search']}, {r['backend']}) in {r['seconds']:.1f} s: {r['sets_per_s']:.2f} sets/s, "
          f"{r['set_steps_per_s']:,.0f} set-steps/s; {r['feasible_sets']} feasible, {r['invalid_sets']} invalid")
    if r["retried"]:
        print(f"  retried batches: {r['retried']}")
    if r.get("kept_base"):
        print(f"winner: none - {r['kept_base']}")
    else:
        print("winner: " + ", ".join(f"{k} = {v:.4g}" for k, v in r["winner"].items()))
    print(f"  {'':<10} {'score':>9} {'max|pos|':>9} {'P&L':>10} {'reduce-only':>11}  feasible")
    best = "best set" if r.get("kept_base") else "winner"
    for split in ("in_sample", "held_out"):
        for who in ("winner", "base"):
            if split in c:
                s = c[split][who]
                label = f"{split.replace('_', '-')} {best if who == 'winner' else who}"
                print(f"  {label:<20} {s['score']:>9.3f} {s['max_abs_position']:>9.3f} {s['pnl']:>10.3f} "
                      f"{s['reduce_only_fraction']:>11.3f}  {s['feasible']}")
    if c.get("flag"):
        print(f"  FLAG: {c['flag']}")
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def add_parser(sub) -> None:
    q = sub.add_parser("sweep", help="spec section 8: choose quoter thresholds by closed-loop sweeps over scenarios "
                       "and sessions (grid, random, Optuna TPE; local or Ray)")
    q.add_argument("targets", nargs="+", help="scenario names (hype_selloff, quiet, whipsaw, vol_spike) and/or "
                   "session Parquet files")
    q.add_argument("--space", required=True, help="the parameter space and objective (TOML; see "
                   "examples/sweep-selloff.toml)")
    q.add_argument("--config", help="the base configuration (default: the spec's values)")
    q.add_argument("--out", required=True, metavar="DIR",
                   help="output directory: sets.parquet, frontier.png, sweep.json (config.toml with --write-config)")
    q.add_argument("--search", choices=["grid", "random", "optuna"], default="optuna",
                   help="grid: every combination; random; optuna: TPE Bayesian optimisation (default)")
    q.add_argument("--sets", type=int, default=64, help="parameter sets to try (random, optuna; default 64)")
    q.add_argument("--batch", type=int, default=16, help="sets per vmapped batch (default 16)")
    q.add_argument("--seeds", type=int, default=16, help="seeds per scenario (default 16)")
    q.add_argument("--holdout-seeds", type=int, help="held-out seeds per scenario for the overfitting check "
                   "(default: as many as --seeds)")
    q.add_argument("--holdout", nargs="+", metavar="TARGET",
                   help="held-out sessions (or scenarios) for the overfitting check")
    q.add_argument("--duration-s", type=float, help="shorten each scenario to this many seconds")
    q.add_argument("--quoter", default="bayesian", choices=["bayesian", "current_system", "glft"],
                   help="the quoter preset swept")
    q.add_argument("--keep-belief", action="store_true", help="in scenarios, run the config's belief instead of "
                   "the one matched to the scenario's truth")
    q.add_argument("--seed", type=int, default=0, help="seed of the random or Optuna search (default 0)")
    q.add_argument("--backend", choices=["local", "ray"], default="local",
                   help="local (this process) or ray (the optional extra; shards batches over a cluster)")
    q.add_argument("--address", help="Ray cluster address (default: start a local instance)")
    q.add_argument("--workers", type=int, help="CPUs of a local Ray instance (default: all)")
    q.add_argument("--write-config", action="store_true", help="write the winner onto the base config, "
                   "with the sweep in its provenance")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.set_defaults(func=cmd_sweep)
