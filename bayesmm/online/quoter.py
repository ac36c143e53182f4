r"""The quoter, spec stages 2-6: belief snapshot + inventory + market -> a ladder of quotes.

Pure JAX (jit, vmap over parameter sets, scan with the belief). One consistent unit system:
prices and depths in **bps of the current mid**, time in s, inventory `q` and order size `Delta`
in base units (e.g. HYPE), volatility sigma in bps/sqrt(s), so

- kappa (`kappa_per_bps`): fill intensity decay, A e^{-kappa delta} with delta in bps;
- A (`fill_intensity_per_s`): fill intensity at zero depth, 1/s;
- gamma (`gamma_per_bps_qty`): risk aversion per bps of P&L per unit of inventory.

**Stage 3, GLFT** (Gueant-Lehalle-Fernandez-Tapia 2013; Gueant 2017, the closed-form
approximation with xi = gamma):

    c1 = ln(1 + xi Delta / kappa) / (xi Delta)          (-> 1/kappa as xi -> 0: the spec's "1/kappa")
    c2 = sqrt( gamma / (2 A Delta kappa) * (1 + xi Delta / kappa)^(kappa / (xi Delta) + 1) )
    half-spread = c1 + (Delta / 2) sigma c2,     inventory skew = q sigma c2   (both in bps)

The (Delta/2) sigma c2 part is GLFT's inventory-risk term, the stationary counterpart of the
spec's Avellaneda-Stoikov gamma/2 sigma^2 (T - t); adding both would count inventory risk twice.
On top: toxicity premium pi * expected_AS and a regime premium sum_r P(r) premium_r.

**Where the spec's stage-3 figures come from.** With kappa = 1813 per unit of relative price,
1/kappa = 5.5e-4 = 5.5 bps (the spec prints 0.055 bps: it read 0.055 % as bps). gamma/2 sigma^2 T
= 0.28 x (2.34e-4)^2 x 30 = 4.6e-7 = 0.0046 bps (the spec prints 0.9 bps), and the section-5
inventory term 4.13 x 0.56 x 5.5e-8 x 30 = 3.8e-6 = 0.038 bps (printed 0.38 bps). The sum the spec
draws conclusions from, 1.0 + 0.68 x 21 + 5 = 20.3 bps, is dominated by the toxicity and regime
premia, which need no unit conversion; `tests/online/test_quoter.py` reproduces it with the base
term given as 1.0 bps and shows the corrected figures.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from bayesmm.online.belief import Beliefs
from bayesmm.online.params import Config, default_config, replace

MODE_TWO_SIDED, MODE_REDUCE_LONG, MODE_REDUCE_SHORT = 0, 1, -1


_GLFT = dict(use_drift=False, use_toxicity=False, use_regime=False, use_reduce_only=False,
             use_directional_sizing=False, use_burst_premium=False, use_fair_value=False)
_NO_IMBALANCE = {"imbalance_skew_bps": 0.0}

PRESETS: dict[str, dict] = {
    # Everything the belief knows: centred on its fair value, drift shift, premia, reduce-only (the
    # imbalance alpha is the peer's, not the belief's: the belief's fair value reads the book itself).
    "bayesian": {"quoter": _NO_IMBALANCE},
    # The deployed system (spec section 1, stage 4): no drift term, symmetric touch at 7.02 bps
    # (its 0.73 bps position guard is left out: the spec reports the touch as symmetric), no
    # toxicity or regime premium, no reduce-only, symmetric sizes, no emergency cancel.
    "current_system": {"quoter": dict(fixed_half_spread_bps=7.02, use_drift=False, use_toxicity=False,
                                      use_regime=False, use_reduce_only=False, use_directional_sizing=False,
                                      use_burst_premium=False, use_inventory_skew=False, use_fair_value=False,
                                      imbalance_skew_bps=0.0),
                       "orders": dict(use_emergency_cancel=False)},
    # Plain GLFT: closed-form half-spread and inventory skew around the mid; no drift, toxicity, regime,
    # reduce-only.
    "glft": {"quoter": {**_GLFT, **_NO_IMBALANCE}, "orders": dict(use_emergency_cancel=False)},
    # GLFT centred on the belief's fair value (the micro-price of the book's forecast), else plain GLFT.
    "glft_micro": {"quoter": {**_GLFT, **_NO_IMBALANCE, "use_fair_value": True},
                   "orders": dict(use_emergency_cancel=False)},
    # The order-book-imbalance maker: plain GLFT whose centre leans by a linear alpha on the touch's
    # queue imbalance (quoter.imbalance_skew_bps, fitted by calibration; as in hftbacktest's
    # "market making with alpha" example): the peer a practitioner would try first.
    "imbalance": {"quoter": _GLFT, "orders": dict(use_emergency_cancel=False)},
}
"""The quoters compared throughout, as presets of the one `quote` function: {group: {field: value}}."""


def preset(name: str, cfg: Config | None = None, **groups: dict) -> Config:
    """`cfg` (default: the spec's defaults) with the named quoter preset applied, then any further
    overrides by group (`quoter={"order_size_qty": 4.0}`); validated."""
    if name not in PRESETS:
        raise ValueError(f"unknown quoter {name!r} (choose from {sorted(PRESETS)})")
    cfg = default_config() if cfg is None else cfg
    cfg = replace(cfg, **PRESETS[name])
    return replace(cfg, **groups) if groups else cfg


class Market(NamedTuple):
    """What the quoter sees of the market. Attributes: mid_px, best_bid_px, best_ask_px (quote
    currency); spread_bps (current spread, bps of mid); imbalance (the touch's queue imbalance
    (bid size - ask size) / (bid size + ask size), in [-1, 1]; read by the imbalance maker only)."""

    mid_px: jax.Array
    best_bid_px: jax.Array
    best_ask_px: jax.Array
    spread_bps: jax.Array
    imbalance: jax.Array


class Quote(NamedTuple):
    """A quote with every intermediate, so a notebook can show why it is what it is.

    Attributes (bps of mid unless said): centre_bps (where the quotes are centred: the belief's fair
    value and/or the imbalance maker's lean, `centre_offset_bps`), drift_shift_bps (signed, negative =
    bearish), inventory_skew_bps (q sigma c2, positive when long), reservation_offset_bps (centre +
    drift_shift - skew; reservation price = mid (1 + offset/1e4)), reservation_px; base_half_spread_bps (c1),
    inventory_risk_bps ((Delta/2) sigma c2), toxicity_premium_bps, regime_premium_bps,
    half_spread_bps; bid_burst_premium_bps, ask_burst_premium_bps; bid_depth_bps, ask_depth_bps
    (touch, after the fee floor); bid_size, ask_size (stage-5 totals, units); mode (0 two-sided,
    +1 reduce a long: asks only, -1 reduce a short: bids only); ladder arrays (num_levels,):
    bid_px, bid_qty, ask_px, ask_qty, bid_level_depth_bps, ask_level_depth_bps.
    """

    centre_bps: jax.Array
    drift_shift_bps: jax.Array
    inventory_skew_bps: jax.Array
    reservation_offset_bps: jax.Array
    reservation_px: jax.Array
    base_half_spread_bps: jax.Array
    inventory_risk_bps: jax.Array
    toxicity_premium_bps: jax.Array
    regime_premium_bps: jax.Array
    half_spread_bps: jax.Array
    bid_burst_premium_bps: jax.Array
    ask_burst_premium_bps: jax.Array
    bid_depth_bps: jax.Array
    ask_depth_bps: jax.Array
    bid_size: jax.Array
    ask_size: jax.Array
    mode: jax.Array
    bid_px: jax.Array
    bid_qty: jax.Array
    ask_px: jax.Array
    ask_qty: jax.Array
    bid_level_depth_bps: jax.Array
    ask_level_depth_bps: jax.Array


# ---------------------------------------------------------------- stage 2: reservation price
def centre_offset_bps(beliefs: Beliefs, market: Market, cfg: Config):
    """Where the quotes are centred, bps from the mid: the belief's fair value (`use_fair_value`: the
    mid's expected move over the fair-value horizon) plus the imbalance maker's lean alpha x the
    touch's imbalance (`imbalance_skew_bps`). Both are odd in the mirror image of the book."""
    p = cfg.quoter
    return p.use_fair_value * beliefs.fair_value_bps + p.imbalance_skew_bps * market.imbalance


def drift_shift_bps(mu_bps_s, spread_bps, cfg: Config):
    """mu x horizon (or the OU-consistent mu (1 - e^{-theta tau}) / theta), capped at +- cap x spread."""
    p, theta = cfg.quoter, cfg.drift.theta_mu_per_s
    tau = p.horizon_s
    ou = mu_bps_s * (1.0 - jnp.exp(-theta * tau)) / theta
    raw = jnp.where(p.use_ou_drift_shift > 0, ou, mu_bps_s * tau)
    cap = p.drift_cap_mult * spread_bps
    return jnp.clip(raw, -cap, cap) * p.use_drift


# ---------------------------------------------------------------- stage 3: half-spread
def glft_coefficients(sigma_bps_sqrt_s, cfg: Config):
    """(c1, c2) of the GLFT closed form (module docstring), xi = gamma. c1 in bps; c2 in sqrt(s)/unit."""
    p = cfg.quoter
    xd = p.gamma_per_bps_qty * p.order_size_qty
    ratio = xd / p.kappa_per_bps
    c1 = jnp.log1p(ratio) / xd
    c2 = jnp.sqrt(p.gamma_per_bps_qty / (2.0 * p.fill_intensity_per_s * p.order_size_qty * p.kappa_per_bps)
                  * (1.0 + ratio) ** (1.0 / ratio + 1.0))
    return c1, c2


def half_spread_bps(beliefs: Beliefs, cfg: Config):
    """(base c1, inventory risk (Delta/2) sigma c2, toxicity premium, regime premium, total, c2, AS scale)."""
    p = cfg.quoter
    c1, c2 = glft_coefficients(beliefs.sigma_bps_sqrt_s, cfg)
    fixed = p.fixed_half_spread_bps > 0
    base = jnp.where(fixed, p.fixed_half_spread_bps, c1)
    inv_risk = jnp.where(fixed, 0.0, 0.5 * p.order_size_qty * beliefs.sigma_bps_sqrt_s * c2)
    as_scale = jnp.where(p.expected_as_bps > 0, p.expected_as_bps, jnp.maximum(beliefs.expected_as_bps, 0.0))
    tox = beliefs.toxicity * as_scale * p.use_toxicity
    # both trends share one premium (validated): P(down) + P(up) first, so that mirroring the world,
    # which swaps them, cannot change the sum's last bit (a fused multiply-add would, term by term)
    prem, pr = jnp.asarray(p.regime_premium_bps), beliefs.p_regime
    regime = (prem[0] * (pr[..., 0] + pr[..., 1]) + prem[2] * pr[..., 2] + prem[3] * pr[..., 3]) * p.use_regime
    return base, inv_risk, tox, regime, base + inv_risk + tox + regime, c2, as_scale


# ---------------------------------------------------------------- stage 4: asymmetric depths
SIDES = (1.0, -1.0)
"""The quote's sides as signs: +1 the bid (we buy), -1 the ask (we sell). Every rule below is
written once over this sign, so that mirroring the world (position, drift, p_down, burst side)
swaps bid and ask exactly (tests/online/test_mirror.py)."""


def touch_depths(half_spread, reservation_offset, bid_burst, ask_burst, fee_bps):
    """half - s x offset + burst_s for s = +1 (bid), -1 (ask), each floored at the fee.

    offset = drift_shift - inventory_skew (negative when bearish and/or long), so the spec's
    "half + shift + skew + burst" on the bid and "half - shift - skew" on the ask.
    """
    side = jnp.asarray(SIDES)
    depth = jnp.maximum(half_spread - side * reservation_offset + jnp.stack([bid_burst, ask_burst]), fee_bps)
    return depth[0], depth[1]


# ---------------------------------------------------------------- stage 5: sizing
class QuoterState(NamedTuple):
    """The quoter's memory: reduce-only `mode` (hysteresis needs the previous mode)."""

    mode: jax.Array


def quoter_init(dtype=jnp.float64) -> QuoterState:
    return QuoterState(mode=jnp.zeros((), dtype))


def reduce_only_mode(prev_mode, p_down, position, cfg: Config):
    """Hysteresis, one rule for both signs: holding s = sign(position) (+1 long, -1 short), with
    the belief leaning against the position by s (p_down - 1/2), enter "reduce" mode s when that
    lean exceeds p_reduce - 1/2 and |position| > min_viable; stay while it is at least p_resume -
    1/2 and the position is still above min_viable. (Long: in above p_down 0.85, out below 0.70;
    short: in below 0.15, out above 0.30.)"""
    p = cfg.quoter
    s = jnp.sign(position)
    against = s * (p_down - 0.5)
    big = s * position > p.min_viable_size_qty
    enter = (against > p.p_reduce - 0.5) & big
    stay = (prev_mode == s) & (against >= p.p_resume - 0.5) & big
    mode = jnp.where(enter | stay, s, MODE_TWO_SIDED)
    return (mode * p.use_reduce_only).astype(jnp.asarray(p_down).dtype)


def sizing_lean(p_down, drift_magnitude_bps_s, half_spread, cfg: Config):
    """How far the sizes lean on the belief: (p_down - 0.5) x clip(E|mu| horizon / half-spread, 0, 1),
    in [-1/2, 1/2] (0: symmetric sizes).

    The spec sizes by p_down alone; but knowing the sign of a drift too small to move the price by
    a half-spread over the horizon is worth nothing, and leaning on it only builds inventory (seen
    in the `quiet` scenario). In a trend E|mu| horizon >> half-spread and this is the spec's rule.
    """
    p = cfg.quoter
    weight = jnp.clip(drift_magnitude_bps_s * p.horizon_s / jnp.maximum(half_spread, 1e-9), 0.0, 1.0)
    return jnp.where(p.use_directional_sizing > 0, (p_down - 0.5) * weight, 0.0)


def side_sizes(lean, position, mode, cfg: Config):
    """Per side s (+1 bid, -1 ask): base x (1/2 - s lean) x capacity_s, capacity_s = clip(1 - s q /
    max_position, 0, 1) (the spec's base (1 - p_down) on the bid and base p_down on the ask).
    Reduce-only mode m = sign of the position reduced: the side adding to it (s = m) gets 0, the
    other min(|q|, max_reduce). Returns (bid, ask)."""
    p = cfg.quoter
    side = jnp.asarray(SIDES)
    cap = jnp.clip(1.0 - side * position / p.max_position_qty, 0.0, 1.0)
    size = p.order_size_qty * (0.5 - side * lean) * cap
    reduce = jnp.minimum(jnp.abs(position), p.max_reduce_size_qty)
    size = jnp.where(mode == side, 0.0, jnp.where(mode == -side, reduce, size))
    return size[0], size[1]


# ---------------------------------------------------------------- stage 6: ladder
def _grid_tolerance(x):
    """How far from a grid point (in grid units) a value may land by rounding alone and still count as
    on it: 1e-9, or 64 units in the last place of x where that is more. An absolute 1e-9 alone moved a
    price exactly on a 1e-6 grid at 100 (x ~ 1e8, where one float step is 1.5e-8) one tick out; the
    floor of 1e-9 covers the error a size accumulates through the ladder's split."""
    x = jnp.asarray(x)
    return jnp.maximum(1e-9, 64.0 * jnp.finfo(x.dtype).eps * jnp.abs(x))


def round_size(x, sz_decimals):
    """Floor to sz_decimals (never quote more than allowed)."""
    scale = 10.0**sz_decimals
    y = x * scale
    return jnp.floor(y + _grid_tolerance(y)) / scale


def price_step(px, cfg: Config):
    """The coarsest of: tick, 5-significant-figure step at this price, 10^-price_decimals."""
    p = cfg.venue
    sig = jnp.where(p.max_sig_figs > 0, 10.0 ** (jnp.floor(jnp.log10(px)) - (p.max_sig_figs - 1.0)), 0.0)
    return jnp.maximum(jnp.maximum(p.tick_size_px, sig), 10.0 ** (-p.price_decimals))


def round_price(px, is_bid, cfg: Config):
    """Bids round down and asks up (away from the market), onto the venue's price grid."""
    step = price_step(px, cfg)
    x = px / step
    tol = _grid_tolerance(x)
    return jnp.where(is_bid, jnp.floor(x + tol), jnp.ceil(x - tol)) * step


def passive_prices(px, market: Market, cfg: Config):
    """The ladder's prices (2, levels: bids then asks) on the venue's grid, none crossing the book: a
    bid at most one price step below the best ask, an ask at least one above the best bid (a
    post-only order; the fee floor keeps depths positive, but a fair value beyond the touch or a
    rebate could otherwise take liquidity). One rule over the side's sign."""
    side = jnp.asarray(SIDES, px.dtype)[:, None]
    rounded = round_price(px, side > 0, cfg)
    opposite = jnp.stack([market.best_ask_px, market.best_bid_px])[:, None]
    limit = round_price(opposite - side * price_step(opposite, cfg), side > 0, cfg)
    return jnp.where(side > 0, jnp.minimum(rounded, limit), jnp.maximum(rounded, limit))


def ladder_weights(depths_bps, toxicity, as_scale_bps, position_term_bps, cfg: Config):
    """Softmax over levels of the utility per unit quoted (spec stage 6):
    P(fill at d) x (edge(d) - expected AS(d) + position term), with edge = d - fee,
    expected AS = pi x AS x e^{-d / as_profile_depth}, P(fill) = e^{-kappa d}."""
    p = cfg.quoter
    edge = depths_bps - cfg.venue.maker_fee_bps
    exp_as = toxicity * as_scale_bps * jnp.exp(-depths_bps / p.as_profile_depth_bps)
    utility = jnp.exp(-p.kappa_per_bps * depths_bps) * (edge - exp_as + position_term_bps)
    return jax.nn.softmax(utility / p.ladder_temperature_bps)


def allocate(total, weights, sz_decimals):
    """Split `total` by weights, floor each level to sz_decimals, put the rounding remainder on the
    touch: the ladder sums exactly to the (rounded) stage-5 total."""
    total = round_size(total, sz_decimals)
    qty = round_size(total * weights, sz_decimals)
    return qty.at[0].add(round_size(total - jnp.sum(qty), sz_decimals))


def position_terms(beliefs: Beliefs, position, cfg: Config):
    """(bid term, ask term) in bps: the change in the inventory penalty gamma |q| sigma^2 T that one
    order of size Delta would make, gamma sigma^2 T (|q| - |q + s Delta|) for s = +1 (bid), -1
    (ask) - positive when a fill reduces the position (the spec's position_benefit), negative when
    it adds (position_cost) - inflated by (1 + |mu| T / (sigma sqrt T)): in a trend, holding
    inventory is riskier (the spec's directional position cost, stage 6).

    The spec writes the downtrend case (a long bid's cost and a long ask's benefit inflated when
    mu < 0); the rule is |mu|'s, so an uptrend or a short position is its mirror image. The spec's
    gamma |q| sigma^2 / kappa does not give bps; gamma sigma^2 T does.
    """
    p = cfg.quoter
    s = beliefs.sigma_bps_sqrt_s
    mu = beliefs.mu_bps_s * p.use_drift
    infl = 1.0 + jnp.abs(mu) * p.horizon_s / jnp.maximum(s * jnp.sqrt(p.horizon_s), 1e-12)
    side = jnp.asarray(SIDES)
    change = jnp.abs(position) - jnp.abs(position + side * p.order_size_qty)
    term = p.gamma_per_bps_qty * s**2 * p.horizon_s * infl * change
    return term[0], term[1]


# ---------------------------------------------------------------- the whole quote
def quote(beliefs: Beliefs, market: Market, position, state: QuoterState, cfg: Config,
          num_levels: int = 6) -> tuple[Quote, QuoterState]:
    """Stages 2-6: reservation, half-spread, depths, sizes and the ladder (`num_levels` per side,
    static). Returns the quote and the quoter's next state (reduce-only mode). Each side's depth,
    size and ladder come from one rule over the side's sign (`SIDES`)."""
    p = cfg.quoter
    centre = centre_offset_bps(beliefs, market, cfg)
    shift = drift_shift_bps(beliefs.mu_bps_s, market.spread_bps, cfg)
    base, inv_risk, tox, regime, half, c2, as_scale = half_spread_bps(beliefs, cfg)
    skew = position * beliefs.sigma_bps_sqrt_s * c2 * p.use_inventory_skew
    offset = centre + shift - skew
    side = jnp.asarray(SIDES, offset.dtype)
    burst = jnp.where(beliefs.burst_side == side, p.burst_premium_bps, 0.0) * beliefs.burst * p.use_burst_premium
    bid_depth, ask_depth = touch_depths(half, offset, burst[0], burst[1], cfg.venue.maker_fee_bps)
    mode = reduce_only_mode(state.mode, beliefs.p_down, position, cfg)
    bid_size, ask_size = side_sizes(sizing_lean(beliefs.p_down, beliefs.drift_magnitude_bps_s, half, cfg),
                                    position, mode, cfg)

    levels = jnp.arange(num_levels, dtype=bid_depth.dtype) * p.level_spacing_bps
    depths = jnp.stack([bid_depth, ask_depth])[:, None] + levels[None, :]
    terms = jnp.stack(position_terms(beliefs, position, cfg))
    weights = jax.vmap(lambda d, t: ladder_weights(d, beliefs.toxicity, as_scale, t, cfg))(depths, terms)
    mid = market.mid_px
    px = passive_prices(mid * (1.0 - side[:, None] * depths / 1e4), market, cfg)
    qty = jax.vmap(lambda total, w: allocate(total, w, cfg.venue.sz_decimals))(jnp.stack([bid_size, ask_size]),
                                                                              weights)
    quote_ = Quote(
        centre_bps=centre, drift_shift_bps=shift, inventory_skew_bps=skew, reservation_offset_bps=offset,
        reservation_px=mid * (1.0 + offset / 1e4), base_half_spread_bps=base, inventory_risk_bps=inv_risk,
        toxicity_premium_bps=tox, regime_premium_bps=regime, half_spread_bps=half,
        bid_burst_premium_bps=burst[0], ask_burst_premium_bps=burst[1],
        bid_depth_bps=bid_depth, ask_depth_bps=ask_depth, bid_size=bid_size, ask_size=ask_size, mode=mode,
        bid_px=px[0], bid_qty=qty[0], ask_px=px[1], ask_qty=qty[1],
        bid_level_depth_bps=depths[0], ask_level_depth_bps=depths[1],
    )
    return quote_, QuoterState(mode=mode)
