"""`bayesmm calibrate` end to end on a short simulated recording: a gate the fits cannot pass
refuses the export (no config.toml, the reasons in calibration.json, exit status 3); with --force the
config is exported marked as forced with the same reasons, and check-config re-runs its golden
vectors bit for bit. (The statistical checks of calibration against truth are in
`test_validate_in_simulation`, slow.)"""

from __future__ import annotations

import json
import shutil

import jax
import pytest

from bayesmm.calibration.calibrate import Gate, gate_failures
from bayesmm.calibration.config import load_config, load_provenance
from bayesmm.calibration.simulation_check import sim_market
from bayesmm.cli import main
from bayesmm.events import write_session
from bayesmm.sim.market import simulate
from bayesmm.sim.session import session_from_path


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    m = sim_market("trending")
    path = simulate(jax.random.key(5), m, 3000)  # 300 s
    out = tmp_path_factory.mktemp("sim") / "sim.parquet"
    write_session(session_from_path(path, m), out)
    return out


def test_gate_rules():
    nuts = {"method": "nuts", "max_rhat": 1.02, "min_ess_bulk": 80.0, "min_ess_tail": 500.0, "divergences": 3,
            "min_bfmi": 0.2}
    report = {"drift": {"diagnostics": nuts, "ppc": {"ret_sd_bps": {"ppp": 0.5}, "ret_kurtosis": {"ppp": 0.004},
                                                     "ret_acf1": {"ppp": 1.0, "gated": False, "why": "bounce"}}},
              "volatility": {"diagnostics": {"method": "svi", "psis_khat": 0.83},
                             "ppc": {"ret_sd_bps": {"ppp": 0.995}}},
              "toxicity": {"diagnostics": {"method": "svi", "psis_khat": 0.41}, "ppc": {}}}
    got = gate_failures(report, Gate())
    assert got == ["drift: r_hat 1.020 > 1.01", "drift: ess bulk 80 < 100", "drift: 3 divergent transitions",
                   "drift: BFMI 0.20 < 0.3", "drift: PPC p-value of ret_kurtosis = 0.00 outside [0.01, 0.99]",
                   "volatility: Pareto k-hat 0.83 > 0.7 (the SVI guide misses posterior mass)",
                   "volatility: PPC p-value of ret_sd_bps = 0.99 outside [0.01, 0.99]"]
    # a statistic outside the model (gated False) is shown, never judged
    assert not any("ret_acf1" in f for f in got)
    assert gate_failures(report, Gate(max_rhat=1.05, min_ess=50, max_divergences=5, min_bfmi=0.1, max_khat=0.9,
                                      ppc_low=0.001, ppc_high=0.999)) == []


STRICT = ["--ppc-low", "0.6", "--ppc-high", "0.61"]  # no fit's p-values all lie in [0.6, 0.61]
RESTARTS = ["--method", "svi", "--svi-restarts", "2"]  # the refused and the forced run fit the same way, by SVI


@pytest.fixture(scope="module")
def forced(recording, tmp_path_factory):
    """The same calibration exported with --force (and its printed summary), two SVI starts per fit."""
    import contextlib
    import io

    out_dir = tmp_path_factory.mktemp("forced")
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["calibrate", str(recording), "--out", str(out_dir), "--models", "volatility", "--quiet", "--force",
                   *RESTARTS, *STRICT])
    assert rc == 0
    return out_dir, buf.getvalue()


def test_refused_without_force_then_forced(recording, forced, tmp_path, capsys):
    refused = tmp_path / "refused"
    rc = main(["calibrate", str(recording), "--out", str(refused), "--models", "volatility", "--quiet", *RESTARTS,
               *STRICT])
    assert rc == 3
    assert "refused" in capsys.readouterr().out
    assert not (refused / "config.toml").exists()
    report = json.loads((refused / "calibration.json").read_text())
    assert report["refused"] and report["gate_failures"]
    assert "REFUSED" in (refused / "report.html").read_text()

    forced, out = forced
    assert "exported anyway: --force" in out and "route:" in out
    prov = load_provenance(forced / "config.toml")
    assert prov["forced"] is True and prov["forced_reasons"] == report["gate_failures"]
    cfg = load_config(forced / "config.toml")
    rep = json.loads((forced / "calibration.json").read_text())
    sigma = rep["derive"]["volatility.sigma_long_bps_sqrt_s"]
    assert float(cfg.volatility.sigma_long_bps_sqrt_s) == pytest.approx(sigma["median"])
    # beside its prior: 300 s of returns pin the volatility level down (its prior spans a factor of
    # hundreds), so the data removed nearly all of the prior's spread
    assert sigma["prior_q05"] < sigma["q05"] <= sigma["q95"] < sigma["prior_q95"] and sigma["learnt"] > 0.9
    assert prov["route"] in ("derive", "regime", "tune")
    # how long each stage before the export took, recorded for whoever sizes a larger calibration
    assert list(rep["stage_s"]) == ["fit", "derive", "tune", "select", "validate"]
    assert all(v >= 0 for v in rep["stage_s"].values()) and rep["stage_s"]["fit"] > 0
    assert all(0.0 <= c["book_scale"] <= 1.0 and 0.0 <= c["belief_scale"] <= 1.0 for c in prov["per_horizon"].values())
    assert main(["check-config", str(forced / "config.toml")]) == 0
    out = capsys.readouterr().out
    assert "FORCED export" in out and "bit-identical" in out
    for name in ("config.schema.json", "golden.parquet", "fits/volatility.nc", "report.html"):
        assert (forced / name).exists()
    # --svi-restarts reaches the fit: two starts' final losses recorded, the lower one kept
    from bayesmm.models.fit import load_fit

    assert rep["svi_restarts"] == 2
    stats = load_fit(forced / "fits/volatility.nc").sample_stats.attrs
    losses = list(stats["svi_restart_losses"])
    assert len(losses) == 2 and stats["svi_restart_kept"] == losses.index(min(losses))


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium: `apt-get install chromium` (.ci/run and `make chromium` do)")
def test_report_renders_in_headless_chromium(forced):
    """The report opens with no network: every image loads (non-zero natural size), no console error;
    a screenshot is taken (beside the report, in the test's own folder)."""
    from playwright.sync_api import sync_playwright

    report = forced[0] / "report.html"
    errors = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(report.as_uri())
        page.wait_for_load_state("load")
        images = page.evaluate("Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.alt])")
        page.screenshot(path=str(forced[0] / "report.png"), full_page=True)
        browser.close()
    assert len(images) >= 2  # the PPC plot and the scores (no test session here: no reliability diagram)
    assert all(done and width > 0 for done, width, _ in images), images
    assert errors == []


def test_simulation_check_is_printed_and_reported(forced, capsys):
    """The simulation check's summary (`--validate-sim`): coverage split into informed and
    prior-bound intervals, each recording's Brier beside the truth-implied filter's, raw and exported
    by the same shrinkage rule - printed, and in the HTML report once calibration.json holds it."""
    from bayesmm.calibrate_cmd import print_simulation_check
    from bayesmm.calibration.calibrate import report_json
    from bayesmm.calibration.coverage import coverage_counts
    from bayesmm.calibration.report import build_report

    row = {"q05": 1.6, "median": 1.8, "q95": 2.0, "truth": 2.0, "covered": True, "learnt": 0.8}
    runs = [{"market": "trending", "seed": 0, "route": "regime", "shrink": 0.35, "truth_shrink": 0.5,
             "coverage": {"regime.drift_bps_s": row, "evidence.theta_decay_per_s": row | {"learnt": 0.1,
                                                                                        "covered": False}},
             "brier": {"calibrated": 0.21, "truth": 0.2, "truth_exported": 0.205, "defaults": 0.25}}]
    mean = {"calibrated": 0.21, "truth": 0.2, "truth_exported": 0.205}
    sim = {"runs": runs, **coverage_counts(runs), "coverage_rate": 0.5, "brier_mean": mean,
           "brier_ratio_to_truth": 1.05, "brier_ratio_to_truth_exported": 0.21 / 0.205}
    print_simulation_check(sim)
    out = capsys.readouterr().out
    assert "informed (learnt >= 50% of the prior's spread) 1 of 1, prior-bound 0 of 1" in out
    assert "theta:N(prior)" in out and "(0.2050 x 0.5)" in out and "(ratio 1.024)" in out
    directory, _ = forced
    report = json.loads((directory / "calibration.json").read_text())
    (directory / "calibration.json").write_text(report_json(report | {"simulation_check": sim}))
    try:
        page = build_report(directory)
    finally:
        (directory / "calibration.json").write_text(report_json(report))
    assert "prior-bound 0 of 1" in page and "0.205 (x 0.5)" in page


def test_report_figures_have_no_overlapping_labels(forced, monkeypatch):
    """Every figure the report draws (scores, reliability, the belief over time, ...) laid out so that
    no two texts overlap on the canvas (`events.plot.overlapping_labels`: titles, axis and tick labels,
    legend entries), and the PPC plots' grid likewise."""
    import matplotlib

    matplotlib.use("Agg")
    from bayesmm.calibration import report as report_mod
    from bayesmm.events.plot import overlapping_labels

    seen = []
    original = report_mod._figure

    def check(fig, alt):
        fig.tight_layout()
        seen.append((alt, overlapping_labels(fig)))
        return original(fig, alt)

    monkeypatch.setattr(report_mod, "_figure", check)
    report_mod.build_report(forced[0])
    assert seen and all(not pairs for _, pairs in seen), [(a, p[:3]) for a, p in seen if p]
