"""Run the benchmark modules and print their reports:
`python -m benchmarks [--smoke] [--json PATH] [name ...]`.

Without names every `bench_*` module runs except `bench_fit` (the offline fits take most of an
hour: `make bench-fit`, or name it). `--smoke` runs each module's `smoke()` instead: the same code
paths on tiny inputs, in seconds, so that CI (`.ci/run`) notices when a benchmark no longer runs;
its figures mean nothing. `--json PATH` writes every figure a module returned, flattened to keys
like `bench_replay.float32.events_per_s` (units in the key names), with the device and the date.

XLA_FLAGS (one intra-op thread: the figures are per core) is set here, before any module imports
JAX; a module that set it at its own import would be too late once another module had started JAX.
"""

from __future__ import annotations

import os

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import datetime as dt  # noqa: E402
import importlib  # noqa: E402
import pkgutil  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import benchmarks  # noqa: E402

SLOW = {"bench_fit"}


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
    if json_path is not None:
        import jax
        import orjson

        doc = {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "smoke": smoke,
               "device": str(jax.devices()[0]), "backend": jax.default_backend(),
               "xla_flags": os.environ.get("XLA_FLAGS", ""), "figures": {}}
        for name, res in results.items():
            doc["figures"].update(flatten(name, res))
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
        print(f"wrote {json_path} ({len(doc['figures'])} figures, device {doc['device']})")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
