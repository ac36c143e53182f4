"""Notebook 04_calibrate_and_export in quick mode (tests/notebooks/runner.py)."""

from tests.notebooks.runner import run_notebook


def test_04_calibrate_and_export(tmp_path):
    run_notebook("04_calibrate_and_export", ["04_calibration/report.html", "04_calibration/config.toml", "04_frontier.png"], tmp_path)
