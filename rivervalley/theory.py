r"""Closed forms and exact recursions that the simulator is checked against.

SGD on a quadratic with curvatures ``lambda_i`` and additive gradient noise of standard deviation
``sigma_i`` (any distribution with mean 0 and that variance) moves each coordinate independently:

.. math::

    w_{t+1} = (1 - \eta_t \lambda) w_t - \eta_t \sigma \xi_t

so its mean and variance follow, *exactly* and for any schedule ``eta_t``,

.. math::

    m_{t+1} = (1 - \eta_t \lambda) m_t, \qquad
    v_{t+1} = (1 - \eta_t \lambda)^2 v_t + \eta_t^2 \sigma^2,

and the expected loss is ``E L_t = 1/2 sum_i lambda_i (m_i^2 + v_i)``.  Under a constant rate the
variance converges (for ``0 < eta lambda < 2``) to ``eta sigma^2 / (lambda (2 - eta lambda))``,
i.e. a stationary loss of ``eta sigma^2 / (2 (2 - eta lambda))`` per direction.

Heavy-ball momentum (optax: ``m <- beta m + g``, ``w <- w - eta m``, ``m_0 = 0``) makes each
coordinate a 2-D linear Gaussian system in ``x = (w, m)``, ``x' = A_t x + b_t xi``, whose mean and
covariance also follow exact recursions (``heavy_ball_quadratic_moments``); its stationary
covariance solves a discrete Lyapunov equation (``heavy_ball_stationary_cov``, closed form for
``Var w`` in ``heavy_ball_stationary_var``).  ``hill_cliff`` predicts the hill part of the loss
drop in a decay, ``noise_floor_slope`` its small-residual slope in ``eta sigma^2``, and
``valley_stationary_hill_loss`` the first-order correction of the noise floor for a bent river.

Batch size.  A minibatch of ``B`` independent draws divides the noise variance by ``B``
(``sigma^2 -> sigma^2 / B``; the landscapes' ``batch_size`` field), so every formula here holds
with ``sigma / sqrt(B)`` for ``sigma``: ``sgd_quadratic_moments``, ``stationary_hill_loss``,
``noise_floor_slope``, ``hill_cliff`` and ``valley_stationary_hill_loss`` take a ``batch_size``
argument (last, default 1: the former results); pass ``noise_std / sqrt(B)`` to the heavy-ball
functions.  The stationary loss per direction becomes

.. math::

    \frac{\eta \sigma^2}{2 B (2 - \eta \lambda)}
    = \frac{\eta}{B} \cdot \frac{\sigma^2}{4} \Bigl(1 + \frac{\eta\lambda}{2} + O(\eta^2\lambda^2)
    \Bigr),

which depends on ``eta`` and ``B`` only through the noise scale ``eta / B`` while
``eta lambda << 1``: the *linear scaling rule* (scaling ``eta`` and ``B`` by the same ``k`` keeps
the floor).  It breaks when ``eta lambda`` is not small: the exact ratio of the floor at
``(k eta, k B)`` to that at ``(eta, B)`` is ``(2 - eta lambda) / (2 - k eta lambda)``
(``linear_scaling_ratio``), above 1 and diverging as ``k eta lambda -> 2``, where the larger
rate is unstable whatever the batch size (the curvature term ``eta lambda`` is a property of
the rate alone, which a larger batch does not remove).  The relaxation time ``1 / (eta
lambda)`` of a hill also depends on ``eta`` alone: at a fixed ``eta / B`` a larger rate reaches
the same floor in fewer steps.

Iterate averaging.  The lab's averages of the iterates (``Optimizer.with_averaging``: the EMA,
the window mean and its strided form, checkpoint merging) are, at a given step ``T``, fixed
linear combinations ``a = sum_t omega_t w_t`` (``average_weights``), so on the quadratic ``a`` is
Gaussian-linear in the initial point and the noise and its mean and variance follow exactly for
any weights and schedule (``averaged_sgd_quadratic_moments``, memory ``O(d)``); the expected
loss at the average is ``expected_quadratic_loss`` of those moments.
"""

from __future__ import annotations

from typing import NamedTuple, cast

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from rivervalley.validation import require, within


class Moments(NamedTuple):
    """Per-coordinate mean and variance, each of shape ``(T + 1, d)`` (row ``t``: after ``t``
    updates)."""

    mean: ArrayLike
    var: ArrayLike


def sgd_quadratic_moments(
    curvatures, noise_std, mean0, var0, lrs, *, final_only: bool = False, batch_size=1.0
) -> Moments:
    """Exact mean/variance of SGD on ``0.5 sum lambda_i w_i^2`` with gradient-noise std
    ``noise_std / sqrt(batch_size)``, starting from ``(mean0, var0)``, for the rates ``lrs``
    (shape ``(T,)``): ``m <- (1 - eta lambda) m``, ``v <- (1 - eta lambda)^2 v + eta^2
    sigma^2 / B``.

    ``final_only``: only the moments after the last update, shape ``(d,)`` each (memory
    ``O(d)`` instead of ``O(T d)``, so ``vmap`` over thousands of schedules fits)."""
    curvatures = jnp.asarray(curvatures)
    noise_var = jnp.asarray(noise_std) ** 2 / jnp.asarray(batch_size)

    def step(carry, lr):
        m, v = carry
        contraction = 1.0 - lr * curvatures
        m, v = contraction * m, contraction**2 * v + lr**2 * noise_var
        return (m, v), None if final_only else (m, v)

    m0 = jnp.broadcast_to(jnp.asarray(mean0, dtype=curvatures.dtype), curvatures.shape)
    v0 = jnp.broadcast_to(jnp.asarray(var0, dtype=curvatures.dtype), curvatures.shape)
    (m, v), history = jax.lax.scan(step, (m0, v0), jnp.asarray(lrs, dtype=curvatures.dtype))
    if final_only:
        return Moments(m, v)
    ms, vs = cast(tuple[jax.Array, jax.Array], history)
    return Moments(jnp.concatenate([m0[None], ms]), jnp.concatenate([v0[None], vs]))


def expected_quadratic_loss(curvatures, moments: Moments) -> jax.Array:
    """``E L_t = 1/2 sum_i lambda_i (m_{t,i}^2 + v_{t,i})``, shape ``(T + 1,)``."""
    m, v = jnp.asarray(moments.mean), jnp.asarray(moments.var)
    return 0.5 * jnp.sum(jnp.asarray(curvatures) * (m**2 + v), axis=-1)


def quadratic_loss_variance(curvatures, moments: Moments) -> jax.Array:
    """``Var L_t`` for Gaussian iterates: ``sum_i (lambda_i/2)^2 (2 v^2 + 4 m^2 v)``."""
    lam = jnp.asarray(curvatures)
    m, v = jnp.asarray(moments.mean), jnp.asarray(moments.var)
    return jnp.sum((0.5 * lam) ** 2 * (2.0 * v**2 + 4.0 * m**2 * v), axis=-1)


def stationary_hill_loss(lr, curvature, noise_std, batch_size=1.0):
    """Stationary expected loss of one quadratic direction under SGD at constant rate ``lr``
    with gradient-noise variance ``sigma^2 / B`` (``B = batch_size``):
    ``eta sigma^2 / (2 B (2 - eta lambda))`` (requires ``0 < eta lambda < 2``); a function of
    ``eta / B`` only to first order in ``eta lambda`` (see the module docstring).  Arguments
    broadcast."""
    return lr * noise_std**2 / (2.0 * batch_size * (2.0 - lr * curvature))


def linear_scaling_ratio(lr, curvature, factor):
    r"""How far the linear scaling rule is off for one quadratic direction: the stationary loss
    at rate ``k eta`` and batch ``k B`` over the one at ``(eta, B)`` (``k = factor``),

    .. math::

        \frac{k\eta \sigma^2 / (2 k B (2 - k\eta\lambda))}{\eta\sigma^2 / (2 B (2 - \eta\lambda))}
        = \frac{2 - \eta\lambda}{2 - k\eta\lambda}
        = 1 + \frac{(k - 1)\,\eta\lambda}{2} + O\bigl((k\eta\lambda)^2\bigr),

    independent of ``sigma`` and ``B``: 1 only as ``eta lambda -> 0``, and unbounded as
    ``k eta lambda -> 2`` (requires ``0 < k eta lambda < 2``).  Arguments broadcast."""
    return (2.0 - lr * curvature) / (2.0 - factor * lr * curvature)


# --- heavy-ball momentum ------------------------------------------------------------------------


class HeavyBallMoments(NamedTuple):
    r"""Exact moments of heavy-ball SGD on a quadratic, row ``t`` after ``t`` updates.

    ``mean``, ``var``: mean and variance of the iterate ``w``, shape ``(T + 1, d)`` (so
    ``expected_quadratic_loss`` accepts this tuple like a ``Moments``);
    ``state_mean``: mean of the state ``x = (w, m)``, shape ``(T + 1, d, 2)``;
    ``state_cov``: its covariance, shape ``(T + 1, d, 2, 2)`` (``state_cov[..., 0, 0] = var``).
    """

    mean: ArrayLike
    var: ArrayLike
    state_mean: ArrayLike
    state_cov: ArrayLike


def heavy_ball_matrices(lr, curvature, noise_std, momentum) -> tuple[jax.Array, jax.Array]:
    r"""Transition of one coordinate of heavy-ball SGD, ``x' = A x + b xi`` with ``x = (w, m)``.

    optax's ``sgd(lr, momentum=beta)`` (``optax.trace``, no Nesterov) on the gradient
    ``g = lambda w + sigma xi`` is ``m' = beta m + g``, ``w' = w - eta m'``, i.e.

    .. math::

        A = \begin{pmatrix} 1 - \eta\lambda & -\eta\beta \\ \lambda & \beta \end{pmatrix},
        \qquad b = \begin{pmatrix} -\eta\sigma \\ \sigma \end{pmatrix}.

    All arguments broadcast together (shape ``S``); returns ``A`` of shape ``S + (2, 2)`` and
    ``b`` of shape ``S + (2,)``.
    """
    eta, lam, sigma, beta = jnp.broadcast_arrays(
        *(jnp.asarray(x) for x in (lr, curvature, noise_std, momentum))
    )
    row0 = jnp.stack([1.0 - eta * lam, -eta * beta], axis=-1)
    row1 = jnp.stack([lam, beta], axis=-1)
    return jnp.stack([row0, row1], axis=-2), jnp.stack([-eta * sigma, sigma], axis=-1)


@jax.jit
def heavy_ball_quadratic_moments(
    curvatures, noise_std, mean0, var0, lrs, momentum
) -> HeavyBallMoments:
    r"""Exact mean and covariance of heavy-ball SGD on ``0.5 sum lambda_i w_i^2`` with additive
    gradient noise of std ``noise_std`` (any zero-mean distribution), for the rates ``lrs``.

    Per coordinate the state ``x = (w, m)`` follows ``x_{t+1} = A_t x_t + b_t xi_t``
    (``heavy_ball_matrices`` at ``eta_t``), so, exactly and for any schedule,

    .. math::

        \mu_{t+1} = A_t \mu_t, \qquad C_{t+1} = A_t C_t A_t^\top + b_t b_t^\top,

    from ``mu_0 = (mean0, 0)`` and ``C_0 = diag(var0, 0)`` (optax starts the momentum at 0).
    ``curvatures``, ``noise_std``, ``mean0``, ``var0`` and ``momentum`` broadcast to shape
    ``(d,)``; ``lrs`` has shape ``(T,)``.  Pure ``jnp`` (a ``lax.scan``), so ``jax.vmap`` batches
    it over schedules, curvatures or momenta; compiled with ``jax.jit`` (once per argument shape
    and dtype).  The covariance is symmetrised after every step (rounding would otherwise leave
    it asymmetric by an ulp or so).  ``momentum = 0`` reproduces ``sgd_quadratic_moments``.
    """
    lam = jnp.asarray(curvatures)
    dtype = jnp.result_type(lam, float)
    lam = lam.astype(dtype)
    shape = lam.shape
    sigma = jnp.broadcast_to(jnp.asarray(noise_std, dtype), shape)
    beta = jnp.broadcast_to(jnp.asarray(momentum, dtype), shape)
    m0 = jnp.broadcast_to(jnp.asarray(mean0, dtype), shape)
    v0 = jnp.broadcast_to(jnp.asarray(var0, dtype), shape)
    mu0 = jnp.stack([m0, jnp.zeros_like(m0)], axis=-1)
    zero = jnp.zeros_like(v0)
    c0 = jnp.stack([jnp.stack([v0, zero], -1), jnp.stack([zero, zero], -1)], -2)

    def step(carry, lr):
        mu, cov = carry
        a, b = heavy_ball_matrices(lr, lam, sigma, beta)
        mu = jnp.einsum("...ij,...j->...i", a, mu)
        cov = jnp.einsum("...ij,...jk,...lk->...il", a, cov, a) + b[..., :, None] * b[..., None, :]
        cov = 0.5 * (cov + jnp.swapaxes(cov, -1, -2))
        return (mu, cov), (mu, cov)

    _, (mus, covs) = jax.lax.scan(step, (mu0, c0), jnp.asarray(lrs, dtype))
    mus = jnp.concatenate([mu0[None], mus])
    covs = jnp.concatenate([c0[None], covs])
    return HeavyBallMoments(mus[..., 0], covs[..., 0, 0], mus, covs)


@jax.jit
def heavy_ball_stationary_cov(lr, curvature, noise_std, momentum) -> jax.Array:
    r"""Stationary covariance of ``(w, m)`` under a constant rate: the solution of the discrete
    Lyapunov equation ``C = A C A^T + b b^T``, i.e. ``vec C = (I - A (x) A)^{-1} vec(b b^T)``.

    Exists iff ``A``'s spectral radius is below 1, i.e. ``0 <= beta < 1`` and
    ``0 < eta lambda < 2 (1 + beta)``.  Arguments broadcast (shape ``S``); returns ``S + (2, 2)``.
    """
    a, b = heavy_ball_matrices(lr, curvature, noise_std, momentum)
    kron = a[..., :, None, :, None] * a[..., None, :, None, :]  # [i, k, j, l] = A_ij A_kl
    kron = kron.reshape((*a.shape[:-2], 4, 4))
    rhs = (b[..., :, None] * b[..., None, :]).reshape((*b.shape[:-1], 4))
    vec = jnp.linalg.solve(jnp.eye(4, dtype=kron.dtype) - kron, rhs[..., None])[..., 0]
    return vec.reshape((*b.shape[:-1], 2, 2))


def heavy_ball_stationary_var(lr, curvature, noise_std, momentum):
    r"""Stationary variance of ``w`` for heavy ball at constant rate (closed form).

    Eliminating ``m`` gives the AR(2) process ``w_{t+1} = (1 + beta - eta lambda) w_t
    - beta w_{t-1} - eta sigma xi_t``, whose variance is

    .. math::

        \operatorname{Var} w = \frac{(1 + \beta)\, \eta \sigma^2}
        {(1 - \beta)\, \lambda\, \bigl(2 (1 + \beta) - \eta \lambda\bigr)}

    (``beta = 0``: ``eta sigma^2 / (lambda (2 - eta lambda))``; for small ``eta lambda`` the
    effective rate is ``eta / (1 - beta)``).  Requires ``0 <= beta < 1``,
    ``0 < eta lambda < 2 (1 + beta)``.
    """
    beta = momentum
    denom = (1.0 - beta) * curvature * (2.0 * (1.0 + beta) - lr * curvature)
    return (1.0 + beta) * lr * noise_std**2 / denom


def heavy_ball_stationary_loss(lr, curvature, noise_std, momentum):
    r"""Stationary expected loss of one quadratic direction under heavy ball at constant rate:
    ``lambda/2 Var w = (1 + beta) eta sigma^2 / (2 (1 - beta) (2 (1 + beta) - eta lambda))``."""
    return 0.5 * curvature * heavy_ball_stationary_var(lr, curvature, noise_std, momentum)


# --- the noise floor and the cliff of a decay ---------------------------------------------------


def noise_floor_slope(lr, curvatures, batch_size=1.0):
    r"""``d(stationary hill loss) / d(eta sigma^2)`` for SGD at constant rate with the same noise
    variance ``sigma^2`` (per draw; ``sigma^2 / B`` per minibatch of ``B = batch_size``) on every
    hill: ``sum_j 1 / (2 B (2 - eta lambda_j))`` (``1 / (4 B)`` per hill direction for small
    ``eta lambda``).  ``curvatures``: the hills' curvatures, shape ``(h,)``; ``lr`` and
    ``batch_size`` broadcast together (the batch shape of the result)."""
    lam = jnp.asarray(curvatures)
    per_hill = 1.0 / (2.0 * (2.0 - jnp.asarray(lr)[..., None] * lam))
    return jnp.sum(per_hill, axis=-1) / jnp.asarray(batch_size)


class HillCliff(NamedTuple):
    """Expected hill loss before and after a decay, and the drop between them (all shape ``()``,
    or the batch shape of the inputs)."""

    stationary: jax.Array
    residual: jax.Array
    cliff: jax.Array


@jax.jit
def hill_cliff(curvatures, noise_std, stable_lr, decay_lrs, batch_size=1.0) -> HillCliff:
    r"""The hill part of the loss drop in a decay ("the cliff"), for SGD on quadratic hills.

    Assumes each hill ``j`` (curvature ``lambda_j``, noise std ``sigma_j``; shape ``(h,)``) is
    stationary at the rate ``eta_0 = stable_lr`` when the decay starts (mean 0, variance
    ``eta_0 sigma_j^2 / (lambda_j (2 - eta_0 lambda_j))``), then propagates the variance exactly
    through the rates of the decay's updates ``decay_lrs`` (shape ``(D,)``) with
    ``v <- (1 - eta lambda)^2 v + eta^2 sigma^2``:

    .. math::

        \text{cliff} = \sum_j \tfrac{\lambda_j}{2} \bigl(v_j^{\text{stat}} - v_{j,D}\bigr)
        = \sum_j \frac{\eta_0 \sigma_j^2}{2 (2 - \eta_0 \lambda_j)} - \text{residual}.

    Both terms are proportional to ``sigma^2``; the residual (the hill loss the decay leaves
    behind) is small when the decay is long compared with the hills' relaxation time
    ``1 / (eta lambda)``.  Returns ``HillCliff(stationary, residual, cliff)``, scalars.
    Compiled with ``jax.jit``; ``jax.vmap`` batches it over noise levels or rates.

    ``batch_size`` ``B`` (a scalar; default 1) divides the noise variance: ``sigma_j^2 -> sigma_j^2
    / B`` throughout, so the stationary loss, the residual and the cliff all scale as ``1/B``.
    """
    lam = jnp.asarray(curvatures)
    lrs = jnp.asarray(decay_lrs, dtype=jnp.result_type(lam, float))
    sigma = jnp.broadcast_to(jnp.asarray(noise_std), lam.shape) / jnp.sqrt(batch_size)
    v_stat = stable_lr * sigma**2 / (lam * (2.0 - stable_lr * lam))
    moments = sgd_quadratic_moments(lam, sigma, 0.0, v_stat, lrs)
    stationary = 0.5 * jnp.sum(lam * v_stat)
    residual = 0.5 * jnp.sum(lam * jnp.asarray(moments.var)[-1])
    return HillCliff(stationary, residual, stationary - residual)


def valley_stationary_hill_loss(
    lr, curvature, noise_std_hill, noise_std_river, river_slope, batch_size=1.0
):
    r"""Stationary hill loss of SGD on a bent river valley with one hill, to first order in the
    rate, at a river point where the floor ``c(s)`` has slope ``c'(s)`` (``RiverValley``'s
    ``L = f(s) + a/2 (y - c(s))^2``).

    The hill displacement ``u = y - c(s)`` moves as
    ``u' = (1 - eta a (1 + c'^2)) u - eta (sigma_y xi_y - c' sigma_s xi_s) + eta c' f'(s)`` (the
    river step drags the floor along), so it feels the curvature ``a (1 + c'^2)`` and the noise
    variance ``sigma_y^2 + c'^2 sigma_s^2``; neglecting the drift ``c' f'`` (small once the river
    loss is small) and the floor's curvature ``c''`` (a second-order effect),

    .. math::

        \tfrac{a}{2} \operatorname{Var} u = \frac{\eta (\sigma_y^2 + c'^2 \sigma_s^2)}
        {2 (1 + c'^2) \bigl(2 - \eta a (1 + c'^2)\bigr)},

    which for a straight river (``c' = 0``) is ``stationary_hill_loss`` and for isotropic noise is
    ``eta sigma^2 / (2 (2 - eta a (1 + c'^2)))``.  With a minibatch of ``B = batch_size`` draws
    both noise variances are divided by ``B`` (so is the result).  Arguments broadcast.
    """
    slope_sq = jnp.asarray(river_slope) ** 2
    noise_var = jnp.asarray(noise_std_hill) ** 2 + slope_sq * jnp.asarray(noise_std_river) ** 2
    noise_var = noise_var / jnp.asarray(batch_size)
    stiff = curvature * (1.0 + slope_sq)
    return lr * noise_var / (2.0 * (1.0 + slope_sq) * (2.0 - lr * stiff))


# --- iterate averaging --------------------------------------------------------------------------


def _is_count(value, low: int) -> bool:
    """Whether ``value`` is an integer (not a bool) ``>= low``."""
    return (
        isinstance(value, int | np.integer) and not isinstance(value, bool) and bool(value >= low)
    )


def average_weights(
    steps: int,
    *,
    ema_decay: ArrayLike | None = None,
    window: int | None = None,
    window_every: int = 1,
) -> jax.Array:
    r"""The weights ``omega_t`` (shape ``(T + 1,)``, ``T = steps``, summing to 1) for which the
    lab's iterate average after ``T`` updates is ``sum_{t=0}^{T} omega_t p_t`` of the iterates
    ``p_0, ..., p_T`` (``Optimizer.with_averaging`` / ``Optimizer.averages``).  Give exactly one
    of

    - ``ema_decay = d`` in [0, 1): the EMA ``e_0 = p_0``, ``e_{t+1} = d e_t + (1 - d) p_{t+1}``,
      i.e. ``omega_0 = d^T`` (the warm start: ``p_0`` gets the weight the later iterates leave over)
      and ``omega_t = (1 - d) d^{T - t}`` for ``t >= 1``.  An array of decays gives one row of
      weights per decay, shape ``d.shape + (T + 1,)``;
    - ``window = W`` (an integer >= 1) with stride ``window_every = k`` (an integer >= 1): the
      mean of the last ``n = min(W, floor(T / k) + 1)`` checkpoints ``p_s``, ``s`` a multiple of
      ``k``, ``s <= T`` (the newest is ``k floor(T / k)``, which is below ``T`` unless ``k``
      divides ``T``), i.e. ``omega_s = 1 / n`` on those and 0 elsewhere.

    Computed on the host (NumPy float64), returned in JAX's default float dtype."""
    owner = "average_weights"
    require(_is_count(steps, 0), owner, "steps", steps, "an integer >= 0")
    if (ema_decay is None) == (window is None):
        raise ValueError(f"{owner}: give exactly one of ema_decay and window")
    t = np.arange(int(steps) + 1)
    if window is None:  # the EMA
        require(window_every == 1, owner, "window_every", window_every, "1 (it needs a window)")
        d = within(owner, "ema_decay", ema_decay, 0.0, 1.0)
        require(d < 1.0, owner, "ema_decay", ema_decay, "in [0, 1)")
        d = d[..., None]
        omega = np.where(t == 0, d ** int(steps), (1.0 - d) * d ** (int(steps) - t))
    else:
        require(_is_count(window, 1), owner, "window", window, "an integer >= 1")
        require(_is_count(window_every, 1), owner, "window_every", window_every, "an integer >= 1")
        k = int(window_every)
        newest = int(steps) // k  # checkpoints are p_{jk}, j = 0..newest
        n = min(int(window), newest + 1)
        j = t // k
        omega = np.where((t % k == 0) & (j > newest - n), 1.0 / n, 0.0)
    return jnp.asarray(omega, dtype=jnp.result_type(float))


@jax.jit
def averaged_sgd_quadratic_moments(
    curvatures, noise_std, mean0, var0, lrs, weights, *, batch_size=1.0
) -> Moments:
    r"""Exact per-coordinate mean and variance (shape ``(d,)`` each) of the weighted average
    ``a = sum_{t=0}^{T} omega_t w_t`` of the SGD iterates of ``sgd_quadratic_moments`` (same
    model: ``w_{t+1} = alpha_t w_t - eta_t sigma xi_t``, ``alpha_t = 1 - eta_t lambda``,
    independent noise of variance ``sigma^2 / B``, ``B = batch_size``; ``w_0`` with mean
    ``mean0`` and variance ``var0``, independent of the noise).

    ``curvatures``, ``noise_std``, ``mean0``, ``var0`` broadcast to ``(d,)``; ``lrs`` has shape
    ``(T,)`` and ``weights`` (e.g. ``average_weights``) shape ``(T + 1,)``.  With
    ``V_t = Var w_t``, the running sum ``S_t = sum_{s<=t} omega_s w_s``, ``C_t = Cov(S_t, w_t)``
    and ``Q_t = Var S_t``: since ``w_{t+1}`` is ``alpha_t w_t`` plus noise independent of
    ``S_t``, ``Cov(S_t, w_{t+1}) = alpha_t C_t``, and ``S_{t+1} = S_t + omega_{t+1} w_{t+1}``
    gives

    .. math::

        V_{t+1} &= \alpha_t^2 V_t + \eta_t^2 \sigma^2 / B, \\
        C_{t+1} &= \alpha_t C_t + \omega_{t+1} V_{t+1}, \\
        Q_{t+1} &= Q_t + 2 \omega_{t+1} \alpha_t C_t + \omega_{t+1}^2 V_{t+1},

    from ``C_0 = omega_0 V_0``, ``Q_0 = omega_0^2 V_0``; the means ``m_{t+1} = alpha_t m_t``,
    ``M_{t+1} = M_t + omega_{t+1} m_{t+1}`` from ``M_0 = omega_0 m_0``.  Returns
    ``Moments(M_T, Q_T)``; ``expected_quadratic_loss(curvatures, ...)`` of it is the expected
    loss at the average.  One ``lax.scan``, memory ``O(d)`` (no ``T x T`` covariance); compiled
    with ``jax.jit`` (once per argument shape and dtype); ``jax.vmap`` batches it over weights
    or schedules.  One-hot weights at ``T`` give ``sgd_quadratic_moments(..., final_only=True)``.
    """
    lam = jnp.asarray(curvatures)
    dtype = jnp.result_type(lam, float)
    lam = lam.astype(dtype)
    lrs = jnp.asarray(lrs, dtype)
    weights = jnp.asarray(weights, dtype)
    if lrs.ndim != 1 or weights.shape != (lrs.shape[0] + 1,):
        raise ValueError(
            f"averaged_sgd_quadratic_moments: need lrs of shape (T,) and weights of shape "
            f"(T + 1,), got {lrs.shape} and {weights.shape}"
        )
    noise_var = jnp.asarray(noise_std, dtype) ** 2 / jnp.asarray(batch_size, dtype)
    noise_var = jnp.broadcast_to(noise_var, lam.shape)
    m0 = jnp.broadcast_to(jnp.asarray(mean0, dtype), lam.shape)
    v0 = jnp.broadcast_to(jnp.asarray(var0, dtype), lam.shape)

    def step(carry, inputs):
        m, v, c, avg_mean, avg_var = carry
        lr, omega = inputs
        alpha = 1.0 - lr * lam
        v = alpha**2 * v + lr**2 * noise_var
        avg_var = avg_var + 2.0 * omega * alpha * c + omega**2 * v
        c = alpha * c + omega * v
        m = alpha * m
        return (m, v, c, avg_mean + omega * m, avg_var), None

    omega0 = weights[0]
    init = (m0, v0, omega0 * v0, omega0 * m0, omega0**2 * v0)
    (_, _, _, avg_mean, avg_var), _ = jax.lax.scan(step, init, (lrs, weights[1:]))
    return Moments(avg_mean, avg_var)
