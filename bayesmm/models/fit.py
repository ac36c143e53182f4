"""Fitting behind one call: NUTS (several chains, progress bars) or SVI (AutoNormal, or a model's
structured guide), returning
ArviZ InferenceData with the observed data and sample stats; diagnostics (NUTS: r_hat, bulk/tail ESS,
divergences, BFMI; SVI: the Pareto k-hat of the guide's importance ratios) checked and reported;
saving and loading (netCDF)."""

from __future__ import annotations

import dataclasses
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer import MCMC, NUTS, SVI, Trace_ELBO
from numpyro.infer.autoguide import AutoNormal
from numpyro.infer.initialization import init_to_median
from numpyro.optim import Adam


class FitDiagnosticsError(RuntimeError):
    """A NUTS fit whose diagnostics fail the thresholds (raised when `strict`)."""


def model_kwargs(data: dict) -> dict:
    """A model's keyword data with NumPy arrays moved to JAX (other values, e.g. prior settings, as given)."""
    return {k: (jnp.asarray(v) if isinstance(v, np.ndarray) else v) for k, v in data.items()}


def flat_draws(posterior, name: str) -> np.ndarray:
    """A site's posterior draws with chains and draws merged into the first axis."""
    x = posterior[name].values
    return x.reshape(-1, *x.shape[2:])


SVI_RESTARTS = 1
"""SVI optimisations per fit by default, the best kept (`fit`'s `svi_restarts` says why more can
help: in simulation single starts settled up to 316 nats worse). One, for its cost: each start is a
whole optimisation, for every model a calibration fits and refits. On the real 20240808 spot session
the three starts of the regime HMM (10 s bins) now end within 0.2 nats and the kept one passes every
check; on 1 s bins the best of three had decoded a regime change every ~31 s and failed the
(argmax-based) duration check, which is why this default was kept at one then."""


@dataclass(frozen=True)
class FitSettings:
    """How the offline models are fitted: the settings every entry point that fits them takes
    (`models.workflow.fit_session`, `compare_variants`, `calibration.calibrate`) and hands on to `fit`.

    Attributes:
        method: "nuts", "svi", or "auto": SVI, then NUTS started from an SVI fit for every model whose
            guide fails the VI diagnostic (its Pareto k-hat above the gate's `max_khat`,
            `models.workflow.fit_model`): the speed of SVI where its approximation holds, the sampler
            where it does not.
        draws: posterior draws per chain (SVI: draws from the guide).
        warmup, chains: NUTS.
        seed: the random seed.
        svi_restarts: SVI optimisations from different starts, the best kept (`fit`).
        warm_start: NUTS chains started from an SVI fit (`fit`).
    """

    method: str = "nuts"
    draws: int = 500
    warmup: int = 500
    chains: int = 2
    seed: int = 0
    svi_restarts: int = SVI_RESTARTS
    warm_start: bool = False

    def fit_kwargs(self, **changes) -> dict:
        """`fit`'s keyword arguments for these settings, with `changes` applied."""
        return dataclasses.asdict(dataclasses.replace(self, **changes))

    def replace(self, **changes) -> FitSettings:
        """A copy with `changes` applied."""
        return dataclasses.replace(self, **changes)


NUTS_FIT = FitSettings()
"""NUTS with the defaults: how `bayesmm fit` fits."""
SVI_FIT = FitSettings(method="svi")
"""SVI with the defaults: for the comparisons of likelihood variants and the simulation check."""


def fit(model, data: dict, method: str = "nuts", draws: int = 500, warmup: int = 500, chains: int = 2, seed: int = 0,
        progress: bool = True, svi_steps: int = 3000, var_names: list[str] | None = None,
        chain_method: str = "sequential", dense_mass: bool = False, init_strategy=init_to_median, guide=None,
        svi_restarts: int = SVI_RESTARTS, warm_start: bool = False, diagnose: bool = True) -> az.InferenceData:
    """Fit `model(**data)` and return InferenceData (posterior, sample_stats, observed_data).

    Args:
        model: a NumPyro model function of keyword arrays.
        data: its keyword arguments (arrays; None for unused optional ones).
        method: "nuts" or "svi" (Adam, `svi_steps`, then `draws` guide samples; `psis_khat` checks the guide).
        svi_restarts: SVI optimisations from different starting points (`init_strategy` under the
            keys `seed`, then `seed` folded with 1, 2, ...); the one with the lowest final loss
            (the mean negative ELBO of its last tenth of steps) is kept, every one's final loss is
            recorded (`sample_stats.attrs["svi_restart_losses"]`). `_best_svi` says why.
        guide: the SVI guide: None for AutoNormal (independent normals in the unconstrained space),
            or a function (model, init_loc_fn) -> guide, e.g. `models.volatility.SVStructuredGuide`
            (with `centred=True` in the SV model's data).
        draws, warmup, chains: NUTS settings.
        chain_method: "sequential" (one chain after another), "vectorized" (all chains in one vmap:
            the gradient's fixed per-step costs are shared, but every chain waits for the longest
            trajectory) or "parallel" (one device per chain; on CPU only after
            `numpyro.set_host_device_count` before JAX starts). Which is fastest is model-dependent:
            benchmarks/bench_fit.py measures it.
        dense_mass: adapt a full mass matrix (fewer leapfrog steps when parameters are correlated,
            as the regime HMM's are; O(d^2) per step, negligible for a few dozen parameters).
        init_strategy: where chains (and the SVI guide's means) start; default: the median of 15
            prior draws (from init_to_uniform's random starts SVI of the regime HMM could stall in a
            labelling of the regimes far from the true one).
        warm_start: NUTS only: start from an SVI fit of the same model (AutoNormal, `svi_steps`,
            `svi_restarts`, the best kept): each chain starts at its own draw from the SVI
            approximation with the standard deviations tripled (starts overdispersed with respect
            to it, as r_hat needs), and the mass matrix starts at the approximation's variances
            (diagonal; the diagonal of a dense one) instead of the identity; adaptation then goes
            on as usual. The SVI fit's time is counted in `warmup_s` and recorded as `warm_start_s`;
            `_warm_start` says why and what it gives up.
        diagnose: SVI: the guide's Pareto k-hat (`psis_khat`); off where no gate reads it (CV refits).
        var_names: posterior sites to keep (default: all but per-bin latent vectors of > 100 entries).
            A model's pointwise log-likelihood, the deterministic site "log_lik" (models given
            `pointwise=True`), goes to the `log_likelihood` group, where ArviZ's `loo` reads it.

    A fit ends with `release_compiled_code()` (its docstring says why).
    """
    key = jax.random.key(seed)
    kwargs = model_kwargs(data)
    observed = {k: np.asarray(v) for k, v in data.items() if isinstance(v, np.ndarray | jnp.ndarray)}
    if method == "nuts":
        samples, sample_stats, timing = _run_nuts(model, kwargs, key, draws, warmup, chains, progress, svi_steps,
                                                  chain_method, dense_mass, init_strategy, svi_restarts, warm_start)
    elif method == "svi":
        samples, sample_stats, timing = _run_svi(model, kwargs, key, seed, draws, progress, svi_steps, init_strategy,
                                                 guide, svi_restarts, diagnose)
    else:
        raise ValueError(f"method must be 'nuts' or 'svi', got {method!r}")
    idata = _inference_data(samples, sample_stats, observed, var_names)
    idata.sample_stats.attrs.update(timing)  # wall seconds (compilation included) and warmup work
    idata.posterior.attrs.update(method=method, model=getattr(model, "__name__", str(model)))
    if method == "svi":
        idata.posterior.attrs["guide"] = "AutoNormal" if guide is None else getattr(guide, "__name__", str(guide))
    release_compiled_code()
    return idata


def _run_nuts(model, kwargs, key, draws, warmup, chains, progress, svi_steps, chain_method, dense_mass,
              init_strategy, svi_restarts, warm_start):
    """NUTS (`fit`'s arguments): (samples by chain, sample stats, timing)."""
    t0 = time.perf_counter()
    init_params, inverse_mass, warm = None, None, {}
    if warm_start:
        svi_key, key = jax.random.split(key)
        _, res, finals, _ = _best_svi(model, kwargs, svi_key, None, init_strategy, svi_steps, svi_restarts, progress)
        init_params, inverse_mass = _warm_start(res.params, chains, dense_mass, jax.random.fold_in(svi_key, 7))
        warm = {"warm_start_s": time.perf_counter() - t0, "svi_restart_losses": finals}
    kernel = NUTS(model, dense_mass=dense_mass, init_strategy=init_strategy, inverse_mass_matrix=inverse_mass)
    mcmc = MCMC(kernel, num_warmup=warmup, num_samples=draws, num_chains=chains,
                chain_method=chain_method, progress_bar=progress)
    mcmc.warmup(key, extra_fields=("num_steps",), collect_warmup=True, init_params=init_params, **kwargs)
    warmup_steps = np.asarray(mcmc.get_extra_fields()["num_steps"])
    t1 = time.perf_counter()
    mcmc.run(mcmc.post_warmup_state.rng_key, extra_fields=("diverging", "energy", "num_steps"), **kwargs)
    jax.block_until_ready(mcmc.get_samples())  # JAX dispatches asynchronously: wait before timing
    timing = {"warmup_s": t1 - t0, "sampling_s": time.perf_counter() - t1,
              "warmup_leapfrog_steps": int(warmup_steps.sum())} | warm
    extra = mcmc.get_extra_fields(group_by_chain=True)
    sample_stats = {"diverging": np.asarray(extra["diverging"]), "energy": np.asarray(extra["energy"]),
                    "n_steps": np.asarray(extra["num_steps"])}
    return mcmc.get_samples(group_by_chain=True), sample_stats, timing


def _run_svi(model, kwargs, key, seed, draws, progress, svi_steps, init_strategy, guide, svi_restarts, diagnose):
    """SVI (`fit`'s arguments), the best of its restarts, then `draws` guide samples and the model's
    deterministic sites at them: (samples as one chain, sample stats, timing)."""
    from numpyro.infer import Predictive

    t0 = time.perf_counter()
    guide_fn, res, finals, best = _best_svi(model, kwargs, key, guide, init_strategy, svi_steps, svi_restarts,
                                            progress)
    post = Predictive(guide_fn, params=res.params, num_samples=draws)(jax.random.key(seed + 1), **kwargs)
    det = Predictive(model, posterior_samples=post, return_sites=None)(jax.random.key(seed + 2), **kwargs)
    samples = {k: np.asarray(v)[None] for k, v in {**post, **det}.items()}
    sample_stats = {"loss": np.asarray(res.losses)[None, -draws:]}
    timing = {"optimisation_s": time.perf_counter() - t0, "svi_restart_losses": finals, "svi_restart_kept": best}
    if diagnose:
        t1 = time.perf_counter()
        khat, _ = psis_khat(model, guide_fn, res.params, kwargs, jax.random.key(seed + 3))
        timing |= {"psis_khat": khat, "psis_draws": PSIS_DRAWS, "psis_khat_s": time.perf_counter() - t1}
    return samples, sample_stats, timing


PSIS_DRAWS = 1000
"""Guide draws behind an SVI fit's Pareto k-hat (`psis_khat`): PSIS fits the generalised Pareto to
the largest min(S / 5, 3 sqrt(S)) ratios, 95 of them at 1000 draws."""


def psis_khat(model, guide, params: dict, kwargs: dict, key, num_draws: int = PSIS_DRAWS,
              batch_size: int = 100) -> tuple[float, np.ndarray]:
    """(Pareto k-hat, log ratios): the fitted guide's check (Yao, Vehtari, Simpson and Gelman 2018,
    "Yes, but did it work?: Evaluating variational inference"). For `num_draws` draws theta_s of the
    guide with its parameters `params`, the log importance ratios log p(theta_s, y) - log q(theta_s)
    (the model's joint density at the data `kwargs`, the guide's own density, both on the sites'
    constrained scale, so the Jacobians of their transforms cancel), then ArviZ's PSIS: k-hat is the
    shape of the generalised Pareto fitted to the largest ratios. Small when q is close to the
    posterior (an exact q makes every ratio log p(y)); above 0.7 the ratios' tail is so heavy that
    the guide misses posterior mass that importance sampling cannot recover, and its draws should not
    be trusted (`models.gate.Gate.max_khat`). Ratios that are NaN or +inf (the model's density failed
    where the guide put mass) give k-hat inf. Draws are taken `batch_size` at a time (vmapped)."""
    from numpyro.handlers import seed as seeded
    from numpyro.handlers import substitute, trace
    from numpyro.infer.util import log_density

    def log_ratio(k):
        tr = trace(substitute(seeded(guide, k), data=params)).get_trace(**kwargs)
        latent = {n: s["value"] for n, s in tr.items() if s["type"] == "sample" and not s["is_observed"]}
        log_q, _ = log_density(guide, (), kwargs, {**params, **latent})
        log_p, _ = log_density(model, (), kwargs, latent)
        return log_p - log_q

    keys = jax.random.split(key, num_draws)
    lw = np.asarray(jax.jit(lambda ks: jax.lax.map(log_ratio, ks, batch_size=batch_size))(keys), dtype=float)
    if np.any(np.isnan(lw) | (lw == np.inf)):
        return float("inf"), lw
    with warnings.catch_warnings():  # ArviZ warns when k-hat is large: that is what the caller reports
        warnings.simplefilter("ignore")
        _, khat = az.psislw(lw)
    return float(khat), lw


def _inference_data(samples: dict, sample_stats: dict, observed: dict, var_names) -> az.InferenceData:
    """InferenceData of the kept sites (`fit`'s `var_names`), the pointwise log-likelihood in its group."""
    keep = {k: np.asarray(v) for k, v in samples.items() if np.asarray(v).size > 0  # (empty: factor sites)
            and k != "log_lik"
            and ((var_names is None and np.asarray(v)[0, 0].size <= 100) or (var_names is not None and k in var_names))}
    extra = {"log_likelihood": {"bins": np.asarray(samples["log_lik"])}} if "log_lik" in samples else {}
    return az.from_dict(posterior=keep, sample_stats=sample_stats, observed_data=observed, **extra)


def _best_svi(model, kwargs: dict, key, guide, init_strategy, steps: int, restarts: int, progress: bool):
    """`restarts` SVI optimisations (`fit`'s `svi_restarts`): (guide, result, final losses, index kept).
    Why restarts: the ELBO of the regime HMM has local optima in which the states swap roles. On an
    hour of the mean-reverting validation market (`calibration.simulation_check`, seed 0), the first start
    ended 228 nats worse than the third, with the volatile state's excess volatility 0.06 (truth
    1.0), the trend drift 3.2 bps/s (truth 2.0) and trends that last one bin; the third recovered
    1.01, 1.9 and the quiet sigma 2.00 (truth 2.0)."""
    if restarts < 1:
        raise ValueError(f"svi_restarts must be >= 1, got {restarts}")
    finals, best, best_score = [], None, np.inf
    for r in range(restarts):
        guide_r = AutoNormal(model, init_loc_fn=init_strategy) if guide is None else guide(model, init_strategy)
        res_r = SVI(model, guide_r, Adam(0.01), Trace_ELBO()).run(
            key if r == 0 else jax.random.fold_in(key, r), steps, progress_bar=progress, **kwargs)
        finals.append(float(np.mean(np.asarray(res_r.losses)[-max(1, steps // 10):])))
        score = finals[-1] if np.isfinite(finals[-1]) else np.inf  # a diverged start never wins
        if best is None or score < best_score:  # (the first start is kept if all diverged)
            best, best_score, guide_fn, res = r, score, guide_r, res_r
    return guide_fn, res, finals, best


WARM_START_SPREAD = 3.0
"""How much wider than the SVI approximation the warm-started chains' starts are drawn (`fit`)."""


def _warm_start(params: dict, chains: int, dense_mass: bool, key):
    """(init_params, inverse mass matrix) for NUTS from an AutoNormal guide's parameters: per chain,
    loc + WARM_START_SPREAD x scale x N(0, 1) on the unconstrained scale (leading chain axis when
    chains > 1), and the scales squared as NumPyro's per-site (or, dense, one sorted block) matrix.
    Why: from the prior median with a unit mass matrix the regime HMM's warmup took 72 leapfrog
    steps per iteration on 20,000 bins (78% of a chain's time) against 15 per draw after it; warm,
    13 (benchmarks/bench_fit.py, `regime_aim`). What it gives up: the chains start near one optimum
    of the ELBO, so their agreement no longer tests whether the posterior has other modes far from
    it (`svi_restarts` > 1 looks for them)."""
    locs = {k[: -len("_auto_loc")]: jnp.asarray(v) for k, v in params.items() if k.endswith("_auto_loc")}
    scales = {k[: -len("_auto_scale")]: jnp.asarray(v) for k, v in params.items() if k.endswith("_auto_scale")}
    keys = dict(zip(sorted(locs), jax.random.split(key, len(locs)), strict=True))
    shape = (chains,) if chains > 1 else ()
    init = {k: locs[k] + WARM_START_SPREAD * scales[k] * jax.random.normal(keys[k], shape + v.shape, v.dtype)
            for k, v in locs.items()}
    variances = {k: jnp.ravel(scales[k]) ** 2 for k in sorted(scales)}
    if dense_mass:
        return init, {tuple(variances): jnp.diag(jnp.concatenate(list(variances.values())))}
    return init, {(k,): v for k, v in variances.items()}


def release_compiled_code(share: float = 0.5) -> bool:
    """Clear JAX's in-memory caches of compiled code when this process's memory mappings exceed
    `share` of the kernel's limit; always where /proc cannot say. Returns whether it cleared. (The
    persistent cache on disk, `bayesmm.compilation_cache`, is kept.)

    Why: each fit compiles its own sampler, and JAX keeps compiled code alive in its caches. On CPU
    that code holds memory mappings (~8,000 per NUTS fit here, ~10,000 per SVI fit with its checks);
    after ~8 fits in one process the kernel's limit (vm.max_map_count, 65,530 by default) was reached
    and LLVM crashed the process. Not after every fit: what stays compiled (NumPyro's model
    initialisation runs op by op, and each op's program is reused by the next fit) makes the next fit
    faster (`benchmarks/bench_compile_cache.py`)."""
    try:
        with open("/proc/self/maps") as f:
            held = sum(1 for _ in f)
        with open("/proc/sys/vm/max_map_count") as f:
            limit = int(f.read())
    except (OSError, ValueError):
        held, limit = 1, 0
    if held > share * limit:
        jax.clear_caches()
        return True
    return False


def diagnostics(idata: az.InferenceData) -> dict:
    """NUTS: max r_hat, min bulk / tail ESS over scalar-or-small sites, divergences, min BFMI; SVI: the
    Pareto k-hat of the guide's importance ratios (`psis_khat`); both: timings, SVI restarts' spread."""
    post = idata.posterior
    out = {"method": post.attrs.get("method", "nuts")}
    if out["method"] == "nuts":
        with warnings.catch_warnings():  # one chain: r_hat is undefined (NaN), which is what we report
            warnings.simplefilter("ignore", RuntimeWarning)
            rhat = az.rhat(post) if post.sizes["chain"] > 1 else None
        ess_b, ess_t = az.ess(post, method="bulk"), az.ess(post, method="tail")
        out["max_rhat"] = (float(max(float(np.nanmax(rhat[v].values)) for v in rhat.data_vars)) if rhat is not None
                           else float("nan"))
        out["min_ess_bulk"] = float(min(float(np.nanmin(ess_b[v].values)) for v in ess_b.data_vars))
        out["min_ess_tail"] = float(min(float(np.nanmin(ess_t[v].values)) for v in ess_t.data_vars))
        out["divergences"] = int(idata.sample_stats["diverging"].values.sum())
        out["min_bfmi"] = float(np.min(az.bfmi(idata)))
        if "n_steps" in idata.sample_stats:  # leapfrog steps per draw: what a NUTS fit's time scales with
            out["mean_leapfrog_steps"] = float(idata.sample_stats["n_steps"].values.mean())
    out.update({k: v for k, v in idata.sample_stats.attrs.items() if k.endswith(("_s", "_steps"))})
    for k in ("psis_khat", "svi_psis_khat"):  # SVI: its guide's k-hat; NUTS after SVI failed it: why it ran
        if k in idata.sample_stats.attrs:
            out[k] = float(idata.sample_stats.attrs[k])
    # (a one-element list comes back from netCDF as a scalar)
    finals = np.atleast_1d(np.asarray(idata.sample_stats.attrs.get("svi_restart_losses", []), float))
    if finals.size:  # how far apart the SVI starts ended (negative ELBO): large means several optima
        finite = finals[np.isfinite(finals)]
        out["svi_restarts"] = int(finals.size)
        out["svi_restart_loss_range_nats"] = float(np.ptp(finite)) if finite.size else float("nan")
    return out


def check(idata: az.InferenceData, gate=None, strict: bool = False) -> list[str]:
    """The diagnostics of one fit the gate fails (`models.gate`; empty when all pass); warns loudly, or
    raises if `strict`."""
    from bayesmm.models.gate import Gate, diagnostic_failures

    failures = diagnostic_failures(diagnostics(idata), gate or Gate())
    if failures:
        msg = f"{idata.posterior.attrs.get('model', 'fit')}: diagnostics failed: " + "; ".join(failures)
        if strict:
            raise FitDiagnosticsError(msg)
        warnings.warn(msg, RuntimeWarning, stacklevel=2)
    return failures


def save_fit(idata: az.InferenceData, path: str | Path) -> Path:
    """Write a fit to netCDF, atomically (`events.atomic`: a half-written fit never has the final name)."""
    from bayesmm.events.atomic import write_atomic

    return write_atomic(path, lambda tmp: idata.to_netcdf(str(tmp)))


def load_fit(path: str | Path) -> az.InferenceData:
    """Read a fit written by `save_fit`."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such fit")
    return az.from_netcdf(str(path))


def interval(idata: az.InferenceData, name: str, prob: float = 0.9) -> tuple[float, float]:
    """Central `prob` credible interval of a scalar site."""
    x = idata.posterior[name].values.ravel()
    lo = (1 - prob) / 2
    return float(np.quantile(x, lo)), float(np.quantile(x, 1 - lo))


def posterior_medians(idata: az.InferenceData) -> dict:
    """{site: elementwise posterior median over chains and draws} (arrays keep their shape)."""
    post = idata.posterior
    return {k: np.median(flat_draws(post, k), axis=0) for k in post.data_vars}


def _unconstrained(x: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """x on the scale where the prior is unbounded: logit for (0, 1), log for (0, inf), as is otherwise."""
    if np.all((prior > 0) & (prior < 1)):
        x = np.clip(x, 1e-12, 1 - 1e-12)
        return np.log(x) - np.log1p(-x)
    if np.all(prior > 0):
        return np.log(np.maximum(x, 1e-300))
    return x


def prior_contraction(model, data: dict, idata: az.InferenceData, num_samples: int = 2000, seed: int = 0) -> dict:
    """{site: share of the prior's variance the data removed} (`prior_summary`'s "contraction")."""
    return {k: v["contraction"] for k, v in prior_summary(model, data, idata, num_samples, seed).items()}


def prior_summary(model, data: dict, idata: az.InferenceData, num_samples: int = 2000, seed: int = 0) -> dict:
    """{site: {"contraction", "prior_q05", "prior_median", "prior_q95"}} for each site of at most 16
    elements (vectors: the prior quantiles per element, the contraction averaged over them).
    contraction = 1 - posterior variance / prior variance, the prior drawn from the model itself,
    both on the site's unconstrained scale (log for a positive parameter, logit for a probability).
    Near 1: the data pinned the parameter down; near 0: the posterior is the prior, the data said
    nothing about it. This is the number that says how little a short session can tell.

    Why the unconstrained scale: a heavy-tailed prior's variance (a LogNormal's) is dominated by
    its tail, so a posterior sitting out in that tail (the tape's 60 fills per second against a
    prior median of 0.2) can have more variance than the 2,000 prior draws show, and the share came
    out at -357,348%; on the log scale the prior is Normal and the share lies in [0, 1] unless the
    posterior is wider than the prior, which is reported as 0 (the data taught nothing)."""
    from numpyro.infer import Predictive

    kwargs = model_kwargs(data)
    post = idata.posterior
    names = [k for k in post.data_vars if post[k].values[0, 0].size <= 16]
    prior = Predictive(model, num_samples=num_samples, return_sites=names)(jax.random.key(seed), **kwargs)
    out = {}
    for k in names:
        if k not in prior:
            continue
        p = np.asarray(prior[k])
        q = flat_draws(post, k)
        v_prior = np.var(_unconstrained(p, p), axis=0)
        v_post = np.var(_unconstrained(q, p), axis=0)
        ok = v_prior > 0
        if np.any(ok):
            out[k] = {"contraction": float(np.mean(np.clip(1.0 - v_post[ok] / v_prior[ok], 0.0, 1.0))),
                      **{name: np.quantile(p, qq, axis=0).tolist() for name, qq in
                         (("prior_q05", 0.05), ("prior_median", 0.5), ("prior_q95", 0.95))}}
    return out
