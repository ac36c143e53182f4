"""Notebook 02_fit_models in quick mode (tests/notebooks/runner.py)."""

from tests.notebooks.runner import run_notebook


def test_02_fit_models(tmp_path):
    run_notebook("02_fit_models", ["02_trace.png", "02_rank.png", "02_energy.png", "02_fits/volatility_ppc.png"], tmp_path)
