"""JAX's persistent compilation cache, turned on for the command line, the test suite, the
notebooks and `make demo`.

Why: a fit here spends most of its time compiling, not sampling. NumPyro initialises a model and
the posterior predictive checks replicate it op by op (every primitive is compiled on its first
call), every process starts with nothing compiled, and a long one must drop its in-memory code now
and then (`models.fit.release_compiled_code`: compiled code holds memory mappings, and ~8 NUTS fits
in one process reached the kernel's limit), after which the next fit compiles it all again.
`benchmarks/bench_compile_cache.py` measures it (`bayesmm fit` of the regime HMM by SVI with its
checks, each a fresh process: without the cache, with an empty one - every compilation is also
serialised and written - and warm; `make bench` writes the timings to out/bench.json and
docs/benchmarks.md). What pays for the empty cache is reuse across processes: the suite's two
workers, its notebook kernels and CLI subprocesses compile the same programs. Results are unchanged:
the cache stores the same executables, keyed by JAX on the program, the compile options, the
backend and the JAX version.

A cache hit needs the same program, and NumPyro's `Trace_ELBO` sums the ELBO's sites in the order
of a Python set of their names, which changes with the string-hash seed: with Python's default
random seed each process traces the SVI loop in another order (a miss: the regime model's
program compiled again, and rounding that differs between runs). The Makefile runs demo, test and lab with
PYTHONHASHSEED=0, so a fit is the same program and the same numbers every run.

The cache is a directory of small files (a few MB per model). `enable` takes it from
JAX_COMPILATION_CACHE_DIR when set (the Makefile sets it to .jax-cache in the checkout), else
~/.cache/bayesmm/jax; BAYESMM_JAX_CACHE=0 turns it off. Library code never turns it on by itself:
a program that imports bayesmm's modules decides.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

ENV_DIR = "JAX_COMPILATION_CACHE_DIR"
ENV_SWITCH = "BAYESMM_JAX_CACHE"


def default_dir() -> Path:
    """$JAX_COMPILATION_CACHE_DIR, else $XDG_CACHE_HOME/bayesmm/jax (~/.cache/bayesmm/jax)."""
    if os.environ.get(ENV_DIR):
        return Path(os.environ[ENV_DIR])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bayesmm" / "jax"


def enable(path: str | Path | None = None, export: bool = False) -> Path | None:
    """Turn the persistent cache on for this process, caching every compilation (JAX's default
    keeps only those that took over a second; here the many small ones are the cost). Returns the
    directory, or None when BAYESMM_JAX_CACHE=0 (then the cache is off even where
    JAX_COMPILATION_CACHE_DIR is set). `export`: also set the environment variables, so
    that processes started from this one (notebook kernels, the CLI in a subprocess) use it too."""
    if os.environ.get(ENV_SWITCH, "1") == "0":
        # off means off: JAX also reads JAX_COMPILATION_CACHE_DIR from the environment by itself
        # (the Makefile exports it), and would then still cache what took over a second to compile
        _use_dir(None)
        return None
    where = Path(path) if path is not None else default_dir()
    where.mkdir(parents=True, exist_ok=True)
    _use_dir(str(where))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    if export:
        os.environ[ENV_DIR] = str(where)
        os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
        os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
    return where


def _use_dir(where: str | None) -> None:
    """Point JAX's persistent cache at `where` (None: off), closing the one it had open: JAX opens
    its cache once, on the first compilation, and would keep writing to the old directory."""
    if jax.config.jax_compilation_cache_dir not in (None, where):
        from jax.experimental.compilation_cache import compilation_cache

        compilation_cache.reset_cache()
    jax.config.update("jax_compilation_cache_dir", where)
