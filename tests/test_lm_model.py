"""Bigram language models (``rivervalley.lm.model``) as landscapes: the population loss and its
gradient against an independent NumPy implementation, the optimum and the entropy floor,
per-class observables, unbiased minibatch gradients (stream and finite corpus), the curvature
bounds against exact Hessian spectra, the relaxation decomposition, and runs through ``sweep``.

Everything is checked at several random points.  Run time is dominated by XLA compilations, so
the models share one corpus shape (V = 12, the shape of ``test_lm_data``'s corpora) and the
checks call a few jitted helpers that are compiled once per model type.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

from rivervalley import hessian, optimizers, schedules, sweep
from rivervalley.lm import (
    BigramCorpus,
    BigramTable,
    Factorized,
    LanguageModel,
    bigram_corpus,
    bigram_table,
    deterministic,
    dirichlet,
    factorized,
    finite_corpus,
    uniform,
    zipf,
)

EPS32 = float(np.finfo(np.float32).eps)
EPS64 = float(np.finfo(np.float64).eps)
V = 12
WIDTH = 3
BATCH = 16
MIX = [
    (deterministic(), 1.0),
    (uniform(4), 1.0),
    (zipf(1.3, support=6), 1.0),
    (zipf(0.8), 1.0),
    (dirichlet(0.3), 1.0),
    (dirichlet(2.0), 1.0),
]
# a non-uniform context distribution (so that pi-weights and max(pi) matter), all > 0
PI = np.random.default_rng(5).dirichlet(np.full(V, 3.0))
# Monte-Carlo keys for the unbiasedness checks; see test_stochastic_gradient_is_unbiased
N_KEYS = 8000
Z_MAX = 5.0


@functools.cache
def _corpus() -> BigramCorpus:
    return bigram_corpus(jax.random.key(0), V, MIX, context_probs=PI)


def _model(kind: str, **kwargs) -> LanguageModel:
    corpus = _corpus()
    if kind == "table":
        return bigram_table(corpus, batch_size=BATCH, **kwargs)
    if kind == "factorized":
        return factorized(corpus, WIDTH, batch_size=BATCH, **kwargs)
    return factorized(corpus, WIDTH, bias=False, batch_size=BATCH, **kwargs)


KINDS = ["table", "factorized", "factorized_nobias"]


def _points(model: LanguageModel, scales=(0.3, 1.0, 3.0), seed: int = 0) -> np.ndarray:
    """Random parameter vectors ``scale * N(0, 1)``, one per scale, float32 ``(n, d)``."""
    rng = np.random.default_rng(seed)
    return np.stack([s * rng.normal(size=model.n_params) for s in scales]).astype(np.float32)


# --- jitted helpers (each compiled once per model type and dtype) ----------------------------


@functools.partial(jax.jit, static_argnames="curvature")
def _evaluate(model, ws, curvature=True):
    """Everything deterministic at a batch of points ``ws`` ``(n, d)``: loss, gradient,
    observables, decomposition and, with ``curvature``, the exact Hessian eigenvalues
    (ascending) and the curvature bound."""

    def one(w):
        out = {
            "loss": model.loss(w),
            "grad": model.grad(w),
            "obs": model.observables(w),
            "parts": model.decompose(w),
        }
        if curvature:
            out |= {"eigenvalues": hessian.eigh(model.loss, w)[0]}
            out |= {"bound": model.curvature_bound(w)}
        return out

    return jax.vmap(one)(ws)


CHUNK = 4  # points per ``_evaluate`` call: one array shape, one compilation per model


def _eval(model, ws, curvature: bool = True) -> dict:
    """``_evaluate`` at any number of points, in chunks of ``CHUNK`` (zero-padded), as NumPy.
    (``curvature=False`` where the spectrum is not needed: a smaller program to compile.)"""
    ws = np.asarray(ws)
    n = ws.shape[0]
    padded = np.concatenate([ws, np.zeros((-n % CHUNK, ws.shape[1]), ws.dtype)])
    chunks = [
        _evaluate(model, padded[i : i + CHUNK], curvature) for i in range(0, len(padded), CHUNK)
    ]
    return jax.tree_util.tree_map(lambda *xs: np.concatenate(xs)[:n], *chunks)


@functools.partial(jax.jit, static_argnums=2)
def _grad_samples(model, w, n):
    keys = jax.random.split(jax.random.key(2024), n)
    return jax.vmap(lambda k: model.stochastic_grad(w, k))(keys)


# --- an independent NumPy implementation (float64) ------------------------------------------


def _np_parts(model: LanguageModel, w) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``E, U, b`` from the documented layout ``w = [vec E, vec U, b]`` (row-major)."""
    assert isinstance(model, Factorized)
    w = np.asarray(w, dtype=np.float64)
    n, d = model.vocab_size, model.width
    E = w[: n * d].reshape(n, d)
    U = w[n * d : 2 * n * d].reshape(d, n)
    b = w[2 * n * d :] if model.bias else np.zeros(n)
    return E, U, b


def _np_logits(model: LanguageModel, w) -> np.ndarray:
    if isinstance(model, BigramTable):
        return np.asarray(w, dtype=np.float64).reshape(model.vocab_size, model.vocab_size)
    E, U, b = _np_parts(model, w)
    return E @ U + b


def _np_log_softmax(z: np.ndarray) -> np.ndarray:
    m = z.max(axis=-1, keepdims=True)
    return z - m - np.log(np.sum(np.exp(z - m), axis=-1, keepdims=True))


def _np_context_losses(model, w, P) -> np.ndarray:
    log_q = _np_log_softmax(_np_logits(model, w))
    return -np.sum(np.where(P > 0, P * log_q, 0.0), axis=-1)


def _np_loss(model, w, pi, P) -> float:
    return float(np.sum(pi * _np_context_losses(model, w, P)))


def _np_grad(model, w, pi, P) -> np.ndarray:
    """Gradient of ``sum_c pi_c CE(P_c, softmax(z_c))`` by the chain rule: ``G_c = dL/dz_c =
    pi_c (|P_c| q_c - P_c)``, then ``dE = G U^T``, ``dU = E^T G`` and ``db = sum_c G_c``."""
    z = _np_logits(model, w)
    q = np.exp(_np_log_softmax(z))
    G = pi[:, None] * (P.sum(axis=1, keepdims=True) * q - P)
    if isinstance(model, BigramTable):
        return G.ravel()
    E, U, _ = _np_parts(model, w)
    parts = [(G @ U.T).ravel(), (E.T @ G).ravel()] + ([G.sum(axis=0)] if model.bias else [])
    return np.concatenate(parts)


def _np_entropy(P: np.ndarray) -> np.ndarray:
    return -np.sum(P * np.log(np.where(P > 0, P, 1.0)), axis=-1)


def _truth(model: LanguageModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The corpus's ``pi``, ``P`` and class indices as float64 / int arrays."""
    corpus = model.corpus
    pi = np.asarray(corpus.context_probs, dtype=np.float64)
    P = np.asarray(corpus.transition, dtype=np.float64)
    return pi, P, np.asarray(corpus.context_class)


def _float64_corpus(P: np.ndarray, pi: np.ndarray, names=("all",)) -> BigramCorpus:
    """A corpus with float64 arrays (rows normalised in float64); call under ``x64``."""
    P = np.asarray(P, dtype=np.float64)
    P = P / P.sum(axis=1, keepdims=True)
    pi = np.asarray(pi, dtype=np.float64)
    n = P.shape[0]
    cls = np.minimum(np.arange(n) * len(names) // n, len(names) - 1)
    return BigramCorpus(
        context_probs=jnp.asarray(pi / pi.sum()),
        transition=jnp.asarray(P),
        context_class=jnp.asarray(cls, dtype=jnp.int32),
        class_names=tuple(names),
    ).validate()


# --- loss, optimum, gradient ------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_population_loss_matches_numpy(kind):
    model = _model(kind)
    pi, P, _ = _truth(model)
    ws = _points(model, scales=(0.0, 0.3, 1.0, 3.0))
    got = np.asarray(_eval(model, ws)["loss"])
    expected = np.array([_np_loss(model, w, pi, P) for w in ws])
    # float32 log-softmax of logits z has an absolute error of a few eps * max|z| per term
    zmax = np.array([np.abs(_np_logits(model, w)).max() for w in ws])
    assert np.all(np.abs(got - expected) <= 32 * EPS32 * (1 + zmax)), got - expected
    # w = 0: uniform predictions, loss log V (float32 rows sum to 1 within V eps)
    assert expected[0] == pytest.approx(np.log(V), rel=V * EPS32)


@pytest.mark.parametrize("kind", KINDS)
def test_exact_gradient_matches_numpy(kind):
    model = _model(kind)
    pi, P, _ = _truth(model)
    ws = _points(model, seed=1)
    got = np.asarray(_eval(model, ws)["grad"])
    for g, w in zip(got, ws, strict=True):
        expected = _np_grad(model, w, pi, P)
        # float32: each entry is a short sum of products of O(1) factors, relative ~eps
        scale = np.abs(expected).max()
        np.testing.assert_allclose(g, expected, rtol=0, atol=1e-5 * scale)


def _sparse_rows(rng: np.random.Generator) -> np.ndarray:
    """V x V next-token rows with zeros: 3 deterministic, 3 uniform(4), 6 Dirichlet(0.5) on
    random supports of 2..V tokens (float64; built in NumPy, so the cached float32 corpus is
    never touched under ``x64``)."""
    P = np.zeros((V, V))
    for c in range(V):
        support = rng.permutation(V)[: 1 if c < 3 else 4 if c < 6 else rng.integers(2, V + 1)]
        P[c, support] = 1.0 / len(support) if c < 6 else rng.dirichlet(np.full(len(support), 0.5))
    return P


def test_table_optimum_reaches_the_entropy_floor(x64):
    # deterministic and sparse rows: the optimum log P has -inf entries
    rng = np.random.default_rng(12)
    corpus = _float64_corpus(_sparse_rows(rng), rng.dirichlet(np.full(V, 2.0)))
    table = bigram_table(corpus)
    optimum = table.optimum()
    assert optimum.dtype == jnp.float64
    assert np.isneginf(np.asarray(optimum)).any()  # the infimum is reached only in the limit
    P = np.asarray(corpus.transition)
    pi = np.asarray(corpus.context_probs)
    floor = float(np.sum(pi * _np_entropy(P)))
    # float64 sums of V^2 terms of size <= log V: rounding <= V^2 eps log V ~ 8e-14
    tol = V * V * EPS64 * np.log(V)
    assert abs(float(corpus.entropy_floor()) - floor) <= tol
    # L(optimum) = sum_c pi_c H_c
    out = _eval(table, optimum[None], curvature=False)
    assert abs(float(out["loss"][0]) - floor) <= tol
    assert abs(float(out["obs"]["excess_loss"][0])) <= tol
    np.testing.assert_allclose(np.asarray(out["obs"]["class_excess"][0]), 0.0, rtol=0, atol=tol)


def test_table_optimum_in_float32():
    table = _model("table")
    loss = float(_eval(table, table.optimum()[None])["loss"][0])
    floor = float(table.corpus.entropy_floor())
    # float32: V^2 terms p log p, each with a relative rounding error of a few eps
    assert abs(loss - floor) <= 4 * V * V * EPS32 * np.log(V)


def test_gradient_vanishes_at_the_optimum_of_a_full_support_corpus(x64):
    rng = np.random.default_rng(3)
    P = rng.dirichlet(np.full(V, 1.0), size=V)  # every token possible in every context
    pi = rng.dirichlet(np.full(V, 2.0))
    corpus = _float64_corpus(P, pi)
    table = bigram_table(corpus)
    optimum = np.asarray(table.optimum())
    assert np.all(np.isfinite(optimum))
    # 4 points near the optimum, and the optimum itself
    delta = 1e-3 * rng.normal(size=(4, V * V))
    out = _eval(table, np.concatenate([optimum + delta, optimum[None]]), curvature=False)
    # grad W_c = pi_c (softmax(log P_c) - P_c): float64 rounding of a softmax, ~eps per entry
    assert np.abs(np.asarray(out["grad"][-1])).max() <= 16 * EPS64
    # the optimum is a minimum: nearby points have a larger loss, the excess being the KL
    # divergence, (1/2) d^T H d to second order (relative error O(|d|) ~ 1e-3) with the
    # closed-form Hessian blocks pi_c (diag P_c - P_c P_c^T) at the optimum (q = P)
    pi, P = np.asarray(corpus.context_probs), np.asarray(corpus.transition)
    excess = np.asarray(out["loss"][:-1]) - float(corpus.entropy_floor())
    for d, e in zip(delta, excess, strict=True):
        dz = d.reshape(V, V)
        quad = 0.5 * np.sum(pi * (np.sum(P * dz**2, axis=1) - np.sum(P * dz, axis=1) ** 2))
        assert e > 0.0
        assert e == pytest.approx(quad, rel=1e-2)
    np.testing.assert_allclose(np.asarray(out["obs"]["excess_loss"][:-1]), excess, rtol=1e-9)


@pytest.mark.parametrize("kind", KINDS)
def test_excess_and_class_losses_match_numpy(kind):
    model = _model(kind)
    pi, P, cls = _truth(model)
    H = _np_entropy(P)
    ws = _points(model, scales=(0.1, 1.0, 3.0), seed=2)
    out = _eval(model, ws)
    obs, losses = out["obs"], np.asarray(out["loss"])
    floor = float(model.corpus.entropy_floor())
    for i, w in enumerate(ws):
        ell = _np_context_losses(model, w, P)
        zmax = np.abs(_np_logits(model, w)).max()
        tol = 32 * EPS32 * (1 + zmax)  # as in test_population_loss_matches_numpy
        excess = float(obs["excess_loss"][i])
        assert excess == pytest.approx(float(np.sum(pi * (ell - H))), abs=tol)
        assert excess == pytest.approx(float(losses[i]) - floor, abs=tol)
        assert excess >= 0.0
        class_loss = [np.sum(pi[cls == c] * ell[cls == c]) / pi[cls == c].sum() for c in range(6)]
        class_excess = [
            np.sum(pi[cls == c] * (ell - H)[cls == c]) / pi[cls == c].sum() for c in range(6)
        ]
        np.testing.assert_allclose(np.asarray(obs["class_loss"][i]), class_loss, atol=tol)
        np.testing.assert_allclose(np.asarray(obs["class_excess"][i]), class_excess, atol=tol)
        assert np.all(np.asarray(obs["class_excess"][i]) >= -tol)  # a mean of KL divergences
    assert model.observable_dims() == {
        "class_loss": ("context_class", list(model.corpus.class_names)),
        "class_excess": ("context_class", list(model.corpus.class_names)),
    }


# --- minibatch gradients -----------------------------------------------------------------------


def _mc_z_scores(samples: np.ndarray, exact: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-coordinate z-scores ``(mean - exact) / SE`` of i.i.d. gradient samples ``(K, d)``
    (coordinates with zero sample variance must match exactly, up to float32 rounding: z = 0
    if so, inf if not), and the standard errors."""
    samples = samples.astype(np.float64)
    mean = samples.mean(axis=0)
    se = samples.std(axis=0, ddof=1) / math.sqrt(samples.shape[0])
    diff = mean - exact
    exact_match = np.abs(diff) <= 1e-6 * (np.abs(exact).max() + 1e-30)
    z = np.where(se > 0, diff / np.where(se > 0, se, 1.0), np.where(exact_match, 0.0, np.inf))
    return z, se


# Unbiasedness: with K = 8000 i.i.d. minibatch gradients the mean of each coordinate is normal
# to a good approximation (CLT; a coordinate is a sum of ~B pi_c = 1.3 bounded terms per
# batch).  We compare d <= 144 coordinates at once, so we bound the largest |z|: by the union
# bound P(max |z| > 5) <= 144 * 5.7e-7 < 1e-4 for an unbiased estimator.  The keys are fixed,
# so the test is deterministic; the tolerance is what a fresh key would pass.  The test has
# power: the standard errors are a few per cent of the gradient.


@pytest.mark.parametrize("kind", ["table", "factorized"])
def test_stochastic_gradient_is_autodiff_of_the_minibatch_loss(kind):
    """The hand-written chain rule ``(softmax - onehot) / B`` through the logits equals
    ``jax.grad`` of ``batch_loss`` on the very minibatch the key draws (float32 rounding: a
    few eps relative to the largest entry)."""
    model = _model(kind)
    w = jnp.asarray(_points(model, scales=(0.7,), seed=5)[0])
    for seed in range(3):
        key = jax.random.key(seed)
        got = np.asarray(model.stochastic_grad(w, key))
        expected = np.asarray(jax.grad(model.batch_loss)(w, *model.sample(key)))
        np.testing.assert_allclose(got, expected, rtol=0, atol=8 * EPS32 * np.abs(expected).max())


@pytest.mark.parametrize("kind", ["table", "factorized"])
def test_stochastic_gradient_is_unbiased(kind):
    model = _model(kind)
    pi, P, _ = _truth(model)
    w = _points(model, scales=(0.5,), seed=4)[0]
    samples = np.asarray(_grad_samples(model, jnp.asarray(w), N_KEYS))
    assert samples.shape == (N_KEYS, model.n_params)
    exact = _np_grad(model, w, pi, P)
    z, se = _mc_z_scores(samples, exact)
    assert np.max(np.abs(z)) <= Z_MAX, np.max(np.abs(z))
    assert se.max() <= 0.05 * np.abs(exact).max()  # power: SE << |grad|
    # the minibatches differ from key to key (this is a stochastic gradient)
    assert not np.allclose(samples[0], samples[1])


@pytest.mark.parametrize("kind", ["table", "factorized"])
def test_finite_corpus_gradient_is_unbiased_for_the_empirical_loss(kind):
    corpus = _corpus()
    data = finite_corpus(corpus, jax.random.key(1), 40)
    model = _model(kind, data=data)
    pi, P, _ = _truth(model)
    # the empirical distribution, independently from NumPy counts
    cx, cy = np.asarray(data.contexts), np.asarray(data.targets)
    counts = np.zeros((V, V))
    np.add.at(counts, (cx, cy), 1.0)
    pi_hat = counts.sum(axis=1) / data.size
    P_hat = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
    freqs, rows = data.empirical_transition(V)
    np.testing.assert_allclose(np.asarray(freqs), pi_hat, rtol=EPS32)
    np.testing.assert_allclose(np.asarray(rows), P_hat, rtol=EPS32)
    w = _points(model, scales=(0.5,), seed=5)[0]
    samples = np.asarray(_grad_samples(model, jnp.asarray(w), N_KEYS))
    empirical = _np_grad(model, w, pi_hat, P_hat)
    z, _ = _mc_z_scores(samples, empirical)
    assert np.max(np.abs(z)) <= Z_MAX, np.max(np.abs(z))  # see the comment above
    # ... and the empirical gradient is not the population one: 40 pairs are far from the
    # corpus, and the Monte-Carlo mean tells them apart by far more than the tolerance
    z_population, _ = _mc_z_scores(samples, _np_grad(model, w, pi, P))
    assert np.max(np.abs(z_population)) > 10 * Z_MAX


# --- curvature -------------------------------------------------------------------------------


def test_table_curvature_bound_holds_and_is_nearly_attained():
    table = _model("table")
    pi, _, _ = _truth(table)
    rng = np.random.default_rng(6)
    scales = np.array([0.1, 0.5, 1.0, 3.0, 10.0])
    ws = scales[:, None] * rng.normal(size=(len(scales), V * V))
    # a point where the bound is nearly attained: for the context of largest pi, two equal
    # large logits and the rest very negative, so q_c ~ (1/2, 1/2, 0, ...) and the Hessian block
    # pi_c (diag q - q q^T) has eigenvalue ~ pi_c / 2
    c = int(np.argmax(pi))
    sharp = np.zeros((V, V))
    sharp[c] = -8.0
    sharp[c, :2] = 8.0
    ws = np.concatenate([ws, sharp.reshape(1, -1)]).astype(np.float32)
    out = _eval(table, ws)
    eigenvalues, bounds = np.asarray(out["eigenvalues"]), np.asarray(out["bound"])
    lam_max = eigenvalues[:, -1]
    np.testing.assert_allclose(bounds, 0.5 * pi.max(), rtol=EPS32)
    # float32 Hessian entries: eigenvalues are exact to ~eps * |H| * sqrt(d)
    tol = 1e-5 * pi.max()
    assert np.all(lam_max <= bounds + tol), lam_max / bounds
    assert lam_max[-1] >= 0.999 * bounds[-1]  # 1 - q_1 - q_2 ~ 10 e^-16: attained to ~1e-6
    # the pointwise Gershgorin bound max_c pi_c max_y 2 q_cy (1 - q_cy) holds too
    for w, lam in zip(ws, lam_max, strict=True):
        q = np.exp(_np_log_softmax(w.astype(np.float64).reshape(V, V)))
        assert lam <= np.max(pi[:, None] * 2 * q * (1 - q)) + tol
    # a convex loss: every eigenvalue >= 0 (up to rounding)
    assert eigenvalues.min() >= -tol


@pytest.mark.parametrize("kind", ["factorized", "factorized_nobias"])
def test_factorized_curvature_bound_holds(kind):
    model = _model(kind)
    assert isinstance(model, Factorized)
    rng = np.random.default_rng(7)
    n = model.vocab_size * model.width
    points = []
    # (E scale, U scale, b scale): balanced, embedding- or unembedding-dominated, large loss
    for e, u, b in [(1, 1, 0), (0.3, 0.3, 1), (3, 0.3, 0), (0.3, 3, 2), (2, 2, 3), (0.01, 0.01, 0)]:
        w = np.concatenate([e * rng.normal(size=n), u * rng.normal(size=n), b * rng.normal(size=V)])
        points.append(w[: model.n_params])
    ws = np.stack(points).astype(np.float32)
    out = _eval(model, ws)
    eigenvalues, bounds = np.asarray(out["eigenvalues"]), np.asarray(out["bound"])
    lam_max = eigenvalues[:, -1]
    # float32 Hessian: eigenvalues exact to ~eps * |H| * sqrt(d), far below 1e-4 * bound
    assert np.all(lam_max <= bounds * (1 + 1e-4)), lam_max / bounds
    assert np.all(lam_max > 0)  # not a vacuous comparison
    # the bound, recomputed from its documented formula in NumPy
    pi, _, _ = _truth(model)
    for w, bound in zip(ws, bounds, strict=True):
        E, U, _ = _np_parts(model, w)
        terms = [pi.max() * np.sum(U**2), np.sum(pi * np.sum(E**2, axis=1))]
        terms += [1.0] if model.bias else []
        expected = 0.5 * len(terms) * max(terms) + math.sqrt(2) * np.linalg.norm(pi)
        assert bound == pytest.approx(expected, rel=1e-5)


def test_factorized_split_and_n_params():
    for bias in (True, False):
        model = _model("factorized" if bias else "factorized_nobias")
        assert isinstance(model, Factorized)
        n = V * WIDTH
        assert model.n_params == 2 * n + (V if bias else 0)
        w = np.arange(model.n_params, dtype=np.float32)
        E, U, b = model.split(w)
        assert E.shape == (V, WIDTH) and U.shape == (WIDTH, V) and b.shape == (V,)
        # the layout w = [vec E, vec U, b], row-major
        np.testing.assert_array_equal(E, np.arange(n).reshape(V, WIDTH))
        np.testing.assert_array_equal(U, np.arange(n, 2 * n).reshape(WIDTH, V))
        np.testing.assert_array_equal(np.asarray(b), np.arange(2 * n, 2 * n + V) if bias else 0)
    assert _model("table").n_params == V * V


# --- decomposition ---------------------------------------------------------------------------


def _np_relax(model: LanguageModel, w: np.ndarray, steps: int) -> np.ndarray:
    """The documented relaxation ``r <- r - grad L(r) / B(r)`` in float64 NumPy."""
    pi, P, _ = _truth(model)
    r = w.astype(np.float64)
    for _ in range(steps):
        if isinstance(model, BigramTable):
            bound = 0.5 * pi.max()
        else:
            E, U, _ = _np_parts(model, r)
            terms = [pi.max() * np.sum(U**2), np.sum(pi * np.sum(E**2, axis=1))]
            terms += [1.0] if model.bias else []
            bound = 0.5 * len(terms) * max(terms) + math.sqrt(2) * np.linalg.norm(pi)
        r = r - _np_grad(model, r, pi, P) / bound
    return r


@pytest.mark.parametrize("kind", ["table", "factorized"])
def test_decomposition_by_relaxation(kind):
    model = _model(kind)
    pi, P, _ = _truth(model)
    ws = _points(model, scales=(0.3, 1.0, 3.0), seed=8)
    out = _eval(model, ws)
    parts, loss = out["parts"], np.asarray(out["loss"])
    river, hill = np.asarray(parts.river_loss), np.asarray(parts.hill_loss)
    # hill_loss is defined as loss - river_loss: their float32 sum is the loss to one rounding
    assert np.all(np.abs(river + hill - loss) <= np.spacing(loss))
    # each relaxation step with rate 1/B (B >= lambda_max) decreases the loss: hill_loss >= 0,
    # and at these random points by a clear margin
    assert np.all(hill > 0.0)
    assert np.all(river >= float(model.corpus.entropy_floor()) - 1e-6)
    # the river point is the documented relaxation, recomputed in float64 NumPy; float32 GD
    # steps from the same start stay within ~1e-5 relative (contracting steps, K = 16)
    for i, w in enumerate(ws):
        r = _np_relax(model, w, model.relax_steps)
        np.testing.assert_allclose(np.asarray(parts.hill_displacement[i]), w - r, atol=1e-4)
        assert float(parts.river_coord[i]) == pytest.approx(np.linalg.norm(r), rel=1e-5)
        assert river[i] == pytest.approx(_np_loss(model, r, pi, P), rel=1e-5)


def test_zero_relaxation_steps_give_zero_hill():
    model = _model("table", relax_steps=0)
    ws = _points(model, seed=9)
    out = _eval(model, ws, curvature=False)
    parts = out["parts"]
    np.testing.assert_array_equal(np.asarray(parts.hill_loss), 0.0)
    np.testing.assert_array_equal(np.asarray(parts.hill_displacement), 0.0)
    np.testing.assert_array_equal(np.asarray(parts.river_loss), np.asarray(out["loss"]))
    np.testing.assert_allclose(np.asarray(parts.river_coord), np.linalg.norm(ws, axis=1), 1e-6)


# --- sweeps ----------------------------------------------------------------------------------

STEPS = 100


def _runs(ds: xr.Dataset) -> xr.Dataset:
    """The sweep's runs along one dim ``run`` (row-major over the dims before ``step``, as
    ``sweep`` orders them: schedule dims, then ``seed``) for per-run checks."""
    run_dims = list(ds.loss.dims[:-1])
    assert run_dims[-1] == "seed" and ds.loss.dims[-1] == "step"
    return ds.stack(run=run_dims).transpose("run", ...)


def _check_sweep(model: LanguageModel, ds: xr.Dataset, n_runs: int) -> None:
    pi, P, cls = _truth(model)
    names = list(model.corpus.class_names)
    run_dims = ds.loss.dims[:-1]
    assert ds.class_loss.dims == (*run_dims, "step", "context_class")
    assert ds.class_excess.dims == (*run_dims, "step", "context_class")
    ds = _runs(ds)
    assert ds.sizes["run"] == n_runs and ds.sizes["step"] == STEPS // 20 + 1
    assert ds.class_loss.dims == ("run", "step", "context_class")
    assert ds.class_excess.dims == ("run", "step", "context_class")
    assert list(ds.context_class.values) == names
    assert ds.excess_loss.dims == ("run", "step")
    for var in ("loss", "river_loss", "hill_loss", "class_loss", "class_excess", "excess_loss"):
        assert np.all(np.isfinite(ds[var].values)), var
    assert not ds.diverged.values.any()
    loss = ds.loss.values
    floor = float(model.corpus.entropy_floor())
    # training works: every run removes at least a third of its initial excess loss
    assert np.all(loss[:, -1] - floor < (2 / 3) * (loss[:, 0] - floor)), loss
    np.testing.assert_allclose(ds.excess_loss.values, loss - floor, atol=1e-5)
    # the recorded class losses are those of the recorded parameters (NumPy, float64)
    params = ds.params.values
    for run in range(n_runs):
        for step in (0, -1):
            ell = _np_context_losses(model, params[run, step], P)
            expected = [np.sum(pi[cls == c] * ell[cls == c]) / pi[cls == c].sum() for c in range(6)]
            np.testing.assert_allclose(ds.class_loss.values[run, step], expected, atol=1e-5)


def test_table_sweeps_with_sgd_over_a_schedule_grid():
    model = _model("table")
    grid = schedules.grid(schedules.wsd, {"peak": [2.0, 4.0]}, total_steps=STEPS)
    kwargs = {"seeds": 2, "steps": STEPS, "record_every": 20, "record_params": True}
    ds = sweep(model, optimizers.sgd(), grid, progress=False, **kwargs)
    _check_sweep(model, ds, n_runs=4)
    assert ds.loss.dims == ("peak", "seed", "step")
    runs = _runs(ds)
    np.testing.assert_array_equal(runs.params.values[:, 0], 0.0)  # init_scale 0: W = 0 ...
    np.testing.assert_allclose(runs.loss.values[:, 0], np.log(V), rtol=1e-6)  # ... loss log V
    again = sweep(model, optimizers.sgd(), grid, progress=False, **kwargs)
    xr.testing.assert_identical(ds, again)  # same seeds: bit-identical


def test_factorized_sweeps_with_adam_over_a_schedule_stack():
    model = _model("factorized")
    stack = schedules.stack([schedules.constant(0.03), schedules.constant(0.1)])
    kwargs = {"seeds": [3, 4], "steps": STEPS, "record_every": 20, "record_params": True}
    ds = sweep(model, optimizers.adam(), stack, progress=False, **kwargs)
    _check_sweep(model, ds, n_runs=4)
    assert list(ds.seed.values) == [3, 4]
    assert list(_runs(ds).seed.values) == [3, 4, 3, 4]
    start = _runs(ds).params.values[:, 0]
    np.testing.assert_array_equal(start[:, 2 * V * WIDTH :], 0.0)  # the bias starts at 0
    assert np.all(start[:, : 2 * V * WIDTH] != 0.0)  # E and U are random ...
    np.testing.assert_array_equal(start[0], start[2])  # ... and depend only on the seed
    assert not np.array_equal(start[0], start[1])
    again = sweep(model, optimizers.adam(), stack, progress=False, **kwargs)
    xr.testing.assert_identical(ds, again)


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda c: bigram_table(c, batch_size=0), "batch_size"),
        (lambda c: bigram_table(c, relax_steps=-1), "relax_steps"),
        (lambda c: bigram_table(c, init_scale=-1.0), "init_scale"),
        (lambda c: factorized(c, 0), "width"),
        (lambda c: factorized(c, 2, init_scale=float("nan")), "init_scale"),
    ],
)
def test_bad_model_fields(build, field):
    with pytest.raises(ValueError, match=field):
        build(_corpus())


def test_bad_finite_data_for_the_model():
    corpus = _corpus()
    data = finite_corpus(corpus, jax.random.key(1), 40)
    bigram_table(corpus, data=data)  # the baseline passes
    bad = type(data)(contexts=data.contexts, targets=data.targets.at[0].set(V))
    with pytest.raises(ValueError, match="targets"):
        bigram_table(corpus, data=bad)
