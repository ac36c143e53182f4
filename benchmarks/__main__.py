"""Run every benchmark module and print its report: `python -m benchmarks [name ...]`."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import benchmarks


def main(names: list[str]) -> None:
    found = sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name.startswith("bench_"))
    for name in names or found:
        mod = importlib.import_module(f"benchmarks.{name if name.startswith('bench_') else 'bench_' + name}")
        print(f"== {mod.__name__}: {mod.__doc__.strip().splitlines()[0]}")
        mod.run()
        print()


if __name__ == "__main__":
    main(sys.argv[1:])
