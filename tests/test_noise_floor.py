r"""The hill noise floor and the cliff of a WSD decay against their closed forms.

Monte Carlo: SGD on a river valley with a *straight* river (``amplitude = 0``) and two hills of
curvatures 10 and 2, started far downstream (``s_0 = 10``, river loss ``5e-5``), isotropic
gradient noise ``sigma`` (``pytree.grid``) x WSD peak rate ``eta`` (``schedules.grid``) in one
``sweep``.  With a straight river the hills are exactly quadratic and independent of the river,
so the closed forms are exact:

* the stationary hill loss, averaged per seed over the second half of the stable phase,
  equals ``sum_j eta sigma^2 / (2 (2 - eta lambda_j))``;
* the cliff (loss at the decay start minus loss at the end) equals ``theory.hill_cliff`` (the
  stationary hill loss minus the residual the decay leaves behind) plus the river's own progress,
  which this far downstream is below 0.1% of the cliff (checked);
* the slope of the cliff against ``eta sigma^2`` (least squares through the origin, per peak
  rate and over all points) equals the same fit of the predicted cliffs.

Tolerance: every comparison within ``Z_MAX = 4`` standard errors, the SE from the spread over
seeds (per-seed time averages and per-seed slopes, so the correlations between configurations
that share seeds are carried along).  With at most ~20 such comparisons, most of them strongly
correlated, a 4-sigma excursion has probability < 0.2% under the theory; the runs are
deterministic given their seeds.  The data must also *reject* the small-rate formulas
(``eta sigma^2 / 4`` per hill, and the cliff without the decay's residual), so a wrong
curvature correction or residual would fail.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rivervalley import optimizers, pytree, schedules, sweep, theory
from rivervalley.landscapes import RiverValley, river_valley

Z_MAX = 4.0
CURVATURES = np.array([10.0, 2.0])
PEAKS = (0.05, 0.1, 0.15)  # eta lambda up to 1.5 on the steep hill
NOISE = (0.1, 0.2, 0.4)
S0 = 10.0
STEPS = 800
DECAY_FRACTION = 0.25
DECAY_START = 600
SEEDS = 512
RECORD_EVERY = 5


def _schedule() -> schedules.Schedule:
    return schedules.grid(
        schedules.wsd, {"peak": PEAKS}, total_steps=STEPS, decay_fraction=DECAY_FRACTION
    )


@functools.cache
def _runs() -> dict[str, np.ndarray]:
    """Per-seed measurements, each of shape ``(noise, peak, seed)``."""

    def landscape(noise_std: float) -> RiverValley:
        return river_valley(
            3, curvatures=CURVATURES, amplitude=0.0, start=(S0, 0.0, 0.0), noise_std=noise_std
        )

    ds = sweep(
        pytree.grid(landscape, {"noise_std": NOISE}),
        optimizers.sgd(),
        _schedule(),
        seeds=SEEDS,
        steps=STEPS,
        record_every=RECORD_EVERY,
    )
    # stable rates: a run diverges only if the noise generator returns +-inf (a float32 rounding
    # edge of probability 2^-24 per number); drop such a seed everywhere, at most a few
    bad = ds["diverged"].any(("noise_std", "peak")).to_numpy()
    assert bad.sum() <= 2
    runs = ds[["loss", "hill_loss", "river_loss"]].isel(seed=np.flatnonzero(~bad))
    runs = runs.astype(np.float64).transpose("noise_std", "peak", "seed", "step")
    step = runs["step"].to_numpy()
    window = runs.isel(step=np.flatnonzero((step >= DECAY_START // 2) & (step < DECAY_START)))
    hill_window = window.hill_loss.mean("step")
    start, end = runs.sel(step=DECAY_START, drop=True), runs.isel(step=-1, drop=True)
    measured = {
        "hill_window": hill_window,
        "cliff": hill_window + start.river_loss - end.loss,
        "snapshot_cliff": start.loss - end.loss,
        "river_drop": start.river_loss - end.river_loss,
    }
    return {k: v.to_numpy() for k, v in measured.items()}


@jax.jit
def _evaluate(schedule: schedules.Schedule, t: jax.Array) -> jax.Array:
    return schedule(t)


def _decay_rates(peak: float) -> np.ndarray:
    """Rates of the decay's updates ``t = DECAY_START .. STEPS - 1``."""
    t = jnp.arange(DECAY_START, STEPS)
    return np.asarray(_evaluate(schedules.wsd(peak, STEPS, DECAY_FRACTION), t))


def _stationary() -> np.ndarray:
    eta, sig = np.asarray(PEAKS)[None, :, None], np.asarray(NOISE)[:, None, None]
    return np.asarray(theory.stationary_hill_loss(eta, CURVATURES, sig)).sum(-1)


def _predicted_cliff() -> np.ndarray:
    """``theory.hill_cliff`` on the (noise, peak) grid."""
    return np.array(
        [
            [float(theory.hill_cliff(CURVATURES, s, p, _decay_rates(p)).cliff) for p in PEAKS]
            for s in NOISE
        ]
    )


def _x() -> np.ndarray:
    return np.asarray(NOISE)[:, None] ** 2 * np.asarray(PEAKS)[None, :]


def _slope(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares slope through the origin over the leading axes; ``y`` may carry a trailing
    seed axis (one slope per seed)."""
    x = x.reshape(-1)
    y = y.reshape(x.size, -1)
    return (x @ y) / (x @ x)


def _mean_se(per_seed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return per_seed.mean(-1), per_seed.std(-1, ddof=1) / np.sqrt(per_seed.shape[-1])


def test_stationary_hill_loss_matches_closed_form():
    mean, se = _mean_se(_runs()["hill_window"])
    exact = _stationary()
    z = (mean - exact) / se
    assert np.all(np.abs(z) <= Z_MAX), f"z = {np.round(z, 2)}"
    # the check has teeth: at eta lambda = 1.5 the small-rate formula is 4x too small
    naive = np.asarray(PEAKS)[None, :] * np.asarray(NOISE)[:, None] ** 2 / 4 * len(CURVATURES)
    assert np.all(np.abs((mean - naive) / se)[:, -1] > 20)
    # precision: the SE is at most ~1% of the value
    assert np.all(se < 0.015 * exact)


def test_cliff_matches_hill_cliff_per_configuration():
    runs = _runs()
    predicted = _predicted_cliff()
    for key in ("cliff", "snapshot_cliff"):
        mean, se = _mean_se(runs[key])
        z = (mean - predicted) / se
        assert np.all(np.abs(z) <= Z_MAX), f"{key}: z = {np.round(z, 2)}"
    # far downstream the river contributes nothing measurable to the cliff
    assert np.all(np.abs(runs["river_drop"].mean(-1)) < 1e-3 * predicted)


def test_cliff_slope_against_eta_sigma_squared():
    runs = _runs()
    x, predicted = _x(), _predicted_cliff()
    # per peak rate: fit over the noise levels
    for j, peak in enumerate(PEAKS):
        fitted, se = _mean_se(_slope(x[:, j], runs["cliff"][:, j]))
        theory_slope = float(_slope(x[:, j], predicted[:, j])[0])
        assert abs(fitted - theory_slope) <= Z_MAX * se, (peak, fitted, theory_slope, se)
        # the cliff is linear in sigma^2: the theoretical slope is the per-unit cliff / eta
        unit = float(theory.hill_cliff(CURVATURES, 1.0, peak, _decay_rates(peak)).cliff)
        assert theory_slope == pytest.approx(unit / peak, rel=1e-5)
        # ... and below the stationary slope sum_j 1 / (2 (2 - eta lambda_j)) by the residual
        leading = float(theory.noise_floor_slope(peak, CURVATURES))
        assert 0.8 * leading < theory_slope < leading
    # all points together
    fitted, se = _mean_se(_slope(x, runs["cliff"]))
    theory_slope = float(_slope(x, predicted)[0])
    assert abs(fitted - theory_slope) <= Z_MAX * se
    assert se < 0.01 * theory_slope
    # teeth: the slope without the decay's residual (stationary part only) is rejected
    stationary_slope = float(_slope(x, _stationary())[0])
    assert abs(fitted - stationary_slope) > 2 * Z_MAX * se


# --- deterministic checks of the closed forms ---------------------------------------------------


def test_hill_cliff_equals_direct_recursion(x64):
    lam, sig, peak = np.array([10.0, 2.0, 0.5]), np.array([0.3, 0.2, 0.1]), 0.15
    decay = _decay_rates(peak).astype(np.float64)
    # stationarity reached by running the exact recursion at the peak rate for a long time
    stable = theory.sgd_quadratic_moments(lam, sig, 0.0, 0.0, np.full(4000, peak))
    v_stat = np.asarray(stable.var)[-1]
    after = theory.sgd_quadratic_moments(lam, sig, 0.0, v_stat, decay)
    cliff = theory.hill_cliff(lam, sig, peak, decay)
    assert float(cliff.stationary) == pytest.approx(0.5 * np.sum(lam * v_stat), rel=1e-10)
    residual = 0.5 * np.sum(lam * np.asarray(after.var)[-1])
    assert float(cliff.residual) == pytest.approx(residual, rel=1e-10)
    assert float(cliff.cliff) == pytest.approx(float(cliff.stationary) - residual, rel=1e-12)
    # proportional to sigma^2
    double = theory.hill_cliff(lam, 2 * sig, peak, decay)
    assert float(double.cliff) == pytest.approx(4 * float(cliff.cliff), rel=1e-12)
    # the decay removes most, not all, of the hill loss
    assert 0.0 < float(cliff.residual) < 0.2 * float(cliff.stationary)


def test_noise_floor_slope_limits():
    lam = np.array([10.0, 2.0])
    assert float(theory.noise_floor_slope(1e-6, lam)) == pytest.approx(0.5, rel=1e-5)
    expected = sum(1 / (2 * (2 - 0.1 * x)) for x in lam)
    assert float(theory.noise_floor_slope(0.1, lam)) == pytest.approx(expected, rel=1e-6)
    batched = np.asarray(theory.noise_floor_slope(np.array([0.05, 0.1]), lam))
    assert batched.shape == (2,) and batched[1] == pytest.approx(expected, rel=1e-6)


def test_valley_hill_loss_reduces_to_the_quadratic_closed_form():
    eta, a, sig = 0.1, 10.0, 0.3
    straight = theory.valley_stationary_hill_loss(eta, a, sig, 0.7, 0.0)
    assert float(straight) == pytest.approx(float(theory.stationary_hill_loss(eta, a, sig)))
    slope = 0.15
    isotropic = theory.valley_stationary_hill_loss(eta, a, sig, sig, slope)
    expected = eta * sig**2 / (2 * (2 - eta * a * (1 + slope**2)))
    assert float(isotropic) == pytest.approx(expected, rel=1e-6)
    # the bend stiffens the hill: a larger floor than the straight formula's
    assert float(isotropic) > float(straight)
