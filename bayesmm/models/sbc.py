r"""Simulation-based calibration (Talts et al. 2018): draw parameters from the prior, simulate a
data set from them, fit, and record the rank of each true value among L posterior draws. If the
model, the simulator and the sampler agree, every rank is uniform on {0, ..., L}; a U shape says
the posterior is too narrow, a hump that it is too wide, a slope that it is biased.

The posterior draws are thinned before ranking so that they are close to independent (ranks from
autocorrelated draws pile up at the ends even for a correct sampler). Uniformity is tested with a
chi-square test on `num_bins` equal groups of ranks; with R replicates each group expects
R / num_bins ranks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jax
import numpy as np
from numpyro.infer import MCMC, NUTS
from numpyro.infer.initialization import init_to_median
from scipy import stats
from tqdm.auto import tqdm

from bayesmm.models.fit import model_kwargs


@dataclass(frozen=True)
class SBCResult:
    """Attributes: ranks {param: (replicates,) ints in 0..num_draws}; num_draws (L); p_values
    {param: chi-square p-value of uniform ranks}; divergences per replicate."""

    ranks: dict
    num_draws: int
    p_values: dict
    divergences: np.ndarray


def rank_uniformity_p_value(ranks: np.ndarray, num_draws: int, num_bins: int = 10) -> float:
    """Chi-square p-value that `ranks` (ints in 0..num_draws) are uniform, on `num_bins` groups.
    (num_draws + 1) must be a multiple of num_bins so that every group holds as many rank values."""
    if (num_draws + 1) % num_bins:
        raise ValueError(f"num_draws + 1 = {num_draws + 1} must be a multiple of num_bins = {num_bins}")
    counts = np.bincount(np.asarray(ranks) * num_bins // (num_draws + 1), minlength=num_bins)
    return float(stats.chisquare(counts).pvalue)


def prior_sampler(model, template: dict, names) -> Callable:
    """rng -> {name: one draw from `model`'s prior}, read from the model itself (NumPyro's Predictive
    with no posterior; `template` is any data of the right kind, whose values the prior ignores),
    so the priors are written once, in the model."""
    from numpyro.infer import Predictive

    predictive = Predictive(model, num_samples=1, return_sites=list(names))

    def draw(rng) -> dict:
        out = predictive(jax.random.key(int(rng.integers(2**31))), **template)
        return {k: float(np.asarray(v).ravel()[0]) for k, v in out.items()}

    return draw


def run_sbc(model, draw_prior: Callable, simulate: Callable, num_replicates: int, seed: int = 0,
            num_draws: int = 99, thin: int = 2, warmup: int = 200, num_bins: int = 10,
            progress: bool = True) -> SBCResult:
    """Run SBC for `model`.

    Args:
        draw_prior: rng (numpy Generator) -> {param: true value}, a draw from the model's prior.
        simulate: (rng, truth) -> the model's keyword data, with the same array shapes every time
            (pad variable-length parts): one NUTS sampler is compiled once and reused for every
            replicate (jit_model_args), which is what makes hundreds of fits affordable.
        num_draws: L, the posterior draws each truth is ranked among (after thinning by `thin`).
    """
    rng = np.random.default_rng(seed)
    mcmc = MCMC(NUTS(model, init_strategy=init_to_median), num_warmup=warmup, num_samples=num_draws * thin,
                num_chains=1, progress_bar=False, jit_model_args=True)
    ranks: dict[str, list[int]] = {}
    divergences = []
    for _ in tqdm(range(num_replicates), desc="SBC", disable=not progress):
        truth = draw_prior(rng)
        data = model_kwargs(simulate(rng, truth))
        mcmc.run(jax.random.key(int(rng.integers(2**31))), extra_fields=("diverging",), **data)
        divergences.append(int(np.sum(mcmc.get_extra_fields()["diverging"])))
        samples = mcmc.get_samples()
        for name, value in truth.items():
            post = np.asarray(samples[name]).ravel()[::thin][:num_draws]
            ranks.setdefault(name, []).append(int(np.sum(post < value)))
    ranks_arr = {k: np.asarray(v) for k, v in ranks.items()}
    p_values = {k: rank_uniformity_p_value(v, num_draws, num_bins) for k, v in ranks_arr.items()}
    return SBCResult(ranks_arr, num_draws, p_values, np.asarray(divergences))


def plot_sbc(result: SBCResult, path, title: str = "SBC rank histograms", num_bins: int = 10):
    """One rank histogram per parameter with the 99% band of a uniform histogram (binomial)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bayesmm.events.plot import save_figure

    names = list(result.ranks)
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 2.8), squeeze=False)
    n = len(next(iter(result.ranks.values())))
    lo, hi = stats.binom.ppf([0.005, 0.995], n, 1 / num_bins)
    for ax, name in zip(axes[0], names, strict=True):
        counts = np.bincount(result.ranks[name] * num_bins // (result.num_draws + 1), minlength=num_bins)
        ax.axhspan(lo, hi, color="0.85")
        ax.bar(np.arange(num_bins), counts, color="C0")
        ax.set_title(f"{name}\np = {result.p_values[name]:.2f}", fontsize=8)
        ax.set_xticks([])
    fig.suptitle(title)
    return save_figure(fig, path)
