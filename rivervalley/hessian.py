r"""Curvature of a loss ``f`` at a flat parameter vector ``w`` (shape ``(d,)``).

``hvp(f, w, v) = H(w) v`` by forward-over-reverse differentiation (one ``jvp`` of ``grad f``,
about the cost of two gradients); ``eigh`` is the exact eigendecomposition of the dense
``d x d`` Hessian (small ``d`` only); ``lanczos`` runs ``m`` Lanczos iterations with full
reorthogonalisation,

.. math::

    \beta_{j+1} q_{j+1} = H q_j - \alpha_j q_j - \beta_j q_{j-1}, \qquad
    \alpha_j = q_j^\top H q_j,

and returns the tridiagonal ``T_m`` whose eigenvalues (Ritz values) approximate the extreme
eigenvalues of ``H``; ``top_eigenvalues`` returns the ``k`` largest.  Everything is traceable with
a fixed number of iterations, so it runs inside ``jit``/``vmap``/``scan`` (e.g. to record the
sharpness at every recorded step of a sweep).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from rivervalley import noise

Loss = Callable[[jax.Array], jax.Array]


def hvp(f: Loss, w: jax.Array, v: jax.Array) -> jax.Array:
    """Hessian-vector product ``H(w) v``, shape ``(d,)``."""
    return jax.jvp(jax.grad(f), (w,), (v,))[1]


def hessian_matrix(f: Loss, w: jax.Array) -> jax.Array:
    """The dense Hessian ``(d, d)``, symmetrised (``(H + H^T)/2``)."""
    h = jax.hessian(f)(w)
    return 0.5 * (h + h.T)


def eigh(f: Loss, w: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Exact eigenvalues (ascending, ``(d,)``) and eigenvectors (columns, ``(d, d)``)."""
    return jnp.linalg.eigh(hessian_matrix(f, w))


def lanczos(
    f: Loss, w: jax.Array, iters: int, start: jax.Array | None = None
) -> tuple[jax.Array, jax.Array]:
    """``iters`` Lanczos iterations (see ``lanczos_basis``): the tridiagonal's diagonal
    ``alpha`` ``(m,)`` and off-diagonal ``beta`` ``(m - 1,)``."""
    alphas, betas, _ = lanczos_basis(f, w, iters, start)
    return alphas, betas


def lanczos_basis(
    f: Loss, w: jax.Array, iters: int, start: jax.Array | None = None
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``iters`` Lanczos iterations from ``start`` (default: a fixed Gaussian vector).

    Returns the tridiagonal's diagonal ``alpha`` ``(m,)``, off-diagonal ``beta`` ``(m - 1,)``
    and the orthonormal Lanczos vectors ``Q`` ``(m, d)`` (rows; zero rows after a breakdown).
    After an exact breakdown (an invariant subspace found, ``beta ~ 0``) the remaining
    iterations contribute zeros, which are spurious Ritz values at 0 and do not disturb the top
    eigenvalues of a Hessian with a positive top eigenvalue."""
    d = w.shape[0]
    m = int(min(iters, d))
    if start is None:
        start = noise.normal(jax.random.key(0), (d,), w.dtype)
    basis = jnp.zeros((m, d), w.dtype)
    q = start / jnp.linalg.norm(start)
    tiny = jnp.finfo(w.dtype).eps * 1e2

    def body(j, carry):
        basis, q, alphas, betas = carry
        basis = basis.at[j].set(q)
        hq = hvp(f, w, q)
        alpha = q @ hq
        r = hq - basis.T @ (basis @ hq)  # full reorthogonalisation (twice is enough)
        r = r - basis.T @ (basis @ r)
        beta = jnp.linalg.norm(r)
        # breakdown: the residual is rounding noise relative to |H q| (scale-free, so a Hessian
        # with tiny eigenvalues is not mistaken for an invariant subspace)
        broke = beta <= tiny * jnp.linalg.norm(hq)
        q_next = jnp.where(broke, 0.0, r / jnp.where(broke, 1.0, beta))
        return basis, q_next, alphas.at[j].set(alpha), betas.at[j].set(jnp.where(broke, 0, beta))

    init = (basis, q, jnp.zeros(m, w.dtype), jnp.zeros(m, w.dtype))
    basis, _, alphas, betas = jax.lax.fori_loop(0, m, body, init)
    return alphas, betas[: m - 1], basis


def tridiagonal_eigenvalues(alphas: jax.Array, betas: jax.Array) -> jax.Array:
    """Eigenvalues (ascending) of the symmetric tridiagonal matrix with the given diagonals."""
    t = jnp.diag(alphas) + jnp.diag(betas, 1) + jnp.diag(betas, -1)
    return jnp.linalg.eigvalsh(t)


def top_eigenvalues(
    f: Loss, w: jax.Array, k: int = 1, *, iters: int = 20, start: jax.Array | None = None
) -> jax.Array:
    """The ``k`` largest Hessian eigenvalues (descending, ``(k,)``) from ``iters`` Lanczos
    iterations; exact once ``iters >= d``, and for well-separated top eigenvalues long before."""
    ritz = tridiagonal_eigenvalues(*lanczos(f, w, iters, start))
    return ritz[::-1][:k]


def sharpness(f: Loss, w: jax.Array, *, iters: int = 20) -> jax.Array:
    """The top Hessian eigenvalue ``lambda_max(H(w))`` (a scalar), by Lanczos."""
    return top_eigenvalues(f, w, 1, iters=iters)[0]


def preconditioned_sharpness(
    f: Loss, w: jax.Array, scale: jax.Array, *, iters: int = 20
) -> jax.Array:
    r"""The top eigenvalue of the preconditioned Hessian ``diag(scale) H(w)`` (a scalar), the
    curvature a diagonally preconditioned method sees: its update is ``-eta scale * g``, so it
    is stable on a quadratic only while ``eta lambda_max(diag(scale) H) < 2`` (Adam, with
    momentum ``beta_1``: ``< 2 + 2 beta_1 / (1 - beta_1)``, i.e. 38 at ``beta_1 = 0.9``).
    ``diag(scale) H`` has the eigenvalues of the symmetric ``S^{1/2} H S^{1/2}``
    (``S = diag(scale)``, ``scale > 0``, shape ``(d,)``), the Hessian of
    ``u -> f(w + sqrt(scale) * u)`` at ``u = 0``, so this is ``sharpness`` in those
    coordinates."""
    root = jnp.sqrt(scale)
    return sharpness(lambda u: f(w + root * u), jnp.zeros_like(w), iters=iters)


def top_eigenpairs(
    f: Loss, w: jax.Array, k: int = 1, *, iters: int = 20
) -> tuple[jax.Array, jax.Array]:
    """The ``k`` largest Ritz pairs of ``H(w)``: values ``(k,)`` (descending) and unit vectors
    ``(k, d)`` (rows), ``u = Q^T s`` for the eigenvectors ``s`` of the Lanczos tridiagonal."""
    alphas, betas, basis = lanczos_basis(f, w, iters)
    t = jnp.diag(alphas) + jnp.diag(betas, 1) + jnp.diag(betas, -1)
    values, vectors = jnp.linalg.eigh(t)
    top = jnp.arange(values.shape[0] - 1, values.shape[0] - 1 - k, -1)
    return values[top], (basis.T @ vectors[:, top]).T


def projected_hill(f: Loss, w: jax.Array, k: int = 8, *, iters: int = 20) -> jax.Array:
    r"""The hill loss seen in the top ``k`` Hessian eigendirections: the loss drop of a Newton
    step restricted to them under the local quadratic model,

    .. math::

        h_k(w) = \sum_{i \le k,\ \lambda_i > 0} \frac{(\nabla f(w) \cdot u_i)^2}{2 \lambda_i},

    with ``(lambda_i, u_i)`` the top Ritz pairs (``top_eigenpairs``).  On a quadratic whose top
    ``k`` curvatures are the hills it is exactly their loss ``sum lambda_i w_i^2 / 2``."""
    values, vectors = top_eigenpairs(f, w, k, iters=iters)
    g = jax.grad(f)(w)
    coef = vectors @ g
    safe = jnp.where(values > 0, values, 1.0)
    return jnp.sum(jnp.where(values > 0, coef**2 / (2.0 * safe), 0.0))
