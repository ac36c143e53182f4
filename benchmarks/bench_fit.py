"""Offline fits: wall time and ESS per second of each model at two sizes with NUTS and SVI, the
marginalised regime HMM against NumPyro's enumerated form of the same model on the same data, and
the cost of the hand-written gradients against autodiff of the same functions.

Data are simulated with known parameters (the recovery-test settings) so every fit is well posed.
Times include compilation (what a user waits for). ESS/s is the smallest bulk ESS over the scalar
parameters divided by that time. SVI has no ESS; it is compared with NUTS on the same data instead:
the largest |SVI mean - NUTS mean| in NUTS posterior sds over the scalar parameters. SVI uses AutoNormal,
except for the SV model: its structured guide on the centred form (`SVStructuredGuide`), with the
mean-field AutoNormal gap printed beside it.

Environment: BENCH_FIT_SIZES (default "2000,20000"), BENCH_FIT_CHAINS / BENCH_FIT_DRAWS (default 2 x 250,
warmup = draws; sizes above 5,000 bins run 1 chain x 100 draws: a 20,000-step scan per gradient makes
each NUTS draw cost seconds on 2 CPU cores, and ESS/s is what compares; the SV model, with one latent
per bin, gets SVI only there - the method the models' docs give for long sessions), BENCH_FIT_MODELS (default all),
BENCH_FIT_CHAIN_METHOD (default "sequential"; a vmapped gradient of the regime HMM cost 4-6x one
chain's, so "vectorized" only adds lockstep waits),
BENCH_FIT_ENUM_BINS (2000; 0 skips the comparison), BENCH_FIT_AIM (1: also time the issue's target, the regime HMM on
20,000 bins with NUTS 4 chains x 500 + 500 draws, warm-started and run at once, beside a cold
one-chain baseline, and with SVI: `regime_aim`), BENCH_FIT_GRAD_BINS (20000; 0 skips
the gradient timings).
"""

from __future__ import annotations

import os
import time

# XLA_FLAGS (one intra-op thread) is set by benchmarks/__main__.py before JAX starts.
import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402

from bayesmm.models.drift import ou_drift_model, simulate_drift  # noqa: E402
from bayesmm.models.fit import diagnostics, fit, model_kwargs  # noqa: E402
from bayesmm.models.regime import regime_dominated_session, regime_hmm_enumerated_model, regime_hmm_model  # noqa: E402
from bayesmm.models.toxicity import simulate_toxicity, toxicity_model  # noqa: E402
from bayesmm.models.volatility import simulate_sv, sv_model  # noqa: E402
from bayesmm.models.workflow import svi_setup  # noqa: E402


def model_and_data(name: str, size: int):
    """(model, data) of `size` bins (toxicity: size / 10 fills)."""
    key = jax.random.key(size)
    if name == "drift":
        d = simulate_drift(key, size, 1.0, theta=0.02, sigma_mu=0.3, sigma=2.0, fills_per_s=0.1, a=0.0, b=1.0)
        return ou_drift_model, {k: d[k] for k in ("ret_bps", "dt_s", "fill_bin", "fill_side")}
    if name == "volatility":
        d = simulate_sv(key, size, 1.0, np.log(4.0), 0.98, 0.15)
        return sv_model, {"ret_bps": d["ret_bps"], "dt_s": d["dt_s"]}
    if name == "toxicity":
        return toxicity_model, {"as_bps": simulate_toxicity(key, size // 10, 0.3, 0.0, 3.0, 15.0, 8.0)["as_bps"]}
    if name == "regime":
        return regime_hmm_model, regime_dominated_session(key, size)[0]
    raise ValueError(name)


def svi_fit(name: str, model, data, **kw):
    """SVI the way `bayesmm fit --method svi` runs it (`models.workflow.svi_setup`)."""
    data, guide = svi_setup(name, data)
    return timed_fit(model, data, method="svi", guide=guide, **kw)


def timed_fit(model, data, **kw):
    t0 = time.perf_counter()
    idata = fit(model, data, progress=False, **kw)
    return idata, time.perf_counter() - t0


def scalar_means(idata) -> dict:
    post = idata.posterior
    return {k: (float(post[k].values.mean()), float(post[k].values.std()))
            for k in post.data_vars if post[k].values[0, 0].size == 1}


def max_mean_gap_in_sds(ref, other) -> str:
    """Largest |mean_other - mean_ref| / sd_ref over the scalar sites both fits have, and that site."""
    a, b = scalar_means(ref), scalar_means(other)
    gap, name = max((abs(b[k][0] - a[k][0]) / a[k][1], k) for k in a if k in b and a[k][1] > 0)
    return f"{gap:.2f} ({name})"


def run() -> None:
    sizes = [int(s) for s in os.environ.get("BENCH_FIT_SIZES", "2000,20000").split(",")]
    chains = int(os.environ.get("BENCH_FIT_CHAINS", "2"))
    draws = int(os.environ.get("BENCH_FIT_DRAWS", "250"))
    chain_method = os.environ.get("BENCH_FIT_CHAIN_METHOD", "sequential")
    names = os.environ.get("BENCH_FIT_MODELS", "drift,volatility,toxicity,regime").split(",")
    print(f"NUTS {chains} chains ({chain_method}) x {draws} draws after {draws} warmup; SVI 3000 Adam steps")
    print(f"{'model':<11}{'bins':>7}  {'NUTS s':>8}{'min ESS':>9}{'ESS/s':>8}{'leapfrog':>9}{'div':>5}"
          f"{'r_hat':>7}  {'SVI s':>7}  SVI-NUTS gap in sd (site)")
    for name in names:
        for size in sizes:
            model, data = model_and_data(name, size)
            if name == "volatility" and size > 5000:
                _, t_svi = svi_fit(name, model, data, draws=1000)
                print(f"{name:<11}{size:>7}  {'(NUTS not run: a 20,000-step scan per leapfrog, >= 63 per draw)':<66}"
                      f"{t_svi:>7.1f}", flush=True)
                continue
            big = size > 5000
            nuts, t_nuts = timed_fit(model, data, draws=100 if big else draws, warmup=100 if big else draws,
                                     chains=1 if big else chains, chain_method=chain_method)
            d = diagnostics(nuts)
            svi, t_svi = svi_fit(name, model, data, draws=1000)
            gap = max_mean_gap_in_sds(nuts, svi)
            print(f"{name:<11}{size:>7}  {t_nuts:>8.1f}{d['min_ess_bulk']:>9.0f}{d['min_ess_bulk'] / t_nuts:>8.2f}"
                  f"{d['mean_leapfrog_steps']:>9.1f}{d['divergences']:>5}{d['max_rhat']:>7.3f}  {t_svi:>7.1f}"
                  f"  {gap}", flush=True)
            if name == "volatility":
                mean_field, t_mf = timed_fit(model, data, method="svi", draws=1000)
                print(f"{'':<11}{'':>7}  (mean-field AutoNormal on the non-centred model: {t_mf:.1f} s,"
                      f" gap {max_mean_gap_in_sds(nuts, mean_field)} sd)", flush=True)
    enum_bins = int(os.environ.get("BENCH_FIT_ENUM_BINS", "2000"))
    if enum_bins > 0:
        compare_enumerated(enum_bins)
    grad_bins = int(os.environ.get("BENCH_FIT_GRAD_BINS", "20000"))
    if grad_bins > 0:
        gradient_costs(grad_bins)
    if os.environ.get("BENCH_FIT_AIM", "1") == "1":
        return regime_aim()
    return {}


def _ms_per_call(fn, *args, repeats: int = 30) -> float:
    jax.block_until_ready(fn(*args))  # compile
    t0 = time.perf_counter()
    for _ in range(repeats):
        jax.block_until_ready(fn(*args))
    return (time.perf_counter() - t0) / repeats * 1e3


def gradient_costs(num_bins: int) -> None:
    """Value + gradient, ms per call: the regime evidence (forward-backward VJP vs autodiff of the same
    scaled forward scan) and the drift Kalman likelihood with a per-bin term reading its outputs, as
    the fill term does (forward-mode Jacobian VJP vs reverse mode), plus the whole regime potential."""
    import jax.numpy as jnp
    from numpyro.infer.util import initialize_model

    from bayesmm.models.drift import kalman_loglik, kalman_loglik_forward_grad
    from bayesmm.models.regime import _scaled_forward, generator, scaled_log_evidence
    from bayesmm.online.kernels import transition_matrix

    rng = np.random.default_rng(0)
    ll = jnp.asarray(rng.normal(size=(num_bins, 4)) * 3)
    a = transition_matrix(generator(jnp.full(12, 1 / 900.0)), 1.0)
    init = jnp.full(4, -jnp.log(4.0))

    def autodiff_evidence(x, m):
        _, norms, _, shift = _scaled_forward(x, m, init, jnp.zeros(num_bins).at[0].set(1.0))
        return jnp.sum(jnp.log(norms)) + jnp.sum(shift)

    def hand_written_evidence(x, m):
        return scaled_log_evidence(x, m, init)

    print(f"\nvalue + gradient, {num_bins} bins, ms per call:")
    for label, f in (("autodiff", autodiff_evidence), ("forward-backward VJP", hand_written_evidence)):
        print(f"  {'regime evidence, ' + label:<45} {_ms_per_call(jax.jit(jax.value_and_grad(f, (0, 1))), ll, a):7.2f}")
    ret, dt = jnp.asarray(rng.normal(0.0, 2.0, num_bins)), jnp.ones(num_bins)
    weights = jnp.asarray(rng.poisson(0.1, num_bins).astype(float))

    def with_fill_term(kalman):
        def f(q):
            lik, m, p = kalman(ret, dt, q[0], q[1], q[2], jnp.zeros_like(ret))
            return lik + jnp.sum(weights * jnp.tanh(m) * p)
        return jax.jit(jax.value_and_grad(f))

    q = jnp.array([0.02, 0.3, 2.0])
    for label, k in (("reverse mode", kalman_loglik), ("forward-mode VJP", kalman_loglik_forward_grad)):
        print(f"  {'drift Kalman + fill term, ' + label:<45} {_ms_per_call(with_fill_term(k), q):7.2f}")
    data, _ = regime_dominated_session(jax.random.key(1), num_bins)
    info = initialize_model(jax.random.key(0), regime_hmm_model, model_kwargs=model_kwargs(data))
    potential = jax.jit(jax.value_and_grad(info.potential_fn))
    print(f"  {'regime HMM potential (a NUTS gradient)':<45} {_ms_per_call(potential, info.param_info.z):7.2f}")


def regime_aim(num_bins: int = 20_000) -> dict:
    """The issue's target: the regime HMM on 20,000 bins, NUTS 4 chains x 500 draws (< 5 min on 2
    cores) and SVI (< 30 s). The 4 chains start from an SVI fit (`fit`'s `warm_start`) and run two
    at a time, one per core (`chain_method="parallel"` over the host devices `benchmarks/__main__.py`
    asks XLA for); the baseline, run first in the same process, is one chain started as `fit` starts
    it by default (the prior median, a unit mass matrix). Times include compilation."""
    data, _ = regime_dominated_session(jax.random.key(num_bins), num_bins)
    base, t_base = timed_fit(regime_hmm_model, data, draws=500, warmup=500, chains=1)
    b = diagnostics(base)
    print(f"\nregime HMM, {num_bins} bins, NUTS 1 chain x 500 (+500 warmup) from the prior median (baseline):"
          f" {t_base:.0f} s; warmup {b['warmup_s']:.0f} s ({b['warmup_leapfrog_steps'] / 500:.0f} leapfrog steps"
          f" per iteration), sampling {b['sampling_s']:.0f} s ({b['mean_leapfrog_steps']:.1f} per draw);"
          f" min bulk ESS {b['min_ess_bulk']:.0f}", flush=True)
    devices, cores = jax.local_device_count(), os.cpu_count() or 1
    method = "parallel" if devices > 1 else "sequential"
    idata, t = timed_fit(regime_hmm_model, data, draws=500, warmup=500, chains=4, chain_method=method,
                         warm_start=True)
    d = diagnostics(idata)
    print(f"regime HMM, {num_bins} bins, NUTS 4 chains x 500 (+500 warmup) warm-started by SVI, {method} on"
          f" {devices} device(s): {t:.0f} s (aim 300 s; the baseline's start: ~{4 * t_base / min(cores, 4):.0f} s);"
          f" SVI start {d['warm_start_s']:.0f} s, warmup {d['warmup_s'] - d['warm_start_s']:.0f} s"
          f" ({d['warmup_leapfrog_steps'] / 2000:.0f} leapfrog steps per iteration), sampling {d['sampling_s']:.0f} s"
          f" ({d['mean_leapfrog_steps']:.1f} per draw); min bulk / tail ESS {d['min_ess_bulk']:.0f} /"
          f" {d['min_ess_tail']:.0f}, r_hat {d['max_rhat']:.3f}, {d['divergences']} divergences", flush=True)
    _, t_svi = timed_fit(regime_hmm_model, data, method="svi", draws=1000)
    print(f"regime HMM, {num_bins} bins, SVI 3000 steps: {t_svi:.1f} s (aim 30 s)", flush=True)
    return {"regime_aim": {"baseline_one_chain_s": t_base, "nuts_4x500_s": t, "svi_3000_steps_s": t_svi,
                           "nuts_max_rhat": d["max_rhat"], "nuts_min_ess_bulk": d["min_ess_bulk"],
                           "nuts_divergences": d["divergences"], "devices": devices}}


def compare_enumerated(num_bins: int, draws: int = 300) -> None:
    """The marginalised HMM vs NumPyro's enumerated form: NUTS time, ESS/s, and posterior agreement."""
    data, _ = regime_dominated_session(jax.random.key(num_bins), num_bins)
    print(f"\nregime HMM, {num_bins} bins, NUTS 1 chain x {draws} draws (same seed and data):")
    fits = {}
    for label, model in (("marginalised (scaled forward scan)", regime_hmm_model),
                         ("enumerated (numpyro scan + funsor)", regime_hmm_enumerated_model)):
        idata, t = timed_fit(model, data, draws=draws, warmup=draws, chains=1)
        d = diagnostics(idata)
        fits[label] = idata
        print(f"  {label:<36} {t:>7.1f} s  min ESS {d['min_ess_bulk']:>5.0f}  ESS/s {d['min_ess_bulk'] / t:>6.2f}"
              f"  leapfrog {d['mean_leapfrog_steps']:.1f}", flush=True)
    a, b = fits.values()
    print(f"  agreement: largest posterior-mean gap {max_mean_gap_in_sds(a, b)} posterior sds")
