r"""The river-valley law: a loss-curve law whose two terms are the river loss and the hill loss.

Where the multi-power law (``rivervalley.laws``) describes a loss curve by a power law in the
rate area minus a phenomenological "loss drop", this law builds the curve from the lab's own
picture (paper notes, section 3): progress along the river is a function of the intrinsic time
alone, and the height above the valley floor is SGD's noise floor on quadratic hills, relaxed
through the schedule by the exact recursion of ``rivervalley.theory``:

.. math::

    L(t) = L_\text{river}(\tau_t) + L_\text{hill}(t), \qquad
    \tau_t = S_W + \sum_{k=1}^{t} \eta_k,

**River** (gradient flow along a power-law river, run for the intrinsic time ``tau``):

.. math::

    L_\text{river}(\tau) = L_\infty + A\, (\tau + \tau_0)^{-\alpha}.

**Hills** (SGD's expected loss on ``K`` quadratic hills, ``theory.sgd_quadratic_moments``):
hill ``j`` has curvature ``lambda_j`` and gradient-noise variance ``sigma_j^2``; its expected
loss ``h_j = lambda_j v_j / 2`` obeys, exactly, for any rates,

.. math::

    h_{j,t} = (1 - \eta_t \lambda_j)^2\, h_{j,t-1} + \eta_t^2 \lambda_j \sigma_j^2 / 2,
    \qquad L_\text{hill}(t) = \sum_j h_{j,t},

started at the stationary loss of the rate ``eta_0`` before the first post-warmup update
(``theory.stationary_hill_loss``: ``eta_0 sigma_j^2 / (2 (2 - eta_0 lambda_j))``; the hills
relax within the warmup, and this is where ``theory.hill_cliff`` starts a decay too).  The
spectrum has two parameters: ``K`` curvatures log-spaced over a fixed ``span`` below the top
curvature ``lambda`` (``lambda_j = lambda span^(-j/(K-1))``, ``j = 0..K-1``), with noise
variances weighted as a power law ``sigma_j^2 = 4 B w_j``, ``w_j ∝ lambda_j^p``,
``sum_j w_j = 1``.  So ``B`` is the slope of the noise floor in the rate: at a constant small
rate (``eta lambda << 1``) the stationary hill loss is ``B eta`` (``sum_j eta sigma_j^2 / 4``),
the same role as the multi-power law's ``B`` (its long-run drop is ``B (eta_0 - eta)``).  ``p``
moves the noise between fast (``p > 0``) and slow (``p < 0``) hills, i.e. sets how quickly a
decay's drop is realised: a hill relaxes in ``~1 / (2 eta lambda_j)`` updates, so a power-law
weight over log-spaced curvatures gives a power-law-like relaxation after a drop, the role of
the multi-power law's ``G``.

Parameters ``(L_inf, A, alpha, tau_0, B, lambda, p)``, transforms
``("id", "log", "log", "log", "log", "log", "id")``; ``K = 16`` and ``span = 1e3`` by default
(``valley_law`` builds other variants).

*Effective parameters.*  On SGD and a straight quadratic valley the hill term is exact
(``tests/test_valley_law.py`` checks it against ``theory`` and against seed means of the
simulator).  Language models are trained with Adam, which is not SGD: its preconditioned,
normalised steps change both the effective curvature and the effective noise of each
direction, and its hills need not be quadratic.  On real curves ``(lambda_j, sigma_j)`` are
therefore *effective* parameters of a relaxation model, not measured Hessian eigenvalues or
gradient-noise variances; the split into river and hill components (``components``) is the
law's reading of the curve, not a measurement of it.

*The law as a landscape* (``as_landscape``).  A fitted law is the expected SGD loss of a
landscape of the lab: a straight ``river_valley(river="power")`` with the fitted hills, rates
and losses rescaled exactly, its hills started from their stationary spread
(``StationaryValley``); simulating it (``sweep``) reproduces the law within Monte-Carlo error
(``tests/test_valley_law.py``), which is how ``experiments/real_curves.py`` runs "the toy behind
the real curves" under the real schedules.

Conventions are those of ``laws.Law`` / ``laws.Curve``: ``rates`` are the post-warmup rates
``eta_1 .. eta_T``, ``steps`` the 1-based post-warmup update counts at which the loss is wanted,
``warmup_sum`` is ``S_W`` and ``eta0`` the rate before ``eta_1`` (default ``eta_1``).  The
recursion is a ``jax.lax.scan`` over all ``T`` rates (``O(T K)`` work, differentiable: ``laws.fit``
takes its Jacobian by forward mode), so ``columns`` is accepted and ignored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rivervalley import laws, noise, theory
from rivervalley.landscapes.valley import RiverValley, river_valley
from rivervalley.pytree import array_field, as_float, pytree_dataclass
from rivervalley.validation import at_least, require

CURVATURES = 16  # K: hill curvatures in the spectrum
SPAN = 1e3  # lambda_0 / lambda_{K-1}
NAMES = ("L_inf", "A", "alpha", "tau0", "B", "lambda", "p")
TRANSFORMS = ("id", "log", "log", "log", "log", "log", "id")


def spectrum(params, curvatures: int = CURVATURES, span: float = SPAN):
    """The hills' curvatures ``lambda_j`` and noise stds ``sigma_j`` (shape ``(K,)`` each) of
    the law's parameters: ``lambda_j = lambda span^(-j/(K-1))``, ``sigma_j^2 = 4 B w_j`` with
    ``w_j ∝ lambda_j^p`` summing to 1."""
    b, top, p = params[4], params[5], params[6]
    frac = jnp.arange(curvatures) / max(curvatures - 1, 1)
    lam = top * jnp.asarray(span, jnp.result_type(top, float)) ** (-frac)
    # log-space weights: exp of a log-softmax never gives sqrt(0) (whose derivative is infinite)
    log_w = jax.nn.log_softmax(p * jnp.log(lam))
    return lam, jnp.sqrt(4.0 * b) * jnp.exp(0.5 * log_w)


def hill_loss(params, rates, *, eta0=None, curvatures: int = CURVATURES, span: float = SPAN):
    """``L_hill`` after ``t = 0..T`` post-warmup updates (shape ``(T + 1,)``): the exact
    expected loss of SGD on the law's hills (``theory.sgd_quadratic_moments``, mean 0), started
    stationary at ``eta0`` (default ``rates[0]``)."""
    rates = jnp.asarray(rates)
    lam, sigma = spectrum(params, curvatures, span)
    eta0 = rates[0] if eta0 is None else jnp.asarray(eta0, rates.dtype)
    var0 = 2.0 * theory.stationary_hill_loss(eta0, lam, sigma) / lam
    moments = theory.sgd_quadratic_moments(lam, sigma, 0.0, var0, rates)
    return theory.expected_quadratic_loss(lam, moments)


def river_loss(params, tau):
    """``L_river(tau) = L_inf + A (tau + tau_0)^(-alpha)``."""
    l_inf, a, alpha, tau0 = params[0], params[1], params[2], params[3]
    return l_inf + a * (jnp.asarray(tau) + tau0) ** (-alpha)


def _split(params, rates, steps, warmup_sum, eta0, curvatures, span):
    params = jnp.asarray(params)
    rates = jnp.asarray(rates)
    steps = jnp.arange(1, rates.shape[0] + 1) if steps is None else jnp.asarray(steps)
    prefix = jnp.concatenate([jnp.zeros((1,), rates.dtype), jnp.cumsum(rates)])
    river = river_loss(params, prefix[steps] + warmup_sum)
    hill = hill_loss(params, rates, eta0=eta0, curvatures=curvatures, span=span)[steps]
    return river, hill


_split_jit = jax.jit(_split, static_argnames=("curvatures", "span"))


def make_predict(curvatures: int = CURVATURES, span: float = SPAN):
    """The law's ``predict(params, rates, steps, warmup_sum=, eta0=, columns=)`` for a spectrum
    of ``curvatures`` hills over ``span`` (``laws.Law``'s calling convention)."""

    @jax.jit
    def predict(params, rates, steps=None, *, warmup_sum=0.0, eta0=None, columns=None):
        del columns  # the scan visits every rate; there is no sparse form to exploit
        river, hill = _split(params, rates, steps, warmup_sum, eta0, curvatures, span)
        return river + hill

    return predict


_SPECTRA: dict[str, tuple[int, float]] = {}  # law name -> (curvatures, span), for components


def valley_law(curvatures: int = CURVATURES, span: float = SPAN, name: str = "valley") -> laws.Law:
    """The river-valley law with ``curvatures`` hills log-spaced over ``span`` (see the module
    docstring); parameters ``NAMES``.  ``name`` identifies the variant (``components`` looks its
    spectrum up by it)."""
    if curvatures < 1 or not span >= 1.0:
        raise ValueError(
            f"valley_law: need curvatures >= 1 and span >= 1, got {curvatures}, {span}"
        )
    if _SPECTRA.get(name, (curvatures, span)) != (curvatures, span):
        raise ValueError(f"valley_law: the name {name!r} is taken by another spectrum")
    _SPECTRA[name] = (curvatures, span)
    return laws.Law(name, NAMES, make_predict(curvatures, span), TRANSFORMS)


VALLEY_LAW = valley_law()


def components(
    params, curve: laws.Curve, steps=None, *, law: laws.Law = VALLEY_LAW
) -> tuple[np.ndarray, np.ndarray]:
    """``(river, hill)``: the two terms of ``law`` (a ``valley_law``) for ``curve`` at its
    measured steps (or ``steps``), float64 numpy arrays whose sum is the law's prediction."""
    curvatures, span = _SPECTRA[law.name]
    with jax.enable_x64(True):
        river, hill = _split_jit(
            jnp.asarray(np.asarray(params, np.float64)),
            jnp.asarray(curve.rates),
            jnp.asarray(curve.steps if steps is None else steps),
            curve.warmup_sum,
            curve.eta0,
            curvatures,
            span,
        )
        return np.asarray(river), np.asarray(hill)


def initial_guesses(
    curves: Sequence[laws.Curve], instant: laws.Fit | None = None
) -> list[np.ndarray]:
    """Starting points for ``laws.fit(VALLEY_LAW, curves, inits=...)``.  From a fit of the
    ``instant`` law ``L0 + A S^(-alpha) - B (eta_0 - eta_t)`` (fitted here unless given), whose
    hills relax at once: ``L_inf = L0 - B eta_peak``, the same ``A``, ``alpha`` and ``B``,
    ``tau_0`` a tenth of the smallest warmup sum (or of the first rate), and top curvatures with
    ``eta_peak lambda`` in ``{0.01, 0.1, 1}`` with ``p = 0`` (noise spread evenly over
    log-curvature)."""
    if instant is None:
        instant = laws.fit(laws.INSTANT, curves)
    l0, a, alpha, b = instant.vector
    peak = max(float(c.rates.max()) for c in curves)
    y = np.concatenate([c.loss for c in curves])
    b = max(float(b), 1e-3 * max(float(y.max() - y.min()), 1e-12) / peak)
    tau0 = 0.1 * min(max(c.warmup_sum, float(c.rates[0])) for c in curves)
    return [
        np.asarray([l0 - b * peak, a, alpha, tau0, b, scale / peak, 0.0])
        for scale in (0.01, 0.1, 1.0)
    ]


def fit(
    curves: Sequence[laws.Curve],
    law: laws.Law = VALLEY_LAW,
    *,
    inits: Sequence[Any] | None = None,
    instant: laws.Fit | None = None,
    **kwargs: Any,
) -> laws.Fit:
    """``laws.fit(law, curves, inits=...)`` from ``initial_guesses(curves, instant)`` unless
    ``inits`` is given; ``kwargs`` go to ``laws.fit`` (``delta``, ``max_nfev``)."""
    if inits is None:
        inits = initial_guesses(curves, instant)
    return laws.fit(law, curves, inits=inits, **kwargs)


# --------------------------------------------------------------- the law as a landscape


@pytree_dataclass
class StationaryValley(RiverValley):
    """A straight power-law ``RiverValley`` whose start is random: ``init(key)`` draws
    ``w_0 = start + start_std * xi``, ``xi ~ N(0, I)`` (shape ``(d,)``), e.g. the hills at
    their stationary spread under the rate before the first simulated update.  Built by
    ``as_landscape``."""

    kind = "stationary_valley"
    start_std: jax.Array = array_field(ndim=1)  # std of the start, shape (d,)

    def validate(self) -> StationaryValley:
        super().validate()
        dim = self.start.shape[-1]
        ok = np.shape(self.start_std)[-1:] == (dim,)
        require(ok, self.kind, "start_std", self.start_std, f"of length {dim}")
        at_least(self.kind, "start_std", self.start_std, 0.0)
        return self

    def init(self, key: jax.Array) -> jax.Array:
        xi = noise.normal(key, jnp.shape(self.start), self.start.dtype)
        return self.start + self.start_std * xi


@dataclasses.dataclass(frozen=True)
class LawLandscape:
    """A river valley whose expected SGD loss is a fitted river-valley law (``as_landscape``):
    simulate ``landscape`` with SGD at the rates ``rate_scale * eta_t``; the law's loss in the
    curve's units is ``loss_offset + loss_scale * L_landscape`` (the river term up to the
    discretisation of the flow, the hill term exactly in expectation)."""

    landscape: StationaryValley
    rate_scale: float
    loss_offset: float
    loss_scale: float
    river_exponent: float  # a: the landscape's river is (1 + softplus(s))^(-a)

    def to_curve_units(self, loss):
        """``loss_offset + loss_scale * loss``: a landscape loss in the curve's units."""
        return self.loss_offset + self.loss_scale * np.asarray(loss, np.float64)


def as_landscape(
    params,
    *,
    tau: float,
    eta0: float,
    rate_scale: float,
    law: laws.Law = VALLEY_LAW,
) -> LawLandscape:
    r"""The lab's river valley whose SGD dynamics *is* the fitted law ``params``, started at
    intrinsic time ``tau`` (the law's ``S_W`` plus the rates already applied; ``tau_0`` is
    added here) with its hills stationary under the rate ``eta0``.

    Units: the landscape runs at rates ``eta' = c eta`` (``c = rate_scale``) and its loss reads
    ``L = L_inf + m L'`` (``m = loss_scale``).  Hills: curvature ``lambda_j / c`` (so
    ``eta' lambda' = eta lambda``) and noise std ``sigma_j / sqrt(m c)``, which gives the law's
    hill recursion ``h_j = m h'_j`` step for step.  River: ``river_valley(river="power")``,
    ``f(s) = (1 + softplus(s))^(-a)`` with ``a = 2 alpha / (1 - alpha)``; its gradient flow
    (``softplus(s) ~ s``) obeys ``(1 + s)^(a + 2) = (1 + s_0)^(a + 2) + a (a + 2) tau'``, so
    ``f = (a (a + 2) c)^(-alpha) (tau + tau_start)^(-alpha)`` in the law's intrinsic time,
    matched by ``m = A (a (a + 2) c)^alpha`` and ``(1 + s_0)^(a + 2) = a (a + 2) c (tau +
    tau_0)``.  The river has no gradient noise (the law's river is deterministic) and ``s_0``
    must exceed ~5 for ``softplus(s) ~ s`` to hold (raise ``rate_scale`` otherwise).  Requires
    ``alpha < 1``."""
    curvatures, span = _SPECTRA[law.name]
    p = np.asarray(params, np.float64)
    l_inf, a_coef, alpha, tau0 = (float(v) for v in p[:4])
    require(0.0 < alpha < 1.0, "as_landscape", "alpha", alpha, "in (0, 1)")
    require(rate_scale > 0.0, "as_landscape", "rate_scale", rate_scale, "> 0")
    with jax.enable_x64(True):
        lam, sigma = (np.asarray(v, np.float64) for v in spectrum(jnp.asarray(p), curvatures, span))
    c = float(rate_scale)
    a = 2.0 * alpha / (1.0 - alpha)
    m = a_coef * (a * (a + 2.0) * c) ** alpha
    s0 = (a * (a + 2.0) * c * (tau + tau0)) ** (1.0 / (a + 2.0)) - 1.0
    require(s0 > 5.0, "as_landscape", "rate_scale", c, f"large enough that s_0 > 5 (s_0 = {s0})")
    lam_l = lam / c
    sigma_l = sigma / np.sqrt(m * c)
    eta_l = c * float(eta0)
    var0 = eta_l * sigma_l**2 / (lam_l * (2.0 - eta_l * lam_l))  # stationary variance
    dim = curvatures + 1
    base = river_valley(
        dim,
        river="power",
        alpha=a,
        curvatures=lam_l,
        amplitude=0.0,
        noise_std=np.concatenate([[0.0], sigma_l]),
        start=np.concatenate([[s0], np.zeros(curvatures)]),
    )
    fields = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
    landscape = StationaryValley(
        **fields, start_std=as_float(np.concatenate([[0.0], np.sqrt(var0)]))
    ).validate()
    return LawLandscape(landscape, c, l_inf, m, a)
