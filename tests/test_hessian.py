"""Curvature (``rivervalley.hessian``): Hessian-vector products against dense Hessians, closed
forms and finite differences; exact spectra; Lanczos against exact spectra (with the
Kaniel-Paige bound for few iterations), under ``jit``/``vmap``, at breakdown and at any scale;
and the ``sharpness`` record of ``sweep``.

The language models here are tiny (V = 5) and built from NumPy arrays, so no corpus sampling
has to be compiled; run time is dominated by XLA compilations, so the checks go through a few
jitted helpers that take the Hessian's data (a matrix, a model) as arguments and are compiled
once per shape.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rivervalley import hessian, optimizers, schedules, sweep
from rivervalley.landscapes import noisy_quadratic
from rivervalley.lm import BigramCorpus, bigram_table, factorized

EPS32 = float(np.finfo(np.float32).eps)
EPS64 = float(np.finfo(np.float64).eps)
V = 5


def _corpus() -> BigramCorpus:
    rng = np.random.default_rng(0)
    P = rng.dirichlet(np.full(V, 0.7), size=V)
    P[0] = np.eye(V)[2]  # one deterministic context
    P = P / P.sum(axis=1, keepdims=True)
    pi = rng.dirichlet(np.full(V, 2.0))
    return BigramCorpus(
        context_probs=jnp.asarray(pi / pi.sum(), jnp.float32),
        transition=jnp.asarray(P, jnp.float32),
        context_class=jnp.zeros(V, jnp.int32),
        class_names=("all",),
    ).validate()


def _models():
    corpus = _corpus()
    return {
        "table": bigram_table(corpus),
        "factorized": factorized(corpus, 2),
        "factorized_nobias": factorized(corpus, 2, bias=False),
    }


def _spd(d: int, eigenvalues, seed: int = 0) -> np.ndarray:
    """``Q diag(eigenvalues) Q^T`` with a random orthogonal ``Q`` (float64)."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    return (q * np.asarray(eigenvalues, dtype=np.float64)) @ q.T


def _quadratic(A: jax.Array):
    """``f(w) = w^T A w / 2``: its Hessian is ``A`` exactly."""
    return lambda w: 0.5 * w @ (A @ w)


def _float(x) -> jax.Array:
    """An array of the default float dtype (float64 under the ``x64`` fixture)."""
    return jnp.asarray(x, dtype=jnp.result_type(float))


@functools.partial(jax.jit, static_argnames="iters")
def _quad_lanczos(A, start, *, iters):
    """Lanczos on ``w^T A w / 2`` at 0: coefficients, all Ritz values and the top 4."""
    f = _quadratic(A)
    w = jnp.zeros(A.shape[-1], A.dtype)
    alphas, betas = hessian.lanczos(f, w, iters, start)
    top = hessian.top_eigenvalues(f, w, 4, iters=iters, start=start)
    return alphas, betas, hessian.tridiagonal_eigenvalues(alphas, betas), top


@jax.jit
def _quad_dense(A, w, v):
    f = _quadratic(A)
    return hessian.hvp(f, w, v), jax.hessian(f)(w), hessian.eigh(f, w)


@jax.jit
def _model_curvature(model, w, v, h):
    """hvp, dense Hessian, ``hessian_matrix`` and the gradient at ``w +- h v``."""
    f = model.loss
    fd = (model.grad(w + h * v), model.grad(w - h * v))
    return hessian.hvp(f, w, v), jax.hessian(f)(w), hessian.hessian_matrix(f, w), fd


# --- Hessian-vector products -----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["table", "factorized", "factorized_nobias"])
def test_hvp_matches_the_dense_hessian(kind):
    model = _models()[kind]
    rng = np.random.default_rng(1)
    d = model.n_params
    w = rng.normal(size=d)
    v = rng.normal(size=d)
    h = 1e-2
    hv, dense, sym, (g_plus, g_minus) = _model_curvature(
        model, jnp.asarray(w, jnp.float32), jnp.asarray(v, jnp.float32), h
    )
    hv, dense, sym = np.asarray(hv), np.asarray(dense, np.float64), np.asarray(sym)
    expected = dense @ v
    # float32, one jvp of the gradient vs jax.hessian (all columns): ~eps * |H| |v| * sqrt(d)
    tol = 8 * EPS32 * np.abs(dense).sum(axis=1).max() * np.abs(v).max()
    np.testing.assert_allclose(hv, expected, rtol=0, atol=tol)
    # hessian_matrix is the symmetrised dense Hessian
    np.testing.assert_array_equal(sym, sym.T)
    np.testing.assert_allclose(sym, 0.5 * (dense + dense.T), rtol=0, atol=tol)
    # independent of autodiff's second derivatives: central differences of the gradient,
    # (g(w + h v) - g(w - h v)) / 2h = H v + O(h^2); with float32 gradients the quotient has a
    # rounding error ~eps |g| / h ~ 1e-5 |g|, and the O(h^2) term is ~1e-4 |H v| here
    fd = (np.asarray(g_plus, np.float64) - np.asarray(g_minus, np.float64)) / (2 * h)
    np.testing.assert_allclose(hv, fd, rtol=0, atol=2e-3 * np.abs(fd).max())


def test_table_hessian_matches_closed_form():
    # L = sum_c pi_c CE(P_c, softmax(W_c)): block diagonal, blocks pi_c (diag q_c - q_c q_c^T)
    model = _models()["table"]
    rng = np.random.default_rng(1)  # the point of test_hvp_matches_the_dense_hessian[table]
    w = rng.normal(size=V * V)
    v = rng.normal(size=V * V)
    _, _, h, _ = _model_curvature(
        model, jnp.asarray(w, jnp.float32), jnp.asarray(v, jnp.float32), 0.0
    )
    pi = np.asarray(model.corpus.context_probs, dtype=np.float64)
    z = w.reshape(V, V)
    q = np.exp(z - z.max(axis=1, keepdims=True))
    q /= q.sum(axis=1, keepdims=True)
    expected = np.zeros((V * V, V * V))
    for c in range(V):
        block = slice(c * V, (c + 1) * V)
        expected[block, block] = pi[c] * (np.diag(q[c]) - np.outer(q[c], q[c]))
    # entries are products of O(1) float32 numbers: a few eps absolute
    np.testing.assert_allclose(np.asarray(h), expected, rtol=0, atol=16 * EPS32)


D = 12  # dimension of the quadratic test problems


def test_hvp_and_eigh_of_a_quadratic():
    rng = np.random.default_rng(4)
    A = rng.normal(size=(D, D))
    A = A + A.T  # symmetric, indefinite
    w, v = rng.normal(size=D), rng.normal(size=D)
    hv, dense, (values, vectors) = _quad_dense(_float(A), _float(w), _float(v))
    # float32 products of O(1) numbers, D terms: error <= D eps |A| |v|
    scale = np.abs(A).sum(axis=1).max()
    tol = 4 * EPS32 * scale * np.abs(v).max()
    np.testing.assert_allclose(np.asarray(hv), A @ v, rtol=0, atol=tol)
    np.testing.assert_allclose(np.asarray(dense), A, rtol=0, atol=4 * EPS32 * np.abs(A).max())
    # eigh: the exact spectrum of A (float32 eigensolver: backward stable, ~D eps |A|)
    values, vectors = np.asarray(values, np.float64), np.asarray(vectors, np.float64)
    np.testing.assert_allclose(values, np.linalg.eigvalsh(A), rtol=0, atol=D * EPS32 * scale)
    assert np.all(np.diff(values) >= 0)  # ascending
    np.testing.assert_allclose(A @ vectors, vectors * values, rtol=0, atol=4 * D * EPS32 * scale)
    np.testing.assert_allclose(vectors.T @ vectors, np.eye(D), rtol=0, atol=4 * D * EPS32)


# --- Lanczos ---------------------------------------------------------------------------------


def _start(seed: int = 12, d: int = D) -> jax.Array:
    return _float(np.random.default_rng(seed).normal(size=d))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_lanczos_with_d_iterations_is_exact(dtype, request):
    if dtype == "float64":
        request.getfixturevalue("x64")
    A = _spd(D, np.linspace(-1.0, 4.0, D) ** 3, seed=6)  # indefinite, uneven spacing
    exact = np.sort(np.linalg.eigvalsh(A))[::-1]
    eps = EPS32 if dtype == "float32" else EPS64
    # full reorthogonalisation keeps the basis orthonormal: Ritz values exact to ~eps d |A|
    tol = 16 * D * eps * np.abs(exact).max()
    alphas, betas, ritz, top = _quad_lanczos(_float(A), _start(), iters=D)
    assert alphas.dtype == jnp.dtype(dtype)
    assert alphas.shape == (D,) and betas.shape == (D - 1,)
    np.testing.assert_allclose(np.asarray(top), exact[:4], rtol=0, atol=tol)
    np.testing.assert_allclose(np.asarray(ritz), exact[::-1], rtol=0, atol=tol)


def test_lanczos_iterations_are_capped_at_the_dimension():
    A = _float(_spd(4, [1.0, 2.0, 3.0, 4.0]))
    alphas, betas = hessian.lanczos(_quadratic(A), jnp.zeros(4), 9, jnp.ones(4))
    assert alphas.shape == (4,) and betas.shape == (3,)


def _chebyshev(k: int, x: float) -> float:
    return math.cosh(k * math.acosh(x))


def test_lanczos_few_iterations_within_the_kaniel_paige_bound(x64):
    # well-separated top eigenvalue: after k iterations from start s, with rho = (l1 - l2) /
    # (l2 - l_n) and phi the angle between s and the top eigenvector (exact arithmetic),
    #   0 <= l1 - theta1 <= (l1 - l_n) (tan(phi) / T_{k-1}(1 + 2 rho))^2
    d, k = 40, 8
    spectrum = np.concatenate([[10.0, 6.0], np.linspace(0.0, 5.0, d - 2)])
    A = _spd(d, spectrum, seed=7)
    start = np.random.default_rng(8).normal(size=d)
    top_vector = np.linalg.eigh(A)[1][:, -1]
    cos = abs(start @ top_vector) / np.linalg.norm(start)
    tan = math.sqrt(1 - cos**2) / cos
    rho = (10.0 - 6.0) / (6.0 - 0.0)
    bound = 10.0 * (tan / _chebyshev(k - 1, 1 + 2 * rho)) ** 2
    theta = float(_quad_lanczos(_float(A), _float(start), iters=k)[3][0])
    rounding = 64 * d * EPS64 * 10.0
    assert -rounding <= 10.0 - theta <= bound + rounding, (10.0 - theta, bound)
    assert bound < 1e-4  # the bound is meaningful: 8 of 40 iterations give 5 digits


def test_lanczos_under_jit_and_vmap():
    model = _models()["table"]
    d = model.n_params
    rng = np.random.default_rng(9)
    ws = jnp.asarray(rng.normal(size=(4, d)) * np.array([[0.1], [1.0], [3.0], [10.0]]), jnp.float32)
    starts = jnp.asarray(rng.normal(size=(3, d)), jnp.float32)

    @jax.jit
    def everything(ws, starts):
        top2 = jax.vmap(lambda w: hessian.top_eigenvalues(model.loss, w, 2, iters=d))(ws)
        exact = jax.vmap(lambda w: hessian.eigh(model.loss, w)[0])(ws)
        per_start = jax.vmap(
            lambda s: hessian.top_eigenvalues(model.loss, ws[1], 2, iters=d, start=s)
        )(starts)
        sharp = jax.vmap(lambda w: hessian.sharpness(model.loss, w, iters=d))(ws)
        return top2, exact, per_start, sharp

    top2, exact, per_start, sharp = (np.asarray(a) for a in everything(ws, starts))
    exact_top2 = exact[:, ::-1][:, :2]
    # float32 Lanczos with d iterations vs float32 eigh: both ~eps d |H|, |H| <= max pi / 2
    tol = 16 * d * EPS32 * 0.5
    np.testing.assert_allclose(top2, exact_top2, rtol=0, atol=tol)
    np.testing.assert_allclose(per_start, np.broadcast_to(exact_top2[1], (3, 2)), atol=tol)
    np.testing.assert_allclose(sharp, exact_top2[:, 0], rtol=0, atol=tol)
    assert np.all(np.diff(exact_top2[:, 0]) != 0)  # the points really differ


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_lanczos_breakdown_on_a_low_rank_hessian(dtype, request):
    if dtype == "float64":
        request.getfixturevalue("x64")
    q, _ = np.linalg.qr(np.random.default_rng(10).normal(size=(D, 2)))
    u, v = q.T
    eps = EPS32 if dtype == "float32" else EPS64
    tol = 16 * D * eps * 3.0
    for top, other in [(3.0, 1.0), (3.0, -2.0)]:
        A = top * np.outer(u, u) + other * np.outer(v, v)  # rank 2: Krylov space of dim 2
        alphas, betas, ritz, top4 = (
            np.asarray(a) for a in _quad_lanczos(_float(A), _start(), iters=D)
        )
        assert np.all(np.isfinite(alphas)) and np.all(np.isfinite(betas))
        assert top4[0] == pytest.approx(top, abs=tol)
        assert ritz.min() == pytest.approx(min(other, 0.0), abs=tol)
        # every other Ritz value is 0 (spurious, after breakdown) or the other eigenvalue
        assert np.all(np.min(np.abs(ritz[:, None] - np.array([top, other, 0.0])), axis=1) <= tol)
        assert np.abs(betas[2:]).max() == 0.0  # broken down after the second step
    # immediate breakdown: the start is an eigenvector
    A = 3.0 * np.outer(u, u) + np.outer(v, v)
    alphas, betas, _, top4 = (np.asarray(a) for a in _quad_lanczos(_float(A), _float(u), iters=D))
    assert np.all(np.isfinite(alphas)) and np.all(np.isfinite(top4))
    assert top4[0] == pytest.approx(3.0, abs=tol)
    # a zero Hessian: everything 0, no NaN
    _, _, ritz, top4 = (
        np.asarray(a) for a in _quad_lanczos(_float(np.zeros((D, D))), _start(), iters=D)
    )
    np.testing.assert_array_equal(ritz, 0.0)
    np.testing.assert_array_equal(top4, 0.0)


def test_lanczos_is_scale_invariant():
    # the eigenvalues of c H are c times those of H, whatever c: the breakdown test must be
    # relative to the Hessian's scale, not an absolute threshold (float32, d iterations)
    A = _spd(D, np.linspace(0.1, 3.0, D), seed=11)
    exact = np.sort(np.linalg.eigvalsh(A))[::-1][:4]
    for scale in [1e-8, 1e-5, 1e-2, 1.0, 1e3]:
        top = np.asarray(_quad_lanczos(_float(scale * A), _start(), iters=D)[3])
        np.testing.assert_allclose(top / scale, exact, rtol=0, atol=16 * D * EPS32 * 3.0)


# --- sharpness in sweeps ---------------------------------------------------------------------


def test_sweep_records_the_sharpness_of_a_noisy_quadratic():
    curvatures = np.array(
        [[1.0, 0.3, 0.01, 2.0, 0.5, 5.0, 0.05, 0.8], [0.2, 0.7, 3.0, 0.1, 1.5, 0.4, 0.9, 0.6]]
    )
    landscape = noisy_quadratic(curvatures, 0.1, 1.0)  # a batch of two landscapes
    d = curvatures.shape[1]
    kwargs = {"seeds": 2, "steps": 20, "record_every": 5, "progress": False}
    ds = sweep(landscape, optimizers.sgd(), schedules.constant(0.1), sharpness=d, **kwargs)
    assert ds.sharpness.dims == ("curvatures", "seed", "step")
    # the Hessian is diag(curvatures) everywhere: the sharpness is the largest curvature
    # (float32 Lanczos with d iterations: exact to ~eps d |H|)
    expected = curvatures.max(axis=1)[:, None, None]  # per landscape, for every seed and step
    np.testing.assert_allclose(ds.sharpness.values, np.broadcast_to(expected, (2, 2, 5)), rtol=1e-5)
    with pytest.raises(ValueError, match="sharpness"):
        sweep(landscape, optimizers.sgd(), schedules.constant(0.1), sharpness=-1, **kwargs)


def test_preconditioned_sharpness_is_the_top_eigenvalue_of_diag_s_h(x64):
    """``lambda_max(diag(s) H)`` by Lanczos in rescaled coordinates equals the largest
    eigenvalue of the (non-symmetric) dense product, for a random SPD ``H`` and ``s > 0``."""
    rng = np.random.default_rng(3)
    a = rng.normal(size=(6, 6))
    h = a @ a.T + 0.1 * np.eye(6)
    s = rng.uniform(0.1, 5.0, size=6)
    w = rng.normal(size=6)

    def f(x):
        return 0.5 * x @ jnp.asarray(h) @ x

    got = hessian.preconditioned_sharpness(f, jnp.asarray(w), jnp.asarray(s), iters=6)
    want = np.max(np.linalg.eigvals(np.diag(s) @ h).real)
    assert float(got) == pytest.approx(want, rel=1e-10)


def test_adam_sharpness_in_a_sweep_equals_the_closed_form_on_a_quadratic():
    """Adam on a noiseless diagonal quadratic: the preconditioned Hessian is diagonal, so its
    top eigenvalue is ``max_i lambda_i / (sqrt(nu_hat_i) + eps)``, with ``nu_hat`` the
    bias-corrected second moment of the gradients ``lambda_i w_i`` along the recorded path
    (recomputed here from the recorded iterates); NaN at step 0 (no second moment yet)."""
    lam = np.array([4.0, 1.0, 0.25])
    quad = noisy_quadratic(lam, 0.0, np.array([1.0, -2.0, 3.0]))
    ds = sweep(
        quad,
        optimizers.adam(),
        schedules.constant(0.01),
        seeds=1,
        steps=6,
        record_every=1,
        gradient="exact",
        sharpness=3,
        preconditioned_sharpness=True,
        record_params=True,
    )
    got = ds["preconditioned_sharpness"].isel(seed=0).values
    w = ds["params"].isel(seed=0).values  # (step, param)
    assert np.isnan(got[0])
    nu = np.zeros(3)
    for t in range(1, w.shape[0]):
        g = lam * w[t - 1]  # the gradient of update t, at the iterate before it
        nu = 0.999 * nu + 0.001 * g**2
        want = np.max(lam / (np.sqrt(nu / (1 - 0.999**t)) + 1e-8))
        assert got[t] == pytest.approx(want, rel=1e-4), t
    with pytest.raises(ValueError, match="preconditioned_sharpness"):
        sweep(quad, optimizers.adam(), schedules.constant(0.01), seeds=1, steps=2,
              preconditioned_sharpness="yes")  # type: ignore[arg-type]  # fmt: skip


def test_top_eigenpairs_and_projected_hill_are_exact_with_d_iterations(x64):
    """With ``iters = d`` the Ritz pairs are eigenpairs (``H u = lambda u``, the top values of
    ``eigh``), and the projected hill of a quadratic ``f = (w - c)^T H (w - c) / 2`` in its top
    ``k`` directions is the quadratic's loss in them, ``sum_i lambda_i ((w - c) . u_i)^2 / 2``."""
    rng = np.random.default_rng(5)
    a = rng.normal(size=(7, 7))
    h = a @ a.T + 0.5 * np.eye(7)
    c, w = rng.normal(size=7), rng.normal(size=7)

    def f(x):
        d = x - jnp.asarray(c)
        return 0.5 * d @ jnp.asarray(h) @ d

    values, vectors = hessian.top_eigenpairs(f, jnp.asarray(w), 3, iters=7)
    exact, basis = np.linalg.eigh(h)
    np.testing.assert_allclose(np.asarray(values), exact[::-1][:3], rtol=1e-10)
    for lam, u in zip(np.asarray(values), np.asarray(vectors), strict=True):
        np.testing.assert_allclose(h @ u, lam * u, atol=1e-9)
    want = sum(0.5 * exact[-i] * ((w - c) @ basis[:, -i]) ** 2 for i in (1, 2, 3))
    got = hessian.projected_hill(f, jnp.asarray(w), 3, iters=7)
    assert float(got) == pytest.approx(want, rel=1e-9)


def test_sweep_records_the_projected_hill_of_a_noisy_quadratic():
    """GD on a quadratic with three hills (curvatures 4, 3, 2) and a flat river (0.01): the
    recorded ``projected_hill`` in the top 3 directions is the hills' loss at every record."""
    lam = np.array([0.01, 4.0, 3.0, 2.0])
    quad = noisy_quadratic(lam, 0.0, np.array([5.0, 1.0, -1.0, 0.5]))
    ds = sweep(
        quad,
        optimizers.sgd(),
        schedules.constant(0.05),
        seeds=1,
        steps=20,
        record_every=5,
        gradient="exact",
        sharpness=4,
        hill_directions=3,
        record_params=True,
    )
    w = ds["params"].isel(seed=0).values
    want = 0.5 * np.sum(lam[1:] * w[:, 1:] ** 2, axis=1)
    np.testing.assert_allclose(ds["projected_hill"].isel(seed=0).values, want, rtol=1e-4)
