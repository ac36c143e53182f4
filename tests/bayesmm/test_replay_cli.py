"""`bayesmm replay` and `bayesmm quote`: beliefs Parquet with one row per event and the named columns,
--config files."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from bayesmm.calibration.config import ConfigError, load_config
from bayesmm.cli import main
from bayesmm.events import read_session
from tests.conftest import HL


@pytest.fixture
def hl_session(tmp_path):
    out = tmp_path / "hl.parquet"
    assert main(["ingest", str(HL), "--quiet", "--out", str(out)]) == 0
    return out


def test_replay_writes_beliefs_and_plot(hl_session, tmp_path, capsys):
    params = tmp_path / "p.json"
    params.write_text(json.dumps({"evidence": {"lambda_trade": 0.1, "theta_decay_per_s": 0.0}}))
    out, png = tmp_path / "beliefs.parquet", tmp_path / "beliefs.png"
    assert main(["replay", str(hl_session), "--config", str(params), "--out", str(out), "--plot", str(png)]) == 0
    table = pq.read_table(out)
    session = read_session(hl_session)
    assert table.num_rows == len(session)
    for name in ("t_s", "kind", "p_down", "mu_bps_s", "sigma_bps_sqrt_s", "toxicity", "p_trending_down",
                 "p_volatile", "burst"):
        assert name in table.column_names
    kinds = table.column("kind").to_numpy(zero_copy_only=False)
    np.testing.assert_array_equal(kinds, session.column("kind"))
    meta = json.loads(table.schema.metadata[b"bayesmm.replay"])
    assert meta["config"]["evidence"]["lambda_trade"] == 0.1  # the parameters used travel with the output
    assert meta["session"]["instrument"] == "BTC"
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_bad_config_file(hl_session, tmp_path, capsys):
    bad = tmp_path / "p.json"
    bad.write_text(json.dumps({"evidence": {"lambda_fill": -2}}))
    assert main(["replay", str(hl_session), "--config", str(bad), "--out", str(tmp_path / "b.parquet")]) == 2
    err = capsys.readouterr().err
    assert "evidence.lambda_fill" in err and "minimum of 0.0" in err
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_config(tmp_path / "missing.toml")


def test_quote_cli_manual_and_from_session(hl_session, capsys):
    """The spec's section-5 state prints reduce-only with a 4.13 ask total; a session with --at picks a replayed
    state."""
    assert main(["quote", "--p-down", "0.98", "--position", "4.13"]) == 0
    out = capsys.readouterr().out
    assert "REDUCE-ONLY" in out and "drift shift            -14.000 bps" in out
    assert main(["quote", str(hl_session), "--at", "1.5", "--quoter", "current_system"]) == 0
    out = capsys.readouterr().out
    assert "bid depth                7.020 bps" in out and "ask depth                7.020 bps" in out
    assert main(["quote", str(hl_session), "--at", "99999"]) == 2
    assert "outside the session" in capsys.readouterr().err
