"""The sweep's parameter space and objective (spec section 8), read from a TOML file shaped like
`config.toml`: a table per config group, one entry per swept field, plus an optional [objective].

    [objective]                       # spec section 8; every key optional (defaults below)
    max_reduce_only_fraction = 0.3    # constraint: time in reduce-only below this share
    min_pnl = 0.0                     # constraint: total P&L above this (quote currency)
    pnl_weight = 1.0                  # penalty: position units per unit of P&L short of min_pnl
    reduce_only_weight = 100.0        # penalty: position units per unit of share over the cap

    [quoter]
    gamma_per_bps_qty = { low = 0.003, high = 0.1, log = true, points = 4 }   # a range
    p_reduce = { choices = [0.8, 0.85, 0.9] }                                  # a choice
    burst_premium_bps = 5.0                                                    # fixed

A range is sampled uniformly on its (log) scale; `points` is its number of grid values for the
grid search (default 3). Every value is checked against the code's own ranges
(`online.params.RANGES`) before anything runs, and an unknown group or field is an error naming
the nearest match. Vector and matrix fields (per-regime premia, the generator) are not swept:
their structure has constraints (equal trend premia, rows summing to 0) a scalar range cannot keep.

The objective is the spec's: minimise max |position| subject to P&L > min_pnl and reduce-only
time < max_reduce_only_fraction. `score` is max |position| plus weighted constraint violations
(what the optimiser minimises); the winner is the feasible set of least score, else - flagged -
the least score overall.
"""

from __future__ import annotations

import difflib
import itertools
import math
import tomllib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from bayesmm.online.params import GROUPS, RANGES, Config, replace


class SpaceError(ValueError):
    """A space file that cannot be swept; the message names the entry."""


class Dim(NamedTuple):
    """One swept field: `key` ("group.field") and exactly one of a range (low, high, log, points),
    `choices`, or a fixed `value`."""

    key: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    points: int = 3
    choices: tuple | None = None
    value: float | None = None

    @property
    def kind(self) -> str:
        return "fixed" if self.value is not None else "choice" if self.choices is not None else "range"

    def grid(self) -> list[float]:
        """The values the grid search takes."""
        if self.kind == "fixed":
            return [self.value]
        if self.kind == "choice":
            return list(self.choices)
        if self.log:
            return [float(v) for v in np.geomspace(self.low, self.high, self.points)]
        return [float(v) for v in np.linspace(self.low, self.high, self.points)]

    def sample(self, rng: np.random.Generator) -> float:
        """One value drawn uniformly (on the log scale for a log range; among the choices)."""
        if self.kind == "fixed":
            return self.value
        if self.kind == "choice":
            return self.choices[int(rng.integers(len(self.choices)))]
        if self.log:
            return float(np.exp(rng.uniform(np.log(self.low), np.log(self.high))))
        return float(rng.uniform(self.low, self.high))

    def distribution(self):
        """The Optuna distribution of this dimension (None when fixed)."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution

        if self.kind == "fixed":
            return None
        if self.kind == "choice":
            return CategoricalDistribution(list(self.choices))
        return FloatDistribution(self.low, self.high, log=self.log)


class Objective(NamedTuple):
    """The spec's objective (module docstring); weights in position units."""

    max_reduce_only_fraction: float = 0.3
    min_pnl: float = 0.0
    pnl_weight: float = 1.0
    reduce_only_weight: float = 100.0

    def score(self, max_abs_position, pnl, reduce_only_fraction):
        """max |position| + pnl_weight x P&L shortfall + reduce_only_weight x reduce-only excess
        (lower is better); arrays broadcast."""
        return (np.asarray(max_abs_position, float)
                + self.pnl_weight * np.maximum(self.min_pnl - np.asarray(pnl, float), 0.0)
                + self.reduce_only_weight * np.maximum(np.asarray(reduce_only_fraction, float)
                                                       - self.max_reduce_only_fraction, 0.0))

    def feasible(self, pnl, reduce_only_fraction):
        """Both constraints hold (strictly, as the spec writes them)."""
        return (np.asarray(pnl, float) > self.min_pnl) & (
            np.asarray(reduce_only_fraction, float) < self.max_reduce_only_fraction)


class Space(NamedTuple):
    """The dimensions (in file order) and the objective."""

    dims: tuple[Dim, ...]
    objective: Objective = Objective()

    @property
    def keys(self) -> list[str]:
        return [d.key for d in self.dims]

    def grid(self) -> list[dict]:
        """Every combination of the dimensions' grid values."""
        return [dict(zip(self.keys, combo, strict=True)) for combo in itertools.product(*(d.grid() for d in self.dims))]

    def grid_size(self) -> int:
        return math.prod(len(d.grid()) for d in self.dims)

    def random(self, n: int, seed: int = 0) -> list[dict]:
        """`n` sets drawn independently (`Dim.sample`)."""
        rng = np.random.default_rng(seed)
        return [{d.key: d.sample(rng) for d in self.dims} for _ in range(n)]

    def to_dict(self) -> dict:
        """The space as plain data (for provenance and reports)."""
        out: dict = {"objective": self.objective._asdict()}
        for d in self.dims:
            group, field = d.key.split(".")
            spec = ({"value": d.value} if d.kind == "fixed" else {"choices": list(d.choices)} if d.kind == "choice"
                    else {"low": d.low, "high": d.high, "log": d.log, "points": d.points})
            out.setdefault(group, {})[field] = spec
        return out


def apply(cfg: Config, values: dict) -> Config:
    """`cfg` with {"group.field": value} applied (validated by `online.params.replace`)."""
    groups: dict = {}
    for key, v in values.items():
        group, field = key.split(".")
        groups.setdefault(group, {})[field] = float(v)
    return replace(cfg, **groups) if groups else cfg


def _near(name: str, options) -> str:
    close = difflib.get_close_matches(name, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_value(key: str, v, where: str) -> float:
    group, field = key.split(".")
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise SpaceError(f"{where}: {key} = {v!r} is not a finite number")
    rng = RANGES[group][field]
    if not rng.contains(float(v)):
        raise SpaceError(f"{where}: {key} = {v!r} is outside the parameter's range {rng.describe()}")
    return float(v)


def _dim(group: str, field: str, spec, where: str) -> Dim:
    key = f"{group}.{field}"
    if field not in GROUPS[group]._fields:
        raise SpaceError(f"{where}: [{group}] has no field {field!r}{_near(field, GROUPS[group]._fields)}")
    if RANGES[group][field].kind in ("vector", "horizons", "matrix"):
        raise SpaceError(f"{where}: {key} is a {RANGES[group][field].kind}; only scalar fields are swept")
    if not isinstance(spec, dict):
        return Dim(key, value=_check_value(key, spec, where))
    unknown = set(spec) - {"low", "high", "log", "points", "choices", "value"}
    if unknown:
        raise SpaceError(f"{where}: {key} has unknown keys {sorted(unknown)} (a range: low, high, log, points; "
                         "or choices; or value)")
    if "value" in spec:
        return Dim(key, value=_check_value(key, spec["value"], where))
    if "choices" in spec:
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise SpaceError(f"{where}: {key}.choices must be a non-empty list")
        return Dim(key, choices=tuple(_check_value(key, c, where) for c in choices))
    if "low" not in spec or "high" not in spec:
        raise SpaceError(f"{where}: {key} needs low and high (or choices, or value)")
    low, high = _check_value(key, spec["low"], where), _check_value(key, spec["high"], where)
    if not low < high:
        raise SpaceError(f"{where}: {key} needs low < high, got {low} and {high}")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise SpaceError(f"{where}: {key}.log must be true or false")
    if log and low <= 0:
        raise SpaceError(f"{where}: {key} is on a log scale, so low must be > 0")
    if RANGES[group][field].kind == "flag":
        raise SpaceError(f"{where}: {key} is an on/off flag; sweep it with choices = [0, 1]")
    points = spec.get("points", 3)
    if isinstance(points, bool) or not isinstance(points, int) or points < 2:
        raise SpaceError(f"{where}: {key}.points must be an integer >= 2")
    return Dim(key, low, high, log, points)


def space_from_dict(doc: dict, where: str = "space") -> Space:
    """A `Space` from the parsed TOML document (module docstring for its shape)."""
    doc = dict(doc)
    objective = doc.pop("objective", {})
    if not isinstance(objective, dict):
        raise SpaceError(f"{where}: [objective] must be a table")
    bad = set(objective) - set(Objective._fields)
    if bad:
        raise SpaceError(f"{where}: [objective] has unknown keys {sorted(bad)} (known: {list(Objective._fields)})")
    obj = Objective(**{k: float(v) for k, v in objective.items()})
    if not 0 < obj.max_reduce_only_fraction <= 1 or obj.pnl_weight < 0 or obj.reduce_only_weight < 0:
        raise SpaceError(f"{where}: [objective] needs 0 < max_reduce_only_fraction <= 1 and weights >= 0")
    dims = []
    for group, fields in doc.items():
        if group not in GROUPS:
            raise SpaceError(f"{where}: unknown table [{group}]{_near(group, [*GROUPS, 'objective'])}")
        if not isinstance(fields, dict):
            raise SpaceError(f"{where}: [{group}] must be a table of fields")
        dims += [_dim(group, field, spec, where) for field, spec in fields.items()]
    if not any(d.kind != "fixed" for d in dims):
        raise SpaceError(f"{where}: nothing to sweep (every entry is fixed, or there are none)")
    return Space(tuple(dims), obj)


def load_space(path: str | Path) -> Space:
    """Read and check a space file."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SpaceError(f"{path}: no such space file") from None
    except tomllib.TOMLDecodeError as err:
        raise SpaceError(f"{path}: not valid TOML: {err}") from None
    return space_from_dict(doc, str(path))
