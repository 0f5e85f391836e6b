r"""An independent NumPy implementation of the river-valley sweep, vectorised over runs.

Used as the "same maths in NumPy" baseline of ``rivervalley bench`` and as an independent check
of the JAX runner in the tests (for GD the two agree to float rounding).  It covers the softplus
``RiverValley``

.. math::

    L(s, y) = \log(1 + e^{-s}) + \sum_j \tfrac{\lambda_j}{2} (y_j - b_j \sin(\omega s))^2,

    \partial_s L = -\sigma(-s) - \omega \cos(\omega s) \sum_j \lambda_j b_j (y_j - c_j(s)),
    \qquad \partial_{y_j} L = \lambda_j (y_j - c_j(s)),

and, with ``curvature_growth`` ``kappa > 0``, hill curvatures ``lambda_j g(s)``,
``g(s) = 1 + kappa softplus(s)``: then ``\partial_s L`` gains ``g'(s)/2 sum_j lambda_j (y_j -
c_j(s))^2`` (``g' = kappa sigma(s)``) and the ``c'`` and ``y`` terms are multiplied by ``g(s)``;
with GD, SGD (Gaussian noise of per-coordinate std ``noise_std``) and Adam (optax's defaults:
``b1 = 0.9``, ``b2 = 0.999``, ``eps = 1e-8``, bias-corrected), at the rates ``lrs[t]``.
"""

from __future__ import annotations

import numpy as np

from rivervalley.landscapes.valley import RiverValley


def _grad(w: np.ndarray, lam, b, omega, kappa) -> np.ndarray:
    s, y = w[:, :1], w[:, 1:]
    dy = y - b * np.sin(omega * s)
    g_s = -1.0 / (1.0 + np.exp(s))
    if kappa:  # growing hill curvature (a Python branch: kappa = 0 costs nothing extra)
        growth = kappa / (1.0 + np.exp(-s))  # g'(s)
        g_s = g_s + 0.5 * growth * np.sum(lam * dy**2, axis=1, keepdims=True)
        lam = lam * (1.0 + kappa * np.logaddexp(0.0, s))  # lambda_j g(s)
    g_s = g_s - omega * np.cos(omega * s) * np.sum(lam * b * dy, axis=1, keepdims=True)
    return np.concatenate([g_s, lam * dy], axis=1)


def _loss(w: np.ndarray, lam, b, omega, kappa) -> np.ndarray:
    s, y = w[:, 0], w[:, 1:]
    dy = y - b * np.sin(omega * s[:, None])
    if kappa:
        lam = lam * (1.0 + kappa * np.logaddexp(0.0, s[:, None]))
    return np.logaddexp(0.0, -s) + 0.5 * np.sum(lam * dy**2, axis=1)


def numpy_sweep(
    valley: RiverValley,
    optimizer: str,
    lrs: np.ndarray,
    *,
    runs: int,
    record_every: int,
    seed: int = 0,
    dtype=np.float32,
) -> np.ndarray:
    """Loss of ``runs`` runs after every ``record_every`` updates, shape ``(runs, T/k + 1)``."""
    if valley.river != "softplus":
        raise ValueError(f"river: the NumPy reference covers 'softplus' only, got {valley.river!r}")
    if optimizer not in ("gd", "sgd", "adam"):
        raise ValueError(f"optimizer: unknown name {optimizer!r}; allowed: gd, sgd, adam")
    lam, b = np.asarray(valley.curvatures, dtype), np.asarray(valley.amplitudes, dtype)
    omega, noise = dtype(valley.frequency), np.asarray(valley.noise_std, dtype)
    kappa = dtype(valley.curvature_growth)
    w = np.tile(np.asarray(valley.start, dtype), (runs, 1))
    m, v = np.zeros_like(w), np.zeros_like(w)
    rng = np.random.default_rng(seed)
    records = [_loss(w, lam, b, omega, kappa)]
    for t, lr in enumerate(np.asarray(lrs, dtype)):
        g = _grad(w, lam, b, omega, kappa)
        if optimizer != "gd":
            g += noise * rng.standard_normal(w.shape, dtype=dtype)
        if optimizer == "adam":
            m = 0.9 * m + 0.1 * g
            v = 0.999 * v + 0.001 * g * g
            m_hat = m / dtype(1 - 0.9 ** (t + 1))
            v_hat = v / dtype(1 - 0.999 ** (t + 1))
            w -= lr * m_hat / (np.sqrt(v_hat) + dtype(1e-8))
        else:
            w -= lr * g
        if (t + 1) % record_every == 0:
            records.append(_loss(w, lam, b, omega, kappa))
    return np.stack(records, axis=1)
