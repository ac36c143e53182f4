"""How many derived 90% intervals cover the simulator's truth, split by whether the recording
informed them (`calibration.simulation_check` counts them; the report and `bayesmm calibrate --validate-sim`
print them). Its own module so that the report reads it without importing the simulation check, which
runs calibrate."""

from __future__ import annotations

from bayesmm.calibration.derive import LEARNT_INFORMED


def is_informed(row: dict, threshold: float = LEARNT_INFORMED) -> bool:
    """Whether a coverage row's interval was informed by its recording (learnt >= threshold); a row
    with no prior to compare (learnt None) counts as not informed."""
    return row.get("learnt") is not None and row["learnt"] >= threshold


def coverage_counts(runs: list[dict], informed: float = LEARNT_INFORMED) -> dict:
    """Intervals covering the truth: of all, of those the recordings informed (learnt >= `informed`:
    the data removed at least that share of the prior's spread) and of the rest, the prior-bound.
    Why the split: a 90% credible interval covers a fixed truth 90% of the time when the data
    dominate it; a prior-bound interval covers it when the truth lies in the prior's bulk, which
    is a fact about the prior, not a check of the calibration (the decay of the mean-reverting
    market on 20 minutes: its prior covers the trending market's rate, not that market's)."""
    rows = [c for r in runs for c in r["coverage"].values()]
    inf = [c for c in rows if is_informed(c, informed)]
    rest = [c for c in rows if not is_informed(c, informed)]
    count = lambda xs: {"covered": int(sum(c["covered"] for c in xs)), "intervals": len(xs)}  # noqa: E731
    return {**count(rows), "informed": count(inf), "prior_bound": count(rest), "learnt_threshold": informed}


def coverage_summary(sim: dict) -> str:
    """One line: intervals covering the truth, in all and split informed / prior-bound (a summary
    written before the split had only the first)."""
    text = f"{sim['covered']} of {sim['intervals']} ({sim['covered'] / max(sim['intervals'], 1):.0%})"
    if "informed" in sim:
        text += (f"; of those the recordings informed (learnt >= {sim['learnt_threshold']:.0%} of the prior's "
                 f"spread) {sim['informed']['covered']} of {sim['informed']['intervals']}, prior-bound "
                 f"{sim['prior_bound']['covered']} of {sim['prior_bound']['intervals']}")
    return text
