"""Run the benchmark modules and print their reports:
`python -m benchmarks [--smoke] [--json PATH] [name ...]`.

Without names every `bench_*` module runs except `bench_fit` (the offline fits take most of an
hour: `make bench-fit`, or name it). `--smoke` runs each module's `smoke()` instead: the same code
paths on tiny inputs, in seconds, so that CI (`.ci/run`) notices when a benchmark no longer runs;
its figures mean nothing. `--json PATH` writes every figure a module returned, flattened to keys
like `bench_replay.float32.events_per_s` (units in the key names), with the device and the date.

XLA_FLAGS (Eigen's thread pool off, so that a figure is one core's; for bench_fit, also FIT_CHAINS
host devices) is set here, before any module imports JAX; a module that set it at its own import would
be too late once another module had started JAX.
"""

from __future__ import annotations

import os
import sys

FIT_CHAINS = 4
"""NUTS chains of bench_fit's aim: XLA is asked for this many host devices when bench_fit runs, so
that the chains run at once (`chain_method="parallel"`; NumPyro falls back to one after another when
there are fewer devices than chains), sharing the machine's cores."""

# (Every XLA flag needs its "--": XLA stops reading at a word without one, and ignores the rest - the
# way a device count written after "intra_op_parallelism_threads=1", which is not an XLA flag, was lost.)
_flags = "--xla_cpu_multi_thread_eigen=false"
if any(a in ("fit", "bench_fit") for a in sys.argv[1:]):
    _flags += f" --xla_force_host_platform_device_count={FIT_CHAINS}"
os.environ.setdefault("XLA_FLAGS", _flags)

import datetime as dt  # noqa: E402
import importlib  # noqa: E402
import pkgutil  # noqa: E402
from pathlib import Path  # noqa: E402

import benchmarks  # noqa: E402

SLOW = {"bench_fit"}

AIMS = (  # (figure, "min" when higher is better else "max", aim, baseline, aim_on_ratio): the aim applies to
    # the ratio over the baseline (a figure run in the same process) when aim_on_ratio, else to the figure
    ("bench_replay.float32.replay_events_per_s", "min", 10e6, "bench_replay.float32.reference_events_per_s", False),
    ("bench_replay.float64.replay_events_per_s", "min", 1e6, "bench_replay.float64.reference_events_per_s", False),
    ("bench_replay.float64.push_latency_us", "max", 10.0, "bench_replay.float64.jax_call_floor_us", False),
    ("bench_replay.float64.push_many_us_per_event", "max", 1.0, None, False),
    ("bench_closed_loop.real_file.bayesmm_msgs_per_s_backtest", "min", 1.0,
     "bench_closed_loop.real_file.hftbacktest_msgs_per_s_backtest", True),
    ("bench_closed_loop.sweep_1000.aggregate_steps_per_s", "min", 10.0,
     "bench_closed_loop.real_file.hftbacktest_steps_per_s", True),
    ("bench_ingest.full_ingest_msgs_per_s", "min", 250e3, "bench_ingest.json_decode_only_msgs_per_s", False),
)


def aims_table(figures: dict) -> list[dict]:
    """Per aim of issue 18 that this run measured: the figure, its aim, its ratio to the baseline
    measured in the same process (the reference path for the replay, an empty jitted call for push,
    hftbacktest for the closed loop, the JSON decode alone for ingest) and whether the aim is met."""
    rows = []
    for key, sense, aim, base, on_ratio in AIMS:
        if key not in figures or (on_ratio and base not in figures):
            continue
        ratio = figures[key] / figures[base] if base in figures else None
        judged = ratio if on_ratio else figures[key]
        text = f"{'>=' if sense == 'min' else '<='} {aim:g}" + (f" x {base.split('.')[-1]}" if on_ratio else "")
        rows.append({"figure": key, "value": figures[key], "ratio_to_baseline": ratio, "aim": text,
                     "met": judged >= aim if sense == "min" else judged <= aim})
    return rows


def print_aims(rows: list[dict]) -> None:
    print("== aims (issue 18): figure, value, aim, ratio to the same-process baseline, met")
    for r in rows:
        ratio = "" if r["ratio_to_baseline"] is None else f"{r['ratio_to_baseline']:.2f}x"
        met = "met" if r["met"] else "NOT met"
        print(f"  {r['figure']:<58} {r['value']:>14,.2f}  {r['aim']:<40} {ratio:>7}  {met}")


def flatten(prefix: str, value) -> dict:
    """{dotted key: number} of the numbers in a nested result (lists indexed; None and text dropped)."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out.update(flatten(f"{prefix}.{k}", v))
        return out
    if isinstance(value, list | tuple):
        out = {}
        for i, v in enumerate(value):
            out.update(flatten(f"{prefix}.{i}", v))
        return out
    if isinstance(value, bool):
        return {prefix: int(value)}
    if isinstance(value, int | float):
        return {prefix: value}
    if hasattr(value, "item"):
        return {prefix: value.item()}
    return {}


def main(args: list[str]) -> dict:
    smoke = "--smoke" in args
    json_path = None
    if "--json" in args:
        i = args.index("--json")
        json_path = Path(args[i + 1])
        args = args[:i] + args[i + 2:]
    names = [a for a in args if a != "--smoke"]
    found = sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name.startswith("bench_"))
    results = {}
    for name in names or [n for n in found if n not in SLOW]:
        mod = importlib.import_module(f"benchmarks.{name if name.startswith('bench_') else 'bench_' + name}")
        if smoke and not hasattr(mod, "smoke"):
            continue
        print(f"== {mod.__name__}{' (smoke)' if smoke else ''}: {mod.__doc__.strip().splitlines()[0]}")
        results[mod.__name__.split(".")[-1]] = mod.smoke() if smoke else mod.run()
        print()
    figures = {}
    for name, res in results.items():
        figures.update(flatten(name, res))
    aims = [] if smoke else aims_table(figures)
    if aims:
        print_aims(aims)
    if json_path is not None:
        import jax
        import orjson

        doc = {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "smoke": smoke,
               "device": str(jax.devices()[0]), "backend": jax.default_backend(),
               "xla_flags": os.environ.get("XLA_FLAGS", ""), "figures": figures, "aims": aims}
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
        print(f"wrote {json_path} ({len(doc['figures'])} figures, device {doc['device']})")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
