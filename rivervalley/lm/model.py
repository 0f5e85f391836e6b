r"""Bigram language models as landscapes: a logit table and a factorised (embedding) model.

Parameters are one flat vector ``w``; a model maps it to logits ``z_c`` of every context ``c``.
The population loss is the exact cross-entropy under the corpus (no sampling):

.. math::

    L(w) = \sum_c \pi_c\, \ell_c(w), \qquad
    \ell_c(w) = -\sum_y P_{cy} \log \operatorname{softmax}(z_c)_y, \qquad
    L(w) - H = \sum_c \pi_c\, \mathrm{KL}(P_{c\cdot} \,\|\, \operatorname{softmax}(z_c)) \ge 0,

and ``stochastic_grad`` is the gradient of the mean cross-entropy of a minibatch of ``B`` pairs,
drawn from the corpus (unbiased for ``grad L``) or from a fixed finite sample (unbiased for the
gradient of that sample's empirical cross-entropy).

Batch size as a swept field.  ``max_batch_size`` ``B_max`` (static: part of the compiled program)
is the number of i.i.d. pairs drawn per step; ``batch_size`` ``B`` (an array leaf, an integer
``1 <= B <= B_max``) is the effective batch: the minibatch gradient averages the first ``B``
drawn pairs with weights ``1/B`` and gives the others weight 0,

.. math::

    \hat g_B(w) = \frac1B \sum_{i=1}^{B} \nabla \ell(w; c_i, y_i), \qquad
    E \hat g_B = \nabla L, \qquad \operatorname{Cov} \hat g_B = \frac{\Sigma_1(w)}{B},

with ``Sigma_1`` the covariance of one pair's gradient.  So one compiled program serves every
``B <= B_max`` and ``sweep`` can batch over ``B`` (a dataset coordinate ``batch_size``), at the
cost of always drawing and differentiating ``B_max`` pairs (the price of a step does not fall
with ``B``).  The factories take ``batch_size`` (a number or a list of values) and set
``max_batch_size`` to its largest value unless given; ``B = B_max`` gives the former results.

=================  ======================================  ====================================
model               logits                                  parameters
=================  ======================================  ====================================
``BigramTable``     ``z_c = W_c``                           ``W`` (V x V): convex in ``w``
``Factorized``      ``z_c = E_c U + b``                     ``E`` (V x d), ``U`` (d x V), ``b``
=================  ======================================  ====================================

Neither model has a known river, so ``decompose`` uses the relaxation split of
``rivervalley.decompose`` (the river point is where a rate decayed instantly to zero would take
the iterate).  ``observables`` adds the excess loss ``L - H`` and the loss and excess loss of each
context class at every recorded step.
"""

from __future__ import annotations

from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from rivervalley import noise
from rivervalley.decompose import DEFAULT_RELAX_STEPS, by_relaxation
from rivervalley.landscapes.base import Decomposition, Landscape
from rivervalley.lm.data import BigramCorpus, FiniteCorpus
from rivervalley.pytree import array_field, child_field, pytree_dataclass, static_field
from rivervalley.validation import at_least, require


def _cross_entropy(logits: jax.Array, probs: jax.Array) -> jax.Array:
    """``-sum_y p_y log softmax(z)_y`` over the last axis; terms with ``p_y = 0`` are exactly 0
    (also for ``z_y = -inf``)."""
    log_q = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.sum(jnp.where(probs > 0, probs * log_q, 0.0), axis=-1)


@pytree_dataclass
class LanguageModel(Landscape):
    """Shared part of the bigram language models (see the module docstring).

    ``corpus`` defines the population loss; ``data`` is the minibatch source: ``None`` for an
    infinite stream from ``corpus``, or a ``FiniteCorpus`` (repeated data).  ``max_batch_size``
    (static) is the number of pairs drawn per step and ``batch_size`` (array leaf, an integer
    value in ``[1, max_batch_size]``; both default to 32) the effective minibatch size ``B``
    (the first ``B`` drawn pairs are averaged; see the module docstring); ``relax_steps`` the
    number of relaxation steps of ``decompose``."""

    kind: ClassVar[str] = "language_model"
    loss_units: ClassVar[str] = "nats"  # cross-entropy in natural-log units
    corpus: BigramCorpus = child_field()
    data: FiniteCorpus | None = child_field(default=None)
    batch_size: jax.Array = array_field(default=32.0)
    max_batch_size: int = static_field(default=32)
    relax_steps: int = static_field(default=DEFAULT_RELAX_STEPS)

    # -- model-specific -------------------------------------------------------------------
    @property
    def n_params(self) -> int:
        raise NotImplementedError

    def logits(self, w: jax.Array, contexts: jax.Array) -> jax.Array:
        """Logits of the given contexts ``(B,)``, shape ``(B, V)``."""
        raise NotImplementedError

    def curvature_bound(self, w: jax.Array) -> jax.Array:
        """An upper bound on the largest Hessian eigenvalue of ``loss`` at ``w``."""
        raise NotImplementedError

    # -- the landscape protocol -----------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return self.corpus.vocab_size

    def all_logits(self, w: jax.Array) -> jax.Array:
        """Logits of every context, shape ``(V, V)``."""
        return self.logits(w, jnp.arange(self.vocab_size))

    def context_losses(self, w: jax.Array) -> jax.Array:
        """Per-context cross-entropy ``ell_c(w)``, shape ``(V,)``."""
        return _cross_entropy(self.all_logits(w), self.corpus.transition)

    def loss(self, w):
        return jnp.sum(self.corpus.context_probs * self.context_losses(w))

    def batch_loss(
        self,
        w: jax.Array,
        contexts: jax.Array,
        targets: jax.Array,
        weights: jax.Array | None = None,
    ) -> jax.Array:
        """Cross-entropy of a minibatch of pairs ``(n,)``, ``(n,)``: the mean, or with
        ``weights`` ``(n,)`` the weighted sum ``sum_i weights_i ell_i`` (``batch_weights()``
        gives the minibatch loss of the effective batch ``B``)."""
        log_q = jax.nn.log_softmax(self.logits(w, contexts), axis=-1)
        per_pair = jnp.take_along_axis(log_q, targets[:, None], axis=1)[:, 0]
        if weights is None:
            return -jnp.mean(per_pair)
        return -jnp.sum(weights * per_pair)

    def sample(self, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``max_batch_size`` i.i.d. pairs from the stream or the finite corpus (of which the
        first ``batch_size`` form the minibatch)."""
        source = self.corpus if self.data is None else self.data
        return source.sample(key, self.max_batch_size)

    def batch_mask(self) -> jax.Array:
        """``i < B`` for the ``max_batch_size`` drawn pairs: the pairs of the minibatch,
        shape ``batch + (B_max,)``."""
        return jnp.arange(self.max_batch_size) < jnp.asarray(self.batch_size)[..., None]

    def batch_weights(self) -> jax.Array:
        """``1/B`` on the first ``B`` drawn pairs, 0 on the others, shape ``batch + (B_max,)``."""
        b = jnp.asarray(self.batch_size)[..., None]
        return jnp.where(self.batch_mask(), 1.0 / b, 0.0)

    def stochastic_grad(self, w, key):
        """``grad batch_loss`` of the first ``B`` of the ``B_max`` drawn pairs, by the chain rule
        through the logits: the cross-entropy's logit gradient is ``(softmax(z_i) - e_{y_i}) / B``
        on pair ``i < B`` and 0 on the others (no autodiff through the target gather, whose
        transpose is a slow scatter on CPU).  All ``B_max`` pairs are drawn and their logits
        computed whatever ``B``: one program for every ``B``."""
        contexts, targets = self.sample(key)
        logits, pullback = jax.vjp(lambda v: self.logits(v, contexts), w)
        probs = jax.nn.softmax(logits, axis=-1)
        g_logits = probs - jax.nn.one_hot(targets, self.vocab_size, dtype=probs.dtype)
        # divide by B on the first B pairs and by +inf (giving 0) on the others; a division,
        # and no select on the (B_max, V) matrix, keeps B = B_max bit-identical to the former
        # unmasked program
        b = jnp.asarray(self.batch_size, probs.dtype)
        divisor = jnp.where(self.batch_mask(), b, jnp.inf).astype(probs.dtype)
        g_logits = g_logits / divisor[:, None]
        return pullback(g_logits)[0]

    def decompose(self, w) -> Decomposition:
        return by_relaxation(self, w, steps=self.relax_steps)

    def decomposition_method(self) -> str:
        return (
            f"relaxation (rivervalley.decompose): r(w) = {self.relax_steps} full-batch gradient "
            "steps of size 1/B(w) on the population loss, B >= top Hessian eigenvalue"
        )

    def observables(self, w) -> dict[str, jax.Array]:
        """``excess_loss`` ``L - H``; ``class_loss`` and ``class_excess`` (per context class:
        mean cross-entropy and mean KL to the truth, ``pi``-weighted, shape ``(n_classes,)``)."""
        per_context = self.context_losses(w)
        entropy = self.corpus.conditional_entropy()
        return {
            "excess_loss": jnp.sum(self.corpus.context_probs * (per_context - entropy)),
            "class_loss": self.corpus.class_average(per_context),
            "class_excess": self.corpus.class_average(per_context - entropy),
        }

    def observable_dims(self) -> dict[str, tuple[str, list[str]]]:
        return {name: ("context_class", list(self.corpus.class_names)) for name in _CLASS_VARS}

    def is_finite(self, w):
        """Only the parameters are checked: the cross-entropy of finite logits is finite, so the
        (full, ``V x V``) population loss is not needed for the per-update divergence check."""
        return jnp.isfinite(jnp.sum(w))

    def validate(self) -> LanguageModel:
        super().validate()
        self.corpus.validate()
        if self.data is not None:
            self.data.validate(self.vocab_size)
        owner = self.kind
        b = at_least(owner, "batch_size", self.batch_size, 1.0)
        b_max = self.max_batch_size
        ok = isinstance(b_max, int | np.integer) and b_max >= 1
        require(ok, owner, "max_batch_size", b_max, "a positive integer")
        allowed = f"an integer in [1, max_batch_size={b_max}]"
        require((b == np.round(b)) & (b <= b_max), owner, "batch_size", b, allowed)
        ok = isinstance(self.relax_steps, int | np.integer) and self.relax_steps >= 0
        require(ok, owner, "relax_steps", self.relax_steps, "a non-negative integer")
        return self


_CLASS_VARS = ("class_loss", "class_excess")


@pytree_dataclass
class BigramTable(LanguageModel):
    """The logit table ``z_c = W_c``, ``w = vec(W)`` of ``V^2`` parameters, initialised at
    ``init_scale * N(0, 1)`` (default 0: uniform predictions, loss ``log V``)."""

    kind: ClassVar[str] = "bigram_table"
    init_scale: jax.Array = array_field(default=0.0)

    @property
    def n_params(self) -> int:
        return self.vocab_size**2

    def logits(self, w, contexts):
        return w.reshape(self.vocab_size, self.vocab_size)[contexts]

    def init(self, key):
        return self.init_scale * noise.normal(key, (self.n_params,))

    def curvature_bound(self, w):
        r"""The Hessian is block-diagonal with blocks ``pi_c (diag q_c - q_c q_c^T)``, whose
        eigenvalues are at most ``max_y 2 q_y (1 - q_y) <= 1/2`` (Gershgorin), so
        ``lambda_max <= max_c pi_c / 2`` everywhere."""
        del w
        return 0.5 * jnp.max(self.corpus.context_probs)

    def optimum(self) -> jax.Array:
        """The exact minimiser ``W_cy = log P_cy`` (``-inf`` where ``P_cy = 0``: the infimum is
        reached only in the limit), flat ``(V^2,)``; its loss is the entropy floor ``H``."""
        return jnp.log(self.corpus.transition).reshape(-1)

    def validate(self) -> BigramTable:
        super().validate()
        at_least(self.kind, "init_scale", self.init_scale, 0.0)
        return self


@pytree_dataclass
class Factorized(LanguageModel):
    """Embedding ``E`` (V x d), unembedding ``U`` (d x V) and, with ``bias``, a bias ``b`` (V):
    ``z_c = E_c U + b``.  Non-convex, and contexts are coupled through ``U``.  Initialised with
    ``E ~ init_scale N(0, 1)``, ``U ~ init_scale N(0, 1/d)``, ``b = 0``."""

    kind: ClassVar[str] = "factorized"
    width: int = static_field(default=16)
    bias: bool = static_field(default=True)
    init_scale: jax.Array = array_field(default=1.0)

    @property
    def n_params(self) -> int:
        V, d = self.vocab_size, self.width
        return 2 * V * d + (V if self.bias else 0)

    def split(self, w: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """``(E, U, b)`` from the flat vector (``b = 0`` without bias)."""
        V, d = self.vocab_size, self.width
        E = w[: V * d].reshape(V, d)
        U = w[V * d : 2 * V * d].reshape(d, V)
        b = w[2 * V * d :] if self.bias else jnp.zeros(V, w.dtype)
        return E, U, b

    def logits(self, w, contexts):
        E, U, b = self.split(w)
        return E[contexts] @ U + b

    def init(self, key):
        V, d = self.vocab_size, self.width
        xi = noise.normal(key, (2 * V * d,))
        scale = jnp.concatenate([jnp.ones(V * d), jnp.full(V * d, 1.0 / np.sqrt(d))])
        return jnp.concatenate([self.init_scale * scale * xi, jnp.zeros(self.n_params - 2 * V * d)])

    def curvature_bound(self, w):
        r"""With ``delta z_c = dE_c U + E_c dU + db`` and the cross-entropy's logit Hessian
        ``<= 1/2``, the Gauss-Newton part is at most
        ``(n/2) max(max_c pi_c |U|_F^2, sum_c pi_c |E_c|^2, [1 with bias])`` (``n`` = 3 with
        bias, else 2), and the second-order part ``2 sum_c pi_c r_c^T dE_c dU`` with
        ``|r_c| <= sqrt 2`` at most ``sqrt 2 |pi|_2``."""
        E, U, _ = self.split(w)
        pi = self.corpus.context_probs
        terms = [jnp.max(pi) * jnp.sum(U**2), jnp.sum(pi * jnp.sum(E**2, axis=1))]
        if self.bias:
            terms.append(jnp.ones(()))
        gauss_newton = 0.5 * len(terms) * jnp.max(jnp.stack(terms))
        return gauss_newton + np.sqrt(2.0) * jnp.linalg.norm(pi)

    def validate(self) -> Factorized:
        super().validate()
        ok = isinstance(self.width, int | np.integer) and self.width >= 1
        require(ok, self.kind, "width", self.width, "a positive integer")
        at_least(self.kind, "init_scale", self.init_scale, 0.0)
        return self


def _batch_sizes(
    owner: str, batch_size: ArrayLike, max_batch_size: int | None
) -> tuple[jax.Array, int]:
    """``(batch_size as a float array leaf, max_batch_size)``; the maximum defaults to the
    largest batch size (rounded up; validation then rejects a non-integer one)."""
    b = np.asarray(batch_size, dtype=float)
    if max_batch_size is None:
        ok = b.size >= 1 and bool(np.all(np.isfinite(b)))
        require(ok, owner, "batch_size", batch_size, "finite, at least one value")
        max_batch_size = int(np.ceil(np.max(b)))
    return jnp.asarray(b, jnp.result_type(float)), max_batch_size


def bigram_table(
    corpus: BigramCorpus,
    *,
    batch_size: ArrayLike = 32,
    max_batch_size: int | None = None,
    data: FiniteCorpus | None = None,
    init_scale: float = 0.0,
    relax_steps: int = DEFAULT_RELAX_STEPS,
) -> BigramTable:
    """The logit-table model of ``corpus`` (see ``BigramTable``).  ``batch_size``: the minibatch
    size ``B``, or a 1-D batch of sizes to sweep; ``max_batch_size`` (default: the largest ``B``)
    the number of pairs drawn per step (see the module docstring)."""
    b, b_max = _batch_sizes("bigram_table", batch_size, max_batch_size)
    return BigramTable(
        corpus=corpus,
        data=data,
        batch_size=b,
        max_batch_size=b_max,
        relax_steps=relax_steps,
        init_scale=jnp.asarray(init_scale, jnp.float32),
    ).validate()


def factorized(
    corpus: BigramCorpus,
    width: int = 16,
    *,
    bias: bool = True,
    batch_size: ArrayLike = 32,
    max_batch_size: int | None = None,
    data: FiniteCorpus | None = None,
    init_scale: float = 1.0,
    relax_steps: int = DEFAULT_RELAX_STEPS,
) -> Factorized:
    """The factorised model of ``corpus`` with embedding width ``width`` (see ``Factorized``);
    ``batch_size`` and ``max_batch_size`` as in ``bigram_table``."""
    b, b_max = _batch_sizes("factorized", batch_size, max_batch_size)
    return Factorized(
        corpus=corpus,
        data=data,
        batch_size=b,
        max_batch_size=b_max,
        relax_steps=relax_steps,
        width=width,
        bias=bias,
        init_scale=jnp.asarray(init_scale, jnp.float32),
    ).validate()
