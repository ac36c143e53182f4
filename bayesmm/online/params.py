"""The configuration: every parameter of the online belief (spec stage 1), the quoter (stages 2-6)
and the order layer (stage 7), grouped by component exactly as the exported `config.toml` is:

    Config(venue, drift, evidence, volatility, toxicity, regime, quoter, orders)

Each group is a NamedTuple of scalars / small arrays, so a `Config` is a pytree: `jit`, `vmap` (a
batch of configurations is a `Config` whose leaves have a leading axis), `grad` and `lax.scan`
accept it. One value lives in one place: the maker fee is `venue.maker_fee_bps` for the belief's
AS term, the quoter's fee floor and the simulated exchange alike; the drift's OU rate is
`drift.theta_mu_per_s` for the Kalman filter and the quoter's OU-consistent shift.

Every field has a range (`RANGES`), checked on the host by `check_ranges`, with errors that name the
key (`evidence.lambda_trade`), its value and the allowed range; every value must be finite. The
same table gives the JSON Schema of the file (`calibration.schema`). Flags (`quoter.use_*`,
`orders.use_emergency_cancel`) are booleans in the file and 0.0/1.0 floats in memory, so that
baselines are presets of one function and a sweep can vmap across them.
"""

from __future__ import annotations

import math
import re
from typing import NamedTuple

import numpy as np

REGIMES: tuple[str, ...] = ("trending_down", "trending_up", "mean_reverting", "volatile")
NUM_REGIMES = len(REGIMES)
HORIZONS_S: tuple[float, ...] = (1.0, 5.0, 30.0, 60.0)
"""The horizons the belief forecasts the mid's next move over, s: one p_down per horizon (`BookParams`)."""
NUM_HORIZONS = len(HORIZONS_S)
BOOK_FEATURES: tuple[str, ...] = ("imbalance", "ofi", "trade_flow", "move")
"""The book's features the belief reads (`online.book`), each in [-1, 1] and odd under the mirror image."""

# OU drift prior: "drift probably within about +-10 bps/s" (spec 1A fix) -> stationary sd 5 bps/s.
_THETA_MU = 0.001
_PRIOR_SD = 5.0


class VenueParams(NamedTuple):
    """What the venue imposes (from the session's metadata when calibrating).

    Attributes:
        tick_size_px: price grid, quote currency.
        max_sig_figs: significant figures allowed in a price (Hyperliquid: 5; 0 = no limit).
        price_decimals: decimals allowed in a price (Hyperliquid perps: 6 - szDecimals).
        sz_decimals: decimals of order sizes (Hyperliquid szDecimals).
        maker_fee_bps: our maker fee, bps of notional (positive = we pay; Hyperliquid 1.5).
        contract_size: what one unit of size is: units of the base asset for a linear instrument (1),
            quote currency per contract for an inverse one (Binance COIN-M ETHUSD: 10 USD).
        inverse: 1 for an inverse (coin-margined) contract, whose P&L settles in the base asset
            (`settlement_price`), 0 for a linear one.
    """

    tick_size_px: float = 0.001
    max_sig_figs: float = 5.0
    price_decimals: float = 4.0
    sz_decimals: float = 2.0
    maker_fee_bps: float = 1.5
    contract_size: float = 1.0
    inverse: float = 0.0


class DriftParams(NamedTuple):
    """The OU drift seen through mid returns (spec 1A): an exact Kalman filter.

    Attributes:
        theta_mu_per_s: OU mean reversion of the drift, 1/s (0.001: half-life ~11.5 min); also the
            quoter's OU-consistent drift shift.
        sigma_mu_bps_s_sqrt_s: OU diffusion of the drift, (bps/s)/sqrt(s); the default gives a
            stationary sd of 5 bps/s, i.e. drift within about +-10 bps/s.
        return_noise_s: microstructure noise of mid returns in seconds of diffusion: a return over
            dt has variance sigma^2 (dt + return_noise_s). 0 gives the spec's r^2 = dp^2/dt, which
            real tick data (moves within milliseconds) blows up; this keeps the update conjugate.
        return_weight: weight of the returns' evidence in p_down, the tick log-odds multiplied by
            it (1: the Kalman posterior as it is; 0: returns inform sigma and the regime only).
            On a tick grid the mid bounces between bid and ask, which a drift filter reads as
            momentum; calibration sets how much of it to believe.
        regime_weight: weight of the regime posterior's own verdict on the sign of the drift in
            p_down: its log-odds logit(sum_r P(r) P(mu < 0 | r)) (`belief.regime_log_odds`) times
            this. 0 (the spec's filter: the regimes move the drift's magnitude and the spread, not
            its sign); in a market whose flow is informative only inside trends, the additive
            evidence sums noise between them, and the regime filter, which knows when flow is
            informative, reads the sign far better (`sim.truth`); calibration chooses it.
    """

    theta_mu_per_s: float = _THETA_MU
    sigma_mu_bps_s_sqrt_s: float = _PRIOR_SD * math.sqrt(2 * _THETA_MU)
    return_noise_s: float = 1.0
    return_weight: float = 1.0
    regime_weight: float = 0.0


EVIDENCE_WEIGHTS = ("lambda_fill", "lambda_as", "lambda_burst", "lambda_trade", "lambda_imbalance",
                    "lambda_cv_per_bps")  # the additive log-LR weights of `EvidenceParams` (0: no evidence)


class EvidenceParams(NamedTuple):
    """Additive log-likelihood ratios for the sign of the drift (spec 1A), and their decay.

    Attributes:
        lambda_fill: log-LR of one own fill for the sign of drift (0.35: 8 same-side fills ~ 95%).
        lambda_as: weight of the adverse-selection term (0.15).
        as_scale_bps: AS normaliser in that term, bps (20).
        as_horizon_s: how long after a fill its AS is measured, s (5).
        lambda_burst: per-extra-fill weight of a same-side burst (0.25).
        burst_min_fills: fills on one side within the window that make a burst (4).
        max_burst_age_s: the burst window, s (2).
        theta_decay_per_s: decay rate of the evidence log-odds without fresh evidence, 1/s (0.02,
            half-life ln2/0.02 = 34.7 s).
        lambda_trade: log-LR per public trade print, by aggressor side (0 until calibrated).
        lambda_imbalance: log-odds per unit of the current top-of-book imbalance, a level term of
            the read-out (0): the book leaning to the bid (imbalance > 0) is bullish now, and stops
            being evidence when the book stops leaning (it is a state of the market, not a flow of
            events to sum).
        lambda_cv_per_bps: log-LR per bps of another venue's mid move (0).
        max_event_log_odds: the most log-odds any one event may add or remove (3: a 95% belief
            from even odds); the spec's largest single update, the 6th fill of a burst with high
            AS, is 1.23.
        max_log_odds: the most the evidence log-odds may reach in all (10: p_down within 4.5e-5
            of 0 or 1 from the evidence alone), so that decay undoes any certainty in bounded time.
        survival_weight: weight of the survival term, the evidence of our quotes standing unfilled
            (1: as derived from lambda_fill and the quoter's fill model, `online.belief`; 0: the
            spec's filter, which reads own fills without the quotes that made them). Acts only
            where own_quote events say what rests: never on a recording without them.
        markov_decay_weight: how the evidence goes stale between events (0: the spec's rule, the log-odds
            decays at theta_decay_per_s; 1: the probability's distance from 1/2 does - the exact
            forgetting for a sign that flips as a two-state Markov chain at rate theta / 2, which
            pulls a confident belief back much faster than the log-odds rule, `online.belief`;
            between the two, a blend of the results).
    """

    lambda_fill: float = 0.35
    lambda_as: float = 0.15
    as_scale_bps: float = 20.0
    as_horizon_s: float = 5.0
    lambda_burst: float = 0.25
    burst_min_fills: float = 4.0
    max_burst_age_s: float = 2.0
    theta_decay_per_s: float = 0.02
    lambda_trade: float = 0.0
    lambda_imbalance: float = 0.0
    lambda_cv_per_bps: float = 0.0
    max_event_log_odds: float = 3.0
    max_log_odds: float = 10.0
    survival_weight: float = 1.0
    markov_decay_weight: float = 0.0


class VolatilityParams(NamedTuple):
    """Inverse-gamma volatility with forgetting (spec 1B).

    Attributes:
        sigma_long_bps_sqrt_s: long-run volatility, the prior's centre, bps/sqrt(s).
        prior_strength_obs: inverse-gamma prior alpha_0 (> 1); larger = slower to move.
        forget_per_s: rate at which volatility evidence is forgotten toward the prior, 1/s.
        fill_window_s: the window of the fill-clustering adjustment, s (5).
        expected_fills_per_window: fills expected in that window in normal conditions.
        low_ratio: sigma / sigma_long below this is the "low" vol regime.
        high_ratio: sigma / sigma_long above this is the "high" vol regime.
        return_df: degrees of freedom of the returns' Student-t law (4; 0: Gaussian, the spec's
            conjugate updates as written). With nu > 0 a return enters the volatility and Kalman
            updates down-weighted by (nu + 1) / (nu + z^2) and the regime emission as a t
            density: one jump's influence is bounded (a 30% move and back once pinned a Gaussian
            filter's p_down at 1.0 for the rest of a session). 4 is the t of real 1 s returns
            (the volatility model's fit on the bundled spot session: 3.4 [2.7, 5.1]).
    """

    sigma_long_bps_sqrt_s: float = 1.5
    prior_strength_obs: float = 3.0
    forget_per_s: float = 1.0 / 60.0
    fill_window_s: float = 5.0
    expected_fills_per_window: float = 2.0
    low_ratio: float = 0.75
    high_ratio: float = 1.5
    return_df: float = 4.0


class ToxicityParams(NamedTuple):
    """Beta toxicity and the realised-AS mean (spec 1C).

    Attributes:
        prior_informed_fills: Beta prior pseudo-count of informed fills (alpha_informed_0).
        prior_uninformed_fills: Beta prior pseudo-count of uninformed fills.
        decay_per_window: multiplicative decay of the evidence per window (0.95).
        window_s: that window, s (30); the decay is applied continuously.
        as_prior_bps: prior of the realised AS mean (the spec's AS_scale of stage 3 "from realised AS
            history"), bps.
        as_prior_weight: that prior's weight, in fills; the evidence decays like the toxicity's.
    """

    prior_informed_fills: float = 1.0
    prior_uninformed_fills: float = 3.0
    decay_per_window: float = 0.95
    window_s: float = 30.0
    as_prior_bps: float = 20.0
    as_prior_weight: float = 2.0


class RegimeParams(NamedTuple):
    """The 4-state continuous-time regime HMM (spec 1D); per-regime vectors are ordered
    trending_down, trending_up, mean_reverting, volatile.

    Attributes:
        rates_per_s: generator Q (4x4, off-diagonal >= 0, rows sum to 0), 1/s.
        drift_bps_s: mean drift of each regime, bps/s (-m, +m, 0, 0); also gives the drift
            magnitude E|mu| = sum_r P(r) |m_r| of the read-out mu_bps_s.
        vol_mult: volatility multiplier of each regime (volatile > 1).
        p_buy_fill: P(own fill is a buy | regime).
        p_taker_buy: P(trade print aggressor bought | regime).
        as_mean_bps: mean AS of a fill in each regime, bps.
        as_sd_bps: sd of AS in each regime, bps.
        fill_rate_per_s: own-fill arrival rate in each regime, 1/s.
    """

    rates_per_s: tuple = ()
    drift_bps_s: tuple = (-6.0, 6.0, 0.0, 0.0)
    vol_mult: tuple = (1.0, 1.0, 0.8, 2.0)
    p_buy_fill: tuple = (0.7, 0.3, 0.5, 0.5)
    p_taker_buy: tuple = (0.5, 0.5, 0.5, 0.5)
    as_mean_bps: tuple = (10.0, 10.0, 1.0, 5.0)
    as_sd_bps: tuple = (8.0, 8.0, 4.0, 10.0)
    fill_rate_per_s: tuple = (0.2, 0.2, 0.05, 0.3)


class QuoterParams(NamedTuple):
    """Spec stages 2-6 (`online.quoter`): units are bps of the mid, s, and base units (`_qty`).

    Attributes:
        horizon_s: rolling horizon T - t of the drift shift, s (30).
        drift_cap_mult: drift shift capped at +- this x spread_bps (2).
        use_ou_drift_shift: 1 = shift mu (1 - e^{-theta tau}) / theta (OU-consistent, Cartea-Jaimungal,
            theta = drift.theta_mu_per_s) instead of mu tau, before the cap.
        gamma_per_bps_qty: risk aversion, 1/(bps x unit).
        kappa_per_bps: fill-intensity decay with depth, 1/bps.
        fill_intensity_per_s: A, fill intensity at zero depth, 1/s.
        order_size_qty: Delta, base units (also the base size of stage 5).
        fixed_half_spread_bps: if > 0, replaces the GLFT base half-spread (c1 + inventory risk).
        expected_as_bps: AS_scale of the toxicity premium, bps; 0 (default) = the belief's realised
            AS mean (spec stage 3: "expected AS magnitude from realized AS history").
        regime_premium_bps: extra half-spread per regime (trending_down, up, mean_reverting, volatile);
            the two trends' must be equal (a premium for one trend but not its mirror image would
            quote by the drift's sign, not its strength).
        burst_premium_bps: extra depth on the swept side during a burst (5).
        max_position_qty: inventory at which the adding side's capacity reaches 0, units.
        min_viable_size_qty: smallest position worth reducing, units.
        max_reduce_size_qty: largest reduce-only order total, units.
        p_reduce: enter reduce-only above this p_down (long) / below 1 - this (short) (0.85).
        p_resume: leave reduce-only below this p_down (long) / above 1 - this (short) (0.70).
        level_spacing_bps: depth between ladder levels, bps.
        ladder_temperature_bps: softmax temperature of the ladder allocation, bps.
        as_profile_depth_bps: depth scale over which expected AS falls off, bps.
        use_drift: drift shift on (off for baselines).
        use_toxicity: toxicity premium on.
        use_regime: regime premium on.
        use_reduce_only: reduce-only mode allowed.
        use_directional_sizing: sizes scaled by p_down (off: symmetric 0.5).
        use_burst_premium: burst premium on.
        use_inventory_skew: GLFT inventory skew q sigma c2 on.
        use_fair_value: centre the quotes on the belief's fair value (the mid plus the expected move
            over the fair-value horizon, `Beliefs.fair_value_bps`) instead of the raw mid (1).
        imbalance_skew_bps: the order-book-imbalance maker's alpha: the centre moves by this x the
            touch's queue imbalance, bps (0: off; calibration fits it by least squares of the mid's
            move on the imbalance, `calibration.peer.imbalance_skew_bps`).
    """

    horizon_s: float = 30.0
    drift_cap_mult: float = 2.0
    use_ou_drift_shift: float = 0.0
    gamma_per_bps_qty: float = 0.01
    kappa_per_bps: float = 0.2
    fill_intensity_per_s: float = 1.0
    order_size_qty: float = 1.0
    fixed_half_spread_bps: float = 0.0
    expected_as_bps: float = 0.0
    regime_premium_bps: tuple = (5.0, 5.0, 0.0, 5.0)
    burst_premium_bps: float = 5.0
    max_position_qty: float = 10.0
    min_viable_size_qty: float = 0.1
    max_reduce_size_qty: float = 10.0
    p_reduce: float = 0.85
    p_resume: float = 0.70
    level_spacing_bps: float = 2.1
    ladder_temperature_bps: float = 2.0
    as_profile_depth_bps: float = 10.0
    use_drift: float = 1.0
    use_toxicity: float = 1.0
    use_regime: float = 1.0
    use_reduce_only: float = 1.0
    use_directional_sizing: float = 1.0
    use_burst_premium: float = 1.0
    use_inventory_skew: float = 1.0
    use_fair_value: float = 1.0
    imbalance_skew_bps: float = 0.0


class OrderParams(NamedTuple):
    """Stage 7 (`online.orders`): the quote cycle, the reconciler's tolerances, the emergency cancel.

    Attributes:
        quote_cycle_s: seconds between quote cycles (3).
        price_tolerance_bps: a resting order within this of the desired price is kept, bps of mid.
        size_tolerance_qty: a kept order within this of the desired size is not modified, units.
        use_emergency_cancel: cancel the swept side at once on a burst, between quote cycles.
    """

    quote_cycle_s: float = 3.0
    price_tolerance_bps: float = 0.5
    size_tolerance_qty: float = 0.0
    use_emergency_cancel: float = 1.0


class BookParams(NamedTuple):
    """What the order book and the tape say about the mid's next move, per horizon (`online.book`):
    a logistic read-out of four bounded features, each odd in the mirror image (a negated book gives
    the mirrored belief), combined with the drift belief's own log-odds. Per horizon h (`HORIZONS_S`):

        logit P(mid falls over h) = (b_h L + sum_k w_hk x_k) / sqrt(1 + pi/8 (t_h + sum_k v_hk x_k^2))

    with L the drift belief's log-odds (returns, fills, tape, regime), x_k the features, v_hk the
    variance of a new session's weight (the model's between-block spread and the posterior's) and t_h
    that of its trend: the probit approximation of the model's predictive (`models.book`). Vectors
    hold one value per horizon. All weights 0 and belief_weight 1: every horizon reads the drift
    belief alone (the spec's filter).

    Attributes:
        flow_window_s: time constant of the decayed flow features (order flow, trade flow, move), s.
        belief_weight: weight of the drift belief's log-odds in each horizon's (1: as it is).
        imbalance_weight: log-odds of a fall per unit of touch queue imbalance (bid - ask) / (bid + ask).
        ofi_weight: per unit of the decayed order-flow imbalance at the touch (Cont, Kukanov & Stoikov).
        trade_flow_weight: per unit of the decayed net aggressor side of the tape.
        move_weight: per unit of the decayed direction of the mid's recent moves (the bounce's sign).
        imbalance_var: variance of a new session's imbalance weight (0: the weight as it is).
        ofi_var: the same for the order-flow weight.
        trade_flow_var: the same for the trade-flow weight.
        move_var: the same for the move weight.
        trend_var: variance of a new session's trend, log-odds^2 (0: none).
        abs_move_bps: mean |mid move| over each horizon, bps: the fair value's scale (the mid plus
            (1 - 2 p_down) x this at `fair_value_horizon_s`).
        fair_value_horizon_s: the horizon whose forecast gives the fair value and the quoter's
            p_down (the nearest of `HORIZONS_S`), s.
        adapt_trend_var: prior variance of each horizon's offset learnt online from its resolved
            forecasts, log-odds^2 (`online.adapt`; 0 with adapt_scale_var 0: nothing learnt).
        adapt_scale_var: prior variance of each horizon's scale of the forecast learnt online.
        adapt_timescale_s: time constant over which what was learnt online relaxes to the prior, s.
    """

    flow_window_s: float = 5.0
    belief_weight: tuple = (1.0, 1.0, 1.0, 1.0)
    imbalance_weight: tuple = (0.0, 0.0, 0.0, 0.0)
    ofi_weight: tuple = (0.0, 0.0, 0.0, 0.0)
    trade_flow_weight: tuple = (0.0, 0.0, 0.0, 0.0)
    move_weight: tuple = (0.0, 0.0, 0.0, 0.0)
    imbalance_var: tuple = (0.0, 0.0, 0.0, 0.0)
    ofi_var: tuple = (0.0, 0.0, 0.0, 0.0)
    trade_flow_var: tuple = (0.0, 0.0, 0.0, 0.0)
    move_var: tuple = (0.0, 0.0, 0.0, 0.0)
    trend_var: tuple = (0.0, 0.0, 0.0, 0.0)
    abs_move_bps: tuple = (0.0, 0.0, 0.0, 0.0)
    fair_value_horizon_s: float = 30.0
    adapt_trend_var: tuple = (0.0, 0.0, 0.0, 0.0)
    adapt_scale_var: tuple = (0.0, 0.0, 0.0, 0.0)
    adapt_timescale_s: float = 60.0


BOOK_WEIGHTS = tuple(f"{k}_weight" for k in BOOK_FEATURES)
BOOK_VARS = tuple(f"{k}_var" for k in BOOK_FEATURES)


class Config(NamedTuple):
    """Every parameter of the online side, by component (module docstring); what `config.toml` holds."""

    venue: VenueParams = VenueParams()
    drift: DriftParams = DriftParams()
    evidence: EvidenceParams = EvidenceParams()
    volatility: VolatilityParams = VolatilityParams()
    toxicity: ToxicityParams = ToxicityParams()
    regime: RegimeParams = RegimeParams()
    quoter: QuoterParams = QuoterParams()
    orders: OrderParams = OrderParams()
    book: BookParams = BookParams()


GROUPS: dict[str, type] = dict(zip(Config._fields, (VenueParams, DriftParams, EvidenceParams, VolatilityParams,
                                                    ToxicityParams, RegimeParams, QuoterParams, OrderParams,
                                                    BookParams),
                                   strict=True))


class Range(NamedTuple):
    """Allowed values of a field: lo < x (or <= when lo_closed), x < hi (or <= when hi_closed); kind
    "number", "integer" (a whole number, written as one), "flag" (boolean in the file), "vector"
    (NUM_REGIMES numbers, one per regime), "horizons" (NUM_HORIZONS numbers, one per horizon),
    "matrix" (4x4)."""

    lo: float = -math.inf
    hi: float = math.inf
    lo_closed: bool = True
    hi_closed: bool = True
    kind: str = "number"

    def describe(self) -> str:
        if self.kind == "flag":
            return "true or false"
        lo = "(-inf" if self.lo == -math.inf else ("[" if self.lo_closed else "(") + f"{self.lo:g}"
        hi = "inf)" if self.hi == math.inf else f"{self.hi:g}" + ("]" if self.hi_closed else ")")
        return f"{lo}, {hi}"

    def contains(self, v: float) -> bool:
        if not math.isfinite(v):
            return False
        return (v >= self.lo if self.lo_closed else v > self.lo) and (v <= self.hi if self.hi_closed else v < self.hi)


_POS = Range(0.0, math.inf, lo_closed=False)
_NONNEG = Range(0.0)
_ANY = Range()
_PROB = Range(0.0, 1.0, lo_closed=False, hi_closed=False)
_FLAG = Range(0.0, 1.0, kind="flag")
_COUNT = Range(0.0, 20.0, kind="integer")

RANGES: dict[str, dict[str, Range]] = {
    "venue": {"tick_size_px": _POS, "max_sig_figs": _COUNT, "price_decimals": _COUNT, "sz_decimals": _COUNT,
              "maker_fee_bps": Range(-100.0, 100.0), "contract_size": _POS, "inverse": _FLAG},
    "drift": {"theta_mu_per_s": _POS, "sigma_mu_bps_s_sqrt_s": _POS, "return_noise_s": _NONNEG,
              "return_weight": Range(0.0, 10.0), "regime_weight": Range(0.0, 10.0)},
    "evidence": {"lambda_fill": _NONNEG, "lambda_as": _NONNEG, "as_scale_bps": _POS, "as_horizon_s": _POS,
                 "lambda_burst": _NONNEG, "burst_min_fills": Range(1.0, 16.0, kind="integer"), "max_burst_age_s": _POS,
                 "theta_decay_per_s": _NONNEG, "lambda_trade": _ANY, "lambda_imbalance": _ANY,
                 "lambda_cv_per_bps": _ANY, "max_event_log_odds": _POS, "max_log_odds": _POS,
                 "survival_weight": _NONNEG, "markov_decay_weight": Range(0.0, 1.0)},
    "volatility": {"sigma_long_bps_sqrt_s": _POS, "prior_strength_obs": Range(1.0, math.inf, lo_closed=False),
                   "forget_per_s": _NONNEG, "fill_window_s": _POS, "expected_fills_per_window": _POS,
                   "low_ratio": _POS, "high_ratio": _POS, "return_df": Range(0.0, 1000.0)},
    "toxicity": {"prior_informed_fills": _POS, "prior_uninformed_fills": _POS,
                 "decay_per_window": Range(0.0, 1.0, False, True),
                 "window_s": _POS, "as_prior_bps": _ANY, "as_prior_weight": _POS},
    "regime": {"rates_per_s": Range(kind="matrix"), "drift_bps_s": Range(kind="vector"),
               "vol_mult": Range(0.0, math.inf, lo_closed=False, kind="vector"),
               "p_buy_fill": Range(0.0, 1.0, False, False, kind="vector"),
               "p_taker_buy": Range(0.0, 1.0, False, False, kind="vector"),
               "as_mean_bps": Range(kind="vector"), "as_sd_bps": Range(0.0, math.inf, False, kind="vector"),
               "fill_rate_per_s": Range(0.0, math.inf, False, kind="vector")},
    "quoter": {"horizon_s": _POS, "drift_cap_mult": _NONNEG, "use_ou_drift_shift": _FLAG, "gamma_per_bps_qty": _POS,
               "kappa_per_bps": _POS, "fill_intensity_per_s": _POS, "order_size_qty": _POS,
               "fixed_half_spread_bps": _NONNEG, "expected_as_bps": _NONNEG,
               "regime_premium_bps": Range(0.0, math.inf, kind="vector"), "burst_premium_bps": _NONNEG,
               "max_position_qty": _POS, "min_viable_size_qty": _NONNEG, "max_reduce_size_qty": _NONNEG,
               "p_reduce": Range(0.5, 1.0, False, False), "p_resume": Range(0.5, 1.0, False, False),
               "level_spacing_bps": _NONNEG, "ladder_temperature_bps": _POS, "as_profile_depth_bps": _POS,
               "use_drift": _FLAG, "use_toxicity": _FLAG, "use_regime": _FLAG, "use_reduce_only": _FLAG,
               "use_directional_sizing": _FLAG, "use_burst_premium": _FLAG, "use_inventory_skew": _FLAG,
               "use_fair_value": _FLAG, "imbalance_skew_bps": Range(-100.0, 100.0)},
    "orders": {"quote_cycle_s": _POS, "price_tolerance_bps": _NONNEG, "size_tolerance_qty": _NONNEG,
               "use_emergency_cancel": _FLAG},
    "book": {"flow_window_s": _POS, "belief_weight": Range(0.0, 10.0, kind="horizons"),
             **{k: Range(-20.0, 20.0, kind="horizons") for k in BOOK_WEIGHTS},
             **{k: Range(0.0, 100.0, kind="horizons")
                for k in (*BOOK_VARS, "trend_var", "adapt_trend_var", "adapt_scale_var")},
             "abs_move_bps": Range(0.0, 1e4, kind="horizons"), "fair_value_horizon_s": _POS,
             "adapt_timescale_s": _POS},
}
VECTOR_LENGTH = {"vector": NUM_REGIMES, "horizons": NUM_HORIZONS}
"""How many numbers a field of each vector kind holds."""


def field_docs(group: str) -> dict[str, str]:
    """{field: description} read from the group class's docstring (its `Attributes:` section): the
    one place each parameter is described, reused by the JSON Schema and the CLI."""
    doc = GROUPS[group].__doc__ or ""
    out, name = {}, None
    for line in doc.split("Attributes:", 1)[-1].splitlines():
        m = re.match(r"^ {8}(\w+): (.*)$", line)
        if m:
            name = m.group(1)
            out[name] = m.group(2).strip()
        elif name and line.startswith(" " * 12):
            out[name] += " " + line.strip()
    return out


def symmetric_generator(rate_per_s: float, num_states: int = NUM_REGIMES) -> np.ndarray:
    """Generator Q that leaves each state at `rate_per_s`, to each other state equally."""
    q = np.full((num_states, num_states), rate_per_s / (num_states - 1))
    np.fill_diagonal(q, -rate_per_s)
    return q


DEFAULT_SWITCH_PER_S = 0.001  # the spec's "slow transitions, ~0.001 per second"


def _check_value(key: str, value, rng: Range) -> np.ndarray:
    """The value as a float array of the right shape, or a ValueError naming the key and range."""
    if rng.kind == "flag":
        if isinstance(value, bool | np.bool_):
            return np.asarray(float(value))
        v = np.asarray(value, dtype=float) if isinstance(value, int | float | np.ndarray | np.generic) else None
        if v is None or v.shape != () or float(v) not in (0.0, 1.0):
            raise ValueError(f"{key} = {value!r}: must be true or false")
        return v
    shape = {"number": (), "integer": (), "vector": (NUM_REGIMES,), "horizons": (NUM_HORIZONS,),
             "matrix": (NUM_REGIMES, NUM_REGIMES)}[rng.kind]
    if isinstance(value, bool | str) or (isinstance(value, list | tuple) and any(
            isinstance(x, bool | str) for x in np.ravel(np.asarray(value, dtype=object)))):
        raise ValueError(f"{key} = {value!r}: must be {'a number' if shape == () else 'numbers'}, not "
                         f"{type(value).__name__}")
    try:
        v = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{key} = {value!r}: must be {'a number' if shape == () else f'{shape} numbers'}") from None
    if v.shape != shape:
        raise ValueError(f"{key} must have shape {shape}, got {v.shape}: {np.asarray(value).tolist()!r}")
    bad = [float(x) for x in v.ravel() if not rng.contains(float(x))]
    if rng.kind == "matrix":
        bad = [float(x) for x in v.ravel() if not math.isfinite(float(x))]
    if bad:
        raise ValueError(f"{key} = {v.tolist()!r} is out of range: allowed {rng.describe()} (and finite)")
    if rng.kind == "integer" and float(v) != round(float(v)):
        raise ValueError(f"{key} = {value!r}: must be a whole number")
    return v


def check_ranges(cfg: Config) -> Config:
    """Check every value of a configuration on the host: ranges, shapes, finiteness, and the rules
    that tie fields together. Raises ValueError naming the key (`group.field`). Returns cfg."""
    for group, fields in RANGES.items():
        g = getattr(cfg, group)
        for name, rng in fields.items():
            _check_value(f"{group}.{name}", np.asarray(getattr(g, name)), rng)
    v, q = cfg.volatility, cfg.quoter
    if float(v.low_ratio) >= float(v.high_ratio):
        raise ValueError(f"volatility.low_ratio ({float(v.low_ratio)}) must be < volatility.high_ratio "
                         f"({float(v.high_ratio)})")
    prem = np.asarray(q.regime_premium_bps, dtype=float)
    if prem[0] != prem[1]:
        raise ValueError(f"quoter.regime_premium_bps: the trends' premia must be equal (mirror images), got "
                         f"{prem[0]} and {prem[1]}")
    if not float(q.p_resume) < float(q.p_reduce):
        raise ValueError(f"quoter.p_resume ({float(q.p_resume)}) must be < quoter.p_reduce ({float(q.p_reduce)})")
    rates = np.asarray(cfg.regime.rates_per_s, dtype=float)
    off = rates - np.diag(np.diag(rates))
    if not ((off >= 0).all() and np.allclose(rates.sum(axis=1), 0, atol=1e-9)):
        raise ValueError(f"regime.rates_per_s must be a {NUM_REGIMES}x{NUM_REGIMES} generator (off-diagonal >= 0, "
                         f"rows sum to 0), got {rates.tolist()}")
    return cfg


def config_from_dict(d: dict, dtype=np.float64, base: Config | None = None) -> Config:
    """A validated `Config` from nested {group: {field: value}} (missing groups and fields keep
    `base`'s values, by default the spec's). Unknown groups or fields, wrong types (a string, a
    boolean for a number) and values out of range are errors naming the key."""
    if not isinstance(d, dict):
        raise ValueError(f"a configuration is a table of groups {list(Config._fields)}, got {type(d).__name__}")
    base = default_config(dtype) if base is None else base
    unknown = sorted(set(d) - set(Config._fields))
    if unknown:
        raise ValueError(f"unknown config group(s) {unknown} (groups: {list(Config._fields)})")
    groups = {}
    for group, cls in GROUPS.items():
        values = d.get(group, {})
        if not isinstance(values, dict):
            raise ValueError(f"[{group}] must be a table of fields, got {type(values).__name__}")
        unknown = sorted(set(values) - set(cls._fields))
        if unknown:
            raise ValueError(f"unknown key(s) {[f'{group}.{k}' for k in unknown]} (the fields of [{group}]: "
                             f"{list(cls._fields)})")
        checked = {k: _check_value(f"{group}.{k}", v, RANGES[group][k]) for k, v in values.items()}
        groups[group] = getattr(base, group)._replace(**checked)
    cfg = Config(**groups)
    check_ranges(cfg)
    return cast(cfg, dtype)


def cast(cfg: Config, dtype=np.float64) -> Config:
    """Every leaf as a NumPy array of `dtype`."""
    return Config(*(type(g)(*(np.asarray(v, dtype=dtype) for v in g)) for g in cfg))


def default_config(dtype=np.float64, switch_per_s: float = DEFAULT_SWITCH_PER_S) -> Config:
    """The spec's defaults, validated, as arrays of `dtype` (the regime generator leaves each
    state at `switch_per_s`, to the others equally)."""
    cfg = Config()._replace(regime=RegimeParams(rates_per_s=symmetric_generator(switch_per_s)))
    check_ranges(cfg)
    return cast(cfg, dtype)


def replace(cfg: Config, **groups: dict) -> Config:
    """`cfg` with some fields replaced, by group: `replace(cfg, evidence={"lambda_fill": 0.5})`;
    validated, in cfg's dtype."""
    dtype = np.asarray(cfg.evidence.lambda_fill).dtype
    return config_from_dict(groups, dtype=dtype, base=cfg)


def config_to_dict(cfg: Config) -> dict:
    """Nested {group: {field: value}} of plain floats, lists, integers (for counts) and booleans (for flags):
    what the TOML holds."""
    out = {}
    for group in Config._fields:
        g = getattr(cfg, group)
        kinds = {k: RANGES[group][k].kind for k in g._fields}
        out[group] = {k: (bool(float(np.asarray(v))) if kinds[k] == "flag" else
                          int(round(float(np.asarray(v)))) if kinds[k] == "integer" else np.asarray(v).tolist())
                      for k, v in g._asdict().items()}
    return out


def named_tuple_from(cls, overrides: dict):
    """`cls(**overrides)` for a parameter NamedTuple, naming any field it does not have
    (shared by the simulator's builders: market, exchange)."""
    unknown = sorted(set(overrides) - set(cls._fields))
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s) {unknown}")
    return cls(**overrides)


def require_positive(p, names) -> None:
    """Raise ValueError naming the first of `names` whose value in `p` is not > 0."""
    for name in names:
        if not float(getattr(p, name)) > 0:
            raise ValueError(f"{type(p).__name__}.{name} must be > 0, got {getattr(p, name)!r}")
