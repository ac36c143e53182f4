"""`bayesmm quote`: the full stage 2-6 breakdown for one belief state, given on the command line
or taken from a point of a replayed session."""

from __future__ import annotations

import datetime as dt

import jax
import jax.numpy as jnp
import numpy as np

from bayesmm.online.belief import Beliefs, snapshot
from bayesmm.online.params import HORIZONS_S
from bayesmm.online.quoter import PRESETS, Market, QuoterState, preset, quote


def parse_at(at: str, t0_ns: int) -> float:
    """Seconds since the session start from 'HH:MM:SS[.fff]' (UTC time of day on the session's first
    day, rolling to the next day if earlier than the start) or a plain number of seconds."""
    try:
        return float(at)
    except ValueError:
        pass
    try:
        tod = dt.time.fromisoformat(at)
    except ValueError:
        raise ValueError(f"--at {at!r}: expected seconds since start or HH:MM:SS") from None
    start = dt.datetime.fromtimestamp(t0_ns / 1e9, tz=dt.UTC)
    target = dt.datetime.combine(start.date(), tod, tzinfo=dt.UTC)
    if target < start:
        target += dt.timedelta(days=1)
    return (target - start).total_seconds()


def state_at(session_path: str, at: str, cfg=None):
    """(Beliefs, Market, t_s) at the last event at or before `at` in a replay of the session."""
    from bayesmm.calibration.replay import replay_session
    from bayesmm.events import read_session, to_arrays

    session = read_session(session_path)
    table = replay_session(session, cfg)
    t_s = table.column("t_s").to_numpy()
    when = parse_at(at, int(session.column("t_ns")[0]))
    if not 0 <= when <= t_s[-1]:
        raise ValueError(f"--at {at!r} is {when:.3f} s from the start, outside the session (0 to {t_s[-1]:.3f} s)")
    i = int(np.searchsorted(t_s, when, side="right") - 1)
    col = lambda n: float(table.column(n)[i].as_py())  # noqa: E731
    b = Beliefs(t_s=col("t_s"), p_down=col("p_down"), log_odds=col("log_odds"), mu_bps_s=col("mu_bps_s"),
                p_down_h=np.array([col(f"p_down_{h:g}s") for h in HORIZONS_S]),
                log_odds_h=np.array([col(f"log_odds_{h:g}s") for h in HORIZONS_S]),
                fair_value_bps=col("fair_value_bps"), drift_log_odds=col("drift_log_odds"),
                drift_magnitude_bps_s=col("drift_magnitude_bps_s"),
                confidence=col("confidence"), drift_mean_bps_s=col("drift_mean_bps_s"),
                drift_sd_bps_s=col("drift_sd_bps_s"), sigma_bps_sqrt_s=col("sigma_bps_sqrt_s"),
                vol_regime=col("vol_regime"), toxicity=col("toxicity"), expected_as_bps=col("expected_as_bps"),
                p_regime=np.array([col(f"p_{r}") for r in ("trending_down", "trending_up", "mean_reverting",
                                                         "volatile")]),
                burst=col("burst"), burst_count=col("burst_count"), burst_side=col("burst_side"))
    a = to_arrays(session)
    mid, spread = float(a.mid[i]), float(a.spread_bps[i])
    half = mid * spread / 2e4
    return b, Market(mid, mid - half, mid + half, spread, float(a.imbalance[i])), float(t_s[i])


def format_quote(q, beliefs, market, position: float) -> str:
    """A readable breakdown of every intermediate of a quote."""
    f = {k: np.asarray(v) for k, v in q._asdict().items()}
    mode = {0: "two-sided", 1: "REDUCE-ONLY (asks only: reduce long)", -1: "REDUCE-ONLY (bids only: reduce short)"}
    lines = [
        f"belief: p_down {float(beliefs.p_down):.4f}, mu {float(beliefs.mu_bps_s):+.3f} bps/s, sigma "
        f"{float(beliefs.sigma_bps_sqrt_s):.3f} bps/sqrt(s), toxicity {float(beliefs.toxicity):.3f} "
        f"(AS {float(beliefs.expected_as_bps):.1f} bps), "
        f"P(regime) {np.round(np.asarray(beliefs.p_regime), 3).tolist()}, burst {int(float(beliefs.burst))}",
        f"market: mid {float(market.mid_px):.6g}, spread {float(market.spread_bps):.3f} bps; position {position:+g}",
        "stage 2  centre (fair value)  {:+9.3f} bps".format(float(f["centre_bps"])),
        "         drift shift          {:+9.3f} bps".format(float(f["drift_shift_bps"])),
        "         inventory skew       {:+9.3f} bps".format(float(f["inventory_skew_bps"])),
        "         reservation offset   {:+9.3f} bps  -> reservation {:.6g}".format(
            float(f["reservation_offset_bps"]), float(f["reservation_px"])),
        "stage 3  base (c1 ~ 1/kappa)  {:9.3f} bps".format(float(f["base_half_spread_bps"])),
        "         inventory risk       {:9.3f} bps".format(float(f["inventory_risk_bps"])),
        "         toxicity premium     {:9.3f} bps".format(float(f["toxicity_premium_bps"])),
        "         regime premium       {:9.3f} bps".format(float(f["regime_premium_bps"])),
        "         half-spread          {:9.3f} bps".format(float(f["half_spread_bps"])),
        "stage 4  bid depth            {:9.3f} bps (burst premium {:.1f})".format(
            float(f["bid_depth_bps"]), float(f["bid_burst_premium_bps"])),
        "         ask depth            {:9.3f} bps (burst premium {:.1f})".format(
            float(f["ask_depth_bps"]), float(f["ask_burst_premium_bps"])),
        "stage 5  mode {}; bid size {:.4g}, ask size {:.4g}".format(mode[int(f["mode"])], float(f["bid_size"]),
                                                                    float(f["ask_size"])),
        "stage 6  ladder:   bid px      qty  |   ask px      qty",
    ]
    for i in range(len(f["bid_px"])):
        lines.append(f"         {f['bid_px'][i]:>12.6g} {f['bid_qty'][i]:>8.4g}  | {f['ask_px'][i]:>9.6g} "
                     f"{f['ask_qty'][i]:>8.4g}")
    return "\n".join(lines)


def cmd_quote(args) -> int:
    jax.config.update("jax_enable_x64", True)
    from bayesmm.calibration.config import load_config

    if args.session:
        if args.at is None:
            raise ValueError("a session needs --at (HH:MM:SS or seconds since the start)")
        from bayesmm.calibration.venue import bot_config
        from bayesmm.events import read_session

        # as the backtest quotes: the file's config as given, else the defaults on the session's instrument
        cfg = bot_config(read_session(args.session), args.quoter, load_config(args.config) if args.config else None)
        beliefs, market, t = state_at(args.session, args.at, cfg)
        print(f"state after the last event at or before {args.at} ({t:.3f} s into the session)")
    else:
        cfg = preset(args.quoter, load_config(args.config))
        regime = [float(x) for x in args.regime.split(",")]
        if len(regime) != 4 or abs(sum(regime) - 1) > 1e-6:
            raise ValueError(f"--regime needs 4 probabilities summing to 1, got {args.regime!r}")
        p = args.p_down
        beliefs = snapshot(np.float64(p), t_s=0.0,
                           mu_bps_s=args.mu_bps_s if args.mu_bps_s is not None else (1 - 2 * p) * 6.0,
                          drift_magnitude_bps_s=6.0,
                          confidence=abs(2 * p - 1), drift_mean_bps_s=0.0, drift_sd_bps_s=1.0,
                          sigma_bps_sqrt_s=args.sigma_bps_sqrt_s, vol_regime=1, toxicity=args.toxicity,
                          expected_as_bps=args.expected_as_bps,
                          p_regime=np.asarray(regime), burst=float(args.burst_side != 0), burst_count=0.0,
                          burst_side=float(args.burst_side))
        half = args.mid * args.spread_bps / 2e4
        market = Market(args.mid, args.mid - half, args.mid + half, args.spread_bps, 0.0)
    beliefs = Beliefs(*(jnp.asarray(x, jnp.float64) for x in beliefs))
    market = Market(*(jnp.asarray(x, jnp.float64) for x in market))
    q, _ = quote(beliefs, market, jnp.asarray(args.position, jnp.float64),
                 QuoterState(jnp.asarray(float(args.prev_mode))), cfg, num_levels=args.levels)
    print(f"quoter: {args.quoter}")
    print(format_quote(q, beliefs, market, args.position))
    return 0


def add_parser(sub) -> None:
    q = sub.add_parser("quote", help="print the full quote breakdown for one belief state")
    q.add_argument("session", nargs="?", help="a session Parquet: take the belief and market from its replay "
                                              "(without it: the what-if belief of the options below)")
    q.add_argument("--at", help="with a session: HH:MM:SS (UTC) or seconds since the start")
    q.add_argument("--p-down", type=float, default=0.98, help="what-if belief: P(the mid falls)")
    q.add_argument("--mu-bps-s", type=float, help="default: (1 - 2 p_down) x 6 bps/s")
    q.add_argument("--sigma-bps-sqrt-s", type=float, default=1.5, help="what-if volatility, bps/sqrt(s)")
    q.add_argument("--toxicity", type=float, default=0.68, help="what-if toxicity: P(a fill is informed)")
    q.add_argument("--expected-as-bps", type=float, default=21.0, help="realised AS mean (spec: 21)")
    q.add_argument("--regime", default="0.92,0.0,0.05,0.03", help="P(trending_down,up,mean_reverting,volatile)")
    q.add_argument("--burst-side", type=int, default=0, choices=[-1, 0, 1],
                   help="what-if burst: +1 our bid was swept, -1 our ask, 0 none")
    q.add_argument("--mid", type=float, default=28.37, help="mid price (default: the spec's HYPE example)")
    q.add_argument("--spread-bps", type=float, default=7.0, help="what-if market spread, bps of the mid")
    q.add_argument("--position", type=float, default=4.13, help="signed inventory, units")
    q.add_argument("--prev-mode", type=int, default=0, choices=[-1, 0, 1], help="reduce-only mode before")
    q.add_argument("--quoter", choices=sorted(PRESETS), default="bayesian",
                   help="quoter preset applied on top of the configuration")
    q.add_argument("--config", help="configuration file (config.toml); default: the spec's values")
    q.add_argument("--levels", type=int, default=6, help="ladder levels per side")
    q.set_defaults(func=cmd_quote)
