"""Notebook 05_incident_replay in quick mode (tests/notebooks/runner.py)."""

from tests.notebooks.runner import run_notebook


def test_05_incident_replay(tmp_path):
    run_notebook("05_incident_replay", ["05_bayesian.png", "05_current_system.png", "05_backtest.png"], tmp_path)
