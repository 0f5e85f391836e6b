r"""Exact moments of averaged SGD iterates (``theory.average_weights``,
``theory.averaged_sgd_quadratic_moments``), checked four ways:

* the weights against hand-written values, an explicit float64 EMA loop and the lab's own
  averaging (``Optimizer.with_averaging`` driven through unit-vector iterates, so its average
  *is* the weight vector), for EMA decays and windows with and without a stride;
* the ``O(d)`` recursion against an independent float64 brute force: the full covariance of
  ``(w_0, ..., w_T)`` from the explicit linear-Gaussian form ``w_t = (prod a) w_0 + sum_s
  (prod a) eta_s sigma xi_s``, then ``omega^T mean`` and ``omega^T Cov omega``;
* special cases: one-hot weights give ``sgd_quadratic_moments``; a uniform window in the
  stationary state has the closed-form variance of a mean of an AR(1) process;
* Monte Carlo: ``sweep`` of SGD with an EMA and a strided window on a noisy quadratic; the mean
  loss at both averages within ``Z_MAX`` standard errors of the exact expected loss, while
  plausible wrong conventions (the stride ignored, another decay, the raw iterate) are rejected.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rivervalley import optimizers, schedules, sweep, theory
from rivervalley.landscapes import noisy_quadratic

Z_MAX = 4.0

# --- the weights -------------------------------------------------------------------------------

# (T, W, k) -> the checkpoint steps the window averages after T updates (mostly W = 3: the lab's
# ring buffer has shape (W, DIM), and each new shape costs eager compilations)
WINDOWS = {
    (10, 3, 4): [0, 4, 8],  # T not a multiple of k: the newest checkpoint (8) is older than T
    (12, 3, 4): [4, 8, 12],  # T a multiple of k
    (5, 3, 3): [0, 3],  # W larger than the number of checkpoints so far
    (7, 3, 1): [5, 6, 7],  # k = 1: the last W iterates
    (5, 1, 2): [4],  # W = 1 with a stride: the newest checkpoint, not p_T
    (0, 3, 2): [0],  # no update yet: p_0
}
DIM = 13  # unit vectors of one length for every case: the lab's updates compile once


def lab_average(opt: optimizers.Optimizer, steps: int, name: str) -> np.ndarray:
    """The lab's average ``name`` after ``steps`` updates whose iterates are the unit vectors
    ``p_t = e_t`` (SGD at rate 1 on the "gradient" ``p_t - e_{t+1}``): its entries are the
    weights ``omega_t``."""
    basis = jnp.eye(DIM)
    tx = opt.transform(1.0)
    params = basis[0]
    state = tx.init(params)
    for t in range(steps):
        updates, state = tx.update(params - basis[t + 1], state, params)
        params = jnp.asarray(optax.apply_updates(params, updates))
    np.testing.assert_array_equal(np.asarray(params), np.asarray(basis[steps]))
    return np.asarray(opt.averages(state)[name], np.float64)


@pytest.mark.parametrize("decay", [0.0, 0.6, 0.95])
def test_ema_weights_match_explicit_loop_and_lab(decay):
    steps = DIM - 1
    omega = np.asarray(theory.average_weights(steps, ema_decay=decay), np.float64)
    assert omega.shape == (steps + 1,)
    assert omega.sum() == pytest.approx(1.0, rel=1e-6)
    ema = np.eye(steps + 1)[0]  # e_0 = p_0, e_{t+1} = d e_t + (1 - d) p_{t+1}, p_t = e_t
    for t in range(steps):
        ema = decay * ema + (1 - decay) * np.eye(steps + 1)[t + 1]
    np.testing.assert_allclose(omega, ema, rtol=1e-6, atol=1e-12)
    lab = lab_average(optimizers.sgd().with_averaging(ema_decay=decay), steps, "ema")
    np.testing.assert_allclose(omega, lab, rtol=1e-5, atol=1e-7)
    # a batch of decays gives one row each
    rows = np.asarray(theory.average_weights(steps, ema_decay=np.array([decay, 0.3])))
    np.testing.assert_allclose(rows[0], omega, rtol=1e-6)
    assert rows.shape == (2, steps + 1)


def test_ema_weights_short_runs():
    np.testing.assert_array_equal(np.asarray(theory.average_weights(0, ema_decay=0.7)), [1.0])
    np.testing.assert_allclose(
        np.asarray(theory.average_weights(2, ema_decay=0.5)), [0.25] * 2 + [0.5]
    )


@pytest.mark.parametrize(("steps", "window", "every"), list(WINDOWS))
def test_window_weights_match_hand_values_and_lab(steps, window, every):
    omega = np.asarray(theory.average_weights(steps, window=window, window_every=every))
    checkpoints = WINDOWS[steps, window, every]
    expected = np.zeros(steps + 1)
    expected[checkpoints] = 1.0 / len(checkpoints)
    np.testing.assert_allclose(omega, expected, rtol=1e-7)
    assert omega.sum() == pytest.approx(1.0, rel=1e-6)
    opt = optimizers.sgd().with_averaging(window=window, window_every=every)
    lab = lab_average(opt, steps, "window")
    np.testing.assert_allclose(lab[: steps + 1], expected, rtol=1e-6)
    np.testing.assert_array_equal(lab[steps + 1 :], 0.0)


@pytest.mark.parametrize(
    ("steps", "kwargs", "match"),
    [
        (5, {}, "exactly one of ema_decay and window"),
        (5, {"ema_decay": 0.5, "window": 3}, "exactly one of ema_decay and window"),
        (5, {"ema_decay": 1.0}, r"ema_decay = 1.0: must be in \[0, 1\)"),
        (5, {"ema_decay": -0.1}, r"ema_decay = -0.1: must be in \[0.0, 1.0\]"),
        (5, {"ema_decay": 0.5, "window_every": 2}, "window_every = 2: must be 1"),
        (5, {"window": 0}, "window = 0: must be an integer >= 1"),
        (5, {"window": 2.0}, "window = 2.0: must be an integer >= 1"),
        (5, {"window": 2, "window_every": 0}, "window_every = 0: must be an integer >= 1"),
        (-1, {"window": 2}, "steps = -1: must be an integer >= 0"),
        (3.0, {"window": 2}, "steps = 3.0: must be an integer >= 0"),
    ],
)
def test_average_weights_rejects_bad_inputs(steps, kwargs, match):
    with pytest.raises(ValueError, match=match):
        theory.average_weights(steps, **kwargs)


# --- the recursion against an independent float64 computation ---------------------------------

STEPS = 12  # every float64 check uses these shapes: the recursion compiles once
CURVATURES = np.array([2.0, 0.5, 0.05])
NOISE_STD = np.array([0.4, 0.7, 0.2])
MEAN0 = np.array([1.0, -0.5, 3.0])
VAR0 = np.array([0.1, 0.0, 0.3])
BATCH = 2.5
# a warmup, a peak with eta lambda = 1.4 (the contraction 1 - eta lambda changes sign), a decay
LRS = np.concatenate([[0.2, 0.4, 0.7], np.full(4, 0.7), np.linspace(0.6, 0.1, 5)])
LRS = LRS * (1.0 + 0.1 * np.sin(np.arange(STEPS)))


def brute_force(lam, sigma, mean0, var0, lrs, omega):
    """Mean and variance of ``sum_t omega_t w_t`` for one coordinate: ``w = L z`` with
    ``z = (w_0 - m_0, xi_0, ..., xi_{T-1})`` independent, ``L[t, 0] = prod_{r<t} a_r`` and
    ``L[t, s+1] = -eta_s sigma prod_{s<r<t} a_r`` (``s < t``), so ``Cov w = L diag(var z) L^T``."""
    a = 1.0 - lrs * lam
    n = len(lrs) + 1
    lin = np.zeros((n, n))
    for t in range(n):
        lin[t, 0] = np.prod(a[:t])
        for s in range(t):
            lin[t, s + 1] = -lrs[s] * sigma * np.prod(a[s + 1 : t])
    cov = lin @ np.diag([var0] + [1.0] * (n - 1)) @ lin.T
    return omega @ (lin[:, 0] * mean0), omega @ cov @ omega


def test_recursion_matches_brute_force_covariance(x64):
    rng = np.random.default_rng(3)
    weight_sets = {
        "ema": np.asarray(theory.average_weights(STEPS, ema_decay=0.7)),
        "window": np.asarray(theory.average_weights(STEPS, window=3, window_every=5)),
        "arbitrary": rng.normal(size=STEPS + 1),  # any weights, even negative, not summing to 1
    }
    for name, omega in weight_sets.items():
        got = theory.averaged_sgd_quadratic_moments(
            CURVATURES, NOISE_STD, MEAN0, VAR0, LRS, omega, batch_size=BATCH
        )
        mean, var = np.asarray(got.mean), np.asarray(got.var)
        assert mean.dtype == np.float64 and mean.shape == var.shape == (3,)
        for i in range(3):
            sigma = NOISE_STD[i] / np.sqrt(BATCH)
            exact = brute_force(CURVATURES[i], sigma, MEAN0[i], VAR0[i], LRS, omega)
            assert mean[i] == pytest.approx(exact[0], rel=1e-10, abs=1e-14), (name, i)
            assert var[i] == pytest.approx(exact[1], rel=1e-10, abs=1e-14), (name, i)
        # the expected loss at the average takes these (d,) moments: a scalar
        loss = theory.expected_quadratic_loss(CURVATURES, got)
        assert float(loss) == pytest.approx(0.5 * np.sum(CURVATURES * (mean**2 + var)), rel=1e-14)
    # averaging matters: the window's variance is far from the final iterate's
    final = theory.sgd_quadratic_moments(
        CURVATURES, NOISE_STD, MEAN0, VAR0, LRS, final_only=True, batch_size=BATCH
    )
    window = theory.averaged_sgd_quadratic_moments(
        CURVATURES, NOISE_STD, MEAN0, VAR0, LRS, weight_sets["window"], batch_size=BATCH
    )
    assert np.all(np.abs(np.asarray(window.var) / np.asarray(final.var) - 1) > 0.1)


def test_rejects_mismatched_weights():
    with pytest.raises(ValueError, match=r"weights of shape \(T \+ 1,\), got \(12,\) and \(12,\)"):
        theory.averaged_sgd_quadratic_moments(1.0, 1.0, 0.0, 0.0, LRS, np.ones(STEPS))


def test_one_hot_weights_are_single_iterates(x64):
    last = np.zeros(STEPS + 1)
    last[-1] = 1.0
    got = theory.averaged_sgd_quadratic_moments(
        CURVATURES, NOISE_STD, MEAN0, VAR0, LRS, last, batch_size=BATCH
    )
    final = theory.sgd_quadratic_moments(
        CURVATURES, NOISE_STD, MEAN0, VAR0, LRS, final_only=True, batch_size=BATCH
    )
    np.testing.assert_allclose(np.asarray(got.mean), np.asarray(final.mean), rtol=1e-13)
    np.testing.assert_allclose(np.asarray(got.var), np.asarray(final.var), rtol=1e-13)
    first = np.roll(last, 1)  # weight 1 on w_0: the initial moments
    got = theory.averaged_sgd_quadratic_moments(CURVATURES, NOISE_STD, MEAN0, VAR0, LRS, first)
    np.testing.assert_allclose(np.asarray(got.mean), MEAN0, rtol=1e-15)
    np.testing.assert_allclose(np.asarray(got.var), VAR0, rtol=1e-15)


@pytest.mark.parametrize("window", [1, 4, STEPS + 1])
def test_stationary_window_variance_closed_form(x64, window):
    """At a constant rate from the stationary state (mean 0, variance ``V``) the iterates are a
    stationary AR(1) process with autocovariance ``a^|j| V``, so the mean of ``W`` consecutive
    iterates has variance ``V / W^2 sum_{|j|<W} (W - |j|) a^|j|`` (exact at every step)."""
    eta = 0.7  # a = 1 - eta lambda = -0.4, 0.65, 0.965: an oscillating, a fast and a slow mode
    sigma = NOISE_STD / np.sqrt(BATCH)
    stationary = eta * sigma**2 / (CURVATURES * (2.0 - eta * CURVATURES))
    omega = np.asarray(theory.average_weights(STEPS, window=window))
    got = theory.averaged_sgd_quadratic_moments(
        CURVATURES, NOISE_STD, 0.0, stationary, np.full(STEPS, eta), omega, batch_size=BATCH
    )
    a = 1.0 - eta * CURVATURES
    lags = np.arange(-window + 1, window)
    factor = np.sum((window - np.abs(lags))[:, None] * a ** np.abs(lags)[:, None], axis=0)
    np.testing.assert_allclose(np.asarray(got.var), stationary / window**2 * factor, rtol=1e-12)
    np.testing.assert_array_equal(np.asarray(got.mean), 0.0)
    if window > 1:  # averaging reduces the variance (the oscillating mode the most)
        assert np.all(np.asarray(got.var) < stationary)


# --- Monte Carlo against the simulator ---------------------------------------------------------


def test_sweep_averaged_losses_match_theory():
    """``sweep`` of SGD with an EMA and a window of 5 checkpoints every 4 steps (float32, 512
    seeds, deterministic start, so ``var0 = 0``): the seed mean of ``ema_loss`` and
    ``window_loss`` after 60 updates within ``Z_MAX`` standard errors of the exact expected loss
    (two comparisons of near-normal means: a chance failure has probability ~1e-4; float32
    rounding is ~1e-6 relative, far below the ~2% standard errors).  The same data reject wrong
    conventions by more than ``2 Z_MAX`` standard errors."""
    steps, decay, window, every = 60, 0.9, 5, 4
    lam = np.geomspace(2.0, 0.1, 8)
    sigma, start = 1.0, 0.3
    schedule = schedules.constant(0.4, warmup_steps=5)
    opt = optimizers.sgd().with_averaging(ema_decay=decay, window=window, window_every=every)
    ds = sweep(
        noisy_quadratic(lam, sigma, start),
        opt,
        schedule,
        seeds=512,
        steps=steps,
        record_every=steps,
        progress=False,
    )
    lrs = np.asarray(schedules.rates(schedule, steps), np.float64)

    def expected(**kwargs) -> float:
        omega = theory.average_weights(steps, **kwargs)
        moments = theory.averaged_sgd_quadratic_moments(lam, sigma, start, 0.0, lrs, omega)
        return float(theory.expected_quadratic_loss(lam, moments))

    cases: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {
        "ema_loss": ({"ema_decay": decay}, [{"ema_decay": 0.85}, {"ema_decay": 0.95}]),
        "window_loss": (
            {"window": window, "window_every": every},
            [{"window": window}, {"window": 1}],
        ),
    }
    for name, (right, wrongs) in cases.items():
        values = ds[name].sel(step=steps).values.astype(np.float64)
        mean, se = values.mean(), values.std(ddof=1) / np.sqrt(values.size)
        assert abs(mean - expected(**right)) < Z_MAX * se, name
        for wrong in wrongs:
            assert abs(mean - expected(**wrong)) > 2 * Z_MAX * se, (name, wrong)
