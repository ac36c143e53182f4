"""The one gate a fit must pass before anything is derived from it (`Gate`): the sampler's
diagnostics (r_hat, bulk and tail ESS, divergences, BFMI: NUTS fits; the Pareto k-hat of the guide's
importance ratios: SVI fits) and the posterior predictive p-values of the statistics a model answers
for. `models.fit.check` applies its diagnostics to one fit; `calibration.calibrate` applies all of it
to every fit and refuses to export when it fails."""

from __future__ import annotations

from dataclasses import dataclass

PPC_RANGE = (0.01, 0.99)
"""The band every gated posterior predictive p-value must lie in (`Gate`'s default)."""


@dataclass(frozen=True)
class Gate:
    """Attributes: max_rhat (1.01), min_ess (100, bulk and tail), max_divergences (0), min_bfmi (0.3:
    below it the sampler's momentum resampling explores the energy poorly, Betancourt 2016), max_khat
    (0.7: SVI fits; above it the ratios p(theta, y) / q(theta) at the guide's draws are so
    heavy-tailed that the guide misses posterior mass, Yao et al. 2018; `models.fit.psis_khat`), and
    the interval [ppc_low, ppc_high] = [0.01, 0.99] every gated posterior predictive p-value must lie in."""

    max_rhat: float = 1.01
    min_ess: float = 100.0
    max_divergences: int = 0
    min_bfmi: float = 0.3
    max_khat: float = 0.7
    ppc_low: float = PPC_RANGE[0]
    ppc_high: float = PPC_RANGE[1]


def diagnostic_failures(d: dict, gate: Gate = Gate()) -> list[str]:
    """What a fit's diagnostics (`models.fit.diagnostics`) fail, one line each: the sampler's (NUTS
    fits), the guide's Pareto k-hat (SVI fits; one fitted before it was recorded has none to check)."""
    if d.get("method") == "svi":
        khat = d.get("psis_khat")
        return ([] if khat is None or khat <= gate.max_khat
                else [f"Pareto k-hat {khat:.2f} > {gate.max_khat} (the SVI guide misses posterior mass)"])
    if d.get("method") != "nuts":
        return []
    out = []
    if not d["max_rhat"] <= gate.max_rhat:
        out.append(f"r_hat {d['max_rhat']:.3f} > {gate.max_rhat}")
    for k in ("min_ess_bulk", "min_ess_tail"):
        if not d[k] >= gate.min_ess:
            out.append(f"{k.removeprefix('min_').replace('_', ' ')} {d[k]:.0f} < {gate.min_ess:g}")
    if d["divergences"] > gate.max_divergences:
        out.append(f"{d['divergences']} divergent transitions")
    if "min_bfmi" in d and not d["min_bfmi"] >= gate.min_bfmi:
        out.append(f"BFMI {d['min_bfmi']:.2f} < {gate.min_bfmi}")
    return out


def ppc_failures(ppc: dict, gate: Gate = Gate()) -> list[str]:
    """The gated posterior predictive p-values outside [ppc_low, ppc_high], one line each."""
    return [f"PPC p-value of {stat} = {v['ppp']:.2f} outside [{gate.ppc_low}, {gate.ppc_high}]"
            for stat, v in ppc.items() if v.get("gated", True) and not gate.ppc_low <= v["ppp"] <= gate.ppc_high]


def gate_failures(fit_report: dict, gate: Gate = Gate()) -> list[str]:
    """Every way the fits of a report ({model: {"diagnostics", "ppc"}}) fail the gate, as
    '<model>: <what>' lines (empty when they pass)."""
    return [f"{name}: {x}" for name, r in fit_report.items()
            for x in diagnostic_failures(r["diagnostics"], gate) + ppc_failures(r.get("ppc", {}), gate)]
