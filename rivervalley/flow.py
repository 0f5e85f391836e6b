r"""Gradient flow of the river loss in *intrinsic time* ``tau = sum_t eta_t``.

The river-valley picture (paper notes, section 3, claim 1) says that in the stable phase (S)GD
moves along the river as gradient flow on the river loss does, run for the accumulated rate
``tau_t = eta_0 + ... + eta_{t-1}`` (the intrinsic time after ``t`` updates).  This module gives
that reference *independently of the simulator*, for a ``RiverValley``
(``L(s, y) = f(s) + sum_j lambda_j/2 (y_j - c_j(s))^2``, ``c_j(s) = b_j sin(omega s)``):

**Straight river** (the loss of the river alone, ignoring that it bends):

.. math::

    \frac{ds}{d\tau} = -f'(s).

**Floor flow** (gradient flow restricted to the valley floor ``r(s) = (s, c(s))``).  On the floor
the hill term vanishes, so the restricted loss is ``l(s) = L(r(s)) = f(s)``; the floor carries
the metric induced by the ambient Euclidean one, ``g(s) = |r'(s)|^2 = 1 + |c'(s)|^2``.  Gradient
flow on a curve moves the point with the tangential part of ``-grad L``:
``r'(s) ds/dtau = -(grad L(r(s)) . r'(s) / |r'(s)|^2) r'(s)``, and
``grad L(r(s)) . r'(s) = d/ds L(r(s)) = f'(s)``, hence

.. math::

    \frac{ds}{d\tau} = -\frac{f'(s)}{g(s)} = -\frac{f'(s)}{1 + |c'(s)|^2},
    \qquad |c'(s)|^2 = \|b\|^2 \omega^2 \cos^2(\omega s).

Equivalently: in arc length ``sigma`` along the floor (``d sigma = sqrt(g) ds``) it is the plain
gradient flow ``d sigma / d tau = -dl/d sigma``.  Why it is the natural reference for the full
dynamics (a motivation, not something built into the simulator): with ``e = y - c(s)`` the full
gradient flow reads ``ds/dt = -f'(s) + sum_j lambda_j e_j c_j'(s)``,
``de_j/dt = -lambda_j e_j - c_j'(s) ds/dt``; steep hills relax fast to the slow manifold
``e_j ~ -c_j'(s) (ds/dt) / lambda_j``, and substituting gives
``(1 + |c'|^2) ds/dt = -f'(s)`` up to ``O(1/lambda)``.  GD with rates ``eta_t`` has the same slow
manifold to leading order (``e_j ~ -c_j' (s_{t+1} - s_t) / (eta_t lambda_j)``), and on it each
update is an explicit Euler step of size ``eta_t`` of the floor flow: a local error
``O(eta_t^2)``, a global deviation ``O(max eta)`` at fixed ``tau``.  How far the simulated
river coordinate really is from the flow is what ``experiments/intrinsic_time.py`` measures.

Both flows are solved by a fixed-step classical Runge-Kutta (RK4) integrator written in JAX
(traceable, ``jit``- and ``vmap``-able over landscapes and over time grids, e.g. one per peak
rate) with compensated (Kahan) summation of the increments, so that thousands of small steps do
not accumulate float32 rounding.  The independent check is a closed form for the softplus river
``f(s) = log(1 + exp(-s))``, ``-f'(s) = 1 / (1 + e^s)``:

* straight: ``(1 + e^s) ds = d tau`` integrates to ``s + e^s = tau + s_0 + e^{s_0}``;
* floor: ``(1 + e^s)(1 + k cos^2(omega s)) ds = d tau`` with ``k = ||b||^2 omega^2`` integrates to
  ``G(s) = G(s_0) + tau`` with

  .. math::

      G(s) = (1 + k/2)(s + e^s) + \frac{k}{2}\Bigl[\frac{\sin(2\omega s)}{2\omega}
             + e^s \frac{\cos(2\omega s) + 2\omega \sin(2\omega s)}{1 + 4\omega^2}\Bigr],

  (``G' = (1 + e^s)(1 + k cos^2(omega s)) > 0``), which ``softplus_closed_form`` solves by
  bracketed Newton iteration in NumPy float64.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import ArrayLike

from rivervalley.landscapes.valley import RiverValley

GEOMETRIES = ("straight", "floor")
DEFAULT_SUBSTEPS = 2  # RK4 steps between consecutive requested times

Velocity = Callable[[jax.Array], jax.Array]


def straight_velocity(valley: RiverValley, s: jax.Array) -> jax.Array:
    """``ds/dtau = -f'(s)``: gradient flow of the river loss alone."""
    return -jax.grad(valley.river_loss)(s)


def metric(valley: RiverValley, s: jax.Array) -> jax.Array:
    """``g(s) = |r'(s)|^2 = 1 + |c'(s)|^2``: the floor's metric in the coordinate ``s``."""
    slope = jax.jacfwd(valley.river_curve)(s)
    return 1.0 + jnp.sum(slope**2)


def floor_velocity(valley: RiverValley, s: jax.Array) -> jax.Array:
    """``ds/dtau = -f'(s) / (1 + |c'(s)|^2)``: gradient flow restricted to the valley floor."""
    return straight_velocity(valley, s) / metric(valley, s)


def velocity(valley: RiverValley, geometry: str = "floor") -> Velocity:
    """The vector field ``s -> ds/dtau`` of the ``straight`` or ``floor`` flow."""
    if geometry == "straight":
        return lambda s: straight_velocity(valley, s)
    if geometry == "floor":
        return lambda s: floor_velocity(valley, s)
    raise ValueError(f"geometry: unknown flow {geometry!r}; allowed: {', '.join(GEOMETRIES)}")


def rk4(
    field: Velocity, s0: ArrayLike, tau: ArrayLike, *, substeps: ArrayLike = DEFAULT_SUBSTEPS
) -> jax.Array:
    """Solve ``ds/dtau = field(s)``, ``s(0) = s0`` at the times ``tau`` (shape ``(n,)``,
    nondecreasing, ``tau[0] >= 0``) by classical RK4.

    Between consecutive requested times ``tau_{k-1}`` and ``tau_k`` (``tau_{-1} = 0``) it takes
    ``substeps`` equal steps ``h_k = (tau_k - tau_{k-1}) / substeps``; the global error is
    ``O(max_k h_k^4)``.  Increments are added with Kahan compensation.  Returns ``s(tau)``, shape
    ``(n,)``.  Traceable: ``tau``, ``s0`` and ``substeps`` may be tracers (``jit``, ``vmap``; a
    traced ``substeps`` below 1 counts as 1)."""
    _check_substeps(substeps)
    substeps = jnp.maximum(jnp.asarray(substeps, dtype=jnp.int32), 1)
    tau = jnp.asarray(tau, dtype=jnp.result_type(float))
    if tau.ndim != 1:
        raise ValueError(f"tau: need a 1-D array of times, got shape {tau.shape}")
    s0 = jnp.asarray(s0, dtype=tau.dtype)

    def step(s, h):
        k1 = field(s)
        k2 = field(s + 0.5 * h * k1)
        k3 = field(s + 0.5 * h * k2)
        k4 = field(s + h * k3)
        return h * (k1 + 2.0 * k2 + 2.0 * k3 + k4) / 6.0

    def substep(_, state):
        s, comp, h = state
        inc = step(s, h) - comp  # Kahan: add the increment, carry the lost low bits along
        new = s + inc
        return new, (new - s) - inc, h

    def advance(carry, tau_k):
        s, comp, tau_prev = carry
        h = (tau_k - tau_prev) / substeps
        s, comp, _ = jax.lax.fori_loop(0, substeps, substep, (s, comp, h))
        return (s, comp, tau_k), s

    start = (s0, jnp.zeros_like(s0), jnp.zeros_like(s0))
    return jax.lax.scan(advance, start, tau)[1]


def _check_substeps(substeps: ArrayLike) -> None:
    """A Python integer must be >= 1 (arrays, possibly traced, are clipped to 1 by ``rk4``)."""
    if isinstance(substeps, bool | float) or (
        isinstance(substeps, int | np.integer) and substeps < 1
    ):
        raise ValueError(f"substeps: need a positive integer, got {substeps!r}")


@functools.partial(jax.jit, static_argnames=("geometry",))
def _river_flow(valley, tau, geometry, s0, substeps):
    start = valley.start[..., 0] if s0 is None else s0
    return rk4(velocity(valley, geometry), start, tau, substeps=substeps)


def river_flow(
    valley: RiverValley,
    tau: ArrayLike,
    *,
    geometry: str = "floor",
    s0: ArrayLike | None = None,
    substeps: ArrayLike = DEFAULT_SUBSTEPS,
) -> jax.Array:
    """River coordinate ``s(tau)`` of the ``straight`` or ``floor`` gradient flow (module
    docstring), solved by ``rk4`` with ``substeps`` steps between consecutive times, from ``s0``
    (default: the river coordinate of ``valley.start``) at the nondecreasing times ``tau >= 0``,
    shape ``(n,)``.  ``valley`` is one (unbatched) landscape; ``jax.vmap`` over a batched one or
    over a batch of time grids.  Compiled (``jax.jit``) once per geometry, river kind and shape of
    ``tau``; ``substeps`` is a traced argument (changing it does not recompile)."""
    if geometry not in GEOMETRIES:
        raise ValueError(f"geometry: unknown flow {geometry!r}; allowed: {', '.join(GEOMETRIES)}")
    _check_substeps(substeps)
    return _river_flow(valley, tau, geometry, s0, substeps)


def straight_flow(valley: RiverValley, tau: ArrayLike, **kwargs) -> jax.Array:
    """``river_flow`` of ``ds/dtau = -f'(s)``."""
    return river_flow(valley, tau, geometry="straight", **kwargs)


def floor_flow(valley: RiverValley, tau: ArrayLike, **kwargs) -> jax.Array:
    """``river_flow`` of ``ds/dtau = -f'(s) / (1 + |c'(s)|^2)``."""
    return river_flow(valley, tau, geometry="floor", **kwargs)


def euler_bound(valley: RiverValley, s0: ArrayLike, s: ArrayLike, peak: ArrayLike) -> jax.Array:
    """Leading-order bound on how far GD is ahead of the straight flow on a straight river.

    GD on ``L = f(s)`` is explicit Euler for ``ds/dtau = v(s) = -f'(s)``: with ``v > 0`` and
    ``v' <= 0`` along the path (the softplus river: ``v = 1/(1 + e^s)``, ``v' = -v(1 - v)``) one
    update of size ``eta_t`` overshoots the flow by ``(eta_t^2 / 2) |v'| v + O(eta^3)`` and the
    flow contracts earlier errors (factor ``1 + eta_t v' <= 1`` for ``eta_t |v'| <= 1``), so the
    deviation at ``tau_t`` is at most ``sum_k (eta_k^2 / 2) |v'(s_k)| v(s_k) <=
    (eta_max / 2) sum_k |v'(s_k)| (s_{k+1} - s_k) ~ (eta_max / 2) (v(s0) - v(s_t))``, up to
    ``O(eta_max^2)``.  Returns that bound for the river coordinate ``s`` reached, elementwise."""
    v = jax.vmap(lambda x: straight_velocity(valley, x))
    s = jnp.asarray(s, dtype=jnp.result_type(float))
    v0 = v(jnp.broadcast_to(jnp.asarray(s0, s.dtype), s.shape).ravel()).reshape(s.shape)
    return 0.5 * jnp.asarray(peak) * (v0 - v(s.ravel()).reshape(s.shape))


def intrinsic_time(rates: ArrayLike) -> np.ndarray:
    """``tau_t = sum_{k < t} eta_k`` for ``t = 0..T`` from the rates ``eta_0..eta_{T-1}`` of the
    ``T`` updates (shape ``(..., T)`` -> ``(..., T + 1)``), summed in float64: the intrinsic time
    of the iterate after ``t`` updates (``sweep`` records with ``step = t`` the state after ``t``
    updates and ``lr`` the rate of update ``t``, so ``tau`` at a record excludes its own ``lr``)."""
    eta = np.asarray(rates, dtype=np.float64)
    zero = np.zeros((*eta.shape[:-1], 1))
    return np.concatenate([zero, np.cumsum(eta, axis=-1)], axis=-1)


def _softplus_potential(s: np.ndarray, k: float, omega: float) -> np.ndarray:
    """``G(s)`` of the module docstring (``k = ||b||^2 omega^2``)."""
    es = np.exp(s)
    out = (1.0 + 0.5 * k) * (s + es)
    if k:
        a = 2.0 * omega
        out = out + 0.5 * k * (
            np.sin(a * s) / a + es * (np.cos(a * s) + a * np.sin(a * s)) / (1 + a**2)
        )
    return out


def softplus_closed_form(
    valley: RiverValley,
    tau: ArrayLike,
    *,
    geometry: str = "straight",
    s0: float | None = None,
    iterations: int = 200,
) -> np.ndarray:
    """Exact ``s(tau)`` of the softplus river's flow (float64, NumPy), independent of ``rk4``.

    ``straight``: the root of ``s + e^s = tau + s0 + e^{s0}``; ``floor``: the root of
    ``G(s) = G(s0) + tau`` (module docstring), which for ``b = 0`` is the same equation.  Both
    sides increase in ``s``; the root is bracketed by ``[s0, s_up]`` with ``s_up`` the straight
    root's bound (``C`` if ``C = tau + s0 + e^{s0} <= 1``, else ``log C``: the floor flow is never
    faster than the straight one) and found by Newton steps that fall back to bisection whenever
    they leave the bracket.  ``tau >= 0``, any shape."""
    if valley.river != "softplus":
        raise ValueError(f"softplus_closed_form: needs river='softplus', got {valley.river!r}")
    if valley.batch_shape:
        raise ValueError(
            f"softplus_closed_form: needs one landscape, got batch {valley.batch_shape}"
        )
    if geometry not in GEOMETRIES:
        raise ValueError(f"geometry: unknown flow {geometry!r}; allowed: {', '.join(GEOMETRIES)}")
    tau = np.asarray(tau, dtype=np.float64)
    if np.any(tau < 0) or not np.all(np.isfinite(tau)):
        raise ValueError("tau: need finite times >= 0")
    start = float(np.asarray(valley.start)[0]) if s0 is None else float(s0)
    omega = float(np.asarray(valley.frequency))
    k = 0.0
    if geometry == "floor":
        k = float(np.sum(np.asarray(valley.amplitudes, dtype=np.float64) ** 2)) * omega**2
    target = _softplus_potential(np.asarray(start), k, omega) + tau
    c = tau + start + np.exp(start)
    lo = np.full_like(tau, start)
    hi = np.maximum(np.where(c > 1.0, np.log(np.maximum(c, 1.0)), c), lo)
    s = hi.copy()
    for _ in range(iterations):
        g = _softplus_potential(s, k, omega) - target
        lo = np.where(g < 0, s, lo)
        hi = np.where(g > 0, s, hi)
        slope = (1.0 + np.exp(s)) * (1.0 + k * np.cos(omega * s) ** 2)
        newton = s - g / slope
        inside = (newton > lo) & (newton < hi)
        converged = (g == 0) | (newton == s)
        s_next = np.where(converged, s, np.where(inside, newton, 0.5 * (lo + hi)))
        if np.all(s_next == s):
            break
        s = s_next
    return s
