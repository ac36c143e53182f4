r"""Gaussian distributions over a whole latent path, for the stochastic volatility model.

`GaussianMarkovChain`: x_0 = m_0 + s_0 z_0,  x_t = m_t + a_t (x_{t-1} - m_{t-1}) + s_t z_t,  z ~ N(0, 1)
(a_0 unused); with m, a, s constant it is the stationary AR(1) / discretised log-OU prior of the
centred SV model's log-variance path. log_prob is O(T) and vectorised; sampling is a `lax.scan`.

`AR1GivenPseudoObservations`: that AR(1) conditioned on Gaussian pseudo-observations, sampled by
forward filtering, backward sampling; the path part of `models.volatility.SVStructuredGuide`.
Both are reparameterised (SVI differentiates through their samples)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpyro.distributions as dist
from numpyro.distributions import constraints

from bayesmm.online.kernels import gaussian_update


class GaussianMarkovChain(dist.Distribution):
    """Path of length T (event shape (T,)); `loc`, `coef`, `scale` are (T,) arrays (module docstring)."""

    arg_constraints = {"loc": constraints.real_vector, "coef": constraints.real_vector,
                       "scale": constraints.independent(constraints.positive, 1)}
    reparametrized_params = ["loc", "coef", "scale"]
    support = constraints.real_vector

    def __init__(self, loc, coef, scale, *, validate_args=None):
        self.loc, self.coef, self.scale = jnp.broadcast_arrays(loc, coef, scale)
        if self.loc.ndim != 1:
            raise ValueError(f"GaussianMarkovChain takes (T,) arrays, got shape {self.loc.shape}")
        super().__init__(batch_shape=(), event_shape=self.loc.shape, validate_args=validate_args)

    def sample(self, key, sample_shape=()):
        z = jax.random.normal(key, sample_shape + self.event_shape)

        def step(dev, inputs):
            a, s, z_t = inputs
            dev = a * dev + s * z_t
            return dev, dev

        def one(z_path):
            first = self.scale[0] * z_path[0]
            _, rest = jax.lax.scan(step, first, (self.coef[1:], self.scale[1:], z_path[1:]))
            return self.loc + jnp.concatenate([first[None], rest])

        flat = z.reshape(-1, self.event_shape[0])
        return jax.vmap(one)(flat).reshape(z.shape)

    def log_prob(self, value):
        dev = value - self.loc
        innov = jnp.concatenate([dev[..., :1], dev[..., 1:] - self.coef[1:] * dev[..., :-1]], axis=-1)
        return jnp.sum(dist.Normal(0.0, self.scale).log_prob(innov), axis=-1)

    @property
    def mean(self):
        return self.loc


class AR1GivenPseudoObservations(dist.Distribution):
    r"""The stationary AR(1) path h_t = mu + phi (h_{t-1} - mu) + xi e_t conditioned on Gaussian
    pseudo-observations y_t ~ N(h_t, v_t): an exact Gaussian, sampled by forward filtering and
    backward sampling (Kalman filter, then h_T, h_{T-1} | h_T, ... ; reparameterised), with

        log q(h) = log p(h | mu, phi, xi) + sum_t log N(y_t; h_t, v_t) - log Z,

    Z the filter's marginal likelihood of y. As a variational guide for a path whose prior is that
    AR(1) (the centred stochastic volatility model), the free parameters are (y, v) per bin, and
    the path's shape follows the scalars (mu, phi, xi) drawn in the same guide: q(h | scalars) is
    structured, not q(h) q(scalars). Starting from y_t = log(ret_t^2 / dt) + 1.27 and
    v_t = pi^2 / 2 (the mean and variance of log chi^2_1), the guide starts at the quasi-likelihood
    (Harvey, Ruiz and Shephard) smoother, and the optimiser refines it."""

    arg_constraints = {"mu": constraints.real, "phi": constraints.interval(-1.0, 1.0),
                       "xi": constraints.positive, "y": constraints.real_vector,
                       "v": constraints.independent(constraints.positive, 1)}
    reparametrized_params = ["mu", "phi", "xi", "y", "v"]
    support = constraints.real_vector

    def __init__(self, mu, phi, xi, y, v, start=None, *, validate_args=None):
        self.mu, self.phi, self.xi = mu, phi, xi
        self.y, self.v = jnp.broadcast_arrays(y, v)
        n = self.y.shape[0]
        self.start = (jnp.zeros(n).at[0].set(1.0) if start is None else jnp.asarray(start, self.y.dtype).at[0].set(1.0))
        super().__init__(batch_shape=(), event_shape=self.y.shape, validate_args=validate_args)

    def _steps(self):
        """Per-bin AR(1) coefficient and innovation variance: (phi, xi^2), restarting from the
        stationary law (0, xi^2 / (1 - phi^2)) at each session's first bin (`start`)."""
        s = self.start > 0
        return jnp.where(s, 0.0, self.phi), jnp.where(s, self.xi**2 / (1.0 - self.phi**2), self.xi**2)

    def _prior(self) -> GaussianMarkovChain:
        coef, var = self._steps()
        return GaussianMarkovChain(jnp.full(self.event_shape[0], self.mu), coef, jnp.sqrt(var))

    def _filter(self):
        """Filtered means and variances per bin, and log Z."""
        mu = self.mu
        coef, q = self._steps()
        next_coef, next_q = coef[1:], q[1:]

        def step(carry, obs):
            mean, var, log_z = carry
            y, v, a, qq = obs
            mean, var, ll = gaussian_update(mean, var, y, v)
            out = (mean, var)
            return (mu + a * (mean - mu), a**2 * var + qq, log_z + ll), out

        init = (mu, q[0], jnp.zeros_like(mu))
        pad = lambda x: jnp.concatenate([x, x[:1]])  # noqa: E731  (the last step's prediction is unused)
        (_, _, log_z), (means, variances) = jax.lax.scan(step, init, (self.y, self.v, pad(next_coef), pad(next_q)))
        return means, variances, log_z

    def sample(self, key, sample_shape=()):
        means, variances, _ = self._filter()
        mu = self.mu
        coef, q = self._steps()
        z = jax.random.normal(key, sample_shape + self.event_shape).reshape(-1, self.event_shape[0])

        def one(z_path):
            last = means[-1] + jnp.sqrt(variances[-1]) * z_path[-1]

            def back(h_next, inputs):
                m, p, a, qq, z_t = inputs  # a, qq: the step from this bin to the next
                pred_var = a**2 * p + qq
                gain = a * p / pred_var
                h = m + gain * (h_next - mu - a * (m - mu)) + jnp.sqrt(p - gain * a * p) * z_t
                return h, h

            _, rest = jax.lax.scan(back, last, (means[:-1], variances[:-1], coef[1:], q[1:], z_path[:-1]),
                                   reverse=True)
            return jnp.concatenate([rest, last[None]])

        return jax.vmap(one)(z).reshape(sample_shape + self.event_shape)

    def log_prob(self, value):
        *_, log_z = self._filter()
        pseudo = jnp.sum(dist.Normal(value, jnp.sqrt(self.v)).log_prob(self.y), axis=-1)
        return self._prior().log_prob(value) + pseudo - log_z
