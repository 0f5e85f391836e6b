r"""Batch size (the noise scale ``sigma^2 / B``) as a swept field of the noisy landscapes and the
bigram language model, against the extended noise-floor theory.

* Noise: for every noisy landscape the stochastic gradient's noise at batch size ``B`` is the
  noise at ``B = 1`` divided by ``sqrt(B)`` for the same key (float rounding), and its
  Monte-Carlo variance is ``sigma^2 / B`` per coordinate.
* Bigram table: the minibatch gradient at ``B <= B_max`` is the mean gradient of the first ``B``
  drawn pairs; it is unbiased at every ``B``, and ``E ||g_B - grad L||^2`` equals
  ``tr Sigma_1 / B`` with the single-pair covariance ``Sigma_1`` computed exactly (so the
  covariance at ``B`` is ``B_max / B`` times that at ``B_max``); at ``B = B_max`` it equals the
  former unmasked formula bit for bit.
* ``sweep`` over a batch of ``batch_size`` values equals separate sweeps (and the values become a
  dataset coordinate).
* SGD on a noisy quadratic at several ``B`` reaches the stationary hill loss
  ``eta sigma^2 / (2 B (2 - eta lambda))``: the exact recursion with noise std
  ``sigma / sqrt(B)`` converges to it, and a Monte-Carlo ``sweep`` matches the recursion within
  ``Z_MAX`` standard errors (spread over seeds of per-seed time averages).

Monte-Carlo tolerances: ``Z_MAX = 4`` standard errors for a handful of correlated comparisons per
test (``5`` for the max over the bigram table's 64 coordinates, as in ``test_lm_model``); the
keys and seeds are fixed, so the tests are deterministic.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rivervalley import optimizers, schedules, sweep, theory
from rivervalley.landscapes import noisy_quadratic, river_valley, toy, weighted_l1
from rivervalley.lm import BigramCorpus, bigram_table, factorized
from rivervalley.pytree import as_float

Z_MAX = 4.0
SIZES = (1.0, 4.0, 16.0)
N_KEYS = 4000

LANDSCAPES = {
    "toy": lambda: toy(),
    "valley": lambda: river_valley(4, noise_std=[0.3, 0.5, 0.2, 0.7], curvature_growth=0.5),
    "quadratic": lambda: noisy_quadratic([2.0, 0.5, 0.1], [0.3, 0.6, 1.2], [1.0, -1.0, 0.5]),
    "l1": lambda: weighted_l1([1.0, 0.2], [0.4, 0.9], [0.5, -0.3]),
}


def _with_batch(landscape, batch_size):
    return dataclasses.replace(landscape, batch_size=as_float(batch_size)).validate()


@jax.jit
def _draws(landscape, w, keys):
    return jax.vmap(landscape.stochastic_grad, in_axes=(None, 0))(w, keys)


@pytest.mark.parametrize("name", sorted(LANDSCAPES))
def test_landscape_noise_variance_scales_as_one_over_batch(name):
    base = LANDSCAPES[name]()
    w = base.init(jax.random.key(0)) + 0.1
    keys = jax.random.split(jax.random.key(1), N_KEYS)
    exact = np.asarray(base.grad(w))
    sigma = np.asarray(base.noise_std)
    noise_1 = np.asarray(_draws(base, w, keys)) - exact
    for b in SIZES:
        landscape = _with_batch(base, b)
        noise_b = np.asarray(_draws(landscape, w, keys)) - exact
        np.testing.assert_allclose(
            noise_b, noise_1 / np.sqrt(b), rtol=1e-5, atol=1e-5 * np.abs(exact).max()
        )
        np.testing.assert_allclose(np.asarray(landscape.effective_noise_std()), sigma / np.sqrt(b))
        # Monte Carlo: unbiased, variance sigma^2 / B (Gaussian: SE of a variance sqrt(2/K) v)
        var = sigma**2 / b
        z_mean = noise_b.mean(0) / np.sqrt(var / N_KEYS)
        z_var = (noise_b.var(0, ddof=1) - var) / (var * np.sqrt(2.0 / (N_KEYS - 1)))
        assert np.max(np.abs(z_mean)) <= Z_MAX, z_mean
        assert np.max(np.abs(z_var)) <= Z_MAX, z_var


def test_default_batch_size_is_one_and_the_gradient_bound_sees_it():
    for build in LANDSCAPES.values():
        assert float(build().batch_size) == 1.0
    l1 = weighted_l1([1.0, 0.2], [0.4, 0.9], 0.5, batch_size=4.0)
    expected = np.sqrt(1.0 + 0.04 + (0.16 + 0.81) / 4.0)
    np.testing.assert_allclose(float(l1.gradient_bound()), expected, rtol=1e-6)


# --- the bigram table --------------------------------------------------------------------------

V = 8
B_MAX = 16


@functools.cache
def _corpus() -> BigramCorpus:
    """A small corpus built in NumPy (no per-op compilations): 3 deterministic contexts, 3
    uniform over 3 tokens, 2 with Zipf(1) next tokens over the vocabulary; non-uniform ``pi``."""
    rng = np.random.default_rng(3)
    rows = []
    for c in range(V):
        p = np.zeros(V)
        tokens = rng.permutation(V)
        if c < 3:
            p[tokens[0]] = 1.0
        elif c < 6:
            p[tokens[:3]] = 1.0 / 3.0
        else:
            p[tokens] = 1.0 / np.arange(1, V + 1)
        rows.append(p / p.sum())
    return BigramCorpus(
        context_probs=as_float(rng.dirichlet(np.full(V, 4.0))),
        transition=as_float(np.stack(rows)),
        context_class=jnp.asarray([0, 0, 0, 1, 1, 1, 2, 2], dtype=jnp.int32),
        class_names=("deterministic", "uniform(k=3)", "zipf(s=1)"),
    ).validate()


def _table(batch_size, **kwargs):
    return bigram_table(_corpus(), batch_size=batch_size, max_batch_size=B_MAX, **kwargs)


def _table_point(seed=0):
    return as_float(0.7 * np.random.default_rng(seed).standard_normal(V * V))


def _single_pair_moments(model, w):
    """Exact mean ``grad L`` and per-coordinate variance of one pair's gradient
    ``e_c (x) (q_c - e_y)``: ``E g_cy'^2 = pi_c (q^2 - 2 q P_cy' + P_cy')``."""
    pi = np.asarray(model.corpus.context_probs, float)[:, None]
    P = np.asarray(model.corpus.transition, float)
    q = np.asarray(jax.nn.softmax(np.asarray(w).reshape(V, V), axis=-1), float)
    mean = pi * (q - P)
    second = pi * (q**2 - 2.0 * q * P + P)
    return mean.reshape(-1), (second - mean**2).reshape(-1)


@jax.jit
def _minibatch_pieces(model, w, key):
    """The minibatch gradient, the weighted minibatch loss, and per drawn pair its gradient
    (``jax.grad`` of its own loss, shape ``(B_max, n_params)``) and its loss ``(B_max,)``."""
    contexts, targets = model.sample(key)
    loss = model.batch_loss(w, contexts, targets, model.batch_weights())

    def one(c, t):
        return jax.value_and_grad(model.batch_loss)(w, c[None], t[None])

    pair_loss, pair_grad = jax.vmap(one)(contexts, targets)
    return model.stochastic_grad(w, key), loss, pair_grad, pair_loss


def test_bigram_minibatch_is_the_mean_of_the_first_b_pairs():
    """Deterministic: at every ``B`` (table and factorised model) the gradient equals the mean of
    ``jax.grad`` of the first ``B`` drawn pairs' losses, and ``batch_loss`` with
    ``batch_weights`` is their mean loss."""
    for model in (_table(B_MAX), factorized(_corpus(), 3, batch_size=B_MAX)):
        w = 0.3 * _table_point(1)[: model.n_params]
        for b in (1, 5, B_MAX):
            m = dataclasses.replace(model, batch_size=as_float(b)).validate()
            got, loss, pair_grad, pair_loss = _minibatch_pieces(m, w, jax.random.key(b))
            first = np.asarray(pair_grad, float)[:b].mean(0)
            np.testing.assert_allclose(np.asarray(got), first, rtol=0, atol=1e-6)
            mean = np.asarray(pair_loss, float)[:b].mean()
            np.testing.assert_allclose(float(loss), mean, rtol=1e-6)


def _unmasked_grad(model, w, key):
    """The minibatch gradient before the batch size was a field: every drawn pair, ``/ B``."""
    contexts, targets = model.sample(key)
    logits, pullback = jax.vjp(lambda v: model.logits(v, contexts), w)
    probs = jax.nn.softmax(logits, axis=-1)
    g_logits = probs - jax.nn.one_hot(targets, model.vocab_size, dtype=probs.dtype)
    return pullback(g_logits / model.max_batch_size)[0]


def test_bigram_full_batch_is_bit_identical_to_the_unmasked_gradient():
    for model in (_table(B_MAX), factorized(_corpus(), 3, batch_size=7)):
        w = 0.3 * _table_point(2)[: model.n_params]
        for seed in range(3):
            key = jax.random.key(seed)
            old = np.asarray(jax.jit(_unmasked_grad)(model, w, key))
            new = np.asarray(jax.jit(type(model).stochastic_grad)(model, w, key))
            np.testing.assert_array_equal(new, old)


def test_bigram_gradient_is_unbiased_with_covariance_over_b():
    model = _table(B_MAX)
    w = _table_point(3)
    mean1, var1 = _single_pair_moments(model, w)
    np.testing.assert_allclose(np.asarray(model.grad(w)), mean1, rtol=1e-5, atol=1e-7)
    keys = jax.random.split(jax.random.key(7), N_KEYS)
    traces = {}
    for b in (1, 4, B_MAX):
        samples = np.asarray(_draws(_table(b), w, keys), float)
        # unbiased: per coordinate, SE from the exact variance var1 / B (coordinates that never
        # vary, var1 = 0, must be exact)
        se = np.sqrt(var1 / b / N_KEYS)
        err = samples.mean(0) - mean1
        moving = var1 > 1e-12
        assert np.max(np.abs(err[moving] / se[moving])) <= 5.0
        np.testing.assert_allclose(err[~moving], 0.0, atol=1e-6)
        # covariance: E ||g_B - grad||^2 = tr(Sigma_1) / B, SE from the spread of the squares
        sq = np.sum((samples - mean1) ** 2, axis=1)
        traces[b] = sq.mean()
        z = (sq.mean() - var1.sum() / b) / (sq.std(ddof=1) / np.sqrt(N_KEYS))
        assert abs(z) <= Z_MAX, (b, z)
        # per coordinate, the sample variance against var1 / B, SE sqrt((m4 - v^2) / K) from the
        # sample fourth central moment (heavy-tailed at B = 1: rare contexts)
        centred = samples[:, moving] - mean1[moving]
        m4 = np.mean(centred**4, axis=0)
        z_var = (np.mean(centred**2, axis=0) - var1[moving] / b) / np.sqrt(
            (m4 - (var1[moving] / b) ** 2) / N_KEYS
        )
        assert np.max(np.abs(z_var)) <= 5.0, (b, z_var)
    # the covariance at B is B_max / B times the one at B_max (here within a few per cent)
    for b in (1, 4):
        np.testing.assert_allclose(traces[b] / traces[B_MAX], B_MAX / b, rtol=0.1)


# --- sweeping the batch size -------------------------------------------------------------------


def test_bigram_sweep_over_batch_sizes_equals_separate_sweeps():
    schedule = schedules.constant(0.5)

    def run(model):
        return sweep(
            model, optimizers.sgd(), schedule, seeds=2, steps=10, record_every=10, progress=False
        )

    batched = run(_table([2.0, 8.0], relax_steps=0))
    assert batched.loss.dims == ("batch_size", "seed", "step")
    assert list(batched["batch_size"].values) == [2.0, 8.0]
    for b in (2.0, 8.0):
        alone = run(_table(b, relax_steps=0))
        rows = batched.sel(batch_size=b)
        assert rows.loss.dims == alone.loss.dims == ("seed", "step")
        np.testing.assert_array_equal(rows.loss.values, alone.loss.values)


# --- the stationary hill loss against the theory ------------------------------------------------

CURVATURES = np.array([1.0, 6.0])  # eta lambda = 0.25 and 1.5: the curvature term matters
SIGMA = 0.8
LR = 0.25
STEPS = 400
SEEDS = 256
RECORD_EVERY = 4


def test_exact_recursion_converges_to_the_batch_floor():
    for b in SIZES:
        lrs = jnp.full(STEPS, LR)
        direct = theory.sgd_quadratic_moments(CURVATURES, SIGMA / np.sqrt(b), 0.0, 0.0, lrs)
        keyword = theory.sgd_quadratic_moments(CURVATURES, SIGMA, 0.0, 0.0, lrs, batch_size=b)
        np.testing.assert_allclose(np.asarray(keyword.var), np.asarray(direct.var), rtol=1e-6)
        per_dir = 0.5 * CURVATURES * np.asarray(direct.var)[-1]
        floor = theory.stationary_hill_loss(LR, CURVATURES, SIGMA, b)
        np.testing.assert_allclose(per_dir, np.asarray(floor), rtol=1e-5)
        np.testing.assert_allclose(
            floor, LR * SIGMA**2 / (2 * b * (2 - LR * CURVATURES)), rtol=1e-12
        )


def _stationary_sweep(batch_size):
    return sweep(
        noisy_quadratic(CURVATURES, SIGMA, 0.0, batch_size=batch_size),
        optimizers.sgd(),
        schedules.constant(LR),
        seeds=SEEDS,
        steps=STEPS,
        record_every=RECORD_EVERY,
        progress=False,
    )


@functools.cache
def _batched_stationary_sweep():
    return _stationary_sweep(SIZES)


def test_sweep_over_batch_sizes_equals_separate_sweeps():
    batched = _batched_stationary_sweep()
    assert batched.loss.dims == ("batch_size", "seed", "step")
    assert list(batched["batch_size"].values) == list(SIZES)
    for i in (0, 2):  # the unbatched program is compiled once for both
        alone = _stationary_sweep(SIZES[i])
        rows = batched.isel(batch_size=i)
        assert rows.loss.dims == alone.loss.dims == ("seed", "step")
        np.testing.assert_array_equal(rows.loss.values, alone.loss.values)
        np.testing.assert_array_equal(rows.hill_loss.values, alone.hill_loss.values)


def test_sgd_stationary_hill_loss_at_several_batch_sizes():
    ds = _batched_stationary_sweep()
    step = ds["step"].to_numpy()
    window = step >= STEPS // 4
    loss = ds.loss.transpose("batch_size", "seed", "step").values[:, :, window]
    assert loss.shape[:2] == (len(SIZES), SEEDS)
    per_seed = loss.mean(-1)  # (B, seed): independent across seeds
    lrs = jnp.full(STEPS, LR)
    for i, b in enumerate(SIZES):
        moments = theory.sgd_quadratic_moments(CURVATURES, SIGMA, 0.0, 0.0, lrs, batch_size=b)
        expected_t = np.asarray(theory.expected_quadratic_loss(CURVATURES, moments))[step][window]
        expected = expected_t.mean()
        floor = float(np.sum(theory.stationary_hill_loss(LR, CURVATURES, SIGMA, b)))
        np.testing.assert_allclose(expected, floor, rtol=1e-4)  # stationary after STEPS / 4
        se = per_seed[i].std(ddof=1) / np.sqrt(SEEDS)
        assert abs(per_seed[i].mean() - expected) <= Z_MAX * se, (b, per_seed[i].mean(), floor)
        assert se < 0.05 * floor  # power: a 20 % error would fail
    # the floor scales as 1/B: B = 1 over B = 16 is 16 within Monte-Carlo error
    ratio = per_seed[0].mean() / per_seed[-1].mean()
    assert abs(ratio / 16.0 - 1.0) < 0.15, ratio


def test_linear_scaling_rule_and_where_it_breaks():
    lam, sigma, b = np.array([0.01, 1.0, 4.0]), 0.5, 2.0
    for k in (2.0, 4.0):
        base = theory.stationary_hill_loss(0.1, lam, sigma, b)
        scaled = theory.stationary_hill_loss(0.1 * k, lam, sigma, k * b)
        ratio = np.asarray(scaled / base)
        np.testing.assert_allclose(ratio, theory.linear_scaling_ratio(0.1, lam, k), rtol=1e-6)
        assert abs(ratio[0] - 1.0) < 0.01 * k  # eta lambda = 0.001: the rule holds
        # eta lambda = 0.4, k eta lambda = 0.8 or 1.6: off by (k - 1) eta lambda / 2 or more
        assert ratio[2] > 1.0 + (k - 1.0) * 0.2, ratio


def test_theory_batch_size_arguments():
    lam, sigma, b = np.array([10.0, 2.0]), np.array([0.3, 0.5]), 8.0
    # defaults are the former formulas
    np.testing.assert_array_equal(
        theory.stationary_hill_loss(0.1, lam, sigma),
        0.1 * sigma**2 / (2.0 * (2.0 - 0.1 * lam)),
    )
    decay = jnp.linspace(0.1, 0.0, 50)
    with_b = theory.hill_cliff(lam, sigma, 0.1, decay, b)
    scaled = theory.hill_cliff(lam, sigma / np.sqrt(b), 0.1, decay)
    for got, want in zip(with_b, scaled, strict=True):
        np.testing.assert_allclose(float(got), float(want), rtol=1e-6)
    np.testing.assert_allclose(
        float(with_b.stationary), float(np.sum(theory.stationary_hill_loss(0.1, lam, sigma, b)))
    )
    valley = theory.valley_stationary_hill_loss(0.1, 10.0, 0.3, 0.5, 0.2, batch_size=b)
    np.testing.assert_allclose(
        valley, theory.valley_stationary_hill_loss(0.1, 10.0, 0.3, 0.5, 0.2) / b, rtol=1e-6
    )
    np.testing.assert_allclose(
        theory.noise_floor_slope(0.1, lam, b), theory.noise_floor_slope(0.1, lam) / b, rtol=1e-6
    )


# --- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0.0, 0.5, -1.0, float("nan"), float("inf")])
def test_landscape_batch_size_below_one_or_not_finite(value):
    for build in (
        lambda: toy(batch_size=value),
        lambda: river_valley(3, batch_size=value),
        lambda: noisy_quadratic([1.0], 1.0, 0.0, batch_size=value),
        lambda: weighted_l1([1.0], 1.0, 0.0, batch_size=value),
        lambda: _with_batch(LANDSCAPES["quadratic"](), [2.0, value]),
    ):
        with pytest.raises(ValueError, match="batch_size"):
            build()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 17, "max_batch_size": 16}, "batch_size"),
        ({"batch_size": [4, 32], "max_batch_size": 16}, "batch_size"),
        ({"batch_size": 2.5}, "batch_size"),  # not an integer
        ({"batch_size": float("nan")}, "batch_size"),
        ({"batch_size": 1, "max_batch_size": 0}, "max_batch_size"),
    ],
)
def test_bigram_batch_size_validation(kwargs, field):
    for build in (bigram_table, lambda c, **kw: factorized(c, 2, **kw)):
        with pytest.raises(ValueError, match=field):
            build(_corpus(), **kwargs)
