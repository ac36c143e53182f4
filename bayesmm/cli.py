"""The `bayesmm` command line: ingest recordings, inspect sessions, replay the online filter, quote,
simulate, backtest, fit, calibrate, check a config, score a replay, sweep the quoter's thresholds."""

from __future__ import annotations

import argparse
import sys

from bayesmm.events.errors import IngestError, SessionError


def _utc(t_ns: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(t_ns / 1e9, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _summary(session, report=None) -> str:
    m = session.meta
    lines = [f"{m.venue} {m.instrument}: {len(session):,} events over {session.span_s():.3f} s "
             f"(tick {m.tick_size:g}, fee {m.fee_bps:g} bps, AS horizon {m.as_horizon_s:g} s)"]
    lines += [f"  {k:<18} {v:>10,}" for k, v in session.counts().items()]
    segments = session.segments()
    if len(segments) > 1:
        lines.append(f"  {len(segments)} segments (gaps > {m.max_gap_s:g} s between them):")
        t0 = int(session.column("t_ns")[0])
        for i, (a, b) in enumerate(segments):
            when = _utc(t0 + int(a * 1e9))
            gap = f", then {segments[i + 1][0] - b:,.1f} s without a message" if i + 1 < len(segments) else ""
            lines.append(f"    {i + 1:>3}: {when} for {b - a:,.1f} s{gap}")
    repairs = report.summary() if report is not None else m.repairs
    if repairs:
        lines.append("  repairs / notes: " + ", ".join(f"{k}={v:,}" for k, v in repairs.items()))
    if report is not None and report.examples:
        lines.append("  skipped lines (first examples):")
        lines += [f"    {e}" for e in report.examples]
    return "\n".join(lines)


def cmd_ingest(args) -> int:
    from bayesmm.events import ingest, write_session

    session, report = ingest(args.files, venue=args.venue, fills=args.fills, cross_venue=args.cross_venue,
                             as_horizon_s=args.as_horizon_s, fee_bps=args.fee_bps, tick_size=args.tick_size,
                             lenient=args.lenient, progress=not args.quiet, max_gap_s=args.max_gap_s)
    write_session(session, args.out)
    print(_summary(session, report))
    if args.fills and session.counts()["own_fill"] == 0:
        print(f"  note: none of the fills in {args.fills} is for {session.meta.instrument} inside the recording's "
              "time span (the counts above say where they went)")
    if args.lenient and any(k.startswith("skipped:") for k in report.counts):
        print("  --lenient: the skipped lines above are NOT in the session.")
    print(f"wrote {args.out}")
    return 0


def cmd_inspect(args) -> int:
    from bayesmm.events import read_session

    session = read_session(args.session)
    print(_summary(session))
    for s in session.meta.sources:
        print(f"  source {s['role']:<12} {s['path']}  sha256 {s['sha256'][:16]}...")
    if args.plot:
        from bayesmm.events.plot import plot_session

        print(f"wrote {plot_session(session, args.plot)}")
    return 0


def cmd_replay(args) -> int:
    from bayesmm.calibration.config import load_config
    from bayesmm.calibration.replay import plot_beliefs, replay_session, write_beliefs
    from bayesmm.events import read_session
    from bayesmm.online.params import HORIZONS_S

    session = read_session(args.session)
    table = replay_session(session, load_config(args.config))
    write_beliefs(table, args.out)
    last = {c: table.column(c)[-1].as_py() for c in ("p_down", "mu_bps_s", "sigma_bps_sqrt_s", "toxicity")}
    ranges = ", ".join(f"{h:g} s [{col.min():.3f}, {col.max():.3f}]"
                       for h in HORIZONS_S for col in [table.column(f"p_down_{h:g}s").to_numpy()])
    print(f"replayed {table.num_rows:,} events: P(the mid falls) over {ranges}; at the end "
          + ", ".join(f"{k} {v:.4g}" for k, v in last.items()))
    print(f"wrote {args.out}")
    if args.plot:
        print(f"wrote {plot_beliefs(table, session, args.plot)}")
    return 0


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every argument's help with its default, unless the help already says it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
            return text
        return super()._get_help_string(action)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bayesmm")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bayesmm", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--version", action="version", version=f"bayesmm {_version()}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_SubParser)

    q = sub.add_parser("ingest", help="recordings (<ts_ns> <json> lines) -> session.parquet")
    q.add_argument("files", nargs="+", help="recordings of one venue and instrument (gzip or plain)")
    q.add_argument("--venue", choices=["binance", "hyperliquid"], help="detected from the first line if omitted")
    q.add_argument("--fills", help="Hyperliquid userFills JSON (our own fills) to merge in")
    q.add_argument("--cross-venue", help="a second venue's recording, merged as cv_tick events")
    q.add_argument("--as-horizon-s", type=float, default=5.0, help="adverse-selection horizon, s (default 5)")
    q.add_argument("--fee-bps", type=float, default=1.5, help="our maker fee, bps (default 1.5)")
    q.add_argument("--tick-size", type=float, help="price grid (inferred from the book if omitted)")
    q.add_argument("--lenient", action="store_true", help="skip and count bad lines instead of stopping")
    q.add_argument("--max-gap-s", type=float, default=60.0,
                   help="a silence longer than this cuts the session into segments (default 60 s)")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.add_argument("--out", required=True, metavar="FILE.parquet", help="output file: the session")
    q.set_defaults(func=cmd_ingest)

    q = sub.add_parser("inspect", help="summarise a session, optionally plot it")
    q.add_argument("session", help="a session file (Parquet, from `bayesmm ingest`)")
    q.add_argument("--plot", help="write a PNG of mid, spread and signed trade flow")
    q.set_defaults(func=cmd_inspect)

    q = sub.add_parser("replay", help="run the online belief over a session -> beliefs.parquet")
    q.add_argument("session", help="a session file (Parquet, from `bayesmm ingest`)")
    q.add_argument("--config", help="a configuration (config.toml from `bayesmm calibrate`, or .json); default: "
                   "the spec's values")
    q.add_argument("--out", required=True, metavar="FILE.parquet",
                   help="output file: one row per event (t_s, kind, p_down, ...)")
    q.add_argument("--plot", help="write a PNG of p_down, drift, sigma, toxicity and regimes over time")
    q.set_defaults(func=cmd_replay)

    from bayesmm.calibrate_cmd import add_parsers as add_calibrate
    from bayesmm.fit_cmd import add_parser as add_fit
    from bayesmm.quote_cmd import add_parser as add_quote
    from bayesmm.sim_cmd import add_parsers as add_sim
    from bayesmm.sweep_cmd import add_parser as add_sweep

    add_quote(sub)
    add_sim(sub)
    add_fit(sub)
    add_calibrate(sub)
    add_sweep(sub)
    return p


class _SubParser(argparse.ArgumentParser):
    """Subcommands show each argument's default in their help (`HelpFormatter`)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `bayesmm` console script."""
    from bayesmm import compilation_cache
    from bayesmm.calibration.sweep_backends import SweepError

    args = build_parser().parse_args(argv)
    compilation_cache.enable()
    try:
        return args.func(args)
    except (IngestError, SessionError, ValueError, SweepError) as err:
        print(f"bayesmm {args.command}: error: {err}", file=sys.stderr)
        return 2
    except FileExistsError as err:
        print(f"bayesmm {args.command}: error: {err.filename}: exists and is not a folder (--out names an output "
              "folder here: give a new or existing folder)", file=sys.stderr)
        return 2
    except OSError as err:  # a missing file, a folder where a file was expected, no permission
        print(f"bayesmm {args.command}: error: {err.filename or ''}: {err.strerror or err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
