"""The benchmark runner's table of issue 18's aims judges each figure the right way round: a rate
against its floor, a latency against its ceiling, a ratio to the baseline run in the same process."""

from __future__ import annotations

from benchmarks.__main__ import aims_table


def test_aims_are_judged_by_value_or_by_ratio_to_the_baseline():
    figures = {"bench_replay.float64.replay_events_per_s": 1.2e6,  # aim >= 1e6: met
               "bench_replay.float64.push_latency_us": 12.0,  # aim <= 10: missed
               "bench_closed_loop.real_file.bayesmm_msgs_per_s_backtest": 300.0,
               "bench_closed_loop.real_file.hftbacktest_msgs_per_s_backtest": 200.0,  # 1.5x >= 1x: met
               "bench_closed_loop.sweep_1000.aggregate_steps_per_s": 900.0,
               "bench_closed_loop.real_file.hftbacktest_steps_per_s": 100.0,  # 9x < 10x: missed
               "bench_ingest.full_ingest_msgs_per_s": 260e3, "bench_ingest.json_decode_only_msgs_per_s": 520e3}
    rows = {r["figure"]: r for r in aims_table(figures)}
    assert "bench_replay.float32.replay_events_per_s" not in rows  # not measured: no row
    got = {k.split(".", 1)[1]: r["met"] for k, r in rows.items()}
    assert got == {"float64.replay_events_per_s": True, "float64.push_latency_us": False,
                   "real_file.bayesmm_msgs_per_s_backtest": True, "sweep_1000.aggregate_steps_per_s": False,
                   "full_ingest_msgs_per_s": True}
    assert rows["bench_closed_loop.sweep_1000.aggregate_steps_per_s"]["ratio_to_baseline"] == 9.0
    assert rows["bench_ingest.full_ingest_msgs_per_s"]["ratio_to_baseline"] == 0.5  # shown, not judged
