r"""Loss-curve laws across learning-rate schedules: the multi-power law, two baselines, a fitter
and the error metrics, in the form of Luo et al. (2025).

**The multi-power law** (Luo, Wen, Hu, Sun, Liu, Sun, Lyu, Chen, *A Multi-Power Law for Loss
Curve Prediction Across Learning Rate Schedules*, ICLR 2025, arXiv 2503.12811, eq. (1); the same
formula in the README of their code, github.com/thu-yao-01-luo/MultiPowerLaw)::

    L(t)  = L0 + A (S1(t) + S_W)^(-alpha) - LD(t),
    LD(t) = B sum_{k=1}^{t} (eta_{k-1} - eta_k) G(eta_k^(-gamma) S_k(t)),
    G(x)  = 1 - (C x + 1)^(-beta),
    S1(t) = sum_{tau=1}^{t} eta_tau,   S_k(t) = sum_{tau=k}^{t} eta_tau,

with ``eta_1 .. eta_T`` the rates of the updates *after* the warmup, ``S_W`` the sum of the
warmup's rates and ``L(t)`` the loss after the warmup and ``t`` more updates.  ``eta_0`` is the
rate just before ``eta_1``; by default ``eta_0 = eta_1`` (no drop at the first step: the stable
phase starts at the peak).  Parameters ``(L0, A, alpha, B, C, beta, gamma)``.

*Warmup.*  The authors' code (``src/models.py``, ``src/evaluation.py``) takes the rate array of
the whole run, warmup included: its ``S1`` is the cumulative sum over all rates (so
``S1 + S_W`` of the paper), and its ``LD`` sum also runs over the warmup steps, where the rising
rate gives small negative terms.  Here, as in the paper's formula, ``LD`` runs over the
post-warmup rates only and the warmup enters through ``S_W``; the two differ by the warmup's
``LD`` terms, ``-B sum_{k<=W} (eta_k - eta_{k-1}) G(.)``, which tend to the constant
``-B eta_peak`` (absorbed in ``L0``) once ``S_k(t)`` is large.

**Baselines.**  ``POWER``: ``L0 + A (S1 + S_W)^(-alpha)`` (the multi-power law with ``B = 0``:
the loss as a function of the rate area alone, blind to the decay).  ``MOMENTUM``: the
"momentum law" of Tissue, Wang, Wang (*Scaling Law with Learning Rate Annealing*,
arXiv 2408.11029), the law Luo et al. compare against:
``L0 + A (S1 + S_W)^(-alpha) - C S2``, ``S2(t) = sum_{i<=t} m_i``,
``m_i = lambda m_{i-1} + (eta_{i-1} - eta_i)``, i.e. in closed form
``S2(t) = sum_{k<=t} (eta_{k-1} - eta_k) (1 - lambda^(t-k+1)) / (1 - lambda)``; here the decay
factor ``lambda`` (they use ~0.999) is fitted too.

**Fitting** (``fit``), after the authors' code (``src/fitting.py``, ``src/models.py``): the
objective is the sum over every point of every training curve of the Huber loss
(``delta = 1e-3``) of the log residual ``r = log L_obs - log L_pred`` (``L_pred`` clamped at
``1e-10``).  They minimise it with AdamW on the raw parameters (200 steps, rates ``5e-2`` for
``L0, A, B, C`` and ``5e-3`` for the exponents), from an initialisation found by L-BFGS-B on a
simplified law ``L0 + A S1^(-alpha) - B (eta_peak - eta_t)`` over a grid, then
``C = 1, beta = gamma = 0.5``.  Here the *same objective* is minimised by trust-region least
squares (``scipy.optimize.least_squares(loss="huber", f_scale=delta)``, whose robust loss is the
Huber loss up to the constant factor ``2 / delta^2``) with the exact Jacobian from JAX, in
log-parameters for every parameter but ``L0`` (positivity; ``L0`` is free, as in their AdamW
fit), from a small grid of initialisations (the simplified law first, as they do, then several
``C`` scales); the best objective wins.  Everything runs in float64 (``jax.enable_x64``, scoped).

**Metrics** (``metrics``), as the authors' ``src/evaluation.py`` computes them per curve:
``R^2 = 1 - sum (y - yhat)^2 / sum (y - mean y)^2`` (``sklearn.metrics.r2_score``),
``PredE = mean |y - yhat| / y`` (mean relative error), ``WorstE = max |y - yhat| / y`` (worst
relative error), plus ``MAE`` and ``RMSE``; their tables average each metric over the curves.
Note that ``y`` is the *total* loss: on a language model it includes the entropy floor (~2-3
nats), which makes relative errors small; on a landscape whose minimum is 0 the same metric is
far more demanding.

**Any schedule** (``rate_curve``, ``Fit.predict``): a run given by its full per-update rate
array (warmup included) and the loss after ``n`` updates becomes a ``Curve`` split at a chosen
warmup length (``0``: every rate in the law, the form of the authors' code; ``W``: the
paper's form, the warmup summed into ``S_W``).  A ``Fit`` remembers which form its training
curves had (``warmup_in_law``: all of them with ``S_W = 0``) and predicts any rate array in
that form, so a fit made on the authors' form is never evaluated in the paper's.

**Choosing schedules** (``best_schedule``, ``optimal_schedule``): the predicted loss after the
last update of a budget, minimised over a family's grid (WSD: decay fraction x decay shape;
cosine / linear: final rate), exhaustively, or over the post-warmup rates themselves
(L-BFGS-B in ``[floor, peak]``, monotone by construction unless asked otherwise).  Under the
multi-power law the free (non-monotone) problem is unbounded: oscillating rates make ``LD``
grow without limit (the law was fitted on monotone decays and does not hold there), so only
the monotone optimum is meaningful; and ``G``'s derivative is infinite at ``eta = 0``, hence
``floor > 0`` (default ``1e-4`` of the peak).

The law is evaluated at chosen steps ``t`` only (``(M, T)`` work, rows in chunks), so curves of
``T ~ 1e4`` updates cost a few ms.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import least_squares

from rivervalley import schedules

HUBER_DELTA = 1e-3  # the authors' Huber threshold on log residuals (src/config.py)
PRED_FLOOR = 1e-10  # the authors clamp the prediction before the log
_ROW_CHUNK = 128
_DENSE_LIMIT = 1 << 20  # (M, K) entries evaluated at once before chunking rows


@dataclasses.dataclass(frozen=True)
class Curve:
    """One loss curve and its schedule, in the law's indexing.

    ``rates``: ``eta_1 .. eta_T``, the post-warmup rates (shape ``(T,)``); ``steps``: the
    post-warmup update counts ``t`` (1-based, increasing, ``<= T``) at which ``loss`` was
    measured; ``warmup_sum``: ``S_W``; ``eta0``: the rate before ``eta_1`` (``None``: ``eta_1``).
    """

    rates: np.ndarray
    steps: np.ndarray
    loss: np.ndarray
    warmup_sum: float = 0.0
    eta0: float | None = None
    name: str = ""

    def __post_init__(self):
        rates = np.asarray(self.rates, np.float64)
        steps = np.asarray(self.steps, np.int64)
        loss = np.asarray(self.loss, np.float64)
        if rates.ndim != 1 or steps.ndim != 1 or loss.shape != steps.shape:
            raise ValueError("Curve: rates (T,), steps (M,) and loss (M,) expected")
        if steps.size and (steps.min() < 1 or steps.max() > rates.size):
            raise ValueError(f"Curve: steps must lie in 1..{rates.size}")
        object.__setattr__(self, "rates", rates)
        object.__setattr__(self, "steps", steps)
        object.__setattr__(self, "loss", loss)


def rate_curve(rates, steps, loss=None, *, warmup: int = 0, name: str = "") -> Curve:
    """A run given by its full per-update rate array ``rates`` (warmup included; ``rates[i]``
    the rate of update ``i``) and the loss after ``steps`` updates (``n``: the loss after the
    updates at ``rates[0..n-1]``), as a ``Curve`` in the law's indexing, split at ``warmup``:
    ``eta_k = rates[warmup - 1 + k]``, ``t = n - warmup``, ``S_W = sum(rates[:warmup])``,
    ``eta_0 = rates[warmup - 1]`` (``warmup = 0``: the whole run is the law's, ``eta_0 =
    eta_1``).  ``loss`` defaults to NaN (a curve to predict)."""
    rates = np.asarray(rates, np.float64)
    steps = np.asarray(steps, np.int64)
    warmup = int(warmup)
    if rates.ndim != 1 or not 0 <= warmup < rates.size:
        raise ValueError(
            f"rate_curve: rates (N,) with 0 <= warmup < N expected, got "
            f"shape {rates.shape}, warmup {warmup}"
        )
    if steps.size and (steps.min() <= warmup or steps.max() > rates.size):
        raise ValueError(f"rate_curve: steps must lie in {warmup + 1}..{rates.size}")
    loss = np.full(steps.shape, np.nan) if loss is None else loss
    return Curve(
        rates=rates[warmup:],
        steps=steps - warmup,
        loss=loss,
        warmup_sum=float(rates[:warmup].sum()),
        eta0=float(rates[warmup - 1]) if warmup > 0 else None,
        name=name,
    )


def _prefix(rates: jax.Array) -> jax.Array:
    """``P[t] = sum_{tau <= t} eta_tau`` for ``t = 0..T`` (``P[0] = 0``)."""
    return jnp.concatenate([jnp.zeros((1,), rates.dtype), jnp.cumsum(rates)])


def _drops(rates: jax.Array, eta0) -> jax.Array:
    """``eta_{k-1} - eta_k`` for ``k = 1..T``."""
    first = rates[:1] if eta0 is None else jnp.reshape(jnp.asarray(eta0, rates.dtype), (1,))
    return jnp.concatenate([first, rates[:-1]]) - rates


def _decay_sum(kernel: Callable, rates, steps, eta0, columns=None) -> jax.Array:
    """``sum_{k=1}^{t} (eta_{k-1} - eta_k) kernel(S_k(t), eta_k, t - k)`` for each ``t`` in
    ``steps``, as ``(M, K)`` masked sums (in row chunks when large).  ``columns``: the 1-based
    ``k`` to include (default all ``1..T``); terms with ``eta_{k-1} = eta_k`` vanish, so passing
    only the ``k`` where the rate changes (``changes``) gives the same sum, faster."""
    rates = jnp.asarray(rates)
    p = _prefix(rates)
    k = jnp.arange(1, rates.shape[0] + 1) if columns is None else jnp.asarray(columns)
    drops = _drops(rates, eta0)[k - 1]
    eta_k, p_before = rates[k - 1], p[k - 1]

    def row(t):
        mask = k <= t
        s_kt = jnp.where(mask, p[t] - p_before, 0.0)  # S_k(t) = P_t - P_{k-1}
        lag = jnp.where(mask, t - k, 0)
        return jnp.sum(jnp.where(mask, drops * kernel(s_kt, eta_k, lag), 0.0))

    steps = jnp.asarray(steps)
    if k.shape[0] == 0:
        return jnp.zeros(steps.shape, rates.dtype)
    if steps.shape[0] * k.shape[0] <= _DENSE_LIMIT:  # small: one dense (M, K) block
        return jax.vmap(row)(steps)
    return jax.lax.map(row, steps, batch_size=_ROW_CHUNK)


def changes(rates, eta0=None) -> np.ndarray:
    """The 1-based ``k`` with ``eta_{k-1} != eta_k`` (the only nonzero terms of ``LD``)."""
    rates = np.asarray(rates, np.float64)
    prev = np.concatenate([[rates[0] if eta0 is None else eta0], rates[:-1]])
    return np.flatnonzero(prev != rates) + 1


def _safe_rates(rates):
    # eta_k^(-gamma) at eta_k = 0 is infinite (G -> 1); keep the arithmetic finite
    return jnp.maximum(rates, jnp.finfo(jnp.asarray(rates).dtype).tiny ** 0.25)


@jax.jit
def loss_drop(params, rates, steps=None, *, eta0=None, columns=None) -> jax.Array:
    """``LD(t)`` of the multi-power law at the post-warmup steps ``steps`` (default ``1..T``);
    ``params`` is ``(L0, A, alpha, B, C, beta, gamma)``."""
    _, _, _, b, c, beta, gamma = (params[i] for i in range(7))
    rates = jnp.asarray(rates)
    steps = jnp.arange(1, rates.shape[0] + 1) if steps is None else jnp.asarray(steps)

    def g(s_kt, eta, _lag):
        x = _safe_rates(eta) ** (-gamma) * s_kt
        return 1.0 - (c * x + 1.0) ** (-beta)

    return b * _decay_sum(g, rates, steps, eta0, columns)


@jax.jit
def multi_power_law(
    params, rates, steps=None, *, warmup_sum=0.0, eta0=None, columns=None
) -> jax.Array:
    """The multi-power law ``L(t) = L0 + A (S1(t) + S_W)^(-alpha) - LD(t)`` at the post-warmup
    steps ``steps`` (1-based; default ``1..T``) for the post-warmup rates ``rates`` ``(T,)``;
    ``params = (L0, A, alpha, B, C, beta, gamma)``.  See the module docstring."""
    l0, a, alpha = params[0], params[1], params[2]
    rates = jnp.asarray(rates)
    steps = jnp.arange(1, rates.shape[0] + 1) if steps is None else jnp.asarray(steps)
    s1 = _prefix(rates)[steps] + warmup_sum
    return l0 + a * s1 ** (-alpha) - loss_drop(params, rates, steps, eta0=eta0, columns=columns)


@jax.jit
def power_law(params, rates, steps=None, *, warmup_sum=0.0, eta0=None, columns=None) -> jax.Array:
    """The baseline ``L0 + A (S1(t) + S_W)^(-alpha)``; ``params = (L0, A, alpha)``."""
    del eta0, columns
    rates = jnp.asarray(rates)
    steps = jnp.arange(1, rates.shape[0] + 1) if steps is None else jnp.asarray(steps)
    return params[0] + params[1] * (_prefix(rates)[steps] + warmup_sum) ** (-params[2])


@jax.jit
def momentum_law(
    params, rates, steps=None, *, warmup_sum=0.0, eta0=None, columns=None
) -> jax.Array:
    """Tissue et al.'s momentum law ``L0 + A (S1 + S_W)^(-alpha) - C S2``,
    ``S2(t) = sum_{k<=t} (eta_{k-1} - eta_k) (1 - lambda^(t-k+1)) / (1 - lambda)``;
    ``params = (L0, A, alpha, C, lambda)``."""
    rates = jnp.asarray(rates)
    steps = jnp.arange(1, rates.shape[0] + 1) if steps is None else jnp.asarray(steps)
    lam = params[4]

    def kernel(_s, _eta, lag):
        return (1.0 - lam ** (lag + 1.0)) / (1.0 - lam)

    s2 = _decay_sum(kernel, rates, steps, eta0, columns)
    return power_law(params[:3], rates, steps, warmup_sum=warmup_sum) - params[3] * s2


@jax.jit
def instant_law(params, rates, steps=None, *, warmup_sum=0.0, eta0=None, columns=None):
    """The multi-power law with ``G = 1`` (the decay's drop realised at once):
    ``L0 + A (S1 + S_W)^(-alpha) - B (eta_0 - eta_t)``; ``params = (L0, A, alpha, B)``.  The
    authors' initialisation fits this law first (``src/fitting.py``)."""
    del columns
    rates = jnp.asarray(rates)
    steps = jnp.arange(1, rates.shape[0] + 1) if steps is None else jnp.asarray(steps)
    eta0 = rates[0] if eta0 is None else eta0
    base = power_law(params[:3], rates, steps, warmup_sum=warmup_sum)
    return base - params[3] * (eta0 - rates[steps - 1])


# ----------------------------------------------------------------------------------- laws


@dataclasses.dataclass(frozen=True)
class Law:
    """A law ``predict(params, rates, steps, warmup_sum=, eta0=)``, its parameter names, and
    the maps between parameters and the fitter's unconstrained coordinates ``z``."""

    name: str
    names: tuple[str, ...]
    predict: Callable[..., jax.Array]
    transforms: tuple[str, ...]  # per parameter: "id", "log" or "logit"

    def to_params(self, z):
        out = []
        for i, kind in enumerate(self.transforms):
            zi = z[i]
            out.append(zi if kind == "id" else jnp.exp(zi) if kind == "log" else jax.nn.sigmoid(zi))
        return jnp.stack(out)

    def to_z(self, params) -> np.ndarray:
        out = []
        for p, kind in zip(params, self.transforms, strict=True):
            p = float(p)
            if kind == "id":
                out.append(p)
            elif p <= 0.0 or (kind == "logit" and p >= 1.0):
                out.append(np.nan)  # outside the law's domain: the fitter skips this start
            else:
                out.append(np.log(p) if kind == "log" else np.log(p / (1.0 - p)))
        return np.asarray(out)

    def curve(self, params, curve: Curve, steps=None) -> jax.Array:
        """The law's prediction for ``curve`` (at its measured steps, or at ``steps``)."""
        return self.predict(
            jnp.asarray(params),
            jnp.asarray(curve.rates),
            curve.steps if steps is None else steps,
            warmup_sum=curve.warmup_sum,
            eta0=curve.eta0,
            columns=changes(curve.rates, curve.eta0),
        )


MULTI_POWER = Law(
    "multi_power",
    ("L0", "A", "alpha", "B", "C", "beta", "gamma"),
    multi_power_law,
    ("id", "log", "log", "log", "log", "log", "log"),
)
POWER = Law("power", ("L0", "A", "alpha"), power_law, ("id", "log", "log"))
MOMENTUM = Law(
    "momentum",
    ("L0", "A", "alpha", "C", "lambda"),
    momentum_law,
    ("id", "log", "log", "log", "logit"),
)
INSTANT = Law("instant", ("L0", "A", "alpha", "B"), instant_law, ("id", "log", "log", "log"))
LAWS = {law.name: law for law in (MULTI_POWER, POWER, MOMENTUM)}


# -------------------------------------------------------------------------------- metrics


def metrics(y, yhat) -> dict[str, float]:
    """The authors' per-curve metrics (``src/evaluation.py``): ``r2`` (``1 - SS_res/SS_tot``),
    ``pred_e`` (mean ``|y - yhat| / y``), ``worst_e`` (max ``|y - yhat| / y``), ``mae``,
    ``rmse``."""
    y = np.asarray(y, np.float64)
    yhat = np.asarray(yhat, np.float64)
    err = y - yhat
    rel = np.abs(err) / y
    ss_tot = np.sum((y - y.mean()) ** 2)
    return {
        "r2": float(1.0 - np.sum(err**2) / ss_tot),
        "pred_e": float(rel.mean()),
        "worst_e": float(rel.max()),
        "mae": float(np.abs(err).mean()),
        "rmse": float(np.sqrt(np.mean(err**2))),
    }


def huber(r, delta: float = HUBER_DELTA):
    """``0.5 r^2`` for ``|r| < delta``, else ``delta (|r| - delta / 2)`` (scipy.special.huber)."""
    a = np.abs(np.asarray(r, np.float64))
    return np.where(a < delta, 0.5 * a**2, delta * (a - 0.5 * delta))


# -------------------------------------------------------------------------------- fitting


@dataclasses.dataclass(frozen=True)
class Fit:
    """A fitted law: its parameters (by name), the objective ``sum huber(log residual)``, how
    many initialisations were tried and whether the best one converged."""

    law: str
    params: dict[str, float]
    objective: float
    inits: int
    success: bool
    warmup_in_law: bool = True
    model: Law | None = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def vector(self) -> np.ndarray:
        return np.asarray(list(self.params.values()))

    @property
    def spec(self) -> Law:
        """The fitted ``Law`` (kept by ``fit``; else looked up by name in ``LAWS``)."""
        if self.model is not None:
            return self.model
        known = {**LAWS, INSTANT.name: INSTANT}
        if self.law not in known:
            raise ValueError(f"Fit: law {self.law!r} unknown here; pass the Law to fit()")
        return known[self.law]

    def predict(self, steps, rates, *, warmup: int = 0) -> np.ndarray:
        """The fitted law's loss after ``steps`` updates (each ``n`` in ``warmup+1 ..
        len(rates)``: the loss after the updates at ``rates[0..n-1]``) of a run with the full
        per-update rate array ``rates`` (warmup included), e.g. a schedule's
        ``schedules.rates(schedule, n_total)``.

        ``warmup`` is the run's warmup length.  How it enters follows the training curves
        (``warmup_in_law``, see ``rate_curve``): curves given with ``S_W = 0`` (the whole run
        in the law's rates, as the authors' code and ``rivervalley.real_runs`` build them)
        give a fit that sees every rate, warmup included; curves split at their warmup
        (``S_W > 0``) give a fit that sees the post-warmup rates, the first ``warmup`` summed
        into ``S_W``."""
        split = 0 if self.warmup_in_law else int(warmup)
        curve = rate_curve(rates, steps, warmup=split)
        return predict(self.spec, self.vector, curve)


def _power_starts(curves: Sequence[Curve]) -> list[np.ndarray]:
    """``(L0, A, alpha)`` from log-log regressions of ``L - L0`` on ``S1 + S_W`` over every
    point, for ``L0`` at 0, 0.5 and 0.9 of the smallest loss (the authors regress
    ``log(L - min L + 0.01)`` and scan ``L0`` around ``min L``)."""
    y = np.concatenate([c.loss for c in curves])
    s = np.concatenate([np.cumsum(c.rates)[c.steps - 1] + c.warmup_sum for c in curves])
    out = []
    for frac in (0.0, 0.5, 0.9):
        l0 = frac * float(y.min())
        slope, intercept = np.polyfit(np.log(s), np.log(y - l0), 1)
        out.append(np.asarray([l0, float(np.exp(intercept)), float(np.clip(-slope, 0.05, 3.0))]))
    return out


def _initial_guesses(
    law: Law, curves: Sequence[Curve], instant: Fit | None = None
) -> list[np.ndarray]:
    """Starting points, staged as in the authors' code: first the ``instant`` law
    (``G = 1``) from the power-law starts and a few ``B``; then, for the multi-power law,
    ``beta = gamma = 0.5`` (their start) with ``C`` in ``{0.1, 1, 10}``; for the momentum law
    ``C = B (1 - lambda)`` (the same long-run drop) with ``lambda`` in
    ``{0.9, 0.99, 0.999}``.  ``instant``: a fit of the ``instant`` law to reuse."""
    power = _power_starts(curves)
    if law.name == "power":
        return power
    y = np.concatenate([c.loss for c in curves])
    peak = max(float(c.rates.max()) for c in curves)
    b0 = max(float(y.max() - y.min()), 1e-12) / peak
    starts = [np.asarray([*p, b]) for p in power for b in (0.01 * b0, 0.1 * b0)]
    if law.name == "instant":
        return starts
    if instant is None:
        instant = fit(INSTANT, curves, inits=starts)
    l0, a, alpha, b = instant.vector
    b = max(b, 1e-3 * b0)
    if law.name == "momentum":
        return [np.asarray([l0, a, alpha, b * (1 - lam), lam]) for lam in (0.9, 0.99, 0.999)]
    return [np.asarray([l0, a, alpha, b, c, 0.5, 0.5]) for c in (0.1, 1.0, 10.0)]


def fit(
    law: Law,
    curves: Sequence[Curve],
    *,
    inits: Sequence[Any] | None = None,
    delta: float = HUBER_DELTA,
    max_nfev: int = 100,
    instant: Fit | None = None,
) -> Fit:
    """Fit ``law`` jointly to ``curves`` (each with its own rates): minimise
    ``sum_curves sum_points huber_delta(log L_obs - log L_pred)`` (Luo et al.'s objective) by
    ``scipy.optimize.least_squares`` (trust region, ``loss="huber"``, ``f_scale=delta``) with the
    JAX Jacobian, in the law's unconstrained coordinates, from every point of ``inits`` (default:
    ``_initial_guesses``, which first fits the ``instant`` law unless given as ``instant``);
    return the best.  Runs in float64."""
    with jax.enable_x64(True):
        data = [
            (
                jnp.asarray(c.rates),
                jnp.asarray(c.steps),
                jnp.asarray(np.log(c.loss)),
                c.warmup_sum,
                c.eta0,
                jnp.asarray(changes(c.rates, c.eta0)),
            )
            for c in curves
        ]

        def residuals(z):
            params = law.to_params(z)
            out = []
            for rates, steps, logy, sw, eta0, cols in data:
                pred = law.predict(params, rates, steps, warmup_sum=sw, eta0=eta0, columns=cols)
                out.append(logy - jnp.log(jnp.maximum(pred, PRED_FLOOR)))
            return jnp.concatenate(out)

        res_fn = jax.jit(residuals)
        jac_fn = jax.jit(jax.jacfwd(residuals))
        if inits is None:
            starts = _initial_guesses(law, curves, instant)
        else:
            starts = [np.asarray(p) for p in inits]
        best = None
        for p0 in starts:
            z0 = law.to_z(p0)
            if not np.all(np.isfinite(z0)):
                continue
            try:
                sol = least_squares(
                    lambda z: np.asarray(res_fn(jnp.asarray(z))),
                    z0,
                    jac=lambda z: np.asarray(jac_fn(jnp.asarray(z))),  # pyright: ignore[reportArgumentType]
                    loss="huber",
                    f_scale=delta,
                    method="trf",
                    x_scale="jac",
                    max_nfev=max_nfev,
                )
            except ValueError:  # non-finite residuals at the start
                continue
            objective = float(huber(sol.fun, delta).sum())
            if np.isfinite(objective) and (best is None or objective < best[0]):
                best = (objective, sol)
        if best is None:
            raise RuntimeError(f"fit({law.name}): no initialisation gave finite residuals")
        objective, sol = best
        params = np.asarray(law.to_params(jnp.asarray(sol.x)))
    return Fit(
        law=law.name,
        params={n: float(v) for n, v in zip(law.names, params, strict=True)},
        objective=objective,
        inits=len(starts),
        success=bool(sol.success),
        warmup_in_law=all(c.warmup_sum == 0.0 for c in curves),
        model=law,
    )


_JITTED: dict[str, Callable] = {}


def predict(law: Law, params, curve: Curve, steps=None) -> np.ndarray:
    """``law`` at ``params`` for ``curve`` (at its measured steps, or at ``steps``), in float64,
    as a numpy array.  Compiled once per law and curve shape (every ``LD`` column is kept, so
    curves of one length share the program)."""
    with jax.enable_x64(True):
        if law.name not in _JITTED:
            _JITTED[law.name] = jax.jit(law.predict)
        return np.asarray(
            _JITTED[law.name](
                jnp.asarray(np.asarray(params, np.float64)),
                jnp.asarray(curve.rates),
                jnp.asarray(curve.steps if steps is None else steps),
                warmup_sum=curve.warmup_sum,
                eta0=curve.rates[0] if curve.eta0 is None else curve.eta0,
            )
        )


# ------------------------------------------------------------- schedules from a fitted law

FAMILIES = ("wsd", "cosine", "linear")
DEFAULT_FRACTIONS = tuple(np.arange(1, 21) / 20)  # WSD decay fractions 0.05 .. 1
DEFAULT_FINALS = tuple(np.arange(0, 21) / 20)  # cosine / linear final rate / peak, 0 .. 1
FLOOR_FRACTION = 1e-4  # optimal_schedule's default lower bound on the rates, over the peak


def final_losses(fit: Fit, rates, *, warmup: int = 0) -> np.ndarray:
    """The fitted law's loss after the last update of each row of ``rates`` (``(N,)`` or
    ``(n, N)``: full per-update rate arrays, warmup included; see ``Fit.predict``), as one
    compiled ``vmap`` over the rows.  Differentiable in ``rates`` when called on a JAX array
    under ``jax.enable_x64`` (``_final_loss_fn``)."""
    table = np.asarray(rates, np.float64)
    single = table.ndim == 1
    table = np.atleast_2d(table)
    with jax.enable_x64(True):
        out = jax.jit(jax.vmap(_final_loss_fn(fit, table.shape[1], warmup)))(jnp.asarray(table))
        out = np.asarray(out)
    return out[0] if single else out


def _final_loss_fn(fit: Fit, n: int, warmup: int) -> Callable[[jax.Array], jax.Array]:
    """``rates (N,) -> loss after N updates`` under ``fit``, split as ``Fit.predict`` splits."""
    split = 0 if fit.warmup_in_law else int(warmup)
    if not 0 <= split < n:
        raise ValueError(f"warmup: {warmup} must lie in 0..{n - 1} (the run has {n} updates)")
    law, params = fit.spec, jnp.asarray(fit.vector)
    end = jnp.asarray([n - split])

    def final(rates):
        post = rates[split:]
        eta0 = rates[split - 1] if split else rates[0]
        sw = jnp.sum(rates[:split])
        return law.predict(params, post, end, warmup_sum=sw, eta0=eta0)[0]

    return final


@dataclasses.dataclass(frozen=True)
class ScheduleChoice:
    """The predicted-best member of a schedule family (``best_schedule``): the family, the
    member's parameters (``member``), its predicted final loss, its rate array (warmup
    included) and lab schedule, and the predicted final loss of every member searched
    (``losses``, axes named by ``grid``'s keys in order)."""

    family: str
    member: dict[str, Any]
    loss: float
    rates: np.ndarray
    schedule: schedules.Schedule
    grid: dict[str, tuple]
    losses: np.ndarray


def _family_member(family, total_steps, peak, warmup, final, **member) -> schedules.Schedule:
    if family == "wsd":
        return schedules.wsd(
            peak,
            total_steps,
            member["decay_fraction"],
            member["shape"],
            warmup_steps=warmup,
            final=final,
        )
    factory = schedules.cosine if family == "cosine" else schedules.linear
    return factory(peak, total_steps, warmup_steps=warmup, final=member["final_fraction"] * peak)


def best_schedule(
    fit: Fit,
    total_steps: int,
    family: str = "wsd",
    *,
    peak: float,
    warmup: int = 0,
    final: float = 0.0,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    shapes: Sequence[str] = schedules.DECAY_SHAPES,
    finals: Sequence[float] = DEFAULT_FINALS,
) -> ScheduleChoice:
    """The member of a schedule family with the lowest loss after ``total_steps`` updates
    predicted by ``fit``, by exhaustive search over a grid (every member evaluated, one
    compiled batch).  Every member warms up linearly over ``warmup`` updates to ``peak``
    (the lab's warmup, ``schedules``).

    ``family``: ``"wsd"`` (``schedules.wsd``: peak, then a decay of the last ``decay_fraction``
    of the run to ``final``; grid ``fractions`` x ``shapes``, the decay shapes of
    ``schedules.DECAY_SHAPES``), ``"cosine"`` or ``"linear"`` (decay from the warmup's end to
    ``final_fraction * peak`` at ``total_steps``; grid ``finals``).  Ties go to the first
    member in grid order."""
    if family == "wsd":
        grid = {"shape": tuple(shapes), "decay_fraction": tuple(float(f) for f in fractions)}
    elif family in ("cosine", "linear"):
        grid = {"final_fraction": tuple(float(f) for f in finals)}
    else:
        raise ValueError(f"family: unknown {family!r}; allowed: {', '.join(FAMILIES)}")
    members = [dict(zip(grid, combo, strict=True)) for combo in _product(*grid.values())]
    with jax.enable_x64(True):
        built = [_family_member(family, total_steps, peak, warmup, final, **m) for m in members]
        table = np.stack([np.asarray(schedules.rates(s, total_steps)) for s in built])
    losses = final_losses(fit, table, warmup=warmup)
    best = int(np.argmin(losses))
    return ScheduleChoice(
        family=family,
        member=members[best],
        loss=float(losses[best]),
        rates=table[best],
        schedule=built[best],
        grid=grid,
        losses=losses.reshape(tuple(len(v) for v in grid.values())),
    )


def _product(*axes):
    if not axes:
        yield ()
        return
    for head in axes[0]:
        for rest in _product(*axes[1:]):
            yield (head, *rest)


@dataclasses.dataclass(frozen=True)
class OptimalSchedule:
    """A schedule optimised freely under a fitted law (``optimal_schedule``): the full
    per-update rates (warmup included), as a lab schedule (``schedules.tabulated``, usable as
    an optax learning rate), the predicted final loss, and the optimiser's report."""

    rates: np.ndarray
    schedule: schedules.Schedule
    loss: float
    monotone: bool
    success: bool
    iterations: int
    message: str


def optimal_schedule(
    fit: Fit,
    total_steps: int,
    peak: float,
    warmup: int = 0,
    *,
    floor: float | None = None,
    monotone: bool = True,
    init=None,
    maxiter: int = 3000,
) -> OptimalSchedule:
    """The post-warmup rates minimising ``fit``'s predicted loss after ``total_steps`` updates,
    each in ``[floor, peak]``, after the lab's linear warmup over ``warmup`` updates (fixed).

    ``monotone=True`` (default): non-increasing rates, parametrised as
    ``eta_k = floor + (peak - floor) prod_{j<=k} u_j`` with ``u_j`` in ``[0, 1]`` (box bounds,
    so the constraint is exact); ``monotone=False``: each rate free in ``[floor, peak]``.
    Under the multi-power law the free problem is unbounded below (oscillating rates make
    ``LD`` grow without limit: an increase costs ``B (eta_k - eta_{k-1}) G`` at the high rate's
    ``G``, the following decrease gains more at the low rate's), so use it for laws that
    stay valid off monotone schedules.  Solved by L-BFGS-B (scipy) with the JAX
    gradient in float64, from ``init`` (post-warmup rates; default a linear decay from
    ``peak`` to ``floor``).  Authors' counterpart: ``src/optimization.py`` (Adam on
    non-negative rate decrements, i.e. the monotone case)."""
    from scipy.optimize import minimize

    floor = FLOOR_FRACTION * peak if floor is None else float(floor)
    n_post = int(total_steps) - int(warmup)
    if n_post < 1:
        raise ValueError(f"total_steps ({total_steps}) must exceed warmup ({warmup})")
    if not 0.0 < floor < peak:
        raise ValueError(f"floor: {floor} must lie in (0, peak = {peak})")
    with jax.enable_x64(True):
        ramp = np.asarray(
            schedules.rates(schedules.constant(peak, warmup_steps=warmup), total_steps)
        )[:warmup]
    start = np.linspace(peak, floor, n_post) if init is None else np.asarray(init, np.float64)
    if start.shape != (n_post,):
        raise ValueError(f"init: {n_post} post-warmup rates expected, got shape {start.shape}")
    start = np.clip(start, floor, peak)
    span = peak - floor

    level = (start - floor) / span
    if monotone:  # u_k = level_k / level_{k-1} of the upper non-increasing envelope
        level = np.maximum.accumulate(level[::-1])[::-1]
        prev = np.concatenate([[1.0], level[:-1]])
        x0 = np.where(prev > 0, level / np.where(prev > 0, prev, 1.0), 0.0)
    else:
        x0 = level

    def to_rates(x):
        return floor + span * (jnp.cumprod(x) if monotone else x)

    bounds = [(0.0, 1.0)] * n_post

    with jax.enable_x64(True):
        final = _final_loss_fn(fit, int(total_steps), warmup)
        head = jnp.asarray(ramp)

        def objective(x):
            return final(jnp.concatenate([head, to_rates(x)]))

        value_and_grad = jax.jit(jax.value_and_grad(objective))
        f0 = float(value_and_grad(jnp.asarray(x0))[0])

        def fun(x):  # relative to the start, so ftol acts on the loss change itself
            f, g = value_and_grad(jnp.asarray(x))
            return float(f) - f0, np.asarray(g, np.float64)

        sol = minimize(
            fun,
            x0,
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxiter": maxiter, "ftol": 1e-15, "gtol": 1e-10, "maxcor": 20},
        )
        post = np.asarray(to_rates(jnp.asarray(sol.x)), np.float64)
        rates = np.concatenate([ramp, post])
        loss = float(final(jnp.asarray(rates)))
    return OptimalSchedule(
        rates=rates,
        schedule=schedules.tabulated(rates, peak=peak),
        loss=loss,
        monotone=monotone,
        success=bool(sol.success),
        iterations=int(sol.nit),
        message=str(sol.message),
    )
