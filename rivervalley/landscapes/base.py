"""The landscape protocol shared by every loss surface in the lab.

A landscape is a pytree dataclass (its numeric parameters are array leaves, so ``sweep`` can batch
over them) with:

``loss(w)``               the full (population) loss, a scalar;
``grad(w)``               its exact gradient (default: ``jax.grad(loss)``);
``stochastic_grad(w, key)`` an unbiased estimate of ``grad(w)``;
``init(key)``             a starting point;
``decompose(w)``          the river / hill split as a ``Decomposition``;
``observables(w)``        optional extra recorded quantities (default none), with
                          ``observable_dims()`` naming the extra axis of non-scalar ones;
``is_finite(w)``          whether ``w`` is a healthy (non-diverged) point.
"""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rivervalley import noise
from rivervalley.pytree import batch_shape
from rivervalley.validation import at_least, finite, require


class Decomposition(NamedTuple):
    """River / hill split of one point ``w``.

    ``river_coord``        position along the river (scalar);
    ``river_loss``         loss of the river point ``r(w)``: ``L(r(w))``;
    ``hill_loss``          height above the valley floor: ``L(w) - L(r(w))``;
    ``hill_displacement``  ``w - r(w)``, shape ``(d,)`` (zero along the river coordinate).
    """

    river_coord: jax.Array
    river_loss: jax.Array
    hill_loss: jax.Array
    hill_displacement: jax.Array

    @property
    def hill_dist(self) -> jax.Array:
        """Euclidean distance of ``w`` from its river point."""
        return jnp.linalg.norm(self.hill_displacement)


class Landscape:
    """Base class of all landscapes (subclasses are pytree dataclasses)."""

    kind: ClassVar[str] = "landscape"
    loss_units: ClassVar[str] = "dimensionless"  # units of ``loss`` in recorded datasets

    def loss(self, w: Any) -> jax.Array:
        raise NotImplementedError

    def grad(self, w: Any) -> Any:
        """Exact gradient of ``loss``."""
        return jax.grad(self.loss)(w)

    def stochastic_grad(self, w: Any, key: jax.Array) -> Any:
        raise NotImplementedError

    def init(self, key: jax.Array) -> Any:
        raise NotImplementedError

    def decompose(self, w: Any) -> Decomposition:
        raise NotImplementedError

    def decomposition_method(self) -> str:
        """One line saying how ``decompose`` defines the river point (stored with results)."""
        return "analytic: the landscape's own river (see its docstring)"

    def observables(self, w: Any) -> dict[str, jax.Array]:
        """Extra quantities recorded next to the loss and its decomposition (default: none)."""
        del w
        return {}

    def observable_dims(self) -> dict[str, tuple[str, list[str]]]:
        """For each non-scalar observable of shape ``(n,)``: its dimension name and ``n`` labels."""
        return {}

    def is_finite(self, w: Any) -> jax.Array:
        """Whether every parameter and the loss at ``w`` are finite (else the run diverged)."""
        leaves = jax.tree_util.tree_leaves(w)
        finite = jnp.all(jnp.stack([jnp.isfinite(jnp.sum(leaf)) for leaf in leaves]))
        return finite & jnp.isfinite(self.loss(w))

    def validate(self) -> Landscape:
        """Check the parameters; raise ``ValueError`` naming the field, value and what is
        allowed.  Subclasses extend this; the base checks only the batch shapes."""
        batch_shape(self)
        return self

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """Leading batch axes shared by the numeric parameters (``()`` for one landscape)."""
        return batch_shape(self)


def diagonal_decomposition(w: jax.Array, per_direction: jax.Array, river: jax.Array):
    """River/hill split of a separable loss ``L(w) = sum_i l_i(w_i)`` with minimum 0 at ``w = 0``:
    the river is coordinate ``river``; the river point keeps it and sets every hill to 0, so
    ``river_loss = l_river``, ``hill_loss = sum_{i != river} l_i`` (``per_direction`` holds the
    ``l_i(w_i)``, shape ``(d,)``)."""
    is_river = jnp.arange(w.shape[-1]) == river
    river_loss = jnp.sum(jnp.where(is_river, per_direction, 0.0))
    hill_loss = jnp.sum(jnp.where(is_river, 0.0, per_direction))
    return Decomposition(w[river], river_loss, hill_loss, jnp.where(is_river, 0.0, w))


def minibatch_noise_std(noise_std: jax.Array, batch_size: jax.Array) -> jax.Array:
    """``sigma / sqrt(B)``: the std of the mean of ``B`` i.i.d. draws of std ``sigma``.

    ``noise_std`` has shape ``batch + (d,)`` and ``batch_size`` shape ``batch + ()`` (or
    broadcastable to it), so this works on one landscape (inside ``vmap``) and on a batch."""
    return noise_std / jnp.sqrt(jnp.asarray(batch_size))[..., None]


class GaussianNoiseLandscape(Landscape):
    """Base of the landscapes whose stochastic gradient is the exact gradient plus Gaussian noise,
    ``hat g(w) = grad L(w) + sigma / sqrt(B) * xi``, ``xi ~ N(0, I)`` (the mean of ``B`` draws of
    per-coordinate std ``sigma``), and whose initial point is a field.  Subclasses (pytree
    dataclasses) provide the fields ``noise_std`` (``(d,)``), ``batch_size`` (scalar ``B >= 1``)
    and ``start`` (``(d,)``)."""

    noise_std: jax.Array
    batch_size: jax.Array
    start: jax.Array

    def effective_noise_std(self) -> jax.Array:
        """Std of the gradient noise, ``noise_std / sqrt(batch_size)``, shape ``batch + (d,)``."""
        return minibatch_noise_std(self.noise_std, self.batch_size)

    def stochastic_grad(self, w: Any, key: jax.Array) -> Any:
        xi = noise.normal(key, jnp.shape(w), w.dtype)
        return self.grad(w) + self.effective_noise_std() * xi

    def init(self, key: jax.Array) -> Any:
        del key
        return jnp.asarray(self.start)

    def _validate_noise(self, primary: str) -> None:
        """Checks shared by the diagonal landscapes: ``primary`` (a ``(d,)`` field) ``> 0``,
        ``noise_std`` and ``start`` of its length, ``noise_std >= 0``, ``start`` finite,
        ``batch_size >= 1``."""
        kind = self.kind
        dim = at_least(kind, primary, getattr(self, primary), 0.0, strict=True).shape[-1:]
        for name in ("noise_std", "start"):
            value = getattr(self, name)
            ok = np.shape(value)[-1:] == dim
            require(ok, kind, name, value, f"of the {primary}' length {dim[0] if dim else 0}")
        at_least(kind, "noise_std", self.noise_std, 0.0)
        finite(kind, "start", self.start)
        at_least(kind, "batch_size", self.batch_size, 1.0)
