r"""Parametric river valleys: the lab's 2-D toy and a d-dimensional family.

A point is ``w = (s, y_1, ..., y_{d-1})``: a river coordinate ``s`` and ``d - 1`` hill
coordinates.  The loss is

.. math::

    L(w) = f(s) + \sum_{j=1}^{d-1} \frac{\lambda_j(s)}{2} \bigl(y_j - c_j(s)\bigr)^2,
    \qquad c_j(s) = b_j \sin(\omega s),
    \qquad \lambda_j(s) = \lambda_j \bigl(1 + \kappa\, \mathrm{softplus}(s)\bigr),

with river loss ``f`` decreasing slowly in ``s``:

``softplus``  ``f(s) = log(1 + exp(-s))``   (exponentially flat: ``f ~ e^{-s}`` for large ``s``)
``power``     ``f(s) = (1 + softplus(s))^{-alpha}``   (power law ``~ s^{-alpha}`` for large ``s``)

The hill curvatures ``lambda_j(s)`` grow along the river with rate ``kappa``
(``curvature_growth``, default 0: constant curvatures ``lambda_j``).  The factor
``g(s) = 1 + kappa softplus(s)`` is smooth, at least 1 (never below the base curvature, ~1 far
upstream) and grows linearly downstream (``~ kappa s``), so the valley sharpens along the river:
the landscape of progressive sharpening and the edge of stability for GD.  Because ``g(s) > 0``
multiplies every hill term, the valley floor is unchanged by ``kappa``.

The valley floor (the river) is the curve ``r(s) = (s, c(s))``: for fixed ``s`` it minimises the
loss over the hills.  The decomposition projects along the hill coordinates,
``r(w) = (s, c(s))``, so ``river_loss = f(s)`` and
``hill_loss = sum_j lambda_j(s)/2 (y_j - c_j(s))^2`` add up to the loss exactly.  The gradient is
``jax.grad`` of the loss; in closed form

.. math::

    \partial_s L = f'(s) + \sum_j \lambda_j \bigl(\tfrac{g'(s)}{2} \delta_j^2
        - g(s)\, c_j'(s)\, \delta_j\bigr), \qquad
    \partial_{y_j} L = \lambda_j g(s)\, \delta_j, \qquad \delta_j = y_j - c_j(s),
    \quad g'(s) = \kappa\, \sigma(s).

On the floor (``delta = 0``) the Hessian is
``[[f'' + g sum_j lambda_j c_j'^2, -g (lambda c')^T], [-g lambda c', g diag(lambda)]]``; in 2-D its
top eigenvalue is ``(T + sqrt(T^2 - 4 f'' g lambda)) / 2`` with ``T = f'' + g lambda (1 + c'^2)``
(``floor_hessian`` builds the matrix for any ``d``).  Gradient noise is Gaussian with
per-coordinate standard deviations ``noise_std / sqrt(B)`` (``noise_std`` of shape ``(d,)``, the
std of one draw; ``batch_size`` ``B >= 1``, default 1, the number of draws averaged, a float
array leaf that ``sweep`` batches like any other field; see ``rivervalley.landscapes.quadratic``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import ArrayLike

from rivervalley.landscapes.base import Decomposition, GaussianNoiseLandscape
from rivervalley.pytree import array_field, as_float, pytree_dataclass, static_field
from rivervalley.validation import at_least, choice, finite, require

RIVERS = ("softplus", "power")


@pytree_dataclass
class RiverValley(GaussianNoiseLandscape):
    """d-dimensional river valley (see the module docstring); build it with ``river_valley``."""

    kind = "river_valley"
    curvatures: jax.Array = array_field(ndim=1)  # lambda_j, shape (d-1,)
    amplitudes: jax.Array = array_field(ndim=1)  # b_j, shape (d-1,)
    frequency: jax.Array = array_field()  # omega
    alpha: jax.Array = array_field()  # power-law exponent (``power`` river only)
    noise_std: jax.Array = array_field(ndim=1)  # shape (d,), river coordinate first
    start: jax.Array = array_field(ndim=1)  # initial point, shape (d,)
    curvature_growth: jax.Array = array_field(default=0.0)  # kappa: lambda_j(s) = lambda_j g(s)
    batch_size: jax.Array = array_field(default=1.0)  # B: noise std noise_std / sqrt(B)
    river: str = static_field(default="softplus")
    # whether g(s) is computed at all: off, the valley's gradient costs ~40 % fewer flops (the
    # traced kappa = 0 terms are not free); the factories turn it on when kappa is given
    sharpening: bool = static_field(default=False)

    @property
    def dim(self) -> int:
        return int(self.start.shape[-1])

    def validate(self) -> RiverValley:
        super().validate()
        kind = self.kind
        choice(kind, "river", self.river, RIVERS)
        dim = finite(kind, "start", self.start).shape[-1]
        require(dim >= 2, kind, "start", self.start, "of length d >= 2 (one river, >= 1 hill)")
        for name, length in (("curvatures", dim - 1), ("amplitudes", dim - 1), ("noise_std", dim)):
            value = getattr(self, name)
            ok = np.shape(value)[-1:] == (length,)
            require(ok, kind, name, value, f"of length {length} (start has length {dim})")
        at_least(kind, "curvatures", self.curvatures, 0.0, strict=True)
        finite(kind, "amplitudes", self.amplitudes)
        finite(kind, "frequency", self.frequency)
        at_least(kind, "noise_std", self.noise_std, 0.0)
        kappa = at_least(kind, "curvature_growth", self.curvature_growth, 0.0)
        ok = self.sharpening or not np.any(kappa)
        require(ok, kind, "curvature_growth", kappa, "0 unless sharpening=True")
        if self.river == "power":
            at_least(kind, "alpha", self.alpha, 0.0, strict=True)
        at_least(kind, "batch_size", self.batch_size, 1.0)
        return self

    def river_loss(self, s: jax.Array) -> jax.Array:
        """``f(s)``."""
        if self.river == "softplus":
            return jax.nn.softplus(-s)
        if self.river == "power":
            return (1.0 + jax.nn.softplus(s)) ** (-self.alpha)
        raise ValueError(f"river: unknown river loss {self.river!r}; allowed: {RIVERS}")

    def river_curve(self, s: jax.Array) -> jax.Array:
        """Rest point of the hills, ``c(s) = b sin(omega s)``, shape ``(d-1,)``."""
        return self.amplitudes * jnp.sin(self.frequency * s)

    def curvature_factor(self, s: jax.Array) -> jax.Array:
        """``g(s) = 1 + kappa softplus(s)``: hill ``j`` has curvature ``lambda_j g(s)``
        (exactly 1, without computing it, unless ``sharpening``)."""
        if not self.sharpening:
            return jnp.ones_like(s)
        return 1.0 + self.curvature_growth * jax.nn.softplus(s)

    def hill_curvatures(self, s: jax.Array) -> jax.Array:
        """``lambda_j(s) = lambda_j g(s)``, shape ``(d-1,)`` (``lambda_j`` when ``kappa = 0``)."""
        return self.curvatures * self.curvature_factor(s)

    def floor_hessian(self, s: jax.Array) -> jax.Array:
        """The Hessian ``(d, d)`` of the loss at the floor point ``r(s) = (s, c(s))``, from the
        closed form in the module docstring (``f''`` by differentiating the river loss)."""
        f2 = jax.grad(jax.grad(self.river_loss))(s)
        lam = self.hill_curvatures(s)
        slope = self.amplitudes * self.frequency * jnp.cos(self.frequency * s)  # c'(s)
        corner = jnp.reshape(f2 + jnp.sum(lam * slope**2), (1, 1))
        edge = -(lam * slope)[None, :]
        return jnp.block([[corner, edge], [edge.T, jnp.diag(lam)]])

    def decomposition_method(self) -> str:
        return "analytic: r(w) = (s, c(s)), the valley floor at the same river coordinate"

    def decompose(self, w):
        s, y = w[0], w[1:]
        dy = y - self.river_curve(s)
        hill_loss = 0.5 * jnp.sum(self.hill_curvatures(s) * dy**2)
        return Decomposition(s, self.river_loss(s), hill_loss, jnp.concatenate([jnp.zeros(1), dy]))

    def loss(self, w):
        d = self.decompose(w)
        return d.river_loss + d.hill_loss


def river_valley(
    dim: int = 64,
    *,
    river: str = "softplus",
    alpha: float = 1.0,
    top_curvature: float = 10.0,
    spectrum_exponent: float = 0.0,
    curvatures: ArrayLike | None = None,
    amplitude: float = 0.5,
    frequency: float = 1.0,
    noise_std: ArrayLike = 1.0,
    start: ArrayLike | None = None,
    curvature_growth: float | None = None,
    batch_size: ArrayLike = 1.0,
) -> RiverValley:
    """A ``RiverValley`` in ``dim`` dimensions.

    Hill curvatures are ``curvatures`` if given, else the power law
    ``lambda_j = top_curvature * j^(-spectrum_exponent)`` (``exponent 0``: all equal).  The river
    bends with total amplitude ``amplitude`` spread evenly over the hills
    (``b_j = amplitude / sqrt(d - 1)``).  ``noise_std`` is a scalar (isotropic) or one value per
    coordinate; ``start`` defaults to ``s = -2`` on the river floor.  ``curvature_growth``
    (``kappa >= 0``) makes every hill curvature grow along the river,
    ``lambda_j(s) = lambda_j (1 + kappa softplus(s))``; given (even as 0, e.g. to batch it with
    other values), it turns ``sharpening`` on, else the factor is not computed at all.
    ``batch_size`` (``B >= 1``, a scalar or a 1-D batch to sweep) divides the noise variance:
    the gradient noise std is ``noise_std / sqrt(B)``.
    """
    require(dim >= 2, "river_valley", "dim", dim, ">= 2 (one river, >= 1 hill)")
    if curvatures is None:
        curvatures = top_curvature * np.arange(1, dim, dtype=float) ** (-spectrum_exponent)
    curvatures = np.broadcast_to(np.asarray(curvatures, dtype=float), (dim - 1,))
    amplitudes = np.full(dim - 1, amplitude / np.sqrt(dim - 1))
    if start is None:
        s0 = -2.0
        start = np.concatenate([[s0], amplitudes * np.sin(frequency * s0)])
    return RiverValley(
        curvatures=as_float(curvatures),
        amplitudes=as_float(amplitudes),
        frequency=as_float(frequency),
        alpha=as_float(alpha),
        noise_std=as_float(np.broadcast_to(np.asarray(noise_std, dtype=float), (dim,))),
        start=as_float(np.broadcast_to(np.asarray(start, dtype=float), (dim,))),
        curvature_growth=as_float(0.0 if curvature_growth is None else curvature_growth),
        batch_size=as_float(batch_size),
        river=river,
        sharpening=curvature_growth is not None,
    ).validate()


def toy(
    *,
    hill_curvature: float = 10.0,
    amplitude: float = 0.15,
    frequency: float = 1.0,
    noise_std: float = 0.3,
    river: str = "softplus",
    start: ArrayLike = (-2.0, 0.0),
    curvature_growth: float | None = None,
    batch_size: ArrayLike = 1.0,
) -> RiverValley:
    """The lab's canonical 2-D river valley ``L(x, y) = f(x) + (a/2)(y - b sin(omega x))^2``.

    Defaults: ``f(x) = log(1 + exp(-x))``, ``a = 10``, ``b = 0.15``, ``omega = 1``, isotropic
    gradient noise ``sigma = 0.3``, start ``(-2, 0)``.  With SGD at rate 0.1 for a few thousand
    steps the hill noise floor (about ``eta sigma^2 / (2 (2 - eta a))`` = 0.0045, a bit more where
    the river bends) is as large as the river loss reached (~0.004), while diffusion along the
    river stays below one unit of ``x``: bouncing and revealed progress are both visible (a hill
    spread of ~0.03 against a river amplitude of 0.15).  The top curvature on the river is
    ``a (1 + b^2 omega^2)`` ~ 10.2, so rates above ~0.19 diverge.  With
    ``curvature_growth = kappa > 0`` the hill curvature is ``a (1 + kappa softplus(x))``.
    ``batch_size = B`` divides the noise variance by ``B`` (floor ``eta sigma^2 / (2 B (2 - eta
    a))``).
    """
    return river_valley(
        2,
        river=river,
        curvatures=[hill_curvature],
        amplitude=amplitude,
        frequency=frequency,
        noise_std=noise_std,
        start=start,
        curvature_growth=curvature_growth,
        batch_size=batch_size,
    )
