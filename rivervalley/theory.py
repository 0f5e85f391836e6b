r"""Closed forms and exact recursions that the simulator is checked against.

SGD on a quadratic with curvatures ``lambda_i`` and additive gradient noise of standard deviation
``sigma_i`` (any distribution with mean 0 and that variance) moves each coordinate independently:

.. math::

    w_{t+1} = (1 - \eta_t \lambda) w_t - \eta_t \sigma \xi_t

so its mean and variance follow, *exactly* and for any schedule ``eta_t``,

.. math::

    m_{t+1} = (1 - \eta_t \lambda) m_t, \qquad
    v_{t+1} = (1 - \eta_t \lambda)^2 v_t + \eta_t^2 \sigma^2,

and the expected loss is ``E L_t = 1/2 sum_i lambda_i (m_i^2 + v_i)``.  Under a constant rate the
variance converges (for ``0 < eta lambda < 2``) to ``eta sigma^2 / (lambda (2 - eta lambda))``,
i.e. a stationary loss of ``eta sigma^2 / (2 (2 - eta lambda))`` per direction.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike


class Moments(NamedTuple):
    """Per-coordinate mean and variance, each of shape ``(T + 1, d)`` (row ``t``: after ``t``
    updates)."""

    mean: ArrayLike
    var: ArrayLike


def sgd_quadratic_moments(curvatures, noise_std, mean0, var0, lrs) -> Moments:
    """Exact mean/variance of SGD on ``0.5 sum lambda_i w_i^2`` with gradient-noise std
    ``noise_std``, starting from ``(mean0, var0)``, for the rates ``lrs`` (shape ``(T,)``)."""
    curvatures = jnp.asarray(curvatures)
    noise_var = jnp.asarray(noise_std) ** 2

    def step(carry, lr):
        m, v = carry
        contraction = 1.0 - lr * curvatures
        m, v = contraction * m, contraction**2 * v + lr**2 * noise_var
        return (m, v), (m, v)

    m0 = jnp.broadcast_to(jnp.asarray(mean0, dtype=curvatures.dtype), curvatures.shape)
    v0 = jnp.broadcast_to(jnp.asarray(var0, dtype=curvatures.dtype), curvatures.shape)
    _, (ms, vs) = jax.lax.scan(step, (m0, v0), jnp.asarray(lrs, dtype=curvatures.dtype))
    return Moments(jnp.concatenate([m0[None], ms]), jnp.concatenate([v0[None], vs]))


def expected_quadratic_loss(curvatures, moments: Moments) -> jax.Array:
    """``E L_t = 1/2 sum_i lambda_i (m_{t,i}^2 + v_{t,i})``, shape ``(T + 1,)``."""
    m, v = jnp.asarray(moments.mean), jnp.asarray(moments.var)
    return 0.5 * jnp.sum(jnp.asarray(curvatures) * (m**2 + v), axis=-1)


def quadratic_loss_variance(curvatures, moments: Moments) -> jax.Array:
    """``Var L_t`` for Gaussian iterates: ``sum_i (lambda_i/2)^2 (2 v^2 + 4 m^2 v)``."""
    lam = jnp.asarray(curvatures)
    m, v = jnp.asarray(moments.mean), jnp.asarray(moments.var)
    return jnp.sum((0.5 * lam) ** 2 * (2.0 * v**2 + 4.0 * m**2 * v), axis=-1)


def stationary_hill_loss(lr, curvature, noise_std):
    """Stationary expected loss of one quadratic direction under SGD at constant rate ``lr``:
    ``eta sigma^2 / (2 (2 - eta lambda))`` (requires ``0 < eta lambda < 2``)."""
    return lr * noise_std**2 / (2.0 * (2.0 - lr * curvature))
