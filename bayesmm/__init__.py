"""bayesmm: recorded sessions -> offline NumPyro fits -> calibrated online JAX filters -> quotes.

The public API a notebook needs, in one place (imports are lazy, so `bayesmm --help` stays fast):

    from bayesmm import load_session, replay, fit, FitSettings, calibrate, load_config
"""

from __future__ import annotations

import importlib

_API = {
    "ingest": ("events", "ingest"),
    "load_session": ("events", "read_session"),
    "write_session": ("events", "write_session"),
    "to_arrays": ("events", "to_arrays"),
    "replay": ("calibration.replay", "replay_session"),
    "fit": ("models.workflow", "fit_session"),
    "FitSettings": ("models.fit", "FitSettings"),
    "calibrate": ("calibration.calibrate", "calibrate"),
    "score": ("calibration.score", "score_session"),
    "write_report": ("calibration.report", "write_report"),
    "sweep": ("calibration.sweep", "sweep"),
    "load_space": ("calibration.space", "load_space"),
    "scenario_target": ("calibration.sweep", "scenario_target"),
    "session_target": ("calibration.sweep", "session_target"),
    "load_fit": ("models.fit", "load_fit"),
    "load_config": ("calibration.config", "load_config"),
    "write_config": ("calibration.config", "write_config"),
    "default_config": ("online.params", "default_config"),
    "Config": ("online.params", "Config"),
    "quote": ("online.quoter", "quote"),
    "preset": ("online.quoter", "preset"),
    "backtest": ("sim.backtest", "backtest"),
}

__all__ = sorted(_API)


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'bayesmm' has no attribute {name!r}")
    module, attr = _API[name]
    return getattr(importlib.import_module(f"bayesmm.{module}"), attr)
