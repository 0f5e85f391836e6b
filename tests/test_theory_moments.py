r"""Exact moments of heavy-ball SGD (``theory.heavy_ball_quadratic_moments``) and its stationary
covariance, checked four ways:

* the transition ``x' = A x + b xi`` against one update of optax's own ``sgd(momentum=beta)``;
* the recursion against an independent float64 NumPy computation that sums the impulse
  responses of the initial condition and of every noise draw
  (``C_t = Phi_t C_0 Phi_t^T + sum_s Phi_{t,s+1} b_s b_s^T Phi_{t,s+1}^T``), not a recursion;
* the stationary covariance (discrete Lyapunov solve) against the AR(2) closed form, and the
  recursion under a constant rate converging to it;
* Monte Carlo: ``sweep`` with ``optimizers.sgd(momentum=beta)`` on a noisy quadratic under a
  WSD-S schedule (warmup, stable phases, decays, re-warmups): the mean loss, each coordinate's
  mean and each coordinate's variance at every recorded step within ``Z_MAX`` standard errors
  of the exact values.  The comparisons use the *exact* standard errors; there are ~700 of them,
  strongly correlated along each trajectory; among 700 independent standard normals the largest
  exceeds 4.5 with probability ~0.5%, so ``Z_MAX = 4.5`` leaves no room for a real discrepancy
  of a few percent (the SE here is ~1-3% of each quantity) yet does not fail by chance.  The runs
  are deterministic given their seeds.  The same Monte-Carlo data must *reject* momentum
  variants with other conventions (dampened ``m <- beta m + (1 - beta) g``; plain SGD; Polyak's
  ``w_{t+1} = w_t - eta_t g_t + beta (w_t - w_{t-1})``, which differs from optax's only where the
  rate changes), so the check has teeth.
"""

from __future__ import annotations

import functools
from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rivervalley import optimizers, schedules, sweep, theory
from rivervalley.landscapes import noisy_quadratic

Z_MAX = 4.5


@jax.jit
def _evaluate(schedule: schedules.Schedule, t: jax.Array) -> jax.Array:
    """``schedule(t)`` in one compiled call (eager evaluation compiles op by op: seconds)."""
    return schedule(t)


# --- the transition against optax -------------------------------------------------------------


def test_transition_is_one_optax_momentum_update():
    rng = np.random.default_rng(1)
    lam, sigma, beta, eta = 1.7, 0.6, 0.8, 0.3
    a, b = theory.heavy_ball_matrices(eta, lam, sigma, beta)
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    opt = optax.sgd(eta, momentum=beta)
    for _ in range(5):
        w, m, xi = (float(v) for v in rng.standard_normal(3))
        state: Any = opt.init(jnp.zeros(()))
        state = (optax.TraceState(trace=jnp.asarray(m, jnp.float32)), *state[1:])
        g = jnp.asarray(lam * w + sigma * xi, jnp.float32)
        updates, new_state = opt.update(g, state, jnp.asarray(w, jnp.float32))
        w_new = float(np.asarray(optax.apply_updates(jnp.asarray(w, jnp.float32), updates)))
        m_new = float(np.asarray(cast(Any, new_state)[0].trace))
        expected = a @ np.array([w, m]) + b * xi
        np.testing.assert_allclose([w_new, m_new], expected, rtol=1e-5, atol=1e-6)


def test_optax_starts_momentum_at_zero():
    state: Any = optax.sgd(0.1, momentum=0.9).init(jnp.ones(3))
    np.testing.assert_array_equal(np.asarray(state[0].trace), 0.0)


# --- the recursion against an independent float64 computation ---------------------------------

CURVATURES = np.array([2.0, 0.5, 0.02])
NOISE_STD = np.array([0.4, 0.3, 0.05])
START = np.array([1.0, -0.5, 3.0])
BETA = 0.8


def _rates(steps: int) -> np.ndarray:
    """A WSD-S schedule with warmup and re-warmups, plus a deterministic wiggle: every update
    has its own rate."""
    base = schedules.wsd_s(0.25, [40, 80, steps], 0.3, warmup_steps=10, rewarmup_steps=5)
    lrs = np.asarray(_evaluate(base, jnp.arange(steps)), np.float64)
    return lrs * (1.0 + 0.1 * np.sin(np.arange(steps)))


def _impulse_response_moments(lam, sigma, beta, mean0, var0, lrs):
    """Mean and covariance of ``(w, m)`` for one coordinate at every step, in float64, by summing
    impulse responses: ``x_t = Phi_t x_0 + sum_{s<t} Phi_{t,s+1} b_s xi_s`` with
    ``Phi_{t,s} = A_{t-1} ... A_s``."""
    mats = [np.array([[1 - e * lam, -e * beta], [lam, beta]]) for e in lrs]
    kicks = [np.array([-e * sigma, sigma]) for e in lrs]
    mean0_vec, cov0 = np.array([mean0, 0.0]), np.diag([var0, 0.0])
    means, covs = [mean0_vec], [cov0]
    for t in range(1, len(lrs) + 1):
        phi = np.eye(2)
        cov = np.zeros((2, 2))
        for s in range(t - 1, -1, -1):  # phi = A_{t-1} ... A_{s+1}
            response = phi @ kicks[s]
            cov += np.outer(response, response)
            phi = phi @ mats[s]
        means.append(phi @ mean0_vec)
        covs.append(cov + phi @ cov0 @ phi.T)
    return np.array(means), np.array(covs)


def test_recursion_matches_impulse_response_sum(x64):
    lrs = _rates(100)
    var0 = np.array([0.1, 0.0, 0.3])
    moments = theory.heavy_ball_quadratic_moments(CURVATURES, NOISE_STD, START, var0, lrs, BETA)
    assert np.asarray(moments.state_cov).dtype == np.float64
    for i, (lam, sig, m0, v0) in enumerate(zip(CURVATURES, NOISE_STD, START, var0, strict=True)):
        means, covs = _impulse_response_moments(lam, sig, BETA, m0, v0, lrs)
        np.testing.assert_allclose(
            np.asarray(moments.state_mean)[:, i], means, rtol=1e-10, atol=1e-13
        )
        np.testing.assert_allclose(
            np.asarray(moments.state_cov)[:, i], covs, rtol=1e-10, atol=1e-13
        )
        np.testing.assert_allclose(np.asarray(moments.var)[:, i], covs[:, 0, 0], rtol=1e-10)
        np.testing.assert_allclose(np.asarray(moments.mean)[:, i], means[:, 0], atol=1e-13)
    # the momentum matters: the variance differs from plain SGD's by far more than rounding
    sgd = theory.sgd_quadratic_moments(CURVATURES, NOISE_STD, START, var0, lrs)
    assert np.abs(np.asarray(sgd.var) - np.asarray(moments.var)).max() > 0.05


def test_zero_momentum_is_sgd_recursion(x64):
    lrs = _rates(160)
    hb = theory.heavy_ball_quadratic_moments(CURVATURES, NOISE_STD, START, 0.2, lrs, 0.0)
    sgd = theory.sgd_quadratic_moments(CURVATURES, NOISE_STD, START, 0.2, lrs)
    np.testing.assert_allclose(np.asarray(hb.mean), np.asarray(sgd.mean), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(np.asarray(hb.var), np.asarray(sgd.var), rtol=1e-13)


def test_covariance_stays_symmetric_positive_semidefinite():
    moments = theory.heavy_ball_quadratic_moments(
        CURVATURES, NOISE_STD, START, 0.0, _rates(160), 0.95
    )
    cov = np.asarray(moments.state_cov, np.float64)
    np.testing.assert_array_equal(cov, np.swapaxes(cov, -1, -2))
    det = cov[..., 0, 0] * cov[..., 1, 1] - cov[..., 0, 1] ** 2
    assert np.all(cov[..., 0, 0] >= 0) and np.all(det >= -1e-6 * cov[..., 1, 1] ** 2)


# --- stationary covariance ----------------------------------------------------------------------


# h = eta lambda; a stationary distribution exists iff h < 2 (1 + beta)
STABLE = [
    (beta, h)
    for beta in (0.0, 0.5, 0.9, 0.99)
    for h in (0.01, 0.5, 1.9, 3.5)
    if h < 2.0 * (1.0 + beta)
]


@pytest.mark.parametrize(("beta", "h"), STABLE)
def test_stationary_lyapunov_matches_closed_form(x64, beta, h):
    lam, sigma = 2.0, 0.7
    eta = h / lam
    cov = np.asarray(theory.heavy_ball_stationary_cov(eta, lam, sigma, beta))
    a, b = (np.asarray(x) for x in theory.heavy_ball_matrices(eta, lam, sigma, beta))
    np.testing.assert_allclose(cov, a @ cov @ a.T + np.outer(b, b), rtol=1e-9, atol=1e-14)
    closed = float(theory.heavy_ball_stationary_var(eta, lam, sigma, beta))
    assert cov[0, 0] == pytest.approx(closed, rel=1e-9)
    loss = float(theory.heavy_ball_stationary_loss(eta, lam, sigma, beta))
    assert loss == pytest.approx(0.5 * lam * closed, rel=1e-12)
    if beta == 0.0:
        assert loss == pytest.approx(float(theory.stationary_hill_loss(eta, lam, sigma)), rel=1e-12)


def test_recursion_converges_to_stationary_covariance(x64):
    lam = np.array([2.0, 0.5, 0.1])
    sigma = np.array([0.5, 1.0, 0.2])
    # eta lambda = 0.6, 0.15, 0.03: every mode is underdamped ((1 + beta - h)^2 < 4 beta), so A's
    # eigenvalues have modulus sqrt(beta) = 0.95 and the covariance converges like 0.9^t
    eta, beta = 0.3, 0.9
    moments = theory.heavy_ball_quadratic_moments(lam, sigma, 1.0, 0.0, np.full(600, eta), beta)
    stationary = np.asarray(theory.heavy_ball_stationary_cov(eta, lam, sigma, beta))
    np.testing.assert_allclose(np.asarray(moments.state_cov)[-1], stationary, rtol=1e-9)
    np.testing.assert_allclose(np.asarray(moments.state_mean)[-1], 0.0, atol=1e-12)
    # momentum amplifies the floor roughly like the effective rate eta / (1 - beta)
    ratio = stationary[:, 0, 0] / (eta * sigma**2 / (lam * (2 - eta * lam)))
    assert np.all(ratio > 5.0)


# --- vmap ---------------------------------------------------------------------------------------


def test_vmap_over_schedules_curvatures_and_momenta():
    steps = 120
    lrs = np.stack(
        [
            np.asarray(_evaluate(s, jnp.arange(steps)))
            for s in (
                schedules.wsd(0.3, steps, 0.2),
                schedules.cosine(0.3, steps),
                schedules.wsd_s(0.3, [40, 80, steps], 0.25),
            )
        ]
    )
    fn = functools.partial(theory.heavy_ball_quadratic_moments, noise_std=NOISE_STD, var0=0.0)

    def one(lam, lrs, beta):
        return fn(lam, mean0=START, lrs=lrs, momentum=beta)

    curvatures = np.stack([CURVATURES, 2 * CURVATURES])
    betas = np.array([0.0, 0.5, 0.9])
    batched = jax.jit(
        jax.vmap(jax.vmap(jax.vmap(one, (None, None, 0)), (None, 0, None)), (0, None, None))
    )(curvatures, lrs, betas)
    assert np.shape(batched.state_cov) == (2, 3, 3, steps + 1, 3, 2, 2)
    for i, j, k in [(0, 0, 0), (1, 2, 1), (0, 1, 2), (1, 0, 2)]:
        single = jax.jit(one)(curvatures[i], lrs[j], betas[k])
        for got, want in zip(batched, single, strict=True):
            np.testing.assert_allclose(np.asarray(got)[i, j, k], np.asarray(want), rtol=1e-5)


# --- Monte Carlo: sweep with optax momentum -----------------------------------------------------

MC_SEEDS = 2048
MC_STEPS = 300
MC_RECORD = 3
MC_BETA = 0.9
MC_CURVATURES = np.array([2.0, 0.2, 0.02])  # heavy ball is underdamped on the first: rings
MC_NOISE = np.array([0.5, 0.5, 0.05])
MC_START = np.array([1.0, -1.0, 3.0])


def _mc_schedule():
    return schedules.wsd_s(0.2, [100, 200, 300], 0.2, warmup_steps=15, rewarmup_steps=5)


@functools.cache
def _mc_runs():
    ds = sweep(
        noisy_quadratic(MC_CURVATURES, MC_NOISE, MC_START),
        optimizers.sgd(momentum=MC_BETA),
        _mc_schedule(),
        seeds=MC_SEEDS,
        steps=MC_STEPS,
        record_every=MC_RECORD,
        record_params=True,
    )
    # a stable linear recursion diverges only if the noise generator returns +-inf (a float32
    # rounding edge of probability 2^-24 per number); drop such seeds, at most a few
    keep = ~np.asarray(ds["diverged"].values)
    assert keep.sum() >= MC_SEEDS - 2
    loss = np.asarray(ds["loss"].values, np.float64)[keep]
    w = np.asarray(ds["params"].values, np.float64)[keep]
    return loss, w


def _exact(beta: float, dampened: bool = False) -> dict[str, np.ndarray]:
    """Exact moments at the recorded steps; ``dampened`` is the ``m <- beta m + (1 - beta) g``
    convention (the same recursion with the noise and curvature scaled by ``1 - beta``)."""
    lrs = np.asarray(_evaluate(_mc_schedule(), jnp.arange(MC_STEPS)), np.float64)
    scale = (1.0 - beta) if dampened else 1.0
    mom = theory.heavy_ball_quadratic_moments(
        MC_CURVATURES, MC_NOISE, MC_START, 0.0, lrs * scale, beta
    )
    rec = slice(None, None, MC_RECORD)
    return {
        "mean": np.asarray(mom.mean, np.float64)[rec],
        "var": np.asarray(mom.var, np.float64)[rec],
        "loss": np.asarray(theory.expected_quadratic_loss(MC_CURVATURES, mom), np.float64)[rec],
        "loss_var": np.asarray(theory.quadratic_loss_variance(MC_CURVATURES, mom))[rec],
    }


def _max_abs_z(loss: np.ndarray, w: np.ndarray, ex: dict[str, np.ndarray]) -> dict[str, float]:
    """Max |z| over steps 1..T (step 0 is deterministic) with exact standard errors; the sample
    variance of a Gaussian has relative standard error ``sqrt(2 / (n - 1))``."""
    n = loss.shape[0]
    later = slice(1, None)
    z_loss = (loss.mean(0) - ex["loss"])[later] / np.sqrt(ex["loss_var"][later] / n)
    z_mean = (w.mean(0) - ex["mean"])[later] / np.sqrt(ex["var"][later] / n)
    random = ex["var"][later] > 0  # a zero rate (warmup's first step) leaves w deterministic
    ratio = w.var(0, ddof=1)[later][random] / ex["var"][later][random]
    z_var = (ratio - 1.0) / np.sqrt(2.0 / (n - 1))
    return {"loss": np.abs(z_loss).max(), "mean": np.abs(z_mean).max(), "var": np.abs(z_var).max()}


def test_sweep_heavy_ball_matches_exact_moments():
    loss, w = _mc_runs()
    z = _max_abs_z(loss, w, _exact(MC_BETA))
    assert max(z.values()) <= Z_MAX, f"max |z| = {z}"
    # the schedule exercises the recursion: warmup, decays to 0 and jumps back up
    lrs = np.asarray(_evaluate(_mc_schedule(), jnp.arange(MC_STEPS)))
    assert lrs[0] == 0 and lrs.max() == pytest.approx(0.2) and np.sum(lrs == 0) >= 3


def _exact_polyak() -> dict[str, np.ndarray]:
    """Moments of Polyak's form ``w_{t+1} = w_t - eta_t g_t + beta (w_t - w_{t-1})`` (float64,
    state ``(w_t, w_{t-1})``, ``w_{-1} = w_0``): the same as optax's for a constant rate, not
    under a schedule (optax's step is ``beta (eta_t / eta_{t-1}) (w_t - w_{t-1})``)."""
    lrs = np.asarray(_evaluate(_mc_schedule(), jnp.arange(MC_STEPS)), np.float64)
    lam, sig, beta = MC_CURVATURES, MC_NOISE, MC_BETA
    mu = np.stack([MC_START, MC_START], axis=-1)
    cov = np.zeros((lam.size, 2, 2))
    means, variances = [mu[:, 0].copy()], [cov[:, 0, 0].copy()]
    for eta in lrs:
        a = np.zeros((lam.size, 2, 2))
        a[:, 0, 0], a[:, 0, 1], a[:, 1, 0] = 1 + beta - eta * lam, -beta, 1.0
        kick = np.stack([-eta * sig, np.zeros_like(sig)], axis=-1)
        mu = np.einsum("dij,dj->di", a, mu)
        cov = np.einsum("dij,djk,dlk->dil", a, cov, a) + kick[:, :, None] * kick[:, None, :]
        means.append(mu[:, 0].copy())
        variances.append(cov[:, 0, 0].copy())
    mean, var = np.array(means)[::MC_RECORD], np.array(variances)[::MC_RECORD]
    mom = theory.Moments(mean, var)
    return {
        "mean": mean,
        "var": var,
        "loss": np.asarray(theory.expected_quadratic_loss(MC_CURVATURES, mom), np.float64),
        "loss_var": np.asarray(theory.quadratic_loss_variance(MC_CURVATURES, mom), np.float64),
    }


@pytest.mark.parametrize("variant", ["dampened", "no_momentum", "polyak"])
def test_monte_carlo_rejects_other_conventions(variant):
    loss, w = _mc_runs()
    wrong = {
        "dampened": lambda: _exact(MC_BETA, dampened=True),
        "no_momentum": lambda: _exact(0.0),
        "polyak": _exact_polyak,
    }[variant]()
    z = _max_abs_z(loss, w, wrong)
    assert max(z.values()) > 5 * Z_MAX, f"{variant}: max |z| = {z}"
