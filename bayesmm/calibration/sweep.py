"""Spec section 8: choose what the fits cannot - the quoter's thresholds and trade-offs - by running
parameter sets through the closed loop and optimising the spec's objective (`calibration.space`).

Targets are simulated scenarios (`sim.scenarios`, many seeds; every set sees the same seeds, so
differences between sets are not market noise) and recorded sessions (the real feed with the
queue model of `sim.backtest`). A batch of parameter sets is one compiled call: the closed loop
vmapped over sets (and seeds), the same `closed_loop` and order path a single run uses.

Search: `grid` (every combination of the space's grid values), `random` (independent draws), or
`optuna`: Optuna's TPE sampler (Bayesian optimisation with a tree-structured Parzen estimator;
chosen because it handles ranges, log ranges and choices in one space, supports ask-and-tell so a
whole batch is asked before any is told - `constant_liar` keeps a batch spread out - and is
seeded, so a sweep is reproducible).

Per set the table holds the swept values, per target the metrics (mean over seeds of max
|position|, P&L, reduce-only time, fills per side; the median of the Sharpe ratios and of the
incident metrics, NaN where undefined), their mean over targets, the score and feasibility.
The winner is then re-scored with the base configuration on held-out seeds (scenarios, seeds from
HOLDOUT_FIRST_SEED) and held-out sessions; a winner that beats the base in sample but not out of
sample is flagged. The base is not one of the searched sets, so it is compared with the best set
in sample by the same rule (feasible first, then score): when no set beats it, the base is kept
(`kept_base` says so and the winner is empty). The winner's values are written onto the base
configuration (`write_config`), with the sweep in its provenance.
"""

from __future__ import annotations

import datetime as dt
import time
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np

import bayesmm.sim  # noqa: F401  (float64)
from bayesmm.calibration import golden
from bayesmm.calibration.space import Space, apply
from bayesmm.calibration.sweep_backends import SweepError, make_backend
from bayesmm.online.params import Config, default_config

HOLDOUT_FIRST_SEED = 1_000_000
"""Held-out scenario seeds start here; in-sample seeds are 0, 1, ... (never the same markets)."""

_MEAN = ("max_abs_position", "pnl", "reduce_only_fraction", "fills", "fills_bid", "fills_ask", "as_per_fill_bps",
         "fees")
_MEDIAN = ("fill_sharpe", "equity_sharpe", "sharpe_gap", "time_to_halve_s", "bearish_fills_before_reduce_only")
METRICS = _MEAN + _MEDIAN
"""Per target and set: the mean over seeds of _MEAN, the median (NaNs dropped) of _MEDIAN."""


class Target(NamedTuple):
    """Where sets are scored: a scenario (`scenario`, `seeds` from `first_seed`) or a recorded
    session (`path`, its feed on the step grid); `base` is the bot's configuration there before
    the sweep's values are applied."""

    name: str
    base: Config
    scenario: object = None
    path: object = None
    seeds: int = 1
    first_seed: int = 0

    @property
    def steps(self) -> int:
        """Closed-loop steps one set costs here (all seeds)."""
        return self.scenario.num_steps * self.seeds if self.scenario is not None else int(self.path.t_s.shape[0])


class Evaluator(NamedTuple):
    """The targets and the batch size every call is padded to (one compilation per target)."""

    targets: tuple[Target, ...]
    batch: int


def scenario_target(name: str, base: Config | None = None, quoter: str = "bayesian", matched: bool = True,
                    seeds: int = 16, first_seed: int = 0, duration_s: float | None = None) -> Target:
    """A named scenario as a target: the bot's configuration is `sim.scenarios.scenario_config`
    (the scenario's venue; the truth-matched belief unless `matched` is False, then `base`'s);
    `duration_s` shortens the scenario."""
    from bayesmm.sim.scenarios import make_scenario, scenario_config

    s = make_scenario(name)
    if duration_s is not None:
        n = int(round(duration_s / float(s.market.dt_s)))
        if not 0 < n <= s.num_steps:
            raise ValueError(f"duration_s must be in (0, {s.duration_s:g}] for {name}, got {duration_s}")
        s = s._replace(duration_s=n * float(s.market.dt_s), sweep_sells=s.sweep_sells[:n])
    return Target(name, scenario_config(s, quoter, base, matched), scenario=s, seeds=seeds, first_seed=first_seed)


def session_target(session, base: Config | None = None, quoter: str = "bayesian", name: str | None = None) -> Target:
    """A recorded session (a `Session` or a Parquet path) as a target (`calibration.venue.bot_config`)."""
    from bayesmm.calibration.venue import bot_config
    from bayesmm.events import read_session
    from bayesmm.sim.feed import feed_path

    if not hasattr(session, "meta"):
        name = name or Path(session).stem
        session = read_session(session)
    path, _ = feed_path(session)
    return Target(name or session.meta.instrument, bot_config(session, quoter, base), path=path)


def _aggregate(m: dict) -> dict:
    """Per set: the mean over seeds (axis 1) of _MEAN, the NaN-aware median of _MEDIAN."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN medians stay NaN (undefined)
        return {**{k: np.mean(m[k], axis=1) for k in _MEAN}, **{k: np.nanmedian(m[k], axis=1) for k in _MEDIAN}}


def evaluate_batch(evaluator: Evaluator, sets: list[dict]) -> dict:
    """{target name: {metric: (len(sets),) array}} for a batch of sets ({"group.field": value});
    the batch is padded to `evaluator.batch` with copies of its last set so every call has one shape."""
    from bayesmm.sim.backtest import backtest_sets
    from bayesmm.sim.batch import run_sets, stack_params
    from bayesmm.sim.run import LoopParams

    if not 0 < len(sets) <= evaluator.batch:
        raise ValueError(f"a batch holds 1 to {evaluator.batch} sets, got {len(sets)}")
    padded = list(sets) + [sets[-1]] * (evaluator.batch - len(sets))
    out = {}
    for t in evaluator.targets:
        cfgs = [apply(t.base, s) for s in padded]
        if t.scenario is not None:
            s = t.scenario
            lp = stack_params([LoopParams(c, s.exchange, np.asarray(s.market.taker_size),
                                          np.asarray(s.initial_position, float)) for c in cfgs])
            m = _aggregate(run_sets(s, lp, t.seeds, t.first_seed))
        else:
            m = backtest_sets(t.path, stack_params(cfgs))
        out[t.name] = {k: np.asarray(m[k], float)[:len(sets)] for k in METRICS}
    return out


def score_table(results: dict, space: Space):
    """{target: {metric: (n,)}} -> a DataFrame: per target `target:metric`, the mean over targets of
    each metric, per-target and mean `score`, and `feasible` (every target feasible)."""
    import pandas as pd

    obj = space.objective
    cols, scores, feasible = {}, [], []
    for name, m in results.items():
        for k in METRICS:
            cols[f"{name}:{k}"] = m[k]
        sc = obj.score(m["max_abs_position"], m["pnl"], m["reduce_only_fraction"])
        cols[f"{name}:score"] = sc
        scores.append(sc)
        feasible.append(obj.feasible(m["pnl"], m["reduce_only_fraction"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for k in METRICS:
            cols[k] = np.nanmean([results[n][k] for n in results], axis=0)
    cols["score"] = np.mean(scores, axis=0)
    cols["feasible"] = np.all(feasible, axis=0)
    return pd.DataFrame(cols)


def pareto_front(pnl, max_abs_position) -> np.ndarray:
    """Mask of the sets no other set beats on both P&L (higher) and max |position| (lower)."""
    pnl, pos = np.asarray(pnl, float), np.asarray(max_abs_position, float)
    n = len(pnl)
    front = np.ones(n, bool)
    for i in range(n):
        better = (pnl >= pnl[i]) & (pos <= pos[i]) & ((pnl > pnl[i]) | (pos < pos[i]))
        front[i] = not better.any()
    return front


def _rank(feasible, score) -> tuple:
    """The winner's rule as a sort key: feasible first, then the lower score (an undefined score last)."""
    return (not bool(feasible), float(score) if np.isfinite(score) else np.inf)


def best_index(table) -> int:
    """The winner: the feasible set of least score, else the least score overall (`_rank`)."""
    keys = [_rank(f, s) for f, s in zip(table["feasible"], table["score"], strict=True)]
    return min(range(len(keys)), key=keys.__getitem__)


def _chunks(sets: list[dict], batch: int) -> list[list[dict]]:
    return [sets[i:i + batch] for i in range(0, len(sets), batch)]


def invalid_reason(evaluator: Evaluator, values: dict) -> str | None:
    """Why a set cannot run (a cross-field rule of the config, e.g. p_resume < p_reduce, broken on
    some target's base), or None."""
    for t in evaluator.targets:
        try:
            apply(t.base, values)
        except ValueError as err:
            return f"{t.name}: {err}"
    return None


def _run(backend, evaluator, sets: list[dict], bar, fn, space: Space) -> tuple[dict, list]:
    """Evaluate `sets` in batches on the backend: ({target: {metric: (len(sets),)}} in set order, the
    reason each set is invalid or None). Invalid sets are not run; their metrics are NaN."""
    reasons = [invalid_reason(evaluator, s) for s in sets]
    ok = [i for i, r in enumerate(reasons) if r is None]
    bar.update(len(sets) - len(ok))
    names = [t.name for t in evaluator.targets]
    merged = {t: {k: np.full(len(sets), np.nan) for k in METRICS} for t in names}
    if ok:
        batches = _chunks([sets[i] for i in ok], evaluator.batch)
        parts: dict[int, dict] = {}
        best = np.inf
        for i, res in backend.run(fn, evaluator, batches):
            parts[i] = res
            bar.update(len(batches[i]))
            scores = score_table(res, space)["score"].to_numpy(float)
            if np.isfinite(scores).any():
                best = min(best, float(np.nanmin(scores)))
                bar.set_postfix(best_score=f"{best:.4g}")
        missing = [i for i in range(len(batches)) if i not in parts]
        if missing:
            raise SweepError(f"batches {missing} returned nothing")
        for t in names:
            for k in METRICS:
                merged[t][k][ok] = np.concatenate([parts[i][t][k] for i in range(len(batches))])
    return merged, reasons


def _merge(a: dict | None, b: dict) -> dict:
    if a is None:
        return b
    return {t: {k: np.concatenate([a[t][k], b[t][k]]) for k in METRICS} for t in a}


def _score_invalid(table, reasons: list) -> None:
    """An invalid set scores +inf, is infeasible, and says why."""
    bad = np.array([r is not None for r in reasons], bool)
    table.loc[bad, "score"] = np.inf
    table.loc[bad, "feasible"] = False
    table["invalid"] = [r or "" for r in reasons]


class SweepResult(NamedTuple):
    """table: one row per set (values, metrics, score, feasible, on_front); winner: the winner's
    row as a dict; check: in-sample vs held-out scores of the winner and the base, and `flag`
    (None, or why the winner is suspect); report: what `sweep.json` holds."""

    table: object
    winner: dict
    check: dict
    report: dict


ROUND_BATCHES = 2
"""Batches the Optuna search asks for before it is told their scores (one round). Fixed, not the
backend's parallelism: the sampler's proposals depend on when it learns what, so a round whose size
followed the number of workers made a seeded sweep propose other sets on Ray than locally (the
first 16 common, then 16 of 64); with the round fixed, a seeded sweep proposes the same sets, scores
and winner on any backend and any number of workers, and a round's batches run in parallel where
there are workers for them."""


def sweep(targets: list[Target], space: Space, *, search: str = "optuna", sets: int = 64, batch: int = 16,
          seed: int = 0, holdout: list[Target] | None = None, backend: str = "local", address: str | None = None,
          workers: int | None = None, retries: int = 3, progress: bool = True, evaluate=evaluate_batch,
          round_batches: int = ROUND_BATCHES) -> SweepResult:
    """Run the sweep (module docstring). `holdout`: targets for the overfitting check (default: each
    scenario target on as many seeds from HOLDOUT_FIRST_SEED). `evaluate`: the batch function (a
    test passes one that fails on purpose). `round_batches`: the Optuna search's round
    (`ROUND_BATCHES`)."""
    from tqdm.auto import tqdm

    if not targets:
        raise ValueError("a sweep needs at least one scenario or session")
    if search not in ("grid", "random", "optuna"):
        raise ValueError(f"search must be grid, random or optuna, got {search!r}")
    evaluator = Evaluator(tuple(targets), batch)
    all_sets = space.grid() if search == "grid" else space.random(sets, seed) if search == "random" else None
    total = len(all_sets) if all_sets is not None else sets
    be = make_backend(backend, address, workers, retries)
    t0 = time.perf_counter()
    try:
        with tqdm(total=total, unit="set", desc=f"sweep ({search}, {be.name})", disable=not progress) as bar:
            if all_sets is not None:
                results, reasons = _run(be, evaluator, all_sets, bar, evaluate, space)
            else:
                all_sets, results, reasons = _optuna(be, evaluator, space, sets, seed, bar, evaluate, round_batches)
        elapsed = time.perf_counter() - t0
        table = score_table(results, space)
        _score_invalid(table, reasons)
        if not np.isfinite(table["score"]).any():
            raise SweepError(f"no set could be scored (first reason: {next((r for r in reasons if r), 'NaN metrics')})")
        for k in reversed(space.keys):
            table.insert(0, k, [s[k] for s in all_sets])
        table["on_front"] = pareto_front(table["pnl"], table["max_abs_position"])
        w = best_index(table)
        winner_values = {k: all_sets[w][k] for k in space.keys}
        check = _holdout_check(targets, holdout, winner_values, space, evaluate, be)
    finally:
        be.close()
    steps = sum(t.steps for t in targets)
    report = {
        "search": search, "backend": be.name, "sets": len(all_sets), "batch": batch, "seed": seed,
        "round_batches": round_batches,
        "targets": [{"name": t.name, "kind": "scenario" if t.scenario is not None else "session",
                     "seeds": t.seeds, "first_seed": t.first_seed} for t in targets],
        "space": space.to_dict(), "winner": winner_values, "winner_score": float(table["score"][w]),
        "winner_feasible": bool(table["feasible"][w]), "feasible_sets": int(table["feasible"].sum()),
        "invalid_sets": int(sum(r is not None for r in reasons)),
        "check": check, "retried": be.retried, "seconds": elapsed, "sets_per_s": len(all_sets) / elapsed,
        "set_steps_per_s": len(all_sets) * steps / elapsed,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    ins = check["in_sample"]
    if _better(ins["base"], ins["winner"]):  # the base was not among the sets, and nothing beat it
        report["best_set"] = winner_values
        report["winner"] = {}
        report["kept_base"] = (f"no set beat the base config in sample (base score {ins['base']['score']:.4g}"
                               f"{', feasible' if ins['base']['feasible'] else ''}; best set "
                               f"{ins['winner']['score']:.4g}{', feasible' if ins['winner']['feasible'] else ''}): "
                               "the base is kept")
    return SweepResult(table, table.iloc[w].to_dict(), check, report)


def _better(a: dict, b: dict) -> bool:
    """a beats b by the winner's rule (`_rank`)."""
    return _rank(a["feasible"], a["score"]) < _rank(b["feasible"], b["score"])


def _optuna(be, evaluator, space: Space, n: int, seed: int, bar, evaluate, round_batches: int = ROUND_BATCHES):
    """Ask-and-tell TPE: each round asks `round_batches` batches, evaluates them (in parallel where the
    backend has workers), and tells the scores in the order the sets were asked for."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize",
                                sampler=optuna.samplers.TPESampler(seed=seed, constant_liar=True))
    dists = {d.key: d.distribution() for d in space.dims if d.kind != "fixed"}
    fixed = {d.key: d.value for d in space.dims if d.kind == "fixed"}
    sets: list[dict] = []
    reasons: list = []
    results = None
    while len(sets) < n:
        size = min(evaluator.batch * round_batches, n - len(sets))
        trials = [study.ask(dists) for _ in range(size)]
        round_sets = [{k: (fixed[k] if k in fixed else t.params[k]) for k in space.keys} for t in trials]
        res, why = _run(be, evaluator, round_sets, bar, evaluate, space)
        table = score_table(res, space)
        for t, sc, r in zip(trials, table["score"], why, strict=True):
            if r is not None or not np.isfinite(sc):  # TPE learns nothing from a set that could not run
                study.tell(t, state=optuna.trial.TrialState.FAIL)
            else:
                study.tell(t, float(sc))
        sets += round_sets
        reasons += why
        results = _merge(results, res)
    return sets, results, reasons


def held_out_seeds(targets: list[Target], seeds: int | None = None) -> list[Target]:
    """The scenario targets on held-out seeds (from HOLDOUT_FIRST_SEED; `seeds` of them, default as
    many as in sample); session targets have no seeds to hold out and are left out."""
    return [t._replace(first_seed=HOLDOUT_FIRST_SEED, seeds=t.seeds if seeds is None else seeds)
            for t in targets if t.scenario is not None]


def _holdout_check(targets, holdout, winner: dict, space: Space, evaluate, be) -> dict:
    """The winner and the base ({}: no swept value) in sample and on held-out targets."""
    if holdout is None:
        holdout = held_out_seeds(targets)
    pair = [winner, {}]

    def scores(ts):
        res = evaluate(Evaluator(tuple(ts), 2), pair)
        table = score_table(res, space)
        return {who: {"score": float(table["score"][i]), "feasible": bool(table["feasible"][i]),
                      **{k: float(table[k][i]) for k in ("max_abs_position", "pnl", "reduce_only_fraction")}}
                for i, who in enumerate(("winner", "base"))}

    out = {"in_sample": scores(targets)}
    if holdout:
        out["held_out"] = scores(holdout)
        out["held_out_targets"] = [{"name": t.name, "seeds": t.seeds, "first_seed": t.first_seed} for t in holdout]
        ins, oos = out["in_sample"], out["held_out"]
        beats_in = ins["winner"]["score"] < ins["base"]["score"]
        beats_out = oos["winner"]["score"] < oos["base"]["score"]
        out["flag"] = ("the winner beats the base in sample but not on held-out data: it wins only in sample"
                       if beats_in and not beats_out else None)
    else:
        out["flag"] = "no held-out data (recorded sessions only and no --holdout): the winner is unchecked"
    return out


def winner_config(base: Config | None, result: SweepResult) -> Config:
    """`base` (default: the spec's defaults) with the winner's values (none when the base was kept)."""
    return apply(default_config() if base is None else base, result.report["winner"])


def plot_frontier(table, out: str | Path, check: dict | None = None, title: str = "sweep") -> Path:
    """P&L vs max |position| of every set: feasible ones coloured, the Pareto front joined, the
    winner starred."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bayesmm.events.plot import save_figure

    fig, ax = plt.subplots(figsize=(7, 5))
    x, y = table["max_abs_position"].to_numpy(float), table["pnl"].to_numpy(float)
    feas, front = table["feasible"].to_numpy(bool), table["on_front"].to_numpy(bool)
    ax.scatter(x[~feas], y[~feas], s=14, color="lightgrey", label="infeasible")
    ax.scatter(x[feas], y[feas], s=14, color="tab:blue", label="feasible (P&L and reduce-only constraints met)")
    order = np.argsort(x[front])
    ax.plot(x[front][order], y[front][order], color="tab:orange", lw=1.2, label="Pareto front")
    w = best_index(table)
    ax.scatter([x[w]], [y[w]], marker="*", s=200, color="tab:red", zorder=3, label="winner")
    if check and "in_sample" in check:
        b = check["in_sample"]["base"]
        ax.scatter([b["max_abs_position"]], [b["pnl"]], marker="X", s=90, color="k", zorder=3, label="base config")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel("max |position| (mean over seeds and targets)")
    ax.set_ylabel("P&L (mean)")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="best")
    return save_figure(fig, out)


def write_outputs(result: SweepResult, out_dir: str | Path, base: Config | None = None,
                  base_provenance: dict | None = None, write_config: bool = False) -> list[Path]:
    """DIR/sets.parquet, DIR/frontier.png, DIR/sweep.json and, with `write_config`, DIR/config.toml
    (the winner on `base`, provenance: the base's plus the sweep) with its golden vectors beside it
    (DIR/golden.parquet, the hand-made streams: `check-config` re-runs them)."""
    import orjson

    from bayesmm.calibration.config import write_config as write_toml
    from bayesmm.events.atomic import write_atomic

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "sets.parquet"]
    result.table.to_parquet(paths[0])
    paths.append(plot_frontier(result.table, out_dir / "frontier.png", result.check,
                               f"sweep ({result.report['search']}, {result.report['sets']} sets)"))
    paths.append(write_atomic(out_dir / "sweep.json", orjson.dumps(
        result.report, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY).decode()))
    if write_config:
        r = result.report
        prov = {**(base_provenance or {}), "sweep": {
            "date": r["date"], "search": r["search"], "sets": r["sets"], "seed": r["seed"], "space": r["space"],
            "targets": r["targets"], "winner": r["winner"], "score_in_sample": r["check"]["in_sample"]["winner"],
            "base_in_sample": r["check"]["in_sample"]["base"],
            "score_held_out": r["check"].get("held_out", {}).get("winner"),
            "base_held_out": r["check"].get("held_out", {}).get("base"), "flag": r["check"]["flag"],
            "kept_base": r.get("kept_base")}}
        cfg = winner_config(base, result)
        paths.append(write_toml(cfg, out_dir / "config.toml", prov))
        paths.append(golden.write(golden.build(cfg), out_dir / "golden.parquet"))  # beside every config written
    return paths
