r"""Synthetic bigram corpora whose contexts differ in uncertainty.

A corpus over a vocabulary of ``V`` tokens is a distribution of (context, next token) pairs:

.. math::

    c \sim \pi, \qquad y \mid c \sim P_{c\cdot}, \qquad
    H_c = -\sum_y P_{cy} \log P_{cy}\ \text{(nats)}, \qquad
    H = \sum_c \pi_c H_c,

with ``pi`` the context distribution (uniform by default), ``P`` the ``V x V`` transition matrix
and ``H`` the entropy floor: the smallest population cross-entropy any model can reach.  Each
context belongs to a *context class* that fixes how its next-token distribution is drawn:

=====================  ====================================================  ===============
class                   next-token distribution of one context                ``H_c``
=====================  ====================================================  ===============
``deterministic()``     one token (drawn at random) with probability 1        ``0``
``uniform(k)``          uniform over ``k`` distinct random tokens             ``log k``
``zipf(s, m)``          ``p_r ∝ r^{-s}``, ``r = 1..m``, on random tokens      ``-sum p log p``
``dirichlet(a, m)``     ``p ~ Dirichlet(a 1_m)`` on ``m`` random tokens        per context
=====================  ====================================================  ===============

(``m`` defaults to ``V``.)  The classes are mixed in given fractions of the contexts.  Minibatches
are ``B`` i.i.d. pairs drawn from a key: from the corpus itself (``BigramCorpus.sample``, an
infinite stream: the pretraining regime) or from a fixed finite sample of it
(``FiniteCorpus.sample``, the repeated-data regime).  Same key, same batch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from rivervalley import noise
from rivervalley.pytree import array_field, pytree_dataclass, static_field
from rivervalley.validation import at_least, choice, require

CLASS_KINDS = ("deterministic", "uniform", "zipf", "dirichlet")


@dataclasses.dataclass(frozen=True)
class ContextClass:
    """How the next-token distributions of one class of contexts are drawn (see the module
    docstring); build it with ``deterministic``, ``uniform``, ``zipf`` or ``dirichlet``."""

    kind: str
    support: int | None = None  # number of possible next tokens (None: the whole vocabulary)
    exponent: float = 1.0  # Zipf exponent s
    concentration: float = 1.0  # Dirichlet concentration a

    @property
    def name(self) -> str:
        """A label such as ``uniform(k=8)`` (used as the class coordinate in results)."""
        m = "" if self.support is None else f", m={self.support}"
        return {
            "deterministic": "deterministic",
            "uniform": f"uniform(k={self.support})",
            "zipf": f"zipf(s={self.exponent:g}{m})",
            "dirichlet": f"dirichlet(a={self.concentration:g}{m})",
        }[self.kind]

    def validate(self, vocab_size: int) -> ContextClass:
        owner = f"context class {self.kind}"
        choice("context class", "kind", self.kind, CLASS_KINDS)
        if self.support is not None:
            ok = isinstance(self.support, int | np.integer) and 1 <= self.support <= vocab_size
            require(ok, owner, "support", self.support, f"an integer in [1, V={vocab_size}]")
        at_least(owner, "exponent", self.exponent, 0.0)
        at_least(owner, "concentration", self.concentration, 0.0, strict=True)
        return self

    def draw(self, key: jax.Array, n: int, vocab_size: int) -> jax.Array:
        """Next-token distributions of ``n`` contexts of this class, shape ``(n, V)``."""
        m = vocab_size if self.support is None else self.support
        perm_key, p_key = jax.random.split(key)
        tokens = jnp.argsort(jax.random.uniform(perm_key, (n, vocab_size)), axis=1)[:, :m]
        if self.kind == "deterministic":
            probs = jnp.ones((n, 1))
        elif self.kind == "uniform":
            probs = jnp.full((n, m), 1.0 / m)
        elif self.kind == "zipf":
            weights = jnp.arange(1, m + 1, dtype=jnp.result_type(float)) ** -self.exponent
            probs = jnp.broadcast_to(weights / jnp.sum(weights), (n, m))
        else:  # Dirichlet via log-gamma draws, robust for small concentrations
            probs = jax.nn.softmax(jax.random.loggamma(p_key, self.concentration, (n, m)), axis=1)
        rows = jnp.arange(n)[:, None]
        return jnp.zeros((n, vocab_size)).at[rows, tokens[:, : probs.shape[1]]].set(probs)


def deterministic() -> ContextClass:
    """Contexts whose next token is determined (entropy 0)."""
    return ContextClass("deterministic", support=1)


def uniform(k: int) -> ContextClass:
    """Contexts whose next token is uniform over ``k`` tokens (entropy ``log k``)."""
    return ContextClass("uniform", support=k)


def zipf(exponent: float = 1.0, support: int | None = None) -> ContextClass:
    """Contexts with Zipf-like next tokens, ``p_r ∝ r^-exponent`` over ``support`` tokens."""
    return ContextClass("zipf", support=support, exponent=float(exponent))


def dirichlet(concentration: float, support: int | None = None) -> ContextClass:
    """Contexts whose next-token distribution is a Dirichlet(``concentration``) draw."""
    return ContextClass("dirichlet", support=support, concentration=float(concentration))


def _categorical(u: jax.Array, probs: jax.Array) -> jax.Array:
    """Inverse-CDF draws from one distribution ``probs`` ``(n,)``: for each ``u`` uniform in
    (0, 1) the index ``j`` with ``F_{j-1} <= u < F_j`` (``F`` normalised so that ``F_{n-1} = 1``
    exactly), found by binary search; a zero-probability index is never drawn."""
    cdf = jnp.cumsum(probs)
    cdf = (cdf / cdf[-1]).at[-1].set(1.0)
    return jnp.searchsorted(cdf, u, side="right").astype(jnp.int32)


@pytree_dataclass
class BigramCorpus:
    """A bigram corpus: context distribution ``context_probs`` ``(V,)``, transition matrix
    ``transition`` ``(V, V)`` (rows sum to 1), each context's class index ``context_class``
    ``(V,)`` and the class names (static).  Build it with ``bigram_corpus``."""

    context_probs: jax.Array = array_field(ndim=1)
    transition: jax.Array = array_field(ndim=2)
    context_class: jax.Array = array_field(ndim=1)
    class_names: tuple[str, ...] = static_field()

    @property
    def vocab_size(self) -> int:
        return int(np.shape(self.transition)[-1])

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def conditional_entropy(self) -> jax.Array:
        """``H_c = -sum_y P_cy log P_cy`` in nats, shape ``(V,)`` (``0 log 0 = 0``)."""
        return -jnp.sum(jax.scipy.special.xlogy(self.transition, self.transition), axis=-1)

    def entropy_floor(self) -> jax.Array:
        """``H = sum_c pi_c H_c``: the population cross-entropy of the true distribution."""
        return jnp.sum(self.context_probs * self.conditional_entropy(), axis=-1)

    def class_average(self, per_context: jax.Array) -> jax.Array:
        """``pi``-weighted mean of a per-context quantity ``(V,)`` within each class,
        shape ``(n_classes,)``."""
        members = self.context_class[:, None] == jnp.arange(self.n_classes)
        weights = self.context_probs[:, None] * members
        return (per_context @ weights) / jnp.sum(weights, axis=0)

    def joint_probs(self) -> jax.Array:
        """``p(c, y) = pi_c P_cy``, shape ``(V, V)``."""
        return self.context_probs[..., :, None] * self.transition

    def sample(self, key: jax.Array, batch_size: int) -> tuple[jax.Array, jax.Array]:
        """``batch_size`` i.i.d. (context, next token) pairs, two int32 arrays ``(B,)``: one
        uniform number per pair, inverted through the CDF of the joint ``p(c, y)`` (which does
        not depend on the run, so a sweep computes it once per step for all runs)."""
        pair = _categorical(noise.uniform(key, (batch_size,)), self.joint_probs().reshape(-1))
        return pair // self.vocab_size, pair % self.vocab_size

    def validate(self) -> BigramCorpus:
        owner = "bigram_corpus"
        pi = at_least(owner, "context_probs", self.context_probs, 0.0)
        P = at_least(owner, "transition", self.transition, 0.0)
        V = P.shape[-1]
        require(P.shape[-2] == V, owner, "transition", P.shape, "a square (V, V) matrix")
        require(pi.shape[-1] == V, owner, "context_probs", pi.shape, f"of length V={V}")
        require(np.abs(pi.sum(-1) - 1) < 1e-4, owner, "context_probs", pi, "summing to 1")
        require(np.abs(P.sum(-1) - 1) < 1e-4, owner, "transition", P, "with rows summing to 1")
        cls = np.asarray(self.context_class)
        ok = (cls >= 0) & (cls < self.n_classes) & (cls == np.round(cls))
        require(ok, owner, "context_class", cls, f"class indices in [0, {self.n_classes})")
        members = cls[..., :, None] == np.arange(self.n_classes)
        weight = np.sum(pi[..., :, None] * members, axis=-2)
        require(weight > 0, owner, "context_probs", weight, "positive on every context class")
        return self


@pytree_dataclass
class FiniteCorpus:
    """A fixed sample of ``N`` (context, next token) pairs, ``contexts`` and ``targets`` of shape
    ``(N,)``; minibatches draw ``B`` of them uniformly with replacement (repeated data)."""

    contexts: jax.Array = array_field(ndim=1)
    targets: jax.Array = array_field(ndim=1)

    @property
    def size(self) -> int:
        return int(np.shape(self.contexts)[-1])

    def sample(self, key: jax.Array, batch_size: int) -> tuple[jax.Array, jax.Array]:
        """``batch_size`` pairs drawn uniformly with replacement, two int32 arrays ``(B,)``."""
        u = noise.uniform(key, (batch_size,))
        index = jnp.minimum((u * self.size).astype(jnp.int32), self.size - 1)
        return self.contexts[index], self.targets[index]

    def empirical_transition(self, vocab_size: int) -> tuple[jax.Array, jax.Array]:
        """Empirical context frequencies ``(V,)`` and next-token frequencies ``(V, V)`` (rows of
        unseen contexts are zero): the distribution whose cross-entropy SGD minimises."""
        counts = jnp.zeros((vocab_size, vocab_size)).at[self.contexts, self.targets].add(1.0)
        per_context = jnp.sum(counts, axis=1)
        rows = counts / jnp.maximum(per_context, 1.0)[:, None]
        return per_context / self.size, rows

    def validate(self, vocab_size: int) -> FiniteCorpus:
        owner = "finite_corpus"
        for name in ("contexts", "targets"):
            tokens = np.asarray(getattr(self, name))
            ok = (tokens >= 0) & (tokens < vocab_size) & np.issubdtype(tokens.dtype, np.integer)
            require(ok, owner, name, tokens, f"integer tokens in [0, V={vocab_size})")
        require(self.size >= 1, owner, "contexts", self.size, "at least one pair")
        shapes = (np.shape(self.contexts), np.shape(self.targets))
        require(shapes[0] == shapes[1], owner, "targets", shapes[1], f"of shape {shapes[0]}")
        return self


def _class_counts(fractions: np.ndarray, vocab_size: int) -> np.ndarray:
    """Largest-remainder rounding of ``fractions * V`` to integers summing to ``V``."""
    raw = fractions * vocab_size
    counts = np.floor(raw).astype(int)
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[: vocab_size - counts.sum()]] += 1
    return counts


def bigram_corpus(
    key: jax.Array,
    vocab_size: int,
    mix: Sequence[tuple[ContextClass, float]],
    *,
    context_probs: jax.Array | np.ndarray | None = None,
) -> BigramCorpus:
    """A corpus whose contexts are split among classes in the given fractions.

    ``mix`` is a list of ``(context_class, fraction)``; fractions are normalised and rounded to
    whole contexts (each class gets at least one).  Contexts ``0 .. n_0 - 1`` are of the first
    class, and so on; each context's tokens are drawn independently from ``key``.
    ``context_probs`` defaults to uniform ``1/V``.

    >>> corpus = bigram_corpus(jax.random.key(0), 64, [(deterministic(), 0.5), (uniform(8), 0.5)])
    """
    ok = isinstance(vocab_size, int | np.integer) and vocab_size >= 2
    require(ok, "bigram_corpus", "vocab_size", vocab_size, "an integer >= 2")
    require(len(mix) >= 1, "bigram_corpus", "mix", mix, "a non-empty list of (class, fraction)")
    classes = [c.validate(vocab_size) for c, _ in mix]
    fractions = at_least("bigram_corpus", "mix fractions", [f for _, f in mix], 0.0)
    require(fractions.sum() > 0, "bigram_corpus", "mix fractions", fractions, "not all zero")
    counts = _class_counts(fractions / fractions.sum(), vocab_size)
    at_least_one = f"each >= 1/V of V={vocab_size}"
    require(counts >= 1, "bigram_corpus", "mix fractions", fractions, at_least_one)
    keys = jax.random.split(key, len(classes))
    transition = jnp.concatenate(
        [c.draw(k, int(n), vocab_size) for c, k, n in zip(classes, keys, counts, strict=True)]
    )
    names = [c.name for c in classes]
    names = [n if names.count(n) == 1 else f"{n}#{i}" for i, n in enumerate(names)]
    pi = jnp.full(vocab_size, 1.0 / vocab_size) if context_probs is None else context_probs
    return BigramCorpus(
        context_probs=jnp.asarray(pi, dtype=jnp.result_type(float)),
        transition=transition,
        context_class=jnp.asarray(np.repeat(np.arange(len(classes)), counts), dtype=jnp.int32),
        class_names=tuple(names),
    ).validate()


def finite_corpus(corpus: BigramCorpus, key: jax.Array, size: int) -> FiniteCorpus:
    """A fixed sample of ``size`` i.i.d. pairs of ``corpus`` (the repeated-data regime)."""
    ok = isinstance(size, int | np.integer) and size >= 1
    require(ok, "finite_corpus", "size", size, "a positive integer")
    contexts, targets = corpus.sample(key, int(size))
    return FiniteCorpus(contexts=contexts, targets=targets).validate(corpus.vocab_size)
