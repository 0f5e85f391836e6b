r"""The simulator against exact results.

SGD on a noisy quadratic with Gaussian gradient noise is a linear Gaussian recursion, so every
iterate is Gaussian with mean and variance given *exactly* (for any schedule) by
``theory.sgd_quadratic_moments``.  The Monte-Carlo checks below compare ``sweep`` against it:
mean loss and mean river coordinate within 4 standard errors at every recorded step, the loss
variance within 4 standard errors of the sample variance, and the stationary hill loss under a
constant rate.  The runs are deterministic given their seeds, so these tests never flake; a
4-sigma bound at ~60 correlated steps per schedule is sharp yet leaves room for the largest
deviation expected among them (~3 sigma).

Deterministic checks: GD equals the closed form ``w_t = prod_s (1 - eta_s lambda) w_0`` and
heavy-ball momentum and Adam equal hand-written numpy recursions (optax conventions).
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

from rivervalley import optimizers, schedules, sweep, theory
from rivervalley.landscapes import NoisyQuadratic, noisy_quadratic

Z_MAX = 4.0  # Monte-Carlo tolerance in standard errors

# --- SGD against the exact moment recursion ---------------------------------------------------

N_SEEDS = 4096
STEPS = 300
RECORD_EVERY = 5
CURVATURES = np.array([2.0, 0.5, 0.05])  # eta * lambda spans 0.0225 .. 0.9 at the peak rate
NOISE_STD = np.array([0.3, 0.2, 0.4])
START = np.array([1.0, -1.0, 2.0])  # nonzero: the mean matters along every direction
PEAK = 0.45

SCHEDULES = {
    "wsd_warmup": lambda: schedules.wsd(PEAK, STEPS, 0.3, warmup_steps=30),
    "cosine": lambda: schedules.cosine(PEAK, STEPS, final=0.01),
    "wsd_s": lambda: schedules.wsd_s(PEAK, [100, 200, 300], 0.3, rewarmup_steps=5),
}


def _nq() -> NoisyQuadratic:
    return noisy_quadratic(CURVATURES, NOISE_STD, START)


@functools.cache
def _sgd_runs(name: str) -> tuple[xr.Dataset, theory.Moments]:
    """One SGD sweep over ``N_SEEDS`` seeds and the exact moments at the recorded steps."""
    schedule = SCHEDULES[name]()
    ds = sweep(
        _nq(), optimizers.sgd(), schedule, seeds=N_SEEDS, steps=STEPS, record_every=RECORD_EVERY
    )
    lrs = schedule(jnp.arange(STEPS))
    moments = theory.sgd_quadratic_moments(CURVATURES, NOISE_STD, START, 0.0, lrs)
    recorded = theory.Moments(
        np.asarray(moments.mean, dtype=np.float64)[::RECORD_EVERY],
        np.asarray(moments.var, dtype=np.float64)[::RECORD_EVERY],
    )
    return ds, recorded


def _values(ds: xr.Dataset, name: str) -> np.ndarray:
    """A recorded variable of a single-configuration sweep, shape ``(seed, step)``."""
    return np.asarray(ds[name].transpose("seed", "step").to_numpy(), dtype=np.float64)


def _z_scores(samples: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """``(sample mean - exact) / SE`` per step; a step with zero spread (the deterministic start)
    must match to float32 rounding and gets ``z = 0`` if it does, ``inf`` if not."""
    mean = samples.mean(axis=0)
    se = samples.std(axis=0, ddof=1) / np.sqrt(samples.shape[0])
    diff = mean - exact
    rounding = 1e-6 * np.maximum(np.abs(exact), 1.0)
    return np.where(
        se > 0, diff / np.where(se > 0, se, 1.0), np.where(abs(diff) < rounding, 0, np.inf)
    )


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_sgd_records_the_schedule(name):
    ds, _ = _sgd_runs(name)
    schedule = SCHEDULES[name]()
    expected = np.asarray(schedule(jnp.arange(0, STEPS + 1, RECORD_EVERY)))
    np.testing.assert_array_equal(ds["step"].to_numpy(), np.arange(0, STEPS + 1, RECORD_EVERY))
    np.testing.assert_allclose(
        _values(ds, "lr"), np.broadcast_to(expected, ds["lr"].shape), rtol=1e-5, atol=1e-8
    )
    # the schedule really exercises what the recursion must follow: warmup, decay to a low rate
    lrs = np.asarray(schedule(jnp.arange(STEPS)))
    assert lrs.max() == pytest.approx(PEAK)
    assert lrs[-1] < 0.05 * PEAK


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_sgd_mean_loss_matches_exact_recursion(name):
    ds, moments = _sgd_runs(name)
    exact = np.asarray(theory.expected_quadratic_loss(CURVATURES, moments))
    z = _z_scores(_values(ds, "loss"), exact)
    worst = int(np.argmax(np.abs(z)))
    assert np.all(np.abs(z) <= Z_MAX), (
        f"{name}: max |z| = {abs(z[worst]):.2f} at step {ds['step'].to_numpy()[worst]}"
    )
    # the check has teeth: the loss falls by orders of magnitude, and not to zero (noise floor)
    assert exact[-1] < 0.05 * exact[0]
    assert exact[-1] > 1e-4


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_sgd_mean_river_coord_matches_exact_mean(name):
    ds, moments = _sgd_runs(name)
    river = int(np.argmin(CURVATURES))
    exact = np.asarray(moments.mean)[:, river]
    z = _z_scores(_values(ds, "river_coord"), exact)
    assert np.all(np.abs(z) <= Z_MAX), f"{name}: max |z| = {np.abs(z).max():.2f}"
    # the mean moves (it is not just the start) and is still far from 0 relative to its SE
    assert exact[-1] < 0.9 * START[river]


def _loss_kurtosis(moments: theory.Moments) -> np.ndarray:
    """Exact kurtosis of ``L = sum a_i w_i^2`` with independent ``w_i ~ N(m_i, v_i)``,
    ``a_i = lambda_i / 2``: the cumulants of ``a (m + sqrt(v) Z)^2`` are
    ``kappa_r = a^r 2^(r-1) (r-1)! (v^r + r m^2 v^(r-1))`` and add over directions."""
    a = 0.5 * CURVATURES
    m, v = np.asarray(moments.mean), np.asarray(moments.var)
    kappa2 = np.sum(a**2 * 2.0 * (v**2 + 2.0 * m**2 * v), axis=-1)
    kappa4 = np.sum(a**4 * 48.0 * (v**4 + 4.0 * m**2 * v**3), axis=-1)
    return 3.0 + kappa4 / kappa2**2


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_sgd_loss_variance_matches_closed_form(name):
    """Sample variance of the loss against ``theory.quadratic_loss_variance``.

    For ``n`` i.i.d. samples the sample variance has relative standard error
    ``sqrt((kurtosis - 1) / n)`` (to leading order).  The loss is a weighted sum of independent
    noncentral chi-squares with one degree of freedom, whose kurtosis lies in [3, 15] (15: a single
    central chi-square, which the loss approaches late in a decay, when only the flattest direction
    still carries variance).  So with ``n = 4096`` the relative SE is between 2.2% and 5.8%, and the
    flat bound ``|s^2 / Var - 1| <= 4 sqrt(14 / n) = 23%`` holds at 4 SE for any configuration.
    The sharper per-step bound uses the exact kurtosis (Gaussian cumulants, see
    ``_loss_kurtosis``): ``|s^2 / Var - 1| <= 4 sqrt((kurtosis_t - 1) / n)``, i.e. 9% to 23%.
    """
    ds, moments = _sgd_runs(name)
    exact = np.asarray(theory.quadratic_loss_variance(CURVATURES, moments))[1:]
    losses = _values(ds, "loss")[:, 1:]  # step 0 is deterministic (variance 0)
    mean, var = np.asarray(moments.mean), np.asarray(moments.var)
    kurtosis = _loss_kurtosis(theory.Moments(mean[1:], var[1:]))
    assert np.all((kurtosis >= 3.0 - 1e-9) & (kurtosis <= 15.0 + 1e-9))
    rel_se = np.sqrt((kurtosis - 1.0) / N_SEEDS)
    ratio = losses.var(axis=0, ddof=1) / exact
    worst = int(np.argmax(np.abs(ratio - 1.0)))
    assert np.all(np.abs(ratio - 1.0) <= Z_MAX * np.sqrt(14.0 / N_SEEDS)), (
        f"{name}: worst ratio {ratio[worst]:.3f}"
    )
    z = (ratio - 1.0) / rel_se
    assert np.all(np.abs(z) <= Z_MAX), f"{name}: max |z| = {np.abs(z).max():.2f}"


def test_exact_kurtosis_formula_matches_sampling():
    """The kurtosis formula used above, against a direct numpy simulation (float64)."""
    rng = np.random.default_rng(0)
    m = np.array([[0.7, -0.2, 1.5]])
    v = np.array([[0.3, 0.05, 0.01]])
    w = m + np.sqrt(v) * rng.standard_normal((400_000, 3))
    loss = 0.5 * np.sum(CURVATURES * w**2, axis=1)
    centred = loss - loss.mean()
    sample_kurtosis = np.mean(centred**4) / np.mean(centred**2) ** 2
    assert sample_kurtosis == pytest.approx(_loss_kurtosis(theory.Moments(m, v))[0], rel=0.05)
    exact_var = np.asarray(theory.quadratic_loss_variance(CURVATURES, theory.Moments(m, v)))[0]
    assert loss.var() == pytest.approx(exact_var, rel=0.02)


# --- stationary hill loss under a constant rate -------------------------------------------------

STATIONARY_SEEDS = 1024
STATIONARY_RECORD_EVERY = 5


def _stationary_hill_z(curvatures, noise_std, peaks, *, burn_in: int, steps: int):
    """z-scores of the per-seed time-averaged hill loss after ``burn_in`` against the sum of
    ``theory.stationary_hill_loss`` over the hill directions, one per peak rate."""
    curvatures, noise_std = np.asarray(curvatures), np.asarray(noise_std)
    hills = np.arange(curvatures.size) != np.argmin(curvatures)
    # burn-in long compared to the slowest relaxation time 1 / (eta lambda) of any hill
    assert burn_in >= 10.0 / (min(peaks) * curvatures[hills].min())
    landscape = noisy_quadratic(curvatures, noise_std, 1.0)
    ds = sweep(
        landscape,
        optimizers.sgd(),
        schedules.grid(schedules.constant, {"peak": peaks}),
        seeds=STATIONARY_SEEDS,
        steps=steps,
        record_every=STATIONARY_RECORD_EVERY,
    )
    np.testing.assert_allclose(ds["peak"].to_numpy(), peaks, rtol=1e-6)
    after = np.flatnonzero(ds["step"].to_numpy() > burn_in)
    hill = ds["hill_loss"].isel(step=after).astype(np.float64).mean("step")
    hill = hill.transpose("peak", "seed").to_numpy()
    mean = hill.mean(axis=1)
    se = hill.std(axis=1, ddof=1) / np.sqrt(STATIONARY_SEEDS)
    exact = np.array(
        [
            sum(
                float(theory.stationary_hill_loss(p, lam, sig))
                for lam, sig in zip(curvatures[hills], noise_std[hills], strict=True)
            )
            for p in peaks
        ]
    )
    return (mean - exact) / se, exact


def test_stationary_hill_loss_one_hill():
    # river curvature 1e-3, hill curvature 1: eta * lambda = 0.1 .. 1.5 on the hill
    peaks = [0.1, 0.25, 0.5, 1.0, 1.5]
    z, exact = _stationary_hill_z([1e-3, 1.0], [0.5, 0.5], peaks, burn_in=200, steps=1000)
    assert np.all(np.abs(z) <= Z_MAX), f"z = {np.round(z, 2)}"
    # the closed form is not the naive eta sigma^2 / 4: at eta lambda = 1.5 it is 3x larger
    assert exact[-1] == pytest.approx(1.5 * 0.25 / (2 * 0.5))


def test_stationary_hill_loss_two_hills():
    # hills of curvature 1 and 0.3 with different noise: the sum of two closed forms
    peaks = [0.1, 0.5, 1.0, 1.5]
    z, _ = _stationary_hill_z([0.3, 1e-3, 1.0], [0.8, 0.5, 0.5], peaks, burn_in=400, steps=1200)
    assert np.all(np.abs(z) <= Z_MAX), f"z = {np.round(z, 2)}"


# --- deterministic optimizers against hand-written recursions ----------------------------------

DET_STEPS = 200
DET_CURVATURES = np.array([1.0, 0.2, 0.01])
DET_START = np.array([1.0, -2.0, 3.0])


def _deterministic_schedule():
    return schedules.wsd(0.5, DET_STEPS, 0.25, "cosine", warmup_steps=10)


def _noiseless_run(optimizer, gradient: str = "stochastic") -> xr.Dataset:
    landscape = noisy_quadratic(DET_CURVATURES, 0.0, DET_START)
    schedule = _deterministic_schedule()
    return sweep(landscape, optimizer, schedule, seeds=[3], steps=DET_STEPS, gradient=gradient)


def _observables(w: np.ndarray) -> dict[str, np.ndarray]:
    """The recorded quantities of a NoisyQuadratic trajectory ``w`` of shape ``(T + 1, d)``."""
    river = int(np.argmin(DET_CURVATURES))
    hills = np.arange(w.shape[1]) != river
    return {
        "loss": 0.5 * np.sum(DET_CURVATURES * w**2, axis=1),
        "river_coord": w[:, river],
        "hill_dist": np.linalg.norm(w[:, hills], axis=1),
    }


def _assert_matches(ds: xr.Dataset, w: np.ndarray, rtol: float, atol: float):
    for name, expected in _observables(w).items():
        np.testing.assert_allclose(
            _values(ds, name)[0], expected, rtol=rtol, atol=atol, err_msg=name
        )


def _rates() -> np.ndarray:
    return np.asarray(_deterministic_schedule()(jnp.arange(DET_STEPS)), dtype=np.float64)


def test_gd_equals_closed_form_product():
    lrs = _rates()
    factors = np.cumprod(1.0 - lrs[:, None] * DET_CURVATURES, axis=0)
    w = DET_START * np.concatenate([np.ones((1, 3)), factors])
    ds = _noiseless_run(optimizers.sgd(), gradient="exact")
    # float32 against float64: observed errors ~3e-7 relative (one rounding per step on
    # contracting products); 2e-6 leaves headroom yet catches any off-by-one rate (>1e-2)
    _assert_matches(ds, w, rtol=2e-6, atol=1e-7)


def test_sgd_momentum_equals_heavy_ball_recursion():
    beta, lrs = 0.9, _rates()
    w, m = DET_START.copy(), np.zeros(3)
    trajectory = [w.copy()]
    for lr in lrs:  # optax: m <- beta m + g; w <- w - eta_t m
        m = beta * m + DET_CURVATURES * w
        w = w - lr * m
        trajectory.append(w.copy())
    w_all = np.array(trajectory)
    ds = _noiseless_run(optimizers.sgd(momentum=0.9))
    # heavy ball oscillates (w crosses 0), so relative errors blow up near the crossings: compare
    # with an absolute floor of a few float32 ulps at the start's scale (|w_0| = 3; observed 4e-7)
    _assert_matches(ds, w_all, rtol=1e-5, atol=3e-6)
    # momentum really changes the trajectory: plain GD differs by far more than the tolerance
    gd = _noiseless_run(optimizers.sgd(), gradient="exact")
    assert np.abs(_values(gd, "river_coord")[0] - w_all[:, 2]).max() > 0.1


def test_adam_equals_hand_written_recursion():
    b1, b2, eps, lrs = 0.9, 0.999, 1e-8, _rates()
    w, mu, nu = DET_START.copy(), np.zeros(3), np.zeros(3)
    trajectory = [w.copy()]
    for t, lr in enumerate(lrs, start=1):  # optax.adam: bias-corrected, eps outside the sqrt
        g = DET_CURVATURES * w
        mu = b1 * mu + (1 - b1) * g
        nu = b2 * nu + (1 - b2) * g**2
        w = w - lr * (mu / (1 - b1**t)) / (np.sqrt(nu / (1 - b2**t)) + eps)
        trajectory.append(w.copy())
    ds = _noiseless_run(optimizers.adam(b1, b2, eps))
    # Adam's sign-like steps amplify rounding a little more than GD (observed 2e-6 absolute)
    _assert_matches(ds, np.array(trajectory), rtol=1e-5, atol=1e-5)
