r"""River valleys whose hill curvature grows along the river, and GD at the edge of stability.

The landscape (``curvature_growth = kappa``):
``L(s, y) = f(s) + sum_j lambda_j (1 + kappa softplus(s)) / 2 (y_j - c_j(s))^2``.  Checked here:
``kappa = 0`` is the old valley bit for bit; with ``kappa > 0`` the decomposition stays exact,
the floor still minimises over the hills, and the gradient matches the closed form, central
differences and the NumPy reference; the sharpness on the floor matches the closed form of the
2-D Hessian's top eigenvalue.

Then the edge-of-stability claim, measured on one compiled sweep: GD at ``eta = 0.2`` on the
sharpening toy (``a = 1``, ``kappa = 2``, ``b = 0.15``) sharpens progressively up to ``2/eta`` and
then hovers there, and the midpoints of consecutive iterates sit near the river.  Two controls
in the same sweep show that the bounds discriminate: with ``kappa = 0`` the sharpness stays far
below ``2/eta``; on a straight river (``b = 0``) started on its floor the unstable hill direction
is never excited, nothing self-stabilises, and the sharpness runs past ``2/eta``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

from rivervalley import hessian, optimizers, schedules, sweep
from rivervalley.landscapes import RiverValley, river_valley, toy
from rivervalley.numpy_reference import _grad as numpy_grad
from rivervalley.numpy_reference import _loss as numpy_loss
from rivervalley.pytree import describe


def _points(dim: int, n: int = 32, seed: int = 0) -> np.ndarray:
    """River coordinate s in [-6, 6], hills ~ N(0, 1), float32."""
    rng = np.random.default_rng(seed)
    w = rng.normal(0.0, 1.0, size=(n, dim))
    w[:, 0] = rng.uniform(-6.0, 6.0, size=n)
    return w.astype(np.float32)


GROWING = {
    "toy": lambda: toy(curvature_growth=0.7),
    "softplus6": lambda: river_valley(6, spectrum_exponent=1.0, amplitude=1.0, curvature_growth=2),
    "power5": lambda: river_valley(
        5,
        river="power",
        alpha=0.7,
        frequency=1.7,
        curvatures=[3.0, 0.5, 7.0, 1.0],
        curvature_growth=0.3,
    ),
}


def _parts64(land: RiverValley, w: np.ndarray) -> dict[str, np.ndarray]:
    """The documented formulas in float64: g(s), g'(s), f(s), f'(s), c(s), c'(s), dy."""
    w = w.astype(np.float64)
    s, y = w[:, :1], w[:, 1:]
    kappa = float(land.curvature_growth)
    b, omega = np.asarray(land.amplitudes, np.float64), float(land.frequency)
    sig = 1.0 / (1.0 + np.exp(-s))  # sigma(s)
    softplus = np.logaddexp(0.0, s)
    if land.river == "softplus":
        f, df = np.logaddexp(0.0, -s), -(1.0 - sig)
    else:
        alpha = float(land.alpha)
        f, df = (1.0 + softplus) ** -alpha, -alpha * (1.0 + softplus) ** (-alpha - 1.0) * sig
    return {
        "g": 1.0 + kappa * softplus,
        "dg": kappa * sig,
        "f": f[:, 0],
        "df": df,
        "dc": b * omega * np.cos(omega * s),
        "dy": y - b * np.sin(omega * s),
        "lam": np.asarray(land.curvatures, np.float64),
    }


# --- kappa = 0 is the old landscape -----------------------------------------------------------


@pytest.mark.parametrize("name", ["toy", "softplus6", "power5"])
def test_zero_growth_leaves_the_loss_unchanged(name):
    grown = GROWING[name]()
    land = RiverValley(  # the same valley built without the new field: its default applies
        curvatures=grown.curvatures,
        amplitudes=grown.amplitudes,
        frequency=grown.frequency,
        alpha=grown.alpha,
        noise_std=grown.noise_std,
        start=grown.start,
        river=grown.river,
    ).validate()
    assert float(land.curvature_growth) == 0.0
    assert describe(land)["curvature_growth"] == 0.0
    w = jnp.asarray(_points(land.dim))

    def old(w):  # the formula before curvature growth existed
        s, y = w[0], w[1:]
        dy = y - land.amplitudes * jnp.sin(land.frequency * s)
        return land.river_loss(s) + 0.5 * jnp.sum(land.curvatures * dy**2)

    new = np.asarray(jax.vmap(land.loss)(w))
    np.testing.assert_array_equal(new, np.asarray(jax.vmap(old)(w)))  # bit for bit
    s = w[:, 0]
    np.testing.assert_array_equal(
        np.asarray(jax.vmap(land.hill_curvatures)(s)),
        np.broadcast_to(land.curvatures, (32, land.dim - 1)),
    )
    # the builders' default is 0 too
    assert float(toy().curvature_growth) == 0.0 == float(river_valley(4).curvature_growth)


def test_growth_is_validated():
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="curvature_growth"):
            toy(curvature_growth=bad)
        with pytest.raises(ValueError, match="curvature_growth"):
            river_valley(3, curvature_growth=bad)


# --- kappa > 0: exact decomposition, floor, gradient ------------------------------------------


@pytest.mark.parametrize("name", list(GROWING))
def test_growing_valley_decomposition_is_exact(name):
    land = GROWING[name]()
    w32 = _points(land.dim, seed=1)
    w = jnp.asarray(w32)
    parts = jax.vmap(land.decompose)(w)
    loss = np.asarray(jax.vmap(land.loss)(w))
    np.testing.assert_array_equal(loss, np.asarray(parts.river_loss + parts.hill_loss))
    ref = _parts64(land, w32)
    hill = 0.5 * np.sum(ref["lam"] * ref["g"] * ref["dy"] ** 2, axis=1)
    np.testing.assert_allclose(np.asarray(parts.river_loss), ref["f"], rtol=2e-5)
    # float32 rounding of dy = y - c(s) is ~eps (|y| + |c|): an absolute scale per point
    scale = 0.5 * np.sum(ref["lam"] * ref["g"] * (np.abs(w32[:, 1:]) + 2.0) ** 2, axis=1)
    assert np.all(np.abs(np.asarray(parts.hill_loss) - hill) <= 1e-5 * scale)
    np.testing.assert_allclose(np.asarray(parts.hill_displacement)[:, 1:], ref["dy"], atol=2e-6)

    # the floor r(s) = (s, c(s)) has zero hill loss and minimises the loss over the hills
    s = jnp.asarray(np.linspace(-6.0, 6.0, 25, dtype=np.float32))
    floor = jnp.concatenate([s[:, None], jax.vmap(land.river_curve)(s)], axis=1)
    on = jax.vmap(land.decompose)(floor)
    np.testing.assert_array_equal(np.asarray(on.hill_loss), 0.0)
    kicks = np.random.default_rng(2).normal(0.0, 0.05, size=(25, land.dim)).astype(np.float32)
    kicks[:, 0] = 0.0  # move along the hills only
    off = np.asarray(jax.vmap(land.loss)(floor + kicks))
    assert np.all(off > np.asarray(jax.vmap(land.loss)(floor)))


@pytest.mark.parametrize("name", list(GROWING))
def test_growing_valley_gradient(name, x64):
    del x64
    land = GROWING[name]()
    assert land.start.dtype == jnp.float64
    w = _points(land.dim, n=8, seed=3).astype(np.float64)
    grad = np.asarray(jax.jit(jax.vmap(land.grad))(w))
    # the closed form of the module docstring
    ref = _parts64(land, w)
    lam, g, dy = ref["lam"], ref["g"], ref["dy"]
    d_s = ref["df"][:, 0] + np.sum(lam * (0.5 * ref["dg"] * dy**2 - g * ref["dc"] * dy), axis=1)
    closed = np.concatenate([d_s[:, None], lam * g * dy], axis=1)
    np.testing.assert_allclose(grad, closed, rtol=1e-12, atol=1e-12)
    # central differences, h = 1e-6: truncation ~h^2 |L'''|, rounding ~eps |L| / h ~ 1e-9
    eye = 1e-6 * np.eye(land.dim)
    loss = jax.jit(jax.vmap(land.loss))
    fd = np.stack([(loss(w + e) - loss(w - e)) / 2e-6 for e in eye], axis=1)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-7)
    if land.river == "softplus":  # the independent NumPy reference covers this river
        args = (lam, np.asarray(land.amplitudes), float(land.frequency))
        kappa = float(land.curvature_growth)
        np.testing.assert_allclose(numpy_grad(w, *args, kappa), grad, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(
            numpy_loss(w, *args, kappa), np.asarray(jax.vmap(land.loss)(w)), rtol=1e-13
        )


# --- sharpness on the floor -------------------------------------------------------------------


def _top_eigenvalue_2d(a: float, kappa: float, b: float, omega: float, s: np.ndarray):
    """Closed form for the 2-D softplus valley at the floor point (s, c(s)).

    With ``h = a g(s)``, ``q = c'(s)`` and ``f'' = sigma(s) sigma(-s)`` the Hessian is
    ``[[f'' + h q^2, -h q], [-h q, h]]`` (the terms in ``dy`` vanish on the floor): trace
    ``T = f'' + h (1 + q^2)``, determinant ``f'' h``, top eigenvalue
    ``(T + sqrt(T^2 - 4 f'' h)) / 2``.
    """
    f2 = 1.0 / ((1.0 + np.exp(s)) * (1.0 + np.exp(-s)))
    h = a * (1.0 + kappa * np.logaddexp(0.0, s))
    q = b * omega * np.cos(omega * s)
    trace = f2 + h * (1.0 + q**2)
    return 0.5 * (trace + np.sqrt(trace**2 - 4.0 * f2 * h))


def test_floor_sharpness_matches_the_closed_form(x64):
    del x64
    land = toy(hill_curvature=1.0, amplitude=0.15, curvature_growth=2.0)
    big = GROWING["softplus6"]()
    s = np.linspace(-4.0, 8.0, 13)

    @jax.jit
    @jax.vmap
    def measured(x):  # one compiled program for every measurement
        floor = jnp.stack([x, 0.15 * jnp.sin(x)])
        exact = hessian.eigh(land.loss, floor)[0][-1]
        lanczos = hessian.sharpness(land.loss, floor, iters=2)
        own = jnp.linalg.eigvalsh(land.floor_hessian(x))[-1]
        big_floor = jnp.concatenate([x[None], big.river_curve(x)])
        dense = hessian.hessian_matrix(big.loss, big_floor)
        return exact, lanczos, own, big.floor_hessian(x), dense

    exact, lanczos, own, big_own, big_dense = (np.asarray(v) for v in measured(s))
    closed = _top_eigenvalue_2d(1.0, 2.0, 0.15, 1.0, s)
    np.testing.assert_allclose(exact, closed, rtol=1e-12)
    np.testing.assert_allclose(lanczos, closed, rtol=1e-10)  # d = 2 iterations: exact
    # the landscape's own closed-form floor Hessian, for d = 2 and for a d = 6 valley
    np.testing.assert_allclose(own, closed, rtol=1e-12)
    np.testing.assert_allclose(big_own, big_dense, atol=1e-12)


# --- the edge of stability --------------------------------------------------------------------

ETA = 0.2
STEPS = 2000
DECAY = 0.25  # the WSD run decays linearly to 0 over the last quarter
LATE = slice(STEPS // 2, STEPS)  # the late phase of the constant-rate run
A, KAPPA, B = 1.0, 2.0, 0.15
CASES = {"growing": (KAPPA, B), "kappa0": (0.0, B), "straight": (KAPPA, 0.0)}


def _toy(kappa: float, b: float) -> RiverValley:
    return toy(
        hill_curvature=A,
        amplitude=b,
        noise_std=0.0,
        start=(-2.0, b * np.sin(-2.0)),
        curvature_growth=kappa,
    )


@functools.cache
def _eos() -> xr.Dataset:
    """One compiled sweep: 3 landscapes x (constant rate, WSD), every step recorded."""
    return sweep(
        {case: _toy(*c) for case, c in CASES.items()},  # dim landscape
        optimizers.sgd(),
        {"constant": schedules.constant(ETA), "wsd": schedules.wsd(ETA, STEPS, DECAY)},
        seeds=1,
        steps=STEPS,
        record_every=1,
        gradient="exact",
        record_params=True,
        sharpness=2,
        progress=False,
    )


def _run(case: str, wsd: bool = False) -> xr.Dataset:
    return _eos().sel(landscape=case, schedule="wsd" if wsd else "constant").isel(seed=0)


def _hill_dist(w: np.ndarray, b: float) -> np.ndarray:
    return np.abs(w[..., 1] - b * np.sin(w[..., 0]))


def _edge_position() -> float:
    """s* where the closed-form floor sharpness first reaches 2/eta."""
    s = np.linspace(0.0, 10.0, 100_001)
    return float(s[np.argmax(_top_eigenvalue_2d(A, KAPPA, B, 1.0, s) >= 2.0 / ETA)])


def test_sharpness_rises_to_two_over_eta_and_hovers_there():
    ratio = {c: _run(c).sharpness.values * ETA / 2.0 for c in CASES}
    assert not _eos().diverged.any()
    # progressive sharpening: from far below the edge up to it within the first quarter
    r = ratio["growing"]
    assert r[0] < 0.2
    assert np.argmax(r >= 0.95) < STEPS // 4
    # ... then it hovers: late-phase mean 1.004 (measured), sawtooth of std ~0.04 and peaks of at
    # most ~1.07 (GD overshoots the edge until the hill oscillation has grown, then is thrown
    # back).  The window spans several sawtooth cycles, so its mean is within ~0.01 of 1; 0.03
    # leaves room for float32 rounding to shift the cycles.
    late = r[LATE]
    assert 0.97 <= late.mean() <= 1.03, late.mean()
    assert late.max() < 1.1 and late.min() > 0.85  # measured 1.066 and 0.928
    # the bounds discriminate: without growth the sharpness stays far below 2/eta (~0.1 of it);
    # on the straight river, where no oscillation is excited, it runs past the edge (~1.23)
    assert ratio["kappa0"][LATE].mean() < 0.2
    assert ratio["straight"][LATE].mean() > 1.1
    assert ratio["straight"][-1] > ratio["straight"][STEPS // 2]  # and keeps growing


def test_midpoints_of_consecutive_iterates_sit_near_the_river():
    w = _run("growing").params.values
    iterate = _hill_dist(w[:-1], B)[LATE]
    midpoint = _hill_dist(0.5 * (w[1:] + w[:-1]), B)[LATE]
    # GD zig-zags across the valley (mean hill distance 0.05 against 4e-4 for kappa = 0) ...
    assert iterate.mean() > 0.01
    assert _run("kappa0").hill_dist.values[LATE].mean() < 1e-3
    # ... while the midpoints stay close to the floor: measured ratio 0.037
    assert midpoint.mean() < 0.1 * iterate.mean()


def test_the_edge_pins_the_river_coordinate():
    """Not a claim of the notes but what this landscape does: the sharpness depends on s alone,
    so staying at 2/eta means staying at s*; river progress stalls (the kappa = 0 run goes on)."""
    s_star = _edge_position()
    s = _run("growing").river_coord.values[LATE]
    assert abs(s.mean() - s_star) < 0.1, (s.mean(), s_star)  # measured 4.498 vs 4.483
    river = _run("growing").river_loss.values[LATE]
    quarter = len(river) // 4
    first, last = river[:quarter].mean(), river[-quarter:].mean()
    # little river progress over the late phase (the measured 7% is the sawtooth's phase) ...
    assert last / first > 0.85
    flat = _run("kappa0").river_loss.values[LATE]
    assert flat[-quarter:].mean() < 0.7 * flat[:quarter].mean()  # ... while this one: -41%
    assert _run("kappa0").river_coord.values[LATE].mean() > s_star + 0.5


def test_wsd_decay_leaves_the_edge_and_settles():
    run, const = _run("growing", wsd=True), _run("growing")
    start = STEPS - round(DECAY * STEPS)
    # identical to the constant-rate run until the decay
    np.testing.assert_array_equal(run.params.values[: start + 1], const.params.values[: start + 1])
    lr, sharp = run.lr.values, run.sharpness.values
    # as the rate decays 2/eta_t grows faster than the sharpness: below the edge for good
    # (measured: sharpness * eta_t / 2 at most 0.82 from 100 steps into the decay)
    after = slice(start + 100, STEPS)
    assert np.all(sharp[after] * lr[after] / 2.0 < 0.9)
    # the iterate settles on the floor: hill distance ~2e-5 against ~0.06 for the constant rate
    assert run.hill_dist.values[-1] < 1e-3 * const.hill_dist.values[LATE].mean()
    # released from s*, the river coordinate moves on during the decay (river progress):
    # measured s = 4.87 at the end (s* = 4.48), river loss 0.0076 against 0.0113
    assert run.river_coord.values[-1] > _edge_position() + 0.15
    assert run.river_loss.values[-1] < 0.9 * const.river_loss.values[LATE].mean()
