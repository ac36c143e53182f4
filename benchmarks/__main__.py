"""Run every benchmark module and print its report: `python -m benchmarks [--smoke] [name ...]`.

`--smoke` runs each module's `smoke()` instead: the same code paths on tiny inputs, in seconds, so
that CI (`.ci/run`) notices when a benchmark no longer runs; its figures mean nothing."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import benchmarks


def main(args: list[str]) -> None:
    smoke = "--smoke" in args
    names = [a for a in args if a != "--smoke"]
    found = sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name.startswith("bench_"))
    for name in names or found:
        mod = importlib.import_module(f"benchmarks.{name if name.startswith('bench_') else 'bench_' + name}")
        if smoke and not hasattr(mod, "smoke"):
            continue
        print(f"== {mod.__name__}{' (smoke)' if smoke else ''}: {mod.__doc__.strip().splitlines()[0]}")
        mod.smoke() if smoke else mod.run()
        print()


if __name__ == "__main__":
    main(sys.argv[1:])
