"""Notebook 03_posterior_predictive in quick mode (tests/notebooks/runner.py)."""

from tests.notebooks.runner import run_notebook


def test_03_posterior_predictive(tmp_path):
    figures = ["03_drift_ppc.png", "03_volatility_ppc.png", "03_regime_ppc.png", "03_volatility_gaussian_ppc.png"]
    run_notebook("03_posterior_predictive", figures, tmp_path)
