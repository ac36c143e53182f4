"""`bayesmm fit`: the offline models on a session, with diagnostics and PPC plots beside each fit."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def cmd_fit(args) -> int:
    import jax

    jax.config.update("jax_enable_x64", True)
    from bayesmm.events import read_session
    from bayesmm.models.workflow import MODEL_NAMES, fit_session

    names = list(MODEL_NAMES) if args.model == "all" else [args.model]
    sessions = [read_session(p) for p in args.sessions]
    if args.compare:
        from bayesmm.models.workflow import compare_variants

        result = compare_variants(sessions, names, fit_settings(args), bin_s=args.bin_s, fills=args.fills,
                                  progress=not args.quiet)
        for name, r in result.items():
            print(f"{name}: PSIS-LOO comparison of its likelihood variants (best first)")
            print(f"    {'variant':<10} {'elpd_loo':>10} {'p_loo':>8} {'elpd_diff':>10} {'dse':>8} {'max k':>6}")
            for v, row in r["table"].items():
                print(f"    {v:<10} {row['elpd_loo']:>10.1f} {row['p_loo']:>8.1f} {row['elpd_diff']:>10.1f} "
                      f"{row['dse']:>8.1f} {r['max_pareto_k'][v]:>6.2f}")
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "compare.json").write_text(json.dumps(result, indent=2))
        print(f"wrote {args.out}/compare.json")
        return 0
    report = fit_session(sessions, names, args.out, fit_settings(args), bin_s=args.bin_s, fills=args.fills,
                         progress=not args.quiet,
                         variants={"volatility": args.returns, "regime": args.returns} if args.returns else None)
    for name, r in report.items():
        d = r["diagnostics"]
        status = "ok" if not r["failures"] else "FAILED: " + "; ".join(r["failures"])
        if d["method"] == "nuts":
            print(f"{name:<11} r_hat {d['max_rhat']:.3f}  ESS bulk {d['min_ess_bulk']:.0f} tail "
                  f"{d['min_ess_tail']:.0f}  divergences {d['divergences']}  BFMI {d['min_bfmi']:.2f}  -> {status}")
        else:
            khat = d.get("psis_khat")
            print(f"{name:<11} SVI  Pareto k-hat " + ("-" if khat is None else f"{khat:.2f}") + f"  -> {status}")
        print(f"    {'parameter':<32} {'prior median [90%]':>30}   {'posterior median [90%]':>30}   learnt")
        for k, v in r["summary"].items():
            pr = r["prior"].get(k)
            prior = f"{pr['prior_median']:.4g} [{pr['prior_q05']:.4g}, {pr['prior_q95']:.4g}]" if pr else "-"
            learnt = f"{pr['contraction']:4.0%}" if pr else "  -"
            post = f"{v['median']:.4g} [{v['q05']:.4g}, {v['q95']:.4g}]"
            print(f"    {k:<32} {prior:>30}   {post:>30}   {learnt}")
        for k, pr in r["prior"].items():
            if k not in r["summary"]:
                import numpy as np

                shape = "x".join(map(str, np.shape(pr["prior_median"])))
                print(f"    {k:<32} ({shape} values: learnt {pr['contraction']:4.0%} of the prior's variance, mean "
                      f"over its elements, on the log/logit scale)")
        print("    PPC p-values: " + ", ".join(f"{k} {v['ppp']:.2f}" for k, v in r["ppc"].items() if v["gated"]))
        for k, v in r["ppc"].items():
            if not v["gated"]:
                print(f"    PPC {k} {v['ppp']:.2f}, not this model's to reproduce: {v['why']}")
    print(f"wrote {args.out}/<model>.nc, <model>_ppc.png, summary.json")
    return 0


def add_fit_settings(q, method: str) -> None:
    """The options of `models.fit.FitSettings` (of `fit` and `calibrate`), `method` the default one."""
    from bayesmm.models.fit import FitSettings

    d = FitSettings(method=method)

    def at_least_one(text: str) -> int:
        n = int(text)
        if n < 1:
            raise argparse.ArgumentTypeError(f"must be >= 1, got {n}")
        return n

    q.add_argument("--method", choices=["nuts", "svi", "auto"], default=method,
                   help="the inference method; auto: SVI, and NUTS for each model whose SVI guide fails the gate's "
                        "VI diagnostic (its Pareto k-hat)")
    q.add_argument("--draws", type=int, default=d.draws, help="posterior draws per chain (SVI: draws from the guide)")
    q.add_argument("--warmup", type=int, default=d.warmup, help="NUTS warmup iterations per chain")
    q.add_argument("--chains", type=int, default=d.chains, help="NUTS chains")
    q.add_argument("--seed", type=int, default=d.seed, help="random seed")
    q.add_argument("--svi-restarts", type=at_least_one, default=d.svi_restarts, metavar="N",
                   help=f"SVI optimisations per model from different starts, the lowest final loss kept (default "
                        f"{d.svi_restarts}; the regime HMM's ELBO has optima in which its states swap roles)")
    q.add_argument("--warm-start", action="store_true",
                   help="NUTS: start the chains from an SVI fit (its draws, sds tripled) with its variances as the "
                        "mass matrix: warmup ~4x cheaper for the regime HMM, but the chains no longer test for modes "
                        "far from the SVI optimum (auto's NUTS fits always start so)")


def fit_settings(args):
    """The `models.fit.FitSettings` of parsed `add_fit_settings` options."""
    from bayesmm.models.fit import FitSettings

    return FitSettings(method=args.method, draws=args.draws, warmup=args.warmup, chains=args.chains, seed=args.seed,
                       svi_restarts=args.svi_restarts, warm_start=args.warm_start)


def add_parser(sub) -> None:
    q = sub.add_parser("fit", help="fit the offline NumPyro models to a session")
    q.add_argument("sessions", nargs="+", help="session Parquet files of one instrument (several: fitted jointly, "
                   "shared parameters, separate latent paths)")
    q.add_argument("--model", choices=["drift", "volatility", "toxicity", "regime", "book", "all"], default="all",
                   help="the offline model to fit")
    add_fit_settings(q, "nuts")
    q.add_argument("--bin-s", type=float, default=None,
                   help="bin width, s (default: 1, and the regime model refitted at 10 when its paths fail the "
                        "regime-duration check: models.workflow.COARSER_BIN_S)")
    q.add_argument("--fills", choices=["auto", "own", "tape"], default="auto",
                   help="own fills, or the public tape as the fills of a touch quote (auto: own if any)")
    q.add_argument("--compare", action="store_true", help="fit each likelihood variant (Gaussian / Student-t "
                   "returns) and print their PSIS-LOO comparison instead of the usual report")
    q.add_argument("--returns", choices=["student", "gaussian"], help="the returns' law for the volatility and regime "
                   "models (default: student, chosen by --compare on the bundled sessions)")
    q.add_argument("--quiet", action="store_true", help="no progress bars")
    q.add_argument("--out", default="fits", metavar="DIR", help="output directory: <model>.nc, PPC plots, summary.json")
    q.set_defaults(func=cmd_fit)
