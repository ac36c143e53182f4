"""Recording gaps: a recording made of windows hours apart ingests with its segments listed; a
replay across the gap equals replaying each segment from its own start; the fits' data are the
joint data of the segments; no adverse-selection horizon and no scored window spans a gap."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from bayesmm.cli import main
from bayesmm.events import ingest, to_arrays
from bayesmm.events.session import Session
from bayesmm.models.data import bin_sessions
from bayesmm.online.params import default_config
from bayesmm.online.replay import as_events, run
from tests.conftest import HL

HOURS_NS = 3 * 3600 * 10**9


@pytest.fixture(scope="module")
def gapped(tmp_path_factory):
    """The 4-second Hyperliquid recording, then the same lines again 3 hours later."""
    lines = gzip.open(HL, "rt").read().splitlines()
    shifted = [f"{int(line.split(' ', 1)[0]) + HOURS_NS} {line.split(' ', 1)[1]}" for line in lines]
    path = tmp_path_factory.mktemp("gap") / "two_windows.txt"
    path.write_text("\n".join(lines + shifted) + "\n")
    return path


def test_segments_are_listed(gapped, tmp_path, capsys):
    session, report = ingest(gapped)
    segs = session.segments()
    assert len(segs) == 2 and report.counts["recording_gaps"] == 1
    span = ingest(HL)[0].span_s()
    assert segs[0] == pytest.approx((0.0, span)) and segs[1] == pytest.approx((3 * 3600, 3 * 3600 + span))
    out = tmp_path / "s.parquet"
    assert main(["ingest", str(gapped), "--quiet", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "2 segments (gaps > 60 s between them)" in text
    assert f"then {3 * 3600 - span:,.1f} s without a message" in text
    # a looser threshold sees one stretch
    assert len(ingest(gapped, max_gap_s=4 * 3600)[0].segments()) == 1


def test_replay_across_the_gap_restarts(gapped):
    """The beliefs after the gap equal a replay of the second window alone (to 1e-12)."""
    session, _ = ingest(gapped)
    a = to_arrays(session)
    assert a.segment_start.sum() == 1 and a.ret_bps[a.segment_start.argmax():][:1] == 0.0
    cfg = default_config()
    whole = run(as_events(a, np.float64), cfg)
    first = int(np.argmax(a.segment_start))
    second = Session(session.table.slice(first), session.meta)
    alone = run(as_events(to_arrays(second), np.float64), cfg)
    for name in ("p_down", "log_odds", "sigma_bps_sqrt_s", "toxicity", "drift_mean_bps_s", "p_regime"):
        np.testing.assert_allclose(np.asarray(getattr(whole, name))[first:], np.asarray(getattr(alone, name)),
                                   atol=1e-12, err_msg=name)
    assert np.all(np.isfinite(np.asarray(whole.p_down)))


def test_fit_data_of_a_gapped_session_are_the_joint_data_of_its_segments(gapped):
    session, _ = ingest(gapped)
    pieces = session.segment_pieces()
    whole, fills = bin_sessions([session], bin_s=0.5)
    joint, joint_fills = bin_sessions(pieces, bin_s=0.5)
    for name in whole._fields:
        np.testing.assert_array_equal(getattr(whole, name), getattr(joint, name), err_msg=name)
    assert whole.start.sum() == 2  # each window restarts the latent paths
    span = ingest(HL)[0].span_s()
    assert len(whole.ret_bps) <= 2 * span / 0.5  # the two windows' bins, not 3 hours of them


def test_adverse_selection_horizon_does_not_span_a_gap(gapped, tmp_path):
    """A fill 1 s before the end of the first window, AS horizon 5 s: its horizon spans the gap."""
    import json

    lines = gzip.open(HL, "rt").read().splitlines()
    t_last = int(lines[-1].split(" ", 1)[0])
    fill = {"coin": "BTC", "px": "105050.0", "sz": "0.01", "side": "B", "time": t_last // 1_000_000 - 1000,
            "oid": 1, "tid": 2, "hash": "0x1", "startPosition": "0"}
    path = tmp_path / "f.json"
    path.write_text(json.dumps([fill]))
    session, report = ingest(gapped, fills=path, as_horizon_s=5.0)
    assert session.counts()["own_fill"] == 1 and session.counts()["adverse_selection"] == 0
    assert report.counts["adverse_selection_across_gap"] == 1
