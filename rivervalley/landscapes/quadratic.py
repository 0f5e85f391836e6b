r"""The noisy quadratic model (NQM): the straight-river limit of a river valley.

.. math::

    L(w) = \tfrac12 \sum_i \lambda_i w_i^2, \qquad
    \hat g(w) = \lambda \odot w + \sigma \odot \xi, \quad \xi \sim N(0, I).

The river is the flattest direction (the coordinate with the smallest curvature); every other
coordinate is a hill.  For SGD each coordinate's mean and variance follow an exact recursion
(see ``rivervalley.theory``).

Batch size.  Every noisy landscape of the lab (``NoisyQuadratic``, ``RiverValley``,
``WeightedL1``) has a ``batch_size`` field ``B >= 1`` (default 1, a float array leaf, so ``sweep``
batches it like any other parameter and it becomes a dataset coordinate): the stochastic gradient
is the mean of ``B`` independent draws, so its noise std is ``sigma / sqrt(B)`` (variance
``sigma^2 / B``; ``noise_std`` is the std of *one* draw).  ``B`` need not be an integer: it is
the noise scale ``sigma^2 / B`` that enters the dynamics (``B = 1`` gives the former results bit
for bit: ``sqrt(1) = 1`` and ``x / 1 = x`` exactly in IEEE arithmetic).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import ArrayLike

from rivervalley.landscapes.base import GaussianNoiseLandscape, diagonal_decomposition
from rivervalley.pytree import array_field, as_float, pytree_dataclass


@pytree_dataclass(kw_only=False)
class NoisyQuadratic(GaussianNoiseLandscape):
    """``NoisyQuadratic(curvatures, noise_std, start, batch_size=1.0)``: the first three of shape
    ``(d,)``, ``batch_size`` a scalar ``B >= 1``.

    ``start`` is the initial point (``init`` is the protocol's method, hence the field name);
    ``noisy_quadratic`` accepts a scalar ``noise_std`` and broadcasts it.  The gradient noise std
    is ``noise_std / sqrt(batch_size)`` (see the module docstring)."""

    kind = "noisy_quadratic"
    curvatures: jax.Array = array_field(ndim=1)
    noise_std: jax.Array = array_field(ndim=1)
    start: jax.Array = array_field(ndim=1)
    batch_size: jax.Array = array_field(default=1.0)

    def loss(self, w):
        return 0.5 * jnp.sum(self.curvatures * w**2)

    def grad(self, w):
        return self.curvatures * w

    def validate(self) -> NoisyQuadratic:
        super().validate()
        self._validate_noise("curvatures")
        return self

    def river_index(self) -> jax.Array:
        """Index of the flattest coordinate (the river)."""
        return jnp.argmin(self.curvatures)

    def decomposition_method(self) -> str:
        return "analytic: the river is the flattest coordinate; the hills are the others"

    def decompose(self, w):
        return diagonal_decomposition(w, 0.5 * self.curvatures * w**2, self.river_index())


def noisy_quadratic(curvatures, noise_std, init, *, batch_size: ArrayLike = 1.0) -> NoisyQuadratic:
    """Build a ``NoisyQuadratic``; ``noise_std`` and ``init`` broadcast to the curvatures' shape.
    ``batch_size`` (``B >= 1``, a scalar or a 1-D batch of values to sweep) divides the noise
    variance: the gradient noise std is ``noise_std / sqrt(B)``."""
    curvatures = np.atleast_1d(np.asarray(curvatures, dtype=float))
    noise = np.broadcast_to(np.asarray(noise_std, dtype=float), curvatures.shape)
    start = np.broadcast_to(np.asarray(init, dtype=float), curvatures.shape)
    return NoisyQuadratic(
        as_float(curvatures), as_float(noise), as_float(start), as_float(batch_size)
    ).validate()


def power_law_spectrum(dim: int, top: float = 1.0, exponent: float = 1.0) -> np.ndarray:
    """Curvatures ``lambda_i = top * i^(-exponent)``, ``i = 1..dim``."""
    return top * np.arange(1, dim + 1, dtype=float) ** (-exponent)
