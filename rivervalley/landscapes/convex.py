r"""A convex, Lipschitz, non-smooth stochastic landscape: the weighted L1 loss.

.. math::

    L(w) = \sum_i c_i |w_i|, \qquad
    \hat g(w) = c \odot \operatorname{sign}(w) + \frac{\sigma}{\sqrt B} \odot \xi,
    \quad \xi \sim N(0, I),

with ``c_i > 0`` and batch size ``B >= 1`` (``batch_size``, default 1: the noise of the mean of
``B`` independent draws of std ``sigma``; see ``rivervalley.landscapes.quadratic``).
``c * sign(w)`` is a subgradient (the minimal-norm one: 0 where ``w_i = 0``), so ``hat g`` is an
unbiased stochastic subgradient with

.. math::

    E\|\hat g(w)\|^2 = \sum_{i: w_i \ne 0} c_i^2 + \frac1B \sum_i \sigma_i^2
    \le \|c\|^2 + \|\sigma\|^2 / B =: G^2,

with equality wherever no coordinate is exactly 0 (almost surely along a noisy run).  The
minimum is ``L = 0`` at the unique minimiser ``w* = 0``, so ``D = ||w_0||``.  This is the
setting of the last-iterate bound in ``rivervalley.convex_bound``, which must hold here.

River / hill split (``decompose``): as in the noisy quadratic, the *river* is the flattest
coordinate (the smallest ``c_i``, the slowest to reach its minimum under the same rate) and
every other coordinate is a hill: the river point ``r(w)`` keeps the river coordinate and sets
the hills to their minimum 0, so ``river_loss = c_r |w_r|`` and ``hill_loss = L(w) -
L(r(w)) = sum_{i != r} c_i |w_i|``.  Unlike a valley, the hills here have no curvature: at a
constant rate an iterate bounces around 0 at a distance ~ ``eta sigma^2 / (2 B c)`` (the
stationary law of a drift-``c`` random walk), a noise floor linear in the rate.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import ArrayLike

from rivervalley.landscapes.base import GaussianNoiseLandscape, diagonal_decomposition
from rivervalley.pytree import array_field, as_float, pytree_dataclass


@pytree_dataclass(kw_only=False)
class WeightedL1(GaussianNoiseLandscape):
    """``WeightedL1(weights, noise_std, start, batch_size=1.0)``, the first three of shape
    ``(d,)``: ``L(w) = sum_i weights_i |w_i|`` with Gaussian noise of std
    ``noise_std / sqrt(batch_size)`` on the subgradient; ``start`` is the initial point.  Build
    it with ``weighted_l1``."""

    kind = "weighted_l1"
    weights: jax.Array = array_field(ndim=1)
    noise_std: jax.Array = array_field(ndim=1)
    start: jax.Array = array_field(ndim=1)
    batch_size: jax.Array = array_field(default=1.0)

    def loss(self, w):
        return jnp.sum(self.weights * jnp.abs(w))

    def grad(self, w):
        """The minimal-norm subgradient ``c * sign(w)`` (0 where ``w_i = 0``)."""
        return self.weights * jnp.sign(w)

    def gradient_bound(self) -> jax.Array:
        """``G = sqrt(||c||^2 + ||sigma||^2 / B)``: ``E||hat g||^2 <= G^2`` everywhere."""
        sigma = self.effective_noise_std()
        return jnp.sqrt(jnp.sum(self.weights**2, -1) + jnp.sum(sigma**2, -1))

    def initial_distance(self) -> jax.Array:
        """``D = ||w_0 - w*|| = ||start||`` (the minimiser is 0)."""
        return jnp.linalg.norm(self.start, axis=-1)

    def validate(self) -> WeightedL1:
        super().validate()
        self._validate_noise("weights")
        return self

    def river_index(self) -> jax.Array:
        """Index of the flattest coordinate (smallest weight): the river."""
        return jnp.argmin(self.weights)

    def decomposition_method(self) -> str:
        return (
            "analytic: the river is the flattest coordinate (smallest weight); the river point "
            "sets every other coordinate to its minimum 0"
        )

    def decompose(self, w):
        return diagonal_decomposition(w, self.weights * jnp.abs(w), self.river_index())


def weighted_l1(weights, noise_std, init, *, batch_size: ArrayLike = 1.0) -> WeightedL1:
    """Build a ``WeightedL1``; ``noise_std`` and ``init`` broadcast to the weights' shape;
    ``batch_size`` ``B >= 1`` (a scalar or a 1-D batch) makes the noise std
    ``noise_std / sqrt(B)``."""
    weights = np.atleast_1d(np.asarray(weights, dtype=float))
    sigma = np.broadcast_to(np.asarray(noise_std, dtype=float), weights.shape)
    start = np.broadcast_to(np.asarray(init, dtype=float), weights.shape)
    return WeightedL1(
        as_float(weights), as_float(sigma), as_float(start), as_float(batch_size)
    ).validate()
