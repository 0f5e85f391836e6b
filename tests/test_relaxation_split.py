"""The relaxation split (``rivervalley.decompose.by_relaxation``, the split the language models and
the transformer use) on a noisy quadratic, where the analytic split is known: hills of curvature
``B`` (the relaxation's step ``1 / B`` removes them in one step) and a river of curvature
``lambda_r << B / K``.  The relaxation's hill component equals the analytic hill loss
``sum_hills lambda_i w_i^2 / 2`` up to the river's own relaxation ``(1 - lambda_r / B)^(2K)``,
which is given in closed form too; float64."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rivervalley.decompose import by_relaxation
from rivervalley.landscapes import noisy_quadratic


class _Bounded(NamedTuple):
    """A noisy quadratic with the relaxation's curvature bound ``B`` fixed."""

    curvatures: jax.Array
    bound: float

    def loss(self, w):
        return 0.5 * jnp.sum(self.curvatures * w**2)

    def grad(self, w):
        return self.curvatures * w

    def curvature_bound(self, w):
        del w
        return self.bound


@pytest.mark.parametrize("steps", [1, 4, 16])
def test_relaxation_split_is_exact_on_the_noisy_quadratic(x64, steps):
    bound = 10.0
    lam = np.array([1e-4, bound, bound, bound])  # river first, three hills at the bound
    quad = noisy_quadratic(lam, 0.0, np.zeros(4))  # the lab's landscape: its loss is the same
    w = np.array([3.0, 0.4, -0.7, 1.1])
    parts = by_relaxation(_Bounded(jnp.asarray(lam), bound), jnp.asarray(w), steps=steps)
    analytic_hill = 0.5 * float(np.sum(lam[1:] * w[1:] ** 2))
    river_shrink = (1.0 - lam[0] / bound) ** (2 * steps)
    river_loss = 0.5 * lam[0] * w[0] ** 2 * river_shrink
    assert float(quad.loss(jnp.asarray(w))) == pytest.approx(float(parts.hill_loss) + river_loss)
    np.testing.assert_allclose(float(parts.river_loss), river_loss, rtol=1e-12)
    np.testing.assert_allclose(
        float(parts.hill_loss),
        analytic_hill + 0.5 * lam[0] * w[0] ** 2 * (1.0 - river_shrink),
        rtol=1e-12,
    )
    # the river's share of the hill component is below 1e-6 of it: the split is the analytic one
    assert abs(float(parts.hill_loss) - analytic_hill) < 1e-6 * analytic_hill
    np.testing.assert_allclose(np.asarray(parts.hill_displacement)[1:], w[1:], rtol=1e-12)
