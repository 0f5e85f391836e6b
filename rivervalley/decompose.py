r"""River / hill split for landscapes without a known river: relaxation onto the valley floor.

The parametric landscapes decompose analytically (``Landscape.decompose``).  For a model whose
river is unknown (the bigram language models) the river point of ``w`` is taken to be where an
instant decay of the learning rate to zero would take it: ``K`` steps of full-batch gradient
descent on the population loss, each with the safe step ``1 / B(w)`` (``B`` an upper bound on the
largest Hessian eigenvalue at the current point, so each step decreases the loss):

.. math::

    r_0 = w, \qquad r_{k+1} = r_k - \frac{\nabla L(r_k)}{B(r_k)}, \qquad r(w) = r_K,

    \text{river loss} = L(r(w)), \qquad \text{hill loss} = L(w) - L(r(w)) \ge 0,
    \qquad \text{river coordinate} = |r(w)|.

A direction of curvature ``lambda`` relaxes by the factor ``(1 - lambda/B)^K``: steep (hill)
directions, ``lambda`` near ``B``, are removed; flat (river) directions, ``lambda << B / K``,
barely move.  ``K`` therefore sets the curvature that separates hills from river (``~B/K``);
``loss = river_loss + hill_loss`` holds by construction, to one rounding (``hill_loss`` is the
floating-point difference, so adding it back may be off by one ulp).  The river coordinate is the
norm of the river point: along the river of a cross-entropy loss the logits of determined
tokens grow without bound.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from rivervalley.landscapes.base import Decomposition

DEFAULT_RELAX_STEPS = 16


def relax(landscape: Any, w: jax.Array, *, steps: int) -> jax.Array:
    """The river point ``r(w)``: ``steps`` gradient steps of size ``1 / curvature_bound``."""

    def step(r, _):
        return r - landscape.grad(r) / landscape.curvature_bound(r), None

    river, _ = jax.lax.scan(step, w, None, length=steps)
    return river


def by_relaxation(landscape: Any, w: jax.Array, *, steps: int = DEFAULT_RELAX_STEPS):
    """The relaxation split of ``w`` (see the module docstring) as a ``Decomposition``."""
    river = relax(landscape, w, steps=steps)
    river_loss = landscape.loss(river)
    return Decomposition(
        river_coord=jnp.linalg.norm(river),
        river_loss=river_loss,
        hill_loss=landscape.loss(w) - river_loss,
        hill_displacement=w - river,
    )
