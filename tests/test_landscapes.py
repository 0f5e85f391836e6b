r"""Landscapes: the river / hill decomposition, gradients, gradient noise, the noise floor under a
decayed rate, and input validation.

Float32 is the default (the path the simulator runs); the finite-difference gradient checks
switch to float64 with the ``x64`` fixture.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rivervalley import optimizers, schedules, sweep, theory
from rivervalley.landscapes import (
    RIVERS,
    NoisyQuadratic,
    RiverValley,
    noisy_quadratic,
    power_law_spectrum,
    river_valley,
    toy,
)
from rivervalley.pytree import stack

EPS32 = float(np.finfo(np.float32).eps)
Z_MAX = 4.0  # Monte-Carlo tolerance in standard errors (deterministic keys: no flakiness)

VALLEYS = {
    "toy": lambda: toy(),
    "power16": lambda: river_valley(16, river="power", spectrum_exponent=1.0),
    "power4_alpha": lambda: river_valley(
        4, river="power", alpha=0.6, amplitude=1.3, frequency=2.0, curvatures=[3.0, 0.5, 7.0]
    ),
}

# unsorted curvatures: the river (flattest direction) is coordinate 2, neither first nor last
NQ_CURVATURES = np.array([1.0, 0.3, 0.01, 2.0, 0.5, 5.0, 0.05, 0.8])


def _nq() -> NoisyQuadratic:
    return noisy_quadratic(NQ_CURVATURES, 0.1, 1.0)


def _points(dim: int, n: int = 64, seed: int = 0) -> np.ndarray:
    """A fixed random batch: river coordinate s in [-6, 6], hills ~ N(0, 1.5^2), float32."""
    rng = np.random.default_rng(seed)
    w = rng.normal(0.0, 1.5, size=(n, dim))
    w[:, 0] = rng.uniform(-6.0, 6.0, size=n)
    return w.astype(np.float32)


def _f_numpy(land: RiverValley, s: np.ndarray) -> np.ndarray:
    """The documented river loss, computed independently in float64."""
    s = s.astype(np.float64)
    if land.river == "softplus":
        return np.logaddexp(0.0, -s)  # log(1 + exp(-s))
    return (1.0 + np.logaddexp(0.0, s)) ** (-float(land.alpha))


def _curve_numpy(land: RiverValley, s: np.ndarray) -> np.ndarray:
    """``c(s) = b sin(omega s)`` in float64, shape ``(n, d - 1)``."""
    b = np.asarray(land.amplitudes, dtype=np.float64)
    return b * np.sin(float(land.frequency) * s.astype(np.float64))[:, None]


# --- decomposition ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(VALLEYS))
def test_valley_loss_is_exactly_river_plus_hill(name):
    land = VALLEYS[name]()
    w = jnp.asarray(_points(land.dim))
    parts = jax.vmap(land.decompose)(w)
    loss = np.asarray(jax.vmap(land.loss)(w))
    # the loss is *defined* as this sum: bitwise equality
    np.testing.assert_array_equal(loss, np.asarray(parts.river_loss + parts.hill_loss))
    assert np.all(np.asarray(parts.hill_loss) >= 0.0)
    assert np.all(np.isfinite(loss))


@pytest.mark.parametrize("name", list(VALLEYS))
def test_valley_parts_match_documented_formulas(name):
    land = VALLEYS[name]()
    w32 = _points(land.dim)
    parts = jax.vmap(land.decompose)(jnp.asarray(w32))
    w = w32.astype(np.float64)
    s, y = w[:, 0], w[:, 1:]
    np.testing.assert_array_equal(np.asarray(parts.river_coord), w32[:, 0])
    # river loss: f(s), a few float32 ulps
    np.testing.assert_allclose(np.asarray(parts.river_loss), _f_numpy(land, s), rtol=1e-5)
    # hill loss: sum_j lambda_j / 2 (y_j - c_j(s))^2; float32 rounding of y - c(s) is ~eps |y|,
    # so the absolute tolerance scales with the hill loss of y itself
    dy = y - _curve_numpy(land, s)
    lam = np.asarray(land.curvatures, dtype=np.float64)
    hill = 0.5 * np.sum(lam * dy**2, axis=1)
    scale = 0.5 * np.sum(lam * (np.abs(y) + np.abs(dy)) ** 2, axis=1)
    np.testing.assert_allclose(np.asarray(parts.hill_loss), hill, rtol=1e-5, atol=0)
    assert np.all(np.abs(np.asarray(parts.hill_loss) - hill) <= 1e-5 * scale)
    # hill displacement: zero along the river, y - c(s) along the hills, norm = hill_dist
    disp = np.asarray(parts.hill_displacement)
    assert disp.shape == w.shape
    np.testing.assert_array_equal(disp[:, 0], 0.0)
    np.testing.assert_allclose(disp[:, 1:], dy, rtol=1e-5, atol=1e-5)
    hill_dist = np.asarray(jax.vmap(lambda p: land.decompose(p).hill_dist)(jnp.asarray(w32)))
    np.testing.assert_allclose(hill_dist, np.linalg.norm(dy, axis=1), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", list(VALLEYS))
def test_valley_floor_has_zero_hill_loss(name):
    land = VALLEYS[name]()
    s = jnp.asarray(np.linspace(-6.0, 6.0, 49, dtype=np.float32))
    curve = jax.vmap(land.river_curve)(s)
    np.testing.assert_allclose(np.asarray(curve), _curve_numpy(land, np.asarray(s)), atol=1e-6)
    floor = jnp.concatenate([s[:, None], curve], axis=1)  # r(s) = (s, c(s))
    parts = jax.vmap(land.decompose)(floor)
    np.testing.assert_array_equal(np.asarray(parts.hill_loss), 0.0)
    np.testing.assert_array_equal(np.asarray(parts.hill_displacement), 0.0)
    np.testing.assert_array_equal(np.asarray(jax.vmap(land.loss)(floor)), parts.river_loss)
    np.testing.assert_allclose(
        np.asarray(parts.river_loss), _f_numpy(land, np.asarray(s)), rtol=1e-5
    )
    # the river loss decreases slowly along the river, as documented
    assert np.all(np.diff(np.asarray(parts.river_loss, dtype=np.float64)) < 0.0)
    # away from the floor the hill loss is positive
    off = floor.at[:, 1].add(0.1)
    assert np.all(np.asarray(jax.vmap(land.decompose)(off).hill_loss) > 0)


def test_default_start_lies_on_the_river_floor():
    land = river_valley(8)
    parts = land.decompose(land.init(jax.random.key(0)))
    assert float(parts.river_coord) == -2.0
    assert float(parts.hill_loss) == pytest.approx(0.0, abs=1e-12)


def test_noisy_quadratic_decomposition():
    land = _nq()
    d = NQ_CURVATURES.size
    w32 = _points(d, seed=1)
    w32[:, 0] = np.random.default_rng(2).normal(0.0, 1.5, size=w32.shape[0])  # no special s
    parts = jax.vmap(land.decompose)(jnp.asarray(w32))
    loss = np.asarray(jax.vmap(land.loss)(jnp.asarray(w32)), dtype=np.float64)
    river_loss = np.asarray(parts.river_loss, dtype=np.float64)
    hill_loss = np.asarray(parts.hill_loss, dtype=np.float64)
    # the full sum and the two partial sums round differently: all terms are >= 0, so the
    # summation error is at most ~d eps32 times the loss
    assert np.all(np.abs(loss - (river_loss + hill_loss)) <= d * EPS32 * loss)
    assert np.all(hill_loss >= 0.0)
    river = int(np.argmin(NQ_CURVATURES))
    assert int(land.river_index()) == river == 2
    w = w32.astype(np.float64)
    per_dir = 0.5 * NQ_CURVATURES * w**2
    np.testing.assert_array_equal(np.asarray(parts.river_coord), w32[:, river])
    np.testing.assert_allclose(river_loss, per_dir[:, river], rtol=1e-6)
    hills = np.arange(d) != river
    np.testing.assert_allclose(hill_loss, per_dir[:, hills].sum(axis=1), rtol=d * EPS32)
    np.testing.assert_allclose(loss, per_dir.sum(axis=1), rtol=d * EPS32)
    disp = np.asarray(parts.hill_displacement)
    np.testing.assert_array_equal(disp[:, river], 0.0)
    np.testing.assert_array_equal(disp[:, hills], w32[:, hills])
    # on the river (all hills zero) the hill loss vanishes
    on_river = np.zeros((5, d), np.float32)
    on_river[:, river] = np.linspace(-3.0, 3.0, 5)
    np.testing.assert_array_equal(np.asarray(jax.vmap(land.decompose)(on_river).hill_loss), 0.0)


# --- exact gradient ---------------------------------------------------------------------------


def _central_difference(loss, w: jax.Array, h: float) -> jax.Array:
    eye = h * jnp.eye(w.shape[-1], dtype=w.dtype)
    plus, minus = jax.vmap(loss)(w + eye), jax.vmap(loss)(w - eye)
    return (plus - minus) / (2.0 * h)


GRAD_LANDSCAPES = {
    "toy": lambda: toy(),
    "valley_softplus": lambda: river_valley(6, spectrum_exponent=1.0, amplitude=1.0),
    "valley_power": lambda: river_valley(5, river="power", alpha=0.7, frequency=1.7),
    "noisy_quadratic": _nq,
}


@pytest.mark.parametrize("name", list(GRAD_LANDSCAPES))
def test_grad_matches_central_differences(name, x64):
    del x64
    land = GRAD_LANDSCAPES[name]()
    dim = int(np.shape(land.start)[-1])
    assert land.start.dtype == jnp.float64  # built after float64 was switched on
    points = _points(dim, n=8, seed=3).astype(np.float64)
    # h = 1e-6: truncation error ~h^2 |L'''| ~ 1e-10, rounding ~eps64 |L| / h ~ 1e-9
    fd = jax.jit(jax.vmap(lambda w: _central_difference(land.loss, w, 1e-6)))(points)
    grad = np.asarray(jax.jit(jax.vmap(land.grad))(points))
    assert grad.dtype == np.float64
    np.testing.assert_allclose(grad, np.asarray(fd), rtol=1e-6, atol=1e-7)


# --- gradient noise ---------------------------------------------------------------------------

N_KEYS = 20_000
NOISE_LANDSCAPES = {
    "toy": lambda: toy(),
    "valley8": lambda: dataclasses.replace(
        river_valley(8, amplitude=1.0), noise_std=jnp.linspace(0.1, 0.8, 8)
    ),
    "noisy_quadratic": lambda: noisy_quadratic(NQ_CURVATURES, np.linspace(0.05, 1.0, 8), 1.0),
}


@pytest.mark.parametrize("name", list(NOISE_LANDSCAPES))
def test_stochastic_grad_is_unbiased_with_diagonal_covariance(name):
    land = NOISE_LANDSCAPES[name]()
    dim = int(np.shape(land.start)[-1])
    w = jnp.asarray(_points(dim, n=1, seed=4)[0])
    # a different key per landscape, so that identical noise scales give independent checks
    keys = jax.random.split(jax.random.key(11 + list(NOISE_LANDSCAPES).index(name)), N_KEYS)
    draw = jax.jit(jax.vmap(land.stochastic_grad, in_axes=(None, 0)))
    samples = np.asarray(draw(w, keys), dtype=np.float64)
    assert samples.shape == (N_KEYS, dim)
    grad = np.asarray(land.grad(w), dtype=np.float64)
    sigma = np.asarray(land.noise_std, dtype=np.float64)
    # unbiased: mean within 4 SE per coordinate
    se = samples.std(axis=0, ddof=1) / np.sqrt(N_KEYS)
    z_mean = (samples.mean(axis=0) - grad) / se
    assert np.all(np.abs(z_mean) <= Z_MAX), f"mean z = {np.round(z_mean, 2)}"
    # variance: for Gaussian noise the sample variance has relative SE sqrt(2 / (n - 1)) = 1.0%,
    # so 4 SE = 4.0%
    cov = np.cov(samples, rowvar=False)
    rel_se = np.sqrt(2.0 / (N_KEYS - 1))
    z_var = (np.diag(cov) / sigma**2 - 1.0) / rel_se
    assert np.all(np.abs(z_var) <= Z_MAX), f"variance z = {np.round(z_var, 2)}"
    # independent coordinates: each sample correlation has SE 1/sqrt(n) under independence
    corr = cov / np.outer(np.sqrt(np.diag(cov)), np.sqrt(np.diag(cov)))
    off = corr[~np.eye(dim, dtype=bool)] * np.sqrt(N_KEYS)
    assert np.all(np.abs(off) <= Z_MAX), f"max |correlation z| = {np.abs(off).max():.2f}"
    # the noise depends on the key and on nothing else
    k = jax.random.key(5)
    np.testing.assert_array_equal(land.stochastic_grad(w, k), land.stochastic_grad(w, k))


def test_zero_noise_stochastic_grad_is_exact():
    land = noisy_quadratic(NQ_CURVATURES, 0.0, 1.0)
    w = jnp.asarray(_points(8, n=1, seed=5)[0])
    np.testing.assert_array_equal(land.stochastic_grad(w, jax.random.key(0)), land.grad(w))


# --- a rate decayed to zero removes the noise floor ------------------------------------------

DECAY_STEPS, DECAY_SEEDS, DECAY_RECORD_EVERY = 1500, 256, 10
DECAY_PEAK, DECAY_FRACTION = 0.1, 0.2
DECAY_LANDSCAPES = {
    "toy": lambda: toy(),  # hill curvature 10, sigma 0.3
    "valley8": lambda: river_valley(8, noise_std=0.3),  # 7 hills of curvature 10, sigma 0.3
}


@pytest.mark.parametrize("name", list(DECAY_LANDSCAPES))
def test_decayed_rate_reaches_noise_free_hill_loss(name):
    """SGD under WSD decaying linearly to 0 ends (mean over seeds) far below the stationary noise
    floor of the stable phase, and at the noise-free (GD) hill loss plus the small residual left
    by a decay of finite length.

    The residual is computed from the exact quadratic recursion for the hill coordinates alone
    (curvature ``lambda_j``, noise ``sigma_j``, started at the stationary variance
    ``eta sigma^2 / (lambda (2 - eta lambda))`` at the start of the decay): its scale is
    ``eta_eff sigma^2 / 4`` per hill with ``eta_eff ~ eta / sqrt(2 eta lambda D)`` (the rate at
    which the relaxation time equals the time left), ~2.5% of the floor here.  The bending river
    perturbs it slightly (noise along ``s`` moves ``c(s)``), so the SGD - GD gap must equal it
    within 25% of itself plus 4 standard errors of the mean end loss.
    """
    land = DECAY_LANDSCAPES[name]()
    schedule = schedules.wsd(DECAY_PEAK, DECAY_STEPS, DECAY_FRACTION)
    sgd_ds = sweep(
        land,
        optimizers.sgd(),
        schedule,
        seeds=DECAY_SEEDS,
        steps=DECAY_STEPS,
        record_every=DECAY_RECORD_EVERY,
    )
    gd_ds = sweep(
        land,
        optimizers.sgd(),
        schedule,
        seeds=1,
        steps=DECAY_STEPS,
        record_every=DECAY_RECORD_EVERY,
        gradient="exact",
    )
    step = sgd_ds["step"].to_numpy()
    hill = np.asarray(sgd_ds["hill_loss"].transpose("seed", "step").to_numpy(), dtype=np.float64)
    decay_start = int(DECAY_STEPS * (1 - DECAY_FRACTION))
    assert float(sgd_ds["lr"].isel(seed=0, step=-1)) == 0.0
    assert float(sgd_ds["lr"].isel(seed=0).sel(step=decay_start)) == pytest.approx(DECAY_PEAK)

    lam = np.asarray(land.curvatures, dtype=np.float64)
    sigma = np.asarray(land.noise_std, dtype=np.float64)[1:]  # hill coordinates
    stationary = float(np.sum(theory.stationary_hill_loss(DECAY_PEAK, lam, sigma)))
    # the stable phase sits at the noise floor (the river's bend adds a little)
    floor = hill[:, (step >= decay_start - 200) & (step <= decay_start)].mean()
    assert floor == pytest.approx(stationary, rel=0.1)

    end = hill[:, -1].mean()
    end_se = hill[:, -1].std(ddof=1) / np.sqrt(DECAY_SEEDS)
    gd_end = float(gd_ds["hill_loss"].isel(seed=0, step=-1))
    assert end < 0.05 * floor

    lrs = schedule(jnp.arange(decay_start, DECAY_STEPS))
    var0 = DECAY_PEAK * sigma**2 / (lam * (2.0 - DECAY_PEAK * lam))
    moments = theory.sgd_quadratic_moments(lam, sigma, 0.0, var0, lrs)
    residual = float(theory.expected_quadratic_loss(lam, moments)[-1])
    assert 0.005 * floor < residual < 0.05 * floor  # small but not negligible
    assert gd_end < 1e-3 * residual  # GD has settled on the floor
    gap = end - gd_end
    assert abs(gap - residual) <= 0.25 * residual + Z_MAX * end_se, (
        f"{name}: SGD end {end:.3g} +- {end_se:.2g}, GD end {gd_end:.3g}, residual {residual:.3g}"
    )


# --- inputs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("dim", [1, 0, -3])
def test_river_valley_needs_two_dimensions(dim):
    with pytest.raises(ValueError, match="dim"):
        river_valley(dim)


def test_unknown_river_is_rejected():
    with pytest.raises(ValueError, match="allowed") as info:
        river_valley(4, river="nope")
    message = str(info.value)
    assert "'nope'" in message
    assert all(river in message for river in RIVERS)
    with pytest.raises(ValueError, match="allowed"):
        toy(river="nope")


def test_unknown_river_on_a_hand_built_valley_fails_at_use():
    land = river_valley(3)
    bad = RiverValley(
        curvatures=land.curvatures,
        amplitudes=land.amplitudes,
        frequency=land.frequency,
        alpha=land.alpha,
        noise_std=land.noise_std,
        start=land.start,
        river="nope",
    )
    with pytest.raises(ValueError, match="allowed"):
        bad.loss(land.start)


def test_batched_landscapes_have_a_batch_shape():
    a = noisy_quadratic([1.0, 0.1, 0.01], 0.2, 1.0)
    b = noisy_quadratic(power_law_spectrum(3, top=2.0), 0.5, -1.0)
    assert a.batch_shape == ()
    both = stack([a, b])
    assert isinstance(both, NoisyQuadratic)
    assert both.batch_shape == (2,)
    assert both.curvatures.shape == (2, 3)
    valleys = stack([toy(), toy(noise_std=0.0)])
    assert valleys.batch_shape == (2,)
    assert valleys.river == "softplus"
