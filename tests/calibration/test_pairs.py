"""`bayesmm pairs`: the command hands its fit options to every pair's calibration (the calibration
itself is replaced by a recorder here: `make pairs` runs the real one, and test_calibrate tests it)."""

from __future__ import annotations

import pytest

from bayesmm.cli import main
from bayesmm.models.fit import FitSettings
from tests.conftest import DATA


class _Stop(Exception):
    pass


def test_pairs_passes_its_fit_settings_and_force_to_calibrate(monkeypatch, tmp_path):
    seen = {}

    def recorder(sessions, out_dir, settings, **kwargs):
        seen.update(settings=settings, test_sessions=kwargs["test_sessions"], out_dir=out_dir, force=kwargs["force"])
        raise _Stop

    monkeypatch.setattr("bayesmm.calibration.calibrate.calibrate", recorder)
    with pytest.raises(_Stop):
        main(["pairs", "--data", str(DATA), "--out", str(tmp_path), "--method", "svi", "--seed", "3", "--draws", "120",
              "--force", "--quiet"])
    assert seen["settings"] == FitSettings(method="svi", seed=3, draws=120)
    assert len(seen["test_sessions"]) == 1 and seen["out_dir"] == tmp_path / "1" and seen["force"] is True
