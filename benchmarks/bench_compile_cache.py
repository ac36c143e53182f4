"""The persistent compilation cache: a fit's wall time without it, with it empty, and warm.

`bayesmm fit` of the regime HMM (SVI, with its posterior predictive checks) on 90 s of the bundled
20240808 spot session, each run a fresh process as a user starts it - without the cache, with an
empty one, and again with the cache the previous run filled.

What it measures is what `bayesmm.compilation_cache` claims: a fit spends much of its time
compiling (NumPyro initialises the model and the checks replicate it op by op), which a warm cache
saves, while an empty one adds the cost of writing every compilation (one run, 2 cores: 27 s
without, 39 s empty, 17 s warm). The processes run with XLA's default threading (XLA_FLAGS
removed: the runner's one-thread setting is for per-core figures) and PYTHONHASHSEED=0, as `make`
runs them (the cache needs one program per fit; `compilation_cache`'s docstring says why).
Figures: seconds per run and the ratios of the cold and warm runs to the run without the cache.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.conftest import SPOT


def _session(path: Path, span_s: float) -> None:
    from bayesmm.events import ingest, write_session

    session, _ = ingest(SPOT)
    write_session(session.between(0.0, span_s), path)


def _fit_s(session: Path, out: Path, cache: Path | None, model: str) -> float:
    """Wall seconds of one `bayesmm fit` process (the cache off when `cache` is None)."""
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_COMPILATION_CACHE_DIR")}
    env |= {"PYTHONHASHSEED": "0"}
    env |= {"BAYESMM_JAX_CACHE": "0"} if cache is None else {"BAYESMM_JAX_CACHE": "1",
                                                            "JAX_COMPILATION_CACHE_DIR": str(cache)}
    cmd = [sys.executable, "-c", "import sys; from bayesmm.cli import main; sys.exit(main())",
           "fit", str(session), "--model", model, "--method", "svi", "--quiet", "--out", str(out)]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"bayesmm fit failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return wall


def measure(span_s: float = 90.0, model: str = "regime", runs=("off", "cold", "warm")) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        _session(tmp / "s.parquet", span_s)
        out = {}
        for run in runs:
            out[f"{run}_s"] = _fit_s(tmp / "s.parquet", tmp / f"fit_{run}", None if run == "off" else tmp / "cache",
                                     model)
            print(f"  {model} SVI fit with checks, {span_s:g} s of spot, cache {run:<4}: {out[f'{run}_s']:6.1f} s",
                  flush=True)
    for run in runs:
        if run != "off" and "off_s" in out:
            out[f"{run}_speedup_vs_off"] = out["off_s"] / out[f"{run}_s"]
    if "off_s" in out:
        print("  speed-up over no cache: " + ", ".join(f"{r} {out[f'{r}_speedup_vs_off']:.1f}x"
                                                      for r in runs if r != "off"))
    return out


def run() -> dict:
    return {"regime_svi_90s": measure()}


def smoke() -> dict:
    return {"drift_svi_10s": measure(10.0, "drift", runs=("cold",))}
