r"""Named optax optimizers whose learning rate comes from a schedule.

An ``Optimizer`` is a pytree: its numeric hyperparameters (momentum, Adam's betas and epsilon) are
array leaves, so ``sweep`` can batch over them like over schedule fields; its family and the
gradient oracle it uses are static.

=========  ==================================================  ===================
name        update (``g``: gradient, ``eta_t``: schedule)        gradient
=========  ==================================================  ===================
``gd``      ``w <- w - eta_t g``                                exact ``grad(w)``
``sgd``     ``w <- w - eta_t g`` or, with heavy-ball momentum    ``stochastic_grad``
            ``m <- beta m + g; w <- w - eta_t m``
``adam``    optax's Adam, bias-corrected, ``w <- w - eta_t u``  ``stochastic_grad``
=========  ==================================================  ===================

The update rules are optax's own (``optax.sgd``, ``optax.adam``) with the schedule passed as their
``learning_rate``.
"""

from __future__ import annotations

from typing import Any

import jax
import optax

from rivervalley._pytree import array_field, as_float, batch_shape, pytree_dataclass, static_field
from rivervalley.landscapes.base import Landscape
from rivervalley.validation import at_least, choice, require, within

OPTIMIZERS = ("gd", "sgd", "adam")


@pytree_dataclass
class Optimizer:
    """An optimizer family with its hyperparameters; build it with ``gd``, ``sgd`` or ``adam``."""

    name: str = static_field()
    stochastic: bool = static_field()
    use_momentum: bool = static_field(default=False)
    nesterov: bool = static_field(default=False)
    momentum: jax.Array = array_field(default=0.0)
    b1: jax.Array = array_field(default=0.9)
    b2: jax.Array = array_field(default=0.999)
    eps: jax.Array = array_field(default=1e-8)

    def validate(self) -> Optimizer:
        """Check the family name and hyperparameters (momentum and betas in [0, 1), eps > 0)."""
        choice("optimizer", "name", self.name, OPTIMIZERS)
        batch_shape(self)
        for field in ("momentum", "b1", "b2"):
            value = getattr(self, field)
            ok = within(self.name, field, value, 0.0, 1.0) < 1.0
            require(ok, self.name, field, value, "in [0, 1)")
        at_least(self.name, "eps", self.eps, 0.0, strict=True)
        return self

    def transform(self, learning_rate: Any) -> optax.GradientTransformation:
        """The optax transformation with ``learning_rate`` (a float or a schedule)."""
        if self.name in ("gd", "sgd"):
            momentum = self.momentum if self.use_momentum else None
            return optax.sgd(learning_rate, momentum=momentum, nesterov=self.nesterov)
        if self.name == "adam":
            return optax.adam(learning_rate, b1=self.b1, b2=self.b2, eps=self.eps)
        raise ValueError(f"optimizer: unknown name {self.name!r}; allowed: {OPTIMIZERS}")

    def gradient(self, landscape: Landscape, w: Any, key: jax.Array) -> Any:
        """The gradient this optimizer sees: exact for GD, stochastic otherwise."""
        if self.stochastic:
            return landscape.stochastic_grad(w, key)
        return landscape.grad(w)


def gd() -> Optimizer:
    """Full-batch gradient descent (exact gradients)."""
    return Optimizer(name="gd", stochastic=False).validate()


def sgd(momentum: float | None = None, *, nesterov: bool = False) -> Optimizer:
    """SGD on stochastic gradients, with optional heavy-ball (or Nesterov) momentum."""
    return Optimizer(
        name="sgd",
        stochastic=True,
        use_momentum=momentum is not None,
        nesterov=nesterov,
        momentum=as_float(0.0 if momentum is None else momentum),
    ).validate()


def adam(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> Optimizer:
    """Adam on stochastic gradients."""
    return Optimizer(
        name="adam", stochastic=True, b1=as_float(b1), b2=as_float(b2), eps=as_float(eps)
    ).validate()


def by_name(name: str, **kwargs: Any) -> Optimizer:
    """Look up an optimizer factory by name (``gd``, ``sgd``, ``adam``)."""
    factories = {"gd": gd, "sgd": sgd, "adam": adam}
    choice("optimizer", "name", name, OPTIMIZERS)
    return factories[name](**kwargs)
