"""Metrics that cannot be absurd: a Sharpe ratio from too few samples, or from samples without
dispersion, is undefined (NaN) with a reason, never a huge number from a near-zero deviation."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pytest

from bayesmm.sim.metrics import MIN_SAMPLES, _sharpe, undefined_reasons


def test_sharpe_needs_samples_and_dispersion():
    one = np.array([3.2])
    assert math.isnan(float(_sharpe(jnp.sum(one), jnp.sum(one**2), 1)))
    flat = np.full(20, 1.5)
    assert math.isnan(float(_sharpe(jnp.sum(flat), jnp.sum(flat**2), 20)))
    x = np.random.default_rng(0).normal(0.3, 2.0, MIN_SAMPLES)
    assert float(_sharpe(jnp.sum(x), jnp.sum(x**2), len(x))) == pytest.approx(x.mean() / x.std(), rel=1e-10)
    reasons = undefined_reasons({"fill_sharpe": float("nan"), "pnl": 1.0})
    assert set(reasons) == {"fill_sharpe"} and "fewer than" in reasons["fill_sharpe"]
