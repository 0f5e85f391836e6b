"""Bigram corpora (``rivervalley.lm.data``): per-class entropies against closed forms, class
bookkeeping, the samplers' distributions (against the corpus's own ``pi`` and ``P``), finite
corpora and input validation.

Sampling checks use fixed keys, so they are deterministic; their tolerances are nevertheless the
ones a fresh random sample would pass with high probability (a few standard errors, with the
number of simultaneous comparisons taken into account), so they do not depend on a lucky key.

Run time is dominated by XLA compilations, one per new array shape, so the tests share a few
corpora of one shape (V = 12, two contexts per class) and a jitted sampler.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rivervalley.lm import (
    BigramCorpus,
    ContextClass,
    FiniteCorpus,
    bigram_corpus,
    deterministic,
    dirichlet,
    finite_corpus,
    uniform,
    zipf,
)
from rivervalley.lm.data import _class_counts

EPS32 = float(np.finfo(np.float32).eps)
EPS64 = float(np.finfo(np.float64).eps)
# Per-cell Monte-Carlo tolerance in standard errors.  At most V + V^2 = 156 cells are compared
# at once; the union bound gives P(any |z| > 4.5) <= 156 * 6.8e-6 ~ 1e-3 under the normal
# approximation (used only for cells with an expected count >= 20).
Z_MAX = 4.5
N_SAMPLE = 2**16

# one context class of each kind: 2 contexts each for V = 12
MIX = [
    (deterministic(), 1.0),
    (uniform(4), 1.0),
    (zipf(1.3, support=6), 1.0),
    (zipf(0.8), 1.0),
    (dirichlet(0.3), 1.0),  # (both Dirichlet classes share one shape: one compilation)
    (dirichlet(2.0), 1.0),
]
V = 12
# a non-uniform context distribution with zero-probability contexts at both ends (0 and V - 1),
# the edge cases of the inverse-CDF sampler
PI_EDGES = np.array([0.0, 1.0, 2.0, 3.0, 1.5, 2.5, 1.0, 0.5, 2.0, 1.0, 3.0, 0.0])
PI_EDGES = PI_EDGES / PI_EDGES.sum()
FINITE_SIZE = 40


@functools.cache
def _corpus(key: int = 0, pi: str = "uniform") -> BigramCorpus:
    random_pi = np.random.default_rng(7).dirichlet(np.ones(V))
    probs = {"uniform": None, "edges": PI_EDGES, "random": random_pi}
    return bigram_corpus(jax.random.key(key), V, MIX, context_probs=probs[pi])


@functools.cache
def _finite() -> FiniteCorpus:
    return finite_corpus(_corpus(11, "edges"), jax.random.key(1), FINITE_SIZE)


@functools.partial(jax.jit, static_argnums=2)
def _sample(source: BigramCorpus | FiniteCorpus, key: jax.Array, n: int):
    """``source.sample`` compiled once per shape (much faster than op-by-op dispatch)."""
    return source.sample(key, n)


def _entropy_np(rows: np.ndarray) -> np.ndarray:
    """``-sum_y p log p`` per row in float64 (``0 log 0 = 0``)."""
    p = np.asarray(rows, dtype=np.float64)
    logp = np.log(np.where(p > 0, p, 1.0))
    return -np.sum(p * logp, axis=-1)


def _zipf_np(s: float, m: int) -> np.ndarray:
    """``p_r ∝ r^-s``, ``r = 1..m``, in float64."""
    w = np.arange(1, m + 1, dtype=np.float64) ** -s
    return w / w.sum()


# --- entropies and class structure -----------------------------------------------------------


def test_conditional_entropies_match_closed_forms():
    corpus = _corpus()
    P = np.asarray(corpus.transition, dtype=np.float64)
    H = np.asarray(corpus.conditional_entropy(), dtype=np.float64)
    cls = np.asarray(corpus.context_class)
    np.testing.assert_array_equal(cls, np.repeat(np.arange(6), 2))
    # float32 rows: each of <= V terms p log p carries a relative rounding error of a few eps,
    # so |H - H_exact| <= V * 4 eps * log V is a safe bound (~1.4e-5 here)
    tol = V * 4 * EPS32 * np.log(V)
    expected = {
        0: 0.0,  # deterministic: one token with probability 1
        1: np.log(4.0),  # uniform over k = 4 tokens
        2: _entropy_np(_zipf_np(1.3, 6)),  # Zipf over 6 tokens
        3: _entropy_np(_zipf_np(0.8, V)),  # Zipf over the whole vocabulary
    }
    for c, h in expected.items():
        np.testing.assert_allclose(H[cls == c], h, rtol=0, atol=tol)
    np.testing.assert_array_equal(H[cls == 0], 0.0)  # 1 log 1 and 0 log 0 are exactly 0
    # Dirichlet rows are random: check against NumPy applied to the drawn rows themselves
    dirichlet_rows = np.isin(cls, [4, 5])
    np.testing.assert_allclose(H[dirichlet_rows], _entropy_np(P[dirichlet_rows]), atol=tol)
    # 0 <= H_c <= log(support size)
    support = np.count_nonzero(P, axis=1)
    assert np.all(H >= 0.0) and np.all(np.log(support) - H >= -tol)


def test_rows_are_distributions_with_the_documented_supports():
    corpus = _corpus(3)
    P = np.asarray(corpus.transition, dtype=np.float64)
    cls = np.asarray(corpus.context_class)
    assert P.shape == (V, V)
    assert np.all(P >= 0.0)
    # float32 rows: the sum of <= V rounded numbers is within V eps of 1
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=0, atol=V * EPS32)
    nonzero = np.count_nonzero(P, axis=1)
    np.testing.assert_array_equal(nonzero[cls == 0], 1)
    np.testing.assert_array_equal(P[cls == 0].max(axis=1), 1.0)
    np.testing.assert_array_equal(nonzero[cls == 1], 4)  # uniform(4): exactly k tokens
    np.testing.assert_allclose(P[cls == 1][P[cls == 1] > 0], 0.25, rtol=EPS32)
    np.testing.assert_array_equal(nonzero[cls == 2], 6)  # zipf, m = 6: r^-s > 0 for every r
    np.testing.assert_array_equal(nonzero[cls == 3], V)
    # Dirichlet rows: float32 softmax of log-Gamma draws; with a = 0.3 a draw may underflow
    # to an exact 0, so only the a = 2 rows are sure to have full support
    assert np.all(nonzero[cls == 4] >= 2)
    np.testing.assert_array_equal(nonzero[cls == 5], V)
    # the Zipf rows are p_r ∝ r^-s up to the random choice of tokens
    for c, (s, m) in {2: (1.3, 6), 3: (0.8, V)}.items():
        for row in P[cls == c]:
            got = np.sort(row[row > 0])[::-1]
            np.testing.assert_allclose(got, _zipf_np(s, m), rtol=8 * EPS32)
    # the tokens are random: the two contexts of a class have different supports / orders
    # (for uniform(4): equal 4-subsets of 12 tokens have probability 1/495)
    for c in (1, 2, 3):
        first, second = P[cls == c]
        assert not np.array_equal(first, second)


def test_zipf_rows_are_exact_in_float64(x64):
    # under float64 every class is drawn in float64, so a row is normalised to float64 precision
    # (and the population loss at the optimum is the entropy floor to ~1e-15, not ~1e-7)
    rows = np.asarray(zipf(1.3, support=6).draw(jax.random.key(0), 2, V))
    assert rows.dtype == np.float64
    np.testing.assert_allclose(rows.sum(axis=1), 1.0, rtol=0, atol=8 * EPS64)
    for row in rows:
        np.testing.assert_allclose(np.sort(row[row > 0])[::-1], _zipf_np(1.3, 6), rtol=8 * EPS64)


def test_entropy_floor_is_pi_weighted_mean_of_conditional_entropies():
    corpus = _corpus(1, "random")
    pi32 = np.asarray(corpus.context_probs, dtype=np.float64)
    pi = np.random.default_rng(7).dirichlet(np.ones(V))
    np.testing.assert_allclose(pi32, pi, rtol=EPS32)  # the given pi, rounded to float32
    P = np.asarray(corpus.transition, dtype=np.float64)
    expected = float(np.sum(pi32 * _entropy_np(P)))
    # a pi-weighted sum of V float32 terms of size <= log V: error <= V eps log V
    assert abs(float(corpus.entropy_floor()) - expected) <= V * EPS32 * np.log(V)
    assert 0.0 < expected < np.log(V)


def test_class_average_is_pi_weighted_within_each_class():
    corpus = _corpus(1, "random")
    x = np.random.default_rng(2).normal(size=V)
    pi = np.asarray(corpus.context_probs, dtype=np.float64)
    cls = np.asarray(corpus.context_class)
    expected = [np.sum(pi[cls == c] * x[cls == c]) / np.sum(pi[cls == c]) for c in range(6)]
    got = np.asarray(corpus.class_average(jnp.asarray(x, jnp.float32)))
    # float32: a ratio of two short sums, a few eps relative to max |x|
    np.testing.assert_allclose(got, expected, rtol=0, atol=16 * EPS32 * np.abs(x).max())


@pytest.mark.parametrize(
    ("vocab_size", "fractions", "counts"),
    [
        # worked largest-remainder examples: floor(f V), then the largest remainders get +1
        (10, [0.5, 0.3, 0.2], [5, 3, 2]),  # exact
        (10, [1.0, 1.0, 1.0], [4, 3, 3]),  # 3.33 each: a tie, broken towards the first class
        (10, [0.26, 0.37, 0.37], [2, 4, 4]),  # 2.6, 3.7, 3.7: floors sum to 8, +1 to the .7s
        (7, [0.5, 0.25, 0.25], [3, 2, 2]),  # 3.5, 1.75, 1.75: the .75 remainders win
        (9, [2.0, 1.0], [6, 3]),  # fractions are normalised first
    ],
)
def test_class_counts_use_largest_remainder(vocab_size, fractions, counts):
    fractions = np.asarray(fractions)
    got = _class_counts(fractions / fractions.sum(), vocab_size)
    np.testing.assert_array_equal(got, counts)


def test_class_counts_properties_for_random_fractions():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n_classes = int(rng.integers(1, 8))
        vocab_size = int(rng.integers(2, 200))
        fractions = rng.dirichlet(np.full(n_classes, 0.7))
        counts = _class_counts(fractions, vocab_size)
        raw = fractions * vocab_size
        floors = np.floor(raw)
        assert counts.sum() == vocab_size
        assert np.all((counts == floors) | (counts == floors + 1))
        bumped = counts == floors + 1
        if bumped.any() and (~bumped).any():  # every bumped class has a remainder >= the others'
            assert (raw - floors)[bumped].min() >= (raw - floors)[~bumped].max()


def test_corpus_contexts_follow_the_class_counts():
    # 12 * (0.17, 0.17, 0.17, 0.17, 0.16, 0.16) = 2.04 (x4), 1.92 (x2): the floors 2, 2, 2, 2,
    # 1, 1 leave two contexts, which go to the two largest remainders (.92), so every class
    # gets 2 (and the array shapes match the shared corpora's: no new compilation)
    fractions = [0.17, 0.17, 0.17, 0.17, 0.16, 0.16]
    mix = [(c, f) for (c, _), f in zip(MIX, fractions, strict=True)]
    corpus = bigram_corpus(jax.random.key(0), V, mix)
    np.testing.assert_array_equal(np.asarray(corpus.context_class), np.repeat(np.arange(6), 2))
    np.testing.assert_array_equal(_class_counts(np.asarray(fractions), V), [2] * 6)


def test_class_names():
    corpus = _corpus()
    assert corpus.class_names == (
        "deterministic",
        "uniform(k=4)",
        "zipf(s=1.3, m=6)",
        "zipf(s=0.8)",
        "dirichlet(a=0.3)",
        "dirichlet(a=2)",
    )
    assert corpus.n_classes == 6
    assert corpus.vocab_size == V
    twins = bigram_corpus(jax.random.key(0), V, [(uniform(4), 1.0)] * 6)
    assert twins.class_names == tuple(f"uniform(k=4)#{i}" for i in range(6))


def test_default_context_distribution_is_uniform():
    np.testing.assert_allclose(np.asarray(_corpus().context_probs), 1.0 / V, rtol=EPS32)


def test_same_key_same_corpus_and_different_keys_differ():
    a, b, c = _corpus(5), bigram_corpus(jax.random.key(5), V, MIX), _corpus(6)
    np.testing.assert_array_equal(np.asarray(a.transition), np.asarray(b.transition))
    assert not np.array_equal(np.asarray(a.transition), np.asarray(c.transition))


# --- sampling --------------------------------------------------------------------------------


def test_same_key_same_batch_and_different_keys_differ():
    corpus = _corpus()
    n = FINITE_SIZE  # the batch size of ``finite_corpus`` below: eager kernels compiled once
    x1, y1 = corpus.sample(jax.random.key(0), n)
    x2, y2 = corpus.sample(jax.random.key(0), n)
    x3, y3 = corpus.sample(jax.random.key(1), n)
    assert x1.shape == y1.shape == (n,)
    assert x1.dtype == y1.dtype == jnp.int32
    np.testing.assert_array_equal(np.asarray(x1), np.asarray(x2))
    np.testing.assert_array_equal(np.asarray(y1), np.asarray(y2))
    # 40 i.i.d. contexts from 12 equally likely ones: equal batches have probability 12^-40
    assert not np.array_equal(np.asarray(x1), np.asarray(x3))
    assert not np.array_equal(np.asarray(y1), np.asarray(y3))
    # the compiled sampler draws the same batch as the eager one
    xj, yj = _sample(corpus, jax.random.key(0), n)
    np.testing.assert_array_equal(np.asarray(xj), np.asarray(x1))
    np.testing.assert_array_equal(np.asarray(yj), np.asarray(y1))


def _z_scores(counts: np.ndarray, probs: np.ndarray, n: int) -> np.ndarray:
    """Binomial z-scores of ``counts`` against ``n * probs`` for cells with an expected count of
    at least 20 (where the normal approximation of the binomial tail is adequate)."""
    expected = n * probs
    keep = expected >= 20
    se = np.sqrt(n * probs * (1.0 - probs))
    return (counts[keep] - expected[keep]) / se[keep]


def test_sample_frequencies_match_pi_and_transition():
    corpus = _corpus(11, "edges")
    n = N_SAMPLE
    x, y = (np.asarray(a) for a in _sample(corpus, jax.random.key(42), n))
    pi = np.asarray(corpus.context_probs, dtype=np.float64)
    P = np.asarray(corpus.transition, dtype=np.float64)
    joint = pi[:, None] * P
    ctx_counts = np.bincount(x, minlength=V)
    pair_counts = np.bincount(x * V + y, minlength=V * V).reshape(V, V)
    assert x.min() >= 0 and x.max() < V and y.min() >= 0 and y.max() < V
    # zero-probability contexts (first and last) and tokens are never drawn
    assert ctx_counts[pi == 0].sum() == 0
    assert pair_counts[joint == 0].sum() == 0
    assert (joint == 0).sum() > V * V // 3  # deterministic/uniform/sparse rows: many zeros
    # per-cell binomial z-scores (see Z_MAX)
    z_ctx = _z_scores(ctx_counts, pi, n)
    z_pair = _z_scores(pair_counts.ravel(), joint.ravel(), n)
    assert z_ctx.size == V - 2 and z_pair.size >= 40  # the test has cells to compare
    assert np.max(np.abs(z_ctx)) <= Z_MAX, z_ctx
    assert np.max(np.abs(z_pair)) <= Z_MAX, z_pair
    # overall chi-square over cells with an expected count >= 5 (df = cells - 1, sd sqrt(2 df));
    # 5 sd above the mean is far in the tail
    expected = n * joint.ravel()
    keep = expected >= 5
    chi2 = float(np.sum((pair_counts.ravel()[keep] - expected[keep]) ** 2 / expected[keep]))
    df = int(keep.sum()) - 1
    assert chi2 <= df + 5 * math.sqrt(2 * df), (chi2, df)


def test_zero_probability_tokens_in_any_position_are_never_drawn():
    # zeros before, between and after the support: the inverse CDF has flat steps there
    P = np.zeros((V, V), dtype=np.float32)
    P[0, [1, 4]] = 0.5
    P[1, 0] = 1.0
    P[2, V - 1] = 1.0
    P[3, [0, V - 1]] = [0.25, 0.75]
    P[4, 2:4] = 0.5
    P[5, 6:9] = [0.2, 0.0, 0.8]
    P[6:, :] = 1.0 / V
    corpus = BigramCorpus(
        context_probs=jnp.asarray(PI_EDGES, jnp.float32),
        transition=jnp.asarray(P),
        context_class=jnp.zeros(V, jnp.int32),
        class_names=("hand-made",),
    ).validate()
    x, y = (np.asarray(a) for a in _sample(corpus, jax.random.key(3), N_SAMPLE))
    drawn = np.zeros((V, V), dtype=bool)
    drawn[x, y] = True
    # every allowed pair is drawn (the rarest has probability ~0.005: ~330 expected), no other
    np.testing.assert_array_equal(drawn, (PI_EDGES[:, None] * P) > 0)


def test_finite_corpus_samples_only_its_pairs_with_the_right_frequencies():
    corpus = _corpus(11, "edges")
    data = _finite()
    assert data.size == FINITE_SIZE
    cx, cy = np.asarray(data.contexts), np.asarray(data.targets)
    # the finite corpus is itself a sample of the corpus: only possible pairs
    pi, P = np.asarray(corpus.context_probs), np.asarray(corpus.transition)
    assert np.all(pi[cx] * P[cx, cy] > 0)
    n = N_SAMPLE
    x, y = (np.asarray(a) for a in _sample(data, jax.random.key(2), n))
    multiplicity = np.bincount(cx * V + cy, minlength=V * V)
    counts = np.bincount(x * V + y, minlength=V * V)
    assert counts[multiplicity == 0].sum() == 0  # only pairs of the finite sample are drawn
    # each pair is drawn with probability multiplicity / N (<= 40 cells, see Z_MAX)
    z = _z_scores(counts, multiplicity / FINITE_SIZE, n)
    assert z.size == np.count_nonzero(multiplicity)
    assert np.max(np.abs(z)) <= Z_MAX, z
    # same key, same batch; another key, another batch
    x2, _ = _sample(data, jax.random.key(2), n)
    x3, _ = _sample(data, jax.random.key(3), n)
    np.testing.assert_array_equal(np.asarray(x2), x)
    assert not np.array_equal(np.asarray(x3), x)


def test_empirical_transition_matches_numpy_counts():
    data = _finite()
    cx, cy = np.asarray(data.contexts), np.asarray(data.targets)
    counts = np.zeros((V, V))
    np.add.at(counts, (cx, cy), 1.0)
    per_context = counts.sum(axis=1)
    freqs, rows = (np.asarray(a) for a in data.empirical_transition(V))
    np.testing.assert_allclose(freqs, per_context / FINITE_SIZE, rtol=EPS32)
    seen = per_context > 0
    np.testing.assert_allclose(rows[seen], counts[seen] / per_context[seen, None], rtol=EPS32)
    np.testing.assert_array_equal(rows[~seen], 0.0)
    assert (~seen).any()  # contexts 0 and V - 1 have probability 0, so they are unseen
    np.testing.assert_allclose(rows[seen].sum(axis=1), 1.0, rtol=4 * EPS32)


# --- validation ------------------------------------------------------------------------------


def _raises(field: str):
    return pytest.raises(ValueError, match=field)


@pytest.mark.parametrize("vocab_size", [1, 0, -3, 2.5, "8"])
def test_bad_vocab_size(vocab_size):
    with _raises("vocab_size"):
        bigram_corpus(jax.random.key(0), vocab_size, [(deterministic(), 1.0)])


@pytest.mark.parametrize(
    ("mix", "field"),
    [
        ([], "mix"),
        ([(deterministic(), 0.99), (uniform(2), 0.01)], "mix fractions"),  # rounds to 8 and 0
        ([(deterministic(), 1.0), (uniform(2), 0.0)], "mix fractions"),
        ([(deterministic(), 1.0), (uniform(2), -0.5)], "mix fractions"),
        ([(deterministic(), 0.0)], "mix fractions"),
        ([(uniform(9), 1.0)], "support"),  # support > V = 8
        ([(uniform(0), 1.0)], "support"),
        ([(zipf(1.0, support=20), 1.0)], "support"),
        ([(dirichlet(1.0, support=9), 1.0)], "support"),
        ([(dirichlet(0.0), 1.0)], "concentration"),
        ([(dirichlet(-1.0), 1.0)], "concentration"),
        ([(dirichlet(float("nan")), 1.0)], "concentration"),
        ([(zipf(-1.0), 1.0)], "exponent"),
        ([(ContextClass("gaussian"), 1.0)], "kind"),
    ],
)
def test_bad_mix(mix, field):
    with _raises(field):
        bigram_corpus(jax.random.key(0), 8, mix)


@pytest.mark.parametrize(
    "pi",
    [np.full(V, 0.2), np.full(V - 1, 1 / (V - 1)), np.eye(V)[0] * 1.5 - np.eye(V)[1] * 0.5],
)
def test_bad_context_probs(pi):
    with _raises("context_probs"):
        bigram_corpus(jax.random.key(0), V, MIX, context_probs=pi)


def test_bad_corpus_arrays():
    n = 4
    good = {
        "context_probs": jnp.full(n, 0.25),
        "transition": jnp.full((n, n), 0.25),
        "context_class": jnp.zeros(n, jnp.int32),
        "class_names": ("a",),
    }
    BigramCorpus(**good).validate()  # the baseline passes
    with _raises("transition"):
        BigramCorpus(**(good | {"transition": jnp.full((n, n), 0.3)})).validate()
    with _raises("transition"):
        BigramCorpus(**(good | {"transition": jnp.full((n, n + 1), 0.2)})).validate()
    with _raises("context_class"):
        BigramCorpus(**(good | {"context_class": jnp.array([0, 1, 0, 0])})).validate()


@pytest.mark.parametrize(
    ("contexts", "targets", "field"),
    [
        ([0, 8], [1, 2], "contexts"),  # token 8 with V = 8
        ([0, 1], [1, -1], "targets"),
        (np.array([0.0, 1.0]), [1, 2], "contexts"),  # not integers
        ([0, 1, 2], [1, 2], "targets"),  # lengths differ
        ([], [], "contexts"),  # empty
    ],
)
def test_bad_finite_corpus(contexts, targets, field):
    data = FiniteCorpus(contexts=jnp.asarray(contexts), targets=jnp.asarray(targets))
    with _raises(field):
        data.validate(8)


@pytest.mark.parametrize("size", [0, -1, 2.5])
def test_bad_finite_corpus_size(size):
    with _raises("size"):
        finite_corpus(_corpus(), jax.random.key(0), size)
