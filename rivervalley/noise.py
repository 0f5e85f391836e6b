r"""The lab's Gaussian gradient noise: a fast counter-based generator keyed by a JAX PRNG key.

``jax.random.normal`` spends one threefry-2x32 block (20 rounds) per number; at 64 numbers per
run-step that bounds Gaussian-noise SGD (see ``rivervalley bench``).  ``normal(key, shape)``
instead spends one threefry block per *call* (the key itself, derived per step with
``fold_in``) and expands it with a keyed integer hash of the element index:

.. math::

    x_i = h\bigl(h(i \cdot \phi \oplus k_0) + k_1\bigr), \qquad
    u_i = (\lfloor x_i / 2^9 \rfloor + \tfrac12) / 2^{23}, \qquad
    \xi_i = \sqrt2 \, \operatorname{erf}^{-1}(2 u_i - 1),

with ``(k_0, k_1)`` the key's two 32-bit words, ``phi = 0x9E3779B9`` and ``h`` the murmur3 32-bit
finaliser (a bijection with full avalanche).  ``u`` is uniform on a grid of 2^23 points strictly
inside (0, 1) (each exactly representable in float32), so ``xi`` is an exact (to float32
precision) standard normal with tails to about 5.3 sigma.  Same key, same numbers; distinct
keys or indices give independent-looking streams (checked in the tests: moments, correlations
across indices, steps and keys).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

_PHI = np.uint32(0x9E3779B9)


def _fmix32(x: jax.Array) -> jax.Array:
    """murmur3's 32-bit finaliser."""
    x = x ^ (x >> 16)
    x = x * np.uint32(0x85EBCA6B)
    x = x ^ (x >> 13)
    x = x * np.uint32(0xC2B2AE35)
    return x ^ (x >> 16)


def uniform_bits(key: jax.Array, size: int) -> jax.Array:
    """``size`` pseudo-random 32-bit words from one key (a typed threefry key)."""
    words = jax.random.key_data(key).reshape(-1)
    index = jnp.arange(size, dtype=jnp.uint32)
    return _fmix32(_fmix32((index * _PHI) ^ words[0]) + words[-1])


def uniform(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """Uniform numbers on the grid ``(j + 1/2) / 2^23``, ``j = 0 .. 2^23 - 1``: strictly inside
    (0, 1) (exactly representable in float32), of ``shape``, from ``key``."""
    size = int(np.prod(shape, dtype=np.int64))
    return bits_to_unit(uniform_bits(key, size)).reshape(shape)


def bits_to_unit(bits: jax.Array) -> jax.Array:
    """32-bit words to ``(floor(x / 2^9) + 1/2) / 2^23`` in float32.  23 bits, because
    ``j + 1/2`` then needs at most 24 significant bits, all float32 has: every value is exact and
    strictly below 1 (with 24 bits the top value rounds to 1.0 and ``erf_inv(1) = inf``)."""
    return ((bits >> 9).astype(jnp.float32) + 0.5) * np.float32(2.0**-23)


def normal(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
    """Standard normal numbers of ``shape`` from ``key`` (see the module docstring)."""
    u = uniform(key, shape)
    xi = np.float32(np.sqrt(2.0)) * jax.lax.erf_inv(2.0 * u - 1.0)
    return xi.astype(dtype)
