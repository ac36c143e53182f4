"""The notebooks (notebooks/01..05) run top to bottom in quick mode (BAYESMM_QUICK=1: small data,
few draws), on the public API; a cell that raises fails the suite, and each notebook's figures must
exist afterwards. Their kernels share the suite's JAX compilation cache (tests/conftest.py)."""

from __future__ import annotations

import os

import pytest

from tests.conftest import ROOT

NOTEBOOKS = {
    "01_explore_session": ["01_session.png", "01_beliefs.png"],
    "02_fit_models": ["02_trace.png", "02_rank.png", "02_energy.png", "02_fits/volatility_ppc.png"],
    "03_posterior_predictive": ["03_drift_ppc.png", "03_volatility_ppc.png", "03_regime_ppc.png",
                                "03_volatility_gaussian_ppc.png"],
    "04_calibrate_and_export": ["04_calibration/report.html", "04_calibration/config.toml", "04_frontier.png"],
    "05_incident_replay": ["05_bayesian.png", "05_current_system.png", "05_backtest.png"],
}


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_notebook_runs_in_quick_mode(name, tmp_path):
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
    missing = [f for f in NOTEBOOKS[name] if not (out / f).exists()]
    assert not missing, f"{name} did not write {missing}"
