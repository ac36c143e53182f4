"""The generated docs pages (`benchmarks/docs_tables.py`) carry the numbers of the files they are
written from, and say which command makes a missing one."""

from __future__ import annotations

import json

from benchmarks.docs_tables import write


def test_pages_from_the_measurements(tmp_path):
    out, docs = tmp_path / "out", tmp_path / "docs"
    (out / "pairs").mkdir(parents=True)
    docs.mkdir()
    bench = {
        "date": "2026-12-07T00:00:00+00:00",
        "device": "TFRT_CPU_0",
        "backend": "cpu",
        "figures": {"bench_replay.float64.replay_events_per_s": 123456.0},
        "aims": [
            {
                "figure": "bench_replay.float64.replay_events_per_s",
                "value": 123456.0,
                "ratio_to_baseline": 1.81,
                "aim": ">= 1e+06",
                "met": False,
            }
        ],
    }
    (out / "bench.json").write_text(json.dumps(bench))
    pairs = {
        "pairs": {
            "spot": {
                "horizons": {
                    "1s": {
                        "calibrated": -0.4894,
                        "peer": -0.4796,
                        "derive": -0.5,
                        "sd_p_down": 0.259,
                        "ece": 0.075,
                        "n": 185,
                        "headline": True,
                    }
                }
            }
        },
        "met": {"spot": {"one_second_gain": True}},
        "pooled_markout": {
            "horizon_s": 5.0,
            "quoters": {"glft": {"fills": 12, "mean": 0.9, "low": 0.1, "high": 1.7}},
            "bayesian_minus_glft": {"mean": -0.25, "low": -1.0, "high": 0.5, "meets": True},
        },
    }
    (out / "pairs" / "pairs.json").write_text(json.dumps(pairs))
    write(out, docs)
    b = (docs / "benchmarks.md").read_text()
    assert "1.235e+05" in b and "| 1.81 |" in b and "| no |" in b
    v = (docs / "validation.md").read_text()
    assert "-0.4894" in v and "1s (p_down)" in v and "one_second_gain met" in v and "-0.250 bps" in v
    assert "run `make demo`" not in v  # the sweep section is left out when there is no sweep
    (out / "bench.json").unlink()
    write(out, docs)
    assert "run `make bench`" in (docs / "benchmarks.md").read_text()
