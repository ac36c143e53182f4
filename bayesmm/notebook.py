"""The notebooks' shared set-up (`setup`): float64 JAX, the persistent compile cache, where the data
and the outputs are, and quick mode - `BAYESMM_QUICK=1`, what the test suite runs - which says what it
changed, so that nobody reads a smoke run's numbers as results."""

from __future__ import annotations

import os
from pathlib import Path


def setup(quick_changes: str) -> tuple[bool, Path, Path]:
    """(quick mode on, the data directory, the output directory) for a notebook run from the repository
    or from notebooks/. Outputs go to $BAYESMM_OUT (the tests' temporary directory) or out/notebooks.
    `quick_changes`: what this notebook does differently in quick mode, printed when it is on."""
    import jax

    from bayesmm.compilation_cache import enable

    jax.config.update("jax_enable_x64", True)
    enable()  # a fit compiles far longer than it samples: keep the compiled programs on disk
    quick = os.environ.get("BAYESMM_QUICK", "0") == "1"
    root = Path.cwd().parent if Path.cwd().name == "notebooks" else Path.cwd()
    out = Path(os.environ.get("BAYESMM_OUT", root / "out" / "notebooks"))
    out.mkdir(parents=True, exist_ok=True)
    if quick:
        print(f"QUICK mode (BAYESMM_QUICK=1): {quick_changes}. The numbers below check that the notebook runs; "
              "they are not results. Unset BAYESMM_QUICK for the full run.")
    return quick, root / "data", out
