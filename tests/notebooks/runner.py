"""Runs a notebook (notebooks/01..05) top to bottom in quick mode (BAYESMM_QUICK=1: small data, few
draws), on the public API. Each notebook asserts what it claims in its own cells (a number against
its tolerance), so a claim that fails, like any cell that raises, fails its test; its figures must
exist afterwards. Their kernels share the suite's JAX compilation cache (tests/conftest.py).

Each notebook has its own test file (test_01_... to test_05_...): `make test` hands whole files to
its two workers (--dist loadfile), and the notebooks, minutes each and sharing nothing, then spread
over both."""

from __future__ import annotations

import os
from pathlib import Path

from tests.conftest import ROOT


def run_notebook(name: str, figures: list[str], tmp_path: Path) -> None:
    """Execute notebooks/<name>.ipynb in quick mode, its outputs under `tmp_path`, and check that it
    wrote `figures` (paths relative to its output folder)."""
    import nbformat
    from nbclient import NotebookClient

    out = tmp_path / "notebooks"  # BAYESMM_OUT: the notebooks write here, not into the demo's out/
    nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    os.environ["BAYESMM_QUICK"] = "1"  # the kernel inherits the environment
    os.environ["BAYESMM_OUT"] = str(out)
    try:
        NotebookClient(nb, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    finally:
        os.environ.pop("BAYESMM_QUICK", None)
        os.environ.pop("BAYESMM_OUT", None)
    missing = [f for f in figures if not (out / f).exists()]
    assert not missing, f"{name} did not write {missing}"
