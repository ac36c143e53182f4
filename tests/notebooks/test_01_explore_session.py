"""Notebook 01_explore_session in quick mode (tests/notebooks/runner.py)."""

from tests.notebooks.runner import run_notebook


def test_01_explore_session(tmp_path):
    run_notebook("01_explore_session", ["01_session.png", "01_beliefs.png"], tmp_path)
