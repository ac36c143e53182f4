"""What each horizon's forecast learns online from its own resolved outcomes (`online.adapt`): the
Laplace steps recover a known recalibration, outcomes resolve one horizon after their forecast, ties
teach nothing, the lesson fades to the prior, and with zero prior variance nothing moves."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bayesmm.online import adapt
from bayesmm.online.params import HORIZONS_S, default_config, replace

jax.config.update("jax_enable_x64", True)

CFG = replace(default_config(), book=dict(adapt_trend_var=(1.0,) * 4, adapt_scale_var=(1.0,) * 4,
                                          adapt_timescale_s=1e9))


@pytest.mark.parametrize("truth", [(0.4, 0.6), (-0.4, 0.6), (0.0, 1.8)])
def test_laplace_steps_recover_a_known_recalibration(truth):
    """Outcomes drawn from sigmoid(a + b z) with known (a, b): after 4000 sequential steps each lies
    within 3 posterior sds of the posterior mean, and the sds have shrunk well below the prior's 1."""
    rng = np.random.default_rng(7)
    z = rng.normal(0.0, 1.5, 4000)
    down = (rng.random(4000) < 1.0 / (1.0 + np.exp(-(truth[0] + truth[1] * z)))).astype(float)
    mean, cov = jnp.asarray([0.0, 1.0]), jnp.eye(2)

    def body(carry, row):  # the static forecast's own variance 0: the prior's is all there is
        return adapt._learn(*carry, row[0], 0.0, jnp.eye(2), row[1], jnp.asarray(1.0)), None

    (mean, cov), _ = jax.lax.scan(body, (mean, cov), (jnp.asarray(z), jnp.asarray(down)))
    sd = np.sqrt(np.diag(np.asarray(cov)))
    assert np.all(sd < 0.1)
    assert np.all(np.abs(np.asarray(mean) - np.asarray(truth)) < 3 * sd), (mean, sd)


H = len(HORIZONS_S)


def _drive(cfg, n_events: int, dt_s: float, ret_every: int, ret_bps: float, z: float):
    """adapt.step over a regular stream: the mid moves by ret_bps every `ret_every` events; the static
    forecast in force is z on every horizon (linear predictor z, variance 0). Returns the states after
    each event (as a list)."""
    s = adapt.init(cfg, jnp.float64)
    out = []
    step = jax.jit(lambda s, t, r: adapt.step(s, t, dt_s, False, r, cfg)._replace(last_eta=jnp.full(H, z),
                                                                                  last_var=jnp.zeros(H)))
    for i in range(n_events):
        s = step(s, i * dt_s, ret_bps if i % ret_every == ret_every - 1 else 0.0)
        out.append(s)
    return out


def test_outcomes_resolve_one_horizon_later_and_teach_the_forecast():
    """The mid falls every second while the static forecast says only 62% (z = 0.5): each horizon's
    belief stays at its prior until its first forecast resolves (one horizon after the first grid
    point), then learns the falls: after 200 s every horizon reads a fall as more likely than z says."""
    states = _drive(CFG, 2000, 0.1, 10, -1.0, 0.5)
    prior = np.asarray(adapt.prior(CFG, jnp.float64)[0])
    for k, h in enumerate(HORIZONS_S):
        before = states[int(h / 0.1) - 2]  # the first forecast (at h / SLOTS) is not due yet
        np.testing.assert_array_equal(np.asarray(before.mean)[k], prior[k])
        assert not np.allclose(np.asarray(states[int((h + h / adapt.SLOTS) / 0.1) + 2].mean)[k], prior[k])
    last = states[-1]
    p = 1.0 / (1.0 + np.exp(-np.asarray(adapt.log_odds(last, jnp.full(H, 0.5), jnp.zeros(H), CFG))))
    assert np.all(p > 1.0 / (1.0 + np.exp(-0.5)) + 0.1), p


def test_ties_teach_nothing_and_zero_variance_is_the_static_forecast():
    """A mid that never moves resolves no forecast: the belief stays at its prior exactly; at its prior
    the read-out is the static forecast eta / sqrt(1 + pi/8 V) (the model's predictive); and with both
    prior variances 0 it stays that, whatever the outcomes."""
    states = _drive(CFG, 300, 0.5, 1, 0.0, 0.8)
    m0, p0 = adapt.prior(CFG, jnp.float64)
    np.testing.assert_array_equal(np.asarray(states[-1].mean), np.asarray(m0))
    np.testing.assert_array_equal(np.asarray(states[-1].cov), np.asarray(p0))
    eta, var = jnp.asarray([-2.0, -0.1, 0.3, 4.0]), jnp.asarray([0.5, 0.0, 2.0, 0.1])
    static = np.asarray(eta) / np.sqrt(1.0 + np.pi / 8.0 * np.asarray(var))
    np.testing.assert_allclose(np.asarray(adapt.log_odds(states[-1], eta, var, CFG)), static, rtol=1e-14)
    off = default_config()
    s = _drive(off, 600, 0.1, 10, -1.0, 0.8)[-1]
    np.testing.assert_allclose(np.asarray(adapt.log_odds(s, eta, var, off)), static, rtol=1e-14)


def test_the_lesson_fades_to_the_prior():
    """After learning, a silence of 10 time constants leaves the belief e^-10 of the way from its prior
    (the OU relaxation: mean by r, covariance by r^2)."""
    cfg = replace(CFG, book=dict(adapt_timescale_s=5.0))
    s = _drive(cfg, 1000, 0.1, 10, -1.0, 0.5)[-1]
    m0, p0 = (np.asarray(x) for x in adapt.prior(cfg, jnp.float64))
    assert np.max(np.abs(np.asarray(s.mean) - m0)) > 0.05
    s = s._replace(pending_n=jnp.full_like(s.pending_n, -(2**30)))  # nothing left to resolve in the silence
    later = adapt.step(s, 100.0, 50.0, False, 0.0, cfg)
    np.testing.assert_allclose(np.asarray(later.mean) - m0, (np.asarray(s.mean) - m0) * np.exp(-10.0), atol=1e-12)
    np.testing.assert_allclose(np.asarray(later.cov) - p0, (np.asarray(s.cov) - p0) * np.exp(-20.0), atol=1e-12)
