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

from rivervalley._pytree import batch_shape


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
