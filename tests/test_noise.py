"""The lab's counter-based Gaussian noise: exact standard-normal moments and no correlations,
within Monte-Carlo error (n samples: SE of the mean 1/sqrt(n), of the variance sqrt(2/n), of the
fourth moment sqrt(96/n), of a correlation 1/sqrt(n))."""

import math

import jax
import jax.numpy as jnp
import numpy as np

from rivervalley import noise

N = 400_000


def test_moments_and_distribution():
    x = np.asarray(noise.normal(jax.random.key(0), (N,)), dtype=np.float64)
    assert abs(x.mean()) < 4 / math.sqrt(N)
    assert abs(x.var() - 1) < 4 * math.sqrt(2 / N)
    assert abs((x**4).mean() - 3) < 4 * math.sqrt(96 / N)
    assert abs((x**3).mean()) < 4 * math.sqrt(15 / N)
    # Kolmogorov-Smirnov distance to the normal CDF: 1.95/sqrt(n) is the 0.1% critical value
    xs = np.sort(x)
    cdf = 0.5 * (1 + np.vectorize(math.erf)(xs / math.sqrt(2)))
    ecdf = np.arange(1, N + 1) / N
    assert np.max(np.abs(ecdf - cdf)) < 1.95 / math.sqrt(N)


def test_no_correlation_across_index_step_and_key():
    steps = 4000
    keys = jax.vmap(lambda t: jax.random.fold_in(jax.random.key(1), t))(jnp.arange(steps))
    x = np.asarray(jax.vmap(lambda k: noise.normal(k, (64,)))(keys), dtype=np.float64)
    bound = 4 / math.sqrt(x.size)
    assert abs(np.corrcoef(x[:-1].ravel(), x[1:].ravel())[0, 1]) < bound  # consecutive steps
    assert abs(np.corrcoef(x[:, :-1].ravel(), x[:, 1:].ravel())[0, 1]) < bound  # neighbours
    other = jax.vmap(lambda t: jax.random.fold_in(jax.random.key(2), t))(jnp.arange(steps))
    y = np.asarray(jax.vmap(lambda k: noise.normal(k, (64,)))(other), dtype=np.float64)
    assert abs(np.corrcoef(x.ravel(), y.ravel())[0, 1]) < bound  # different seeds


def test_same_key_same_numbers_and_shape_dtype():
    a = noise.normal(jax.random.key(5), (3, 4))
    b = noise.normal(jax.random.key(5), (3, 4))
    assert a.shape == (3, 4) and a.dtype == jnp.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, noise.normal(jax.random.key(6), (3, 4)))
    assert np.all(np.isfinite(np.asarray(noise.normal(jax.random.key(7), (100_000,)))))


def test_extreme_words_map_strictly_inside_the_unit_interval():
    """The largest and smallest 32-bit words give u in (0, 1) and finite normals (a 24-bit grid
    rounded its top value to 1.0, i.e. an infinite normal about once in 2^24 numbers)."""
    words = jnp.asarray([0, 1, 2**9 - 1, 2**32 - 2**9, 2**32 - 1], dtype=jnp.uint32)
    u = noise.bits_to_unit(words)
    assert bool(jnp.all((u > 0) & (u < 1)))
    np.testing.assert_array_equal(np.asarray(u[:3]), np.float32(0.5 * 2.0**-23))
    xi = np.sqrt(2.0) * jax.lax.erf_inv(2.0 * u - 1.0)
    assert bool(jnp.all(jnp.isfinite(xi))) and float(jnp.max(jnp.abs(xi))) > 5.0
