r"""Which schedule wins on a power-law quadratic: the theory side of the regime map.

The problem (the noisy quadratic of ``rivervalley.landscapes.noisy_quadratic`` with power laws)
------------------------------------------------------------------------------------------------

Directions ``i = 1..d`` with curvatures and an initial error

.. math::

    \lambda_i = i^{-\beta}, \qquad
    \tfrac12 \lambda_i w_{0,i}^2 = \tfrac12 i^{-a}
    \quad (w_{0,i} = i^{(\beta - a)/2},\ \text{optimum at } 0),

so the **signal** is the initial error's per-direction loss contribution
``lambda_i w_{0,i}^2 = i^{-a}`` (summable iff ``a > 1``), and the gradient noise is additive with
covariance ``sigma^2 H`` (label noise of variance ``sigma^2`` in least squares:
``noise_std_i = sigma sqrt(lambda_i)``).  SGD with rates ``eta_t`` then has the exact final loss

.. math::

    E L_T = \tfrac12 \sum_i \bigl( i^{-a} P_i + \sigma^2 \lambda_i^2 Q_i \bigr), \quad
    P_i = \prod_{t<T} (1 - \eta_t \lambda_i)^2, \quad
    Q_i = \sum_{k<T} \eta_k^2 \prod_{k<t<T} (1 - \eta_t \lambda_i)^2

(the mean / variance recursion of ``theory.sgd_quadratic_moments`` with ``mean0 = 1``,
``var0 = 0``, unit noise: ``P = m_T^2``, ``Q = v_T``; ``final_moments`` runs it keeping only the
last step).  ``P`` and ``Q`` do not depend on ``a`` or ``sigma``, so one recursion per
(``beta``, schedule, peak) serves every ``a`` and noise level.

Mapping to Li, Chen, Huang, Wang, Wu, *Functional Scaling Laws in Kernel Regression: Loss
Dynamics and Learning Rate Schedules* (NeurIPS 2025, arXiv 2509.19189)
-----------------------------------------------------------------------------------------------

Their capacity exponent is ``beta`` (kernel eigenvalues ``lambda_j ~ j^{-beta}``, ``beta > 1``);
their source exponent ``s`` makes the signal term of the loss decay as ``t^{-s}`` in intrinsic
time ``t = sum_k eta_k``.  With ``lambda_i w_{0,i}^2 = i^{-a}``,
``S(t) = 1/2 sum_i i^{-a} e^{-2 lambda_i t} ~ t^{-(a - 1)/beta}``, so

.. math::

    s = \frac{a - 1}{\beta} \quad (\text{``source_exponent``}), \qquad a = 1 + s \beta .

(Had the signal been defined as the coefficient ``w_{0,i}^2 ~ i^{-a'}``, then ``a = a' + beta``.)
Their noise is the label noise of online SGD on least squares, whose gradient covariance is
``(sigma^2 + 2 excess risk) H``; this module keeps the additive part ``sigma^2 H`` only (the
risk-dependent part is smaller than ``sigma^2`` once the excess risk is, i.e. late in training).

The functional scaling law (FSL) writes the expected excess loss as the signal term at the
intrinsic time plus a convolution of the squared rates with a forgetting kernel,

.. math::

    E L_T \approx S(t_T) + \frac{\sigma^2}{2} \sum_k \eta_k^2 K(t_T - t_{k+1}), \qquad
    K(u) = \sum_i \lambda_i^2 e^{-2 \lambda_i u} \sim u^{-(2 - 1/\beta)}

(the exact recursion above with ``(1 - eta lambda)^2`` in place of ``e^{-2 eta lambda}``).
Provenance: what could be read here were the abstracts of 2509.19189 (v1, v3) and of the
follow-up 2602.06797, and the en.papernotes.org summary (intrinsic time ``t = int phi``, a
convolutional noise functional, WSD-type beats pure decay); the meanings of ``s`` and ``beta``
and the easy/hard boundary below are stated in the follow-up's abstract.  The power-law forms of
``S`` and ``K`` are evaluated here for this problem, not quoted.  The
paper's **regime boundary** is ``s = 1 - 1/beta``: *hard* tasks ``s < 1 - 1/beta`` (signal
learning is the bottleneck: the best schedule keeps the largest admissible rate as long as
possible and decays only at the end, i.e. WSD-like schedules beat pure decay), *easy* tasks
``s >= 1 - 1/beta`` (noise is the bottleneck; the follow-up, Li, Wang, Chen, Zhao, Zheng, Wu,
arXiv 2602.06797, finds the optimal schedule there to be a power decay from the start,
``eta(z) = eta_peak (1 - z/N)^{2 beta - 1}``).  In our exponents:

.. math::

    s < 1 - 1/\beta \iff a < \beta \qquad (\text{``boundary_a``}).

What the same functional predicts for WSD, cosine, linear and constant at a tuned peak
(derived here; the paper states the WSD-vs-decay comparison, not these four)
----------------------------------------------------------------------------------------------

Write a schedule of horizon ``T`` as ``eta_k = eta g(k/T)`` with the peak ``eta`` tuned below a
fixed stability cap, ``c = int_0^1 g`` (its share of intrinsic time: WSD ``1 - f/2`` for a
linear cooldown over the last fraction ``f``, cosine and linear ``1/2``, constant ``1``), and let
``g(z) ~ kappa (1 - z)^p`` at the end (``p``: constant 0, linear 1, WSD with linear cooldown 1
with ``kappa = 1/f``, cosine 2 with ``kappa = pi^2/4``).  Inserting into the FSL, for large ``T``:

* signal: ``S(c eta T) ~ (c eta T)^{-s}``;
* noise: ``eta^{1/beta} T^{-(1 - 1/beta)} J_beta`` with
  ``J_beta = int_0^1 g^2 G^{-(2 - 1/beta)}``, ``G(z) = int_z^1 g`` (the forgetting of the
  noise injected throughout), finite iff ``beta < p + 1``; otherwise the last steps dominate:
  ``(kappa eta)^{1/(p+1)} T^{-p/(p+1)}`` (noise injected once too little intrinsic time is left to
  forget it); a constant rate leaves a floor ``~ eta``.  So noise ``~ eta^e T^{-(1-e)}`` with
  ``e = max(1/beta, 1/(p + 1))`` (``noise_exponent``).

Minimising ``A (eta T)^{-s} + B eta^e T^{-(1-e)}`` over ``eta``: if ``s + e < 1`` the optimum runs
into the cap (signal-limited, loss ``~ T^{-s}``), else ``eta* ~ T^{(1-e-s)/(s+e)}`` and the loss
``~ T^{-s/(s+e)}``.  Hence the loss exponent ``r = s / max(1, s + e)`` (``loss_exponent``),
larger is better, and at equal exponents a constant decides (``figure_of_merit``): signal-limited
``c^{-s}``; noise-limited ``(c^{-e} J)^{s/(s+e)}`` with ``J`` the tail integral ``J_beta`` or
the end coefficient ``kappa^{1/(p+1)}``.  Consequences (``predicted_ranking``):

* ``a < min(beta, 1 + beta/2)``: every decaying schedule is signal-limited; WSD wins (largest
  intrinsic time ``c``); the WSD/cosine loss ratio tends to ``(1/2 / (1 - f/2))^s``; cosine and
  linear tie at leading order (the theory is silent on their order); constant is last.
* ``a > beta`` with ``beta < 2``: all three decays are noise-limited with the same exponent;
  ``J`` ranks them: cosine (or linear, for ``beta`` near 1) first, WSD last among the decays.
* ``beta > 2`` and ``a > 1 + beta/2`` (``s > 1/2``): a schedule ending *linearly* (WSD's
  linear cooldown, linear decay) is limited by its last steps, ``T^{-1/2}`` noise; cosine ends
  quadratically and wins on the exponent.  So with a linear cooldown the predicted WSD region is
  ``a < min(beta, 1 + beta/2)`` (``wsd_boundary_a``), narrower than the paper's ``a < beta`` for
  ``beta > 2``; the paper's boundary is that of a cooldown ending fast enough (``p >= beta - 1``).

These are ``T -> infinity`` statements: at a finite horizon the exponents differ by little near
the boundaries, and which schedule wins there is for the exact computation to say.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from scipy import integrate

from rivervalley import schedules, theory

KINDS = ("wsd", "cosine", "linear", "constant")
DEFAULT_DECAY_FRACTION = 0.2


# --- the problem ------------------------------------------------------------------------------


def curvatures(dim: int, beta: float) -> np.ndarray:
    """``lambda_i = i^{-beta}``, ``i = 1..dim`` (largest 1, so the stability limit is 2)."""
    return np.arange(1, dim + 1, dtype=float) ** (-float(beta))


def signal(dim: int, a: float) -> np.ndarray:
    """The initial error's per-direction loss contribution ``lambda_i w_{0,i}^2 = i^{-a}``."""
    return np.arange(1, dim + 1, dtype=float) ** (-float(a))


def initial_point(dim: int, beta: float, a: float) -> np.ndarray:
    """``w_{0,i} = i^{(beta - a)/2}`` (optimum at 0), so that ``lambda_i w_{0,i}^2 = i^{-a}``."""
    return np.arange(1, dim + 1, dtype=float) ** ((float(beta) - float(a)) / 2.0)


def noise_std(dim: int, beta: float, sigma: float) -> np.ndarray:
    """Label-noise gradient std ``sigma sqrt(lambda_i)`` (covariance ``sigma^2 H``)."""
    return float(sigma) * np.sqrt(curvatures(dim, beta))


def source_exponent(beta, a):
    """The paper's source exponent ``s = (a - 1)/beta`` (signal term ``~ t^{-s}``)."""
    return (np.asarray(a) - 1.0) / np.asarray(beta)


def boundary_a(beta):
    """The paper's regime boundary ``s = 1 - 1/beta`` in our exponents: ``a = beta``."""
    return np.asarray(beta, dtype=float)


def is_hard(beta, a):
    """Hard task (``s < 1 - 1/beta``, i.e. ``a < beta``): WSD-like schedules beat pure decay."""
    return np.asarray(a) < boundary_a(beta)


def wsd_boundary_a(beta, decay_fraction: float = DEFAULT_DECAY_FRACTION):
    """Where the FSL functional predicts WSD *with a linear cooldown* to stop winning:
    ``a = min(beta, 1 + beta/2)`` (``s + max(1/beta, 1/2) = 1``); independent of the fraction."""
    del decay_fraction
    beta = np.asarray(beta, dtype=float)
    return np.minimum(beta, 1.0 + beta / 2.0)


# --- schedules and the exact final loss ------------------------------------------------------


def make_schedule(
    kind: str, peak, total_steps: int, decay_fraction: float = DEFAULT_DECAY_FRACTION
) -> schedules.Schedule:
    """One of ``KINDS`` from ``rivervalley.schedules``: no warmup, decays end at 0 at ``T``
    (WSD: linear cooldown over the last ``decay_fraction``)."""
    if kind == "wsd":
        return schedules.wsd(peak, total_steps, decay_fraction)
    if kind == "cosine":
        return schedules.cosine(peak, total_steps)
    if kind == "linear":
        return schedules.linear(peak, total_steps)
    if kind == "constant":
        return schedules.constant(peak)
    raise ValueError(f"kind: unknown schedule {kind!r}; allowed: {', '.join(KINDS)}")


def tabulate(
    kinds: Sequence[str],
    peaks: Sequence[float] | np.ndarray,
    steps: int,
    decay_fraction: float = DEFAULT_DECAY_FRACTION,
) -> np.ndarray:
    """Rates ``eta_t``, ``t = 0..steps-1``, of every (kind, peak): shape ``(kinds, peaks, steps)``.
    Each kind is one ``schedules.grid`` over ``peak``, tabulated by ``schedules.rates``."""
    out = []
    for kind in kinds:

        def factory(peak, kind=kind):
            return make_schedule(kind, peak, steps, decay_fraction)

        batch = schedules.grid(factory, {"peak": [float(p) for p in peaks]})
        out.append(np.asarray(schedules.rates(batch, steps), dtype=float))
    return np.stack(out)


def final_moments(curvatures, lrs) -> tuple[jax.Array, jax.Array]:
    r"""``(P, Q)`` per direction: ``P = prod_t (1 - eta_t lambda)^2`` and
    ``Q = sum_k eta_k^2 prod_{t>k} (1 - eta_t lambda)^2``, i.e. ``m_T^2`` and ``v_T`` of
    ``theory.sgd_quadratic_moments(curvatures, 1, 1, 0, lrs)``, by the same recursion
    (``m^2 <- (1 - eta lambda)^2 m^2``, ``v <- (1 - eta lambda)^2 v + eta^2``) in a ``lax.scan``
    that keeps only the last step (memory ``O(d)``, so ``vmap`` over thousands of schedules fits).
    ``curvatures``: ``(d,)``; ``lrs``: ``(T,)``; pure ``jnp``."""
    m, v = theory.sgd_quadratic_moments(curvatures, 1.0, 1.0, 0.0, lrs, final_only=True)
    return jnp.square(m), jnp.asarray(v)


@jax.jit
def final_moments_batch(curvatures, lrs) -> tuple[jax.Array, jax.Array]:
    """``final_moments`` for every curvature vector x every rate sequence: ``curvatures``
    ``(B, d)``, ``lrs`` ``(..., T)`` (any leading axes, e.g. ``(kind, peak, T)`` from
    ``tabulate``) -> ``P``, ``Q`` of shape ``(B, ..., d)``; one compiled call."""
    per_run = final_moments
    for _ in range(jnp.ndim(lrs) - 1):
        per_run = jax.vmap(per_run, in_axes=(None, 0))
    return jax.vmap(per_run, in_axes=(0, None))(curvatures, lrs)


def final_loss(p, q, curvatures, signal, sigma):
    r"""``E L_T = 1/2 sum_i (signal_i P_i + sigma^2 lambda_i^2 Q_i)``: ``p``, ``q`` ``(..., d)``;
    ``curvatures``, ``signal`` ``(d,)`` (or broadcastable).  Works on numpy or jax arrays."""
    lam = np.asarray(curvatures)
    return 0.5 * (p @ np.asarray(signal) + sigma**2 * (q @ lam**2))


def tune_peak(peaks, losses) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tuned peak over a log grid, refined by a parabola in ``(log eta, log loss)``.

    ``peaks``: ``(P,)`` increasing; ``losses``: ``(..., P)``.  Around the grid minimum ``j``
    (``0 < j < P - 1``) the parabola through the three points gives the refined ``log eta`` and
    ``log loss`` (exact for a parabola; the refined loss is never above the grid minimum).  A
    minimum at either end of the grid is returned as is and flagged.  Returns
    ``(peak, loss, on_edge)``, each of shape ``losses.shape[:-1]``.
    """
    x = np.log(np.asarray(peaks, dtype=float))
    y = np.log(np.asarray(losses, dtype=float))
    n = x.size
    j = np.argmin(y, axis=-1)
    edge = (j == 0) | (j == n - 1)
    jc = np.clip(j, 1, n - 2)
    y0, y1, y2 = (np.take_along_axis(y, (jc + k)[..., None], -1)[..., 0] for k in (-1, 0, 1))
    x0, x1, x2 = x[jc - 1], x[jc], x[jc + 1]
    # parabola through three points (possibly unequal spacing)
    d01, d12, d02 = x1 - x0, x2 - x1, x2 - x0
    a2 = ((y2 - y1) / d12 - (y1 - y0) / d01) / d02
    a1 = (y1 - y0) / d01 - a2 * (x0 + x1)
    convex = a2 > 0
    xs = np.where(convex, -a1 / np.where(convex, 2 * a2, 1.0), x1)
    xs = np.clip(xs, x0, x2)
    ys = np.minimum(y0 + (xs - x0) * ((y1 - y0) / d01 + a2 * (xs - x1)), y1)
    grid_best = np.take_along_axis(y, j[..., None], -1)[..., 0]
    xs = np.where(edge, x[j], xs)
    ys = np.where(edge, grid_best, ys)
    return np.exp(xs), np.exp(ys), edge


# --- the FSL asymptotics per schedule ---------------------------------------------------------


def intrinsic_fraction(kind: str, decay_fraction: float = DEFAULT_DECAY_FRACTION) -> float:
    """``c = int_0^1 g``: the schedule's intrinsic time in units of ``peak * T``."""
    return {
        "wsd": 1.0 - decay_fraction / 2.0,
        "cosine": 0.5,
        "linear": 0.5,
        "constant": 1.0,
    }[kind]


def end_power(kind: str) -> int:
    """``p`` in ``g(z) ~ kappa (1 - z)^p`` as ``z -> 1`` (constant: 0, never decays)."""
    return {"wsd": 1, "cosine": 2, "linear": 1, "constant": 0}[kind]


def end_coefficient(kind: str, decay_fraction: float = DEFAULT_DECAY_FRACTION) -> float:
    """``kappa`` in ``g(z) ~ kappa (1 - z)^p`` (WSD: slope ``1/f`` of its linear cooldown)."""
    return {
        "wsd": 1.0 / decay_fraction,
        "cosine": math.pi**2 / 4.0,
        "linear": 1.0,
        "constant": 1.0,
    }[kind]


def noise_exponent(kind: str, beta):
    """``e = max(1/beta, 1/(p + 1))``: noise ``~ eta^e T^{-(1 - e)}`` under the FSL."""
    return np.maximum(1.0 / np.asarray(beta, dtype=float), 1.0 / (end_power(kind) + 1.0))


def loss_exponent(kind: str, beta, a):
    """``r = s / max(1, s + e)``: the tuned final loss ``~ T^{-r}`` (larger is better)."""
    s = source_exponent(beta, a)
    return s / np.maximum(1.0, s + noise_exponent(kind, beta))


def _cosine_big_g(u: float) -> float:
    """``u/2 - sin(pi u)/(2 pi)``, by its series for small ``u`` (no cancellation)."""
    if u < 1e-2:
        return math.pi**2 * u**3 / 12.0 - math.pi**4 * u**5 / 240.0
    return u / 2.0 - math.sin(math.pi * u) / (2.0 * math.pi)


def _profile(kind: str, f: float) -> tuple[Callable[[float], float], Callable[[float], float]]:
    """``g(1 - u)`` and ``G(1 - u) = int_0^u g(1 - v) dv`` as functions of the time left ``u``."""
    profiles: dict[str, tuple[Callable[[float], float], Callable[[float], float]]] = {
        "wsd": (
            lambda u: 1.0 if u > f else u / f,
            lambda u: (u - f) + f / 2.0 if u > f else u * u / (2.0 * f),
        ),
        "linear": (lambda u: u, lambda u: u * u / 2.0),
        "cosine": (lambda u: (1.0 - math.cos(math.pi * u)) / 2.0, _cosine_big_g),
        "constant": (lambda u: 1.0, lambda u: u),
    }
    if kind not in profiles:
        raise ValueError(f"kind: unknown schedule {kind!r}; allowed: {', '.join(KINDS)}")
    return profiles[kind]


def tail_integral(kind: str, beta: float, decay_fraction: float = DEFAULT_DECAY_FRACTION):
    r"""``J_beta = int_0^1 g(z)^2 G(z)^{-(2 - 1/beta)} dz`` (``inf`` when ``beta >= p + 1``: then
    the end of the schedule dominates the noise).  Linear decay: ``2^{2 - 1/beta} / (2/beta - 1)``.

    Near the end (time left ``u -> 0``) the integrand is ``~ u^gamma``,
    ``gamma = 2p - (p + 1)(2 - 1/beta) > -1``: that piece, ``[0, u_0]``, is integrated in closed
    form from ``g ~ kappa u^p`` (exact for WSD and linear; error ``O(u_0^2)`` for cosine), the
    rest by ``scipy.integrate.quad``."""
    p = end_power(kind)
    if kind == "constant" or float(beta) >= p + 1.0:
        return math.inf
    k = 2.0 - 1.0 / float(beta)
    g, big_g = _profile(kind, decay_fraction)
    kappa = end_coefficient(kind, decay_fraction)
    u0 = decay_fraction / 2.0 if kind == "wsd" else (0.5 if kind == "linear" else 1e-3)
    gamma = 2 * p - (p + 1) * k
    head = kappa ** (2.0 - k) * (p + 1.0) ** k * u0 ** (gamma + 1.0) / (gamma + 1.0)
    points = [decay_fraction] if kind == "wsd" else None
    rest, _ = integrate.quad(
        lambda u: g(u) ** 2 * big_g(u) ** (-k), u0, 1.0, points=points, limit=200
    )
    return float(head + rest)


def figure_of_merit(kind: str, beta: float, a: float, decay_fraction=DEFAULT_DECAY_FRACTION):
    """The constant in front of ``T^{-r}`` up to factors common to every schedule (smaller is
    better; compare only schedules with equal ``loss_exponent``): signal-limited ``c^{-s}``,
    noise-limited ``(c^{-e} J)^{s/(s+e)}`` with ``J`` the tail integral (``e = 1/beta``) or the
    end coefficient ``kappa^{1/(p+1)}`` (``e = 1/(p+1)``)."""
    s = float(source_exponent(beta, a))
    e = float(noise_exponent(kind, beta))
    c = intrinsic_fraction(kind, decay_fraction)
    if s + e <= 1.0:
        return c ** (-s)
    if kind == "constant":
        big_j = 1.0
    elif end_power(kind) + 1.0 > float(beta):
        big_j = tail_integral(kind, beta, decay_fraction)
    else:
        big_j = end_coefficient(kind, decay_fraction) ** e
    return (c ** (-e) * big_j) ** (s / (s + e))


def predicted_ranking(
    beta: float,
    a: float,
    kinds: Sequence[str] = KINDS,
    decay_fraction: float = DEFAULT_DECAY_FRACTION,
    rtol: float = 1e-9,
) -> list[list[str]]:
    """The FSL's asymptotic order of the tuned final losses, best first, as groups of kinds
    it cannot separate (equal exponent and equal constant: a tie at leading order)."""
    key = {
        k: (-float(loss_exponent(k, beta, a)), figure_of_merit(k, beta, a, decay_fraction))
        for k in kinds
    }
    order = sorted(kinds, key=lambda k: key[k])
    groups: list[list[str]] = []
    for k in order:
        if groups:
            prev = key[groups[-1][0]]
            if math.isclose(prev[0], key[k][0], rel_tol=rtol) and math.isclose(
                prev[1], key[k][1], rel_tol=rtol
            ):
                groups[-1].append(k)
                continue
        groups.append([k])
    return groups


def predicted_winner(
    beta: float, a: float, kinds: Sequence[str] = KINDS, decay_fraction=DEFAULT_DECAY_FRACTION
) -> str:
    """The asymptotic winner, or ``"tie"`` when the leading order cannot separate the best."""
    first = predicted_ranking(beta, a, kinds, decay_fraction)[0]
    return first[0] if len(first) == 1 else "tie"


def predicted_ratio(
    kind: str, other: str, beta: float, a: float, decay_fraction=DEFAULT_DECAY_FRACTION
) -> float:
    """``lim_{T -> inf} L_kind / L_other`` at tuned peaks: the ratio of figures of merit when the
    exponents agree, else ``0`` or ``inf``."""
    r1, r2 = loss_exponent(kind, beta, a), loss_exponent(other, beta, a)
    if not math.isclose(float(r1), float(r2), rel_tol=1e-9):
        return 0.0 if r1 > r2 else math.inf
    return figure_of_merit(kind, beta, a, decay_fraction) / figure_of_merit(
        other, beta, a, decay_fraction
    )
