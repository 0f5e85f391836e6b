r"""A decoder-only transformer language model on real text (``rivervalley.lm.text``) as a
landscape.

The model (pre-norm, GPT-2 style) maps ``T <= context`` input tokens ``x_1 .. x_T`` to logits
``z_t`` ``(V,)`` of the token after each:

.. math::

    h^0_t &= E_{x_t} + P_t \qquad (d), \\
    \text{for } l = 1..L: \quad
    a &= \operatorname{LN}(h^{l-1}), \qquad
    [q^i_t, k^i_t, v^i_t] = a_t W_{QKV}^i + b_{QKV}^i \quad (d_h = d / H \text{ each}), \\
    A^i_{ts} &= \operatorname{softmax}_{s \le t}\bigl(q^i_t \cdot k^i_s / \sqrt{d_h}\bigr)
    \quad (\text{causal: } A^i_{ts} = 0 \text{ for } s > t), \\
    g_t &= h^{l-1}_t + \bigl[\textstyle\sum_s A^1_{ts} v^1_s, \dots,
           \sum_s A^H_{ts} v^H_s\bigr] W_O + b_O, \\
    h^l_t &= g_t + \operatorname{gelu}\bigl(\operatorname{LN}(g)_t W_1 + b_1\bigr) W_2 + b_2
    \qquad (W_1: d \times m d,\ W_2: m d \times d), \\
    z_t &= \operatorname{LN}(h^L)_t\, U + u,

with ``LN(x) = gamma (x - mean(x)) / sqrt(var(x) + 1e-5) + beta`` over the ``d`` features
(each LN its own ``gamma``, ``beta``), ``gelu`` the tanh approximation
``x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`` (``jax.nn.gelu``), learned positional
embeddings ``P`` (``context x d``) and an *untied* output layer ``U`` (``d x V``) with bias
``u``.  Defaults: ``L = 2`` layers, width ``d = 64``, ``H = 4`` heads, MLP ratio ``m = 4``,
context 64; with the corpus's ``V = 65`` byte tokens that is 112,577 parameters.

The losses.  For a window ``s`` of ``T + 1`` tokens (inputs ``s_1..s_T``, targets
``s_2..s_{T+1}``) the cross-entropy is ``l(w; s) = -(1/T) sum_t log softmax(z_t)_{s_{t+1}}``
(nats per token), and

- ``loss(w)``: its mean over a FIXED validation batch of ``n`` windows (default 16, i.e. 1024
  targets; ``TextCorpus.validation_batch``, the same for every run and step).  The population
  loss (the expected cross-entropy on unseen text) is unknown; this is a fixed, held-out
  estimate of it, so its sampling error is the same constant for every run and schedule
  (differences between runs are much sharper than the level);
- ``stochastic_grad(w, key)``: the gradient of the mean ``l`` over ``B`` windows (default 8,
  i.e. 512 tokens) of the train split drawn by ``key`` (``TextCorpus.sample``): unbiased for the
  gradient of the train-split loss, *not* of ``loss`` (train and validation text differ: the gap
  is generalisation).

Parameters are one flat float vector ``w`` (``n_params``), as in the bigram models: the runner,
any optax optimizer, ``sweep(record_params=True)``, ``rivervalley.hessian`` (Lanczos on a
``(d,)`` vector) and ``decompose.by_relaxation`` (the norm of the river point) all take one.  The
model reads it through ``unravel`` (one split of ``w`` by the fixed layout ``param_shapes``)
rather than ``jax.flatten_util.ravel_pytree``, whose unravel casts to the dtype of a template
pytree: the split keeps ``w``'s dtype, so float32 sweeps and float64 checks share one code.  It
is written in plain JAX (the forward pass is some 25 lines) rather than with flax or equinox: no
extra dependency, and nothing of a module system is needed for a fixed architecture on a flat
vector.  Token embeddings and the loss's target selection are one-hot matrix products rather
than gathers (whose gradients are scatters, slow on CPU); ``V = 65`` keeps them cheap.

Initialisation (``init(key)``, key-dependent): embeddings and weight matrices
``~ N(0, sigma^2)`` with ``sigma = init_scale`` (0.02), the two residual output projections
``W_O``, ``W_2`` of every layer ``~ N(0, sigma^2 / (2L))`` (GPT-2), biases 0, LayerNorm gains 1
and offsets 0.

No river is known, so ``decompose`` is the relaxation split of ``rivervalley.decompose``: ``K``
gradient steps of size ``1 / B`` on ``loss`` (the validation batch) from ``w``, with ``B`` the
top Hessian eigenvalue of ``loss`` at ``w`` estimated by ``curvature_iters`` Lanczos iterations
(``rivervalley.hessian``) times ``CURVATURE_MARGIN``, computed once at ``w`` and kept for the
``K`` steps (a fresh estimate per step would cost ``K`` times as many Hessian-vector products).
A Lanczos estimate is a lower bound on ``lambda_max``, not an upper bound, so (unlike the bigram
models' analytic bounds) descent of every step is not guaranteed.  The relaxation descends the
same fixed batch that ``loss`` evaluates (as the bigram models relax on their population loss),
so ``hill_loss`` includes what ``K`` small steps can fit of that batch.  A record costs about
``K + 3 curvature_iters`` gradients of the validation batch; ``relax_steps = 0`` switches the
split off (hill 0, no Hessian estimate) for sweeps that need only the loss.  ``observables`` adds
``class_loss``: the validation cross-entropy of the targets in each *uncertainty class*, the
classes cut from the corpus's empirical conditional entropy of each target given its
``entropy_order`` preceding bytes (``text.next_token_entropy``) at ``entropy_bounds`` nats.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Sequence
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rivervalley import hessian, noise
from rivervalley.decompose import DEFAULT_RELAX_STEPS, by_relaxation
from rivervalley.landscapes.base import Decomposition, Landscape
from rivervalley.lm.text import TextCorpus, next_token_entropy, text_corpus
from rivervalley.pytree import array_field, child_field, pytree_dataclass, static_field
from rivervalley.validation import at_least, require

LN_EPS = 1e-5  # LayerNorm's variance offset
CURVATURE_MARGIN = 1.25  # the relaxation's B: this times the Lanczos estimate of lambda_max
DEFAULT_CURVATURE_ITERS = 10
DEFAULT_ENTROPY_BOUNDS = (0.5, 1.5)  # nats: low / middle / high next-byte uncertainty

_LAYER = (  # per layer, in order: (name, shape in units of (d, m d, 3 d))
    "ln1_scale",
    "ln1_bias",
    "qkv_weight",
    "qkv_bias",
    "out_weight",
    "out_bias",
    "ln2_scale",
    "ln2_bias",
    "mlp_in_weight",
    "mlp_in_bias",
    "mlp_out_weight",
    "mlp_out_bias",
)


def layer_norm(x: jax.Array, scale: jax.Array, bias: jax.Array) -> jax.Array:
    """``scale (x - mean) / sqrt(var + LN_EPS) + bias`` over the last axis."""
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
    return scale * (x - mean) * jax.lax.rsqrt(var + LN_EPS) + bias


class _FixedCurvature(NamedTuple):
    """``model`` seen by ``by_relaxation`` with a curvature bound fixed at ``bound``."""

    model: Transformer
    bound: jax.Array

    def loss(self, w: jax.Array) -> jax.Array:
        return self.model.loss(w)

    def grad(self, w: jax.Array) -> jax.Array:
        return self.model.grad(w)

    def curvature_bound(self, w: jax.Array) -> jax.Array:
        del w
        return self.bound


@pytree_dataclass
class Transformer(Landscape):
    """The transformer language model on ``corpus`` (see the module docstring).

    ``validation_tokens`` ``(n, context + 1)`` is the fixed validation batch of ``loss`` and
    ``validation_class`` ``(n, context)`` the uncertainty class of each of its targets;
    ``batch_size`` (static) the number of train windows per stochastic gradient;
    ``relax_steps`` and ``curvature_iters`` set ``decompose``.  Build it with ``transformer``."""

    kind: ClassVar[str] = "transformer"
    loss_units: ClassVar[str] = "nats"  # cross-entropy per token, natural-log units
    corpus: TextCorpus = child_field()
    validation_tokens: jax.Array = array_field(ndim=2)
    validation_class: jax.Array = array_field(ndim=2)
    init_scale: jax.Array = array_field(default=0.02)
    context: int = static_field(default=64)
    width: int = static_field(default=64)
    n_layers: int = static_field(default=2)
    n_heads: int = static_field(default=4)
    mlp_ratio: int = static_field(default=4)
    batch_size: int = static_field(default=8)
    entropy_order: int = static_field(default=3)
    entropy_bounds: tuple[float, ...] = static_field(default=DEFAULT_ENTROPY_BOUNDS)
    relax_steps: int = static_field(default=DEFAULT_RELAX_STEPS)
    curvature_iters: int = static_field(default=DEFAULT_CURVATURE_ITERS)

    # -- the parameter vector ---------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return self.corpus.vocab_size

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Name and shape of every parameter array, in their order in ``w``."""
        d, V, m = self.width, self.vocab_size, self.mlp_ratio * self.width
        layer = {
            "ln1_scale": (d,),
            "ln1_bias": (d,),
            "qkv_weight": (d, 3 * d),
            "qkv_bias": (3 * d,),
            "out_weight": (d, d),
            "out_bias": (d,),
            "ln2_scale": (d,),
            "ln2_bias": (d,),
            "mlp_in_weight": (d, m),
            "mlp_in_bias": (m,),
            "mlp_out_weight": (m, d),
            "mlp_out_bias": (d,),
        }
        shapes = {"embed": (V, d), "position": (self.context, d)}
        for i in range(self.n_layers):
            shapes |= {f"layer{i}.{name}": layer[name] for name in _LAYER}
        return shapes | {"ln_scale": (d,), "ln_bias": (d,), "unembed": (d, V), "unembed_bias": (V,)}

    @property
    def n_params(self) -> int:
        return sum(math.prod(shape) for shape in self.param_shapes().values())

    def unravel(self, w: jax.Array) -> dict[str, jax.Array]:
        """The parameter arrays of the flat vector ``w`` ``(n_params,)`` (slices, same dtype)."""
        shapes = self.param_shapes()
        ends = np.cumsum([math.prod(shape) for shape in shapes.values()])
        # one split (whose transpose in the gradient is one concatenate, not a pad per slice)
        parts = jnp.split(w, ends[:-1], axis=-1)
        return {n: x.reshape(s) for (n, s), x in zip(shapes.items(), parts, strict=True)}

    def ravel(self, params: dict[str, jax.Array]) -> jax.Array:
        """The flat vector of named parameter arrays (the inverse of ``unravel``)."""
        return jnp.concatenate([jnp.ravel(params[name]) for name in self.param_shapes()])

    # -- the model --------------------------------------------------------------------------
    def logits(self, w: jax.Array, tokens: jax.Array) -> jax.Array:
        """Logits of the next token after each input, ``(B, T, V)`` for tokens ``(B, T)``
        (``T <= context``); position ``t`` sees only inputs ``<= t``."""
        p = self.unravel(w)
        B, T = tokens.shape
        d, H = self.width, self.n_heads
        dh = d // H
        one_hot = jax.nn.one_hot(tokens, self.vocab_size, dtype=w.dtype)
        x = one_hot @ p["embed"] + p["position"][:T]  # (B, T, d); a matmul, not a gather
        causal = jnp.tril(jnp.ones((T, T), bool))
        for i in range(self.n_layers):
            q = {name: p[f"layer{i}.{name}"] for name in _LAYER}
            a = layer_norm(x, q["ln1_scale"], q["ln1_bias"])
            qkv = (a @ q["qkv_weight"] + q["qkv_bias"]).reshape(B, T, 3, H, dh)
            scores = jnp.einsum("bthe,bshe->bhts", qkv[:, :, 0], qkv[:, :, 1]) / np.sqrt(dh)
            attention = jax.nn.softmax(jnp.where(causal, scores, -jnp.inf), axis=-1)
            heads = jnp.einsum("bhts,bshe->bthe", attention, qkv[:, :, 2]).reshape(B, T, d)
            x = x + heads @ q["out_weight"] + q["out_bias"]
            a = layer_norm(x, q["ln2_scale"], q["ln2_bias"])
            hidden = jax.nn.gelu(a @ q["mlp_in_weight"] + q["mlp_in_bias"])
            x = x + hidden @ q["mlp_out_weight"] + q["mlp_out_bias"]
        x = layer_norm(x, p["ln_scale"], p["ln_bias"])
        return x @ p["unembed"] + p["unembed_bias"]

    def token_losses(self, w: jax.Array, windows: jax.Array) -> jax.Array:
        """Cross-entropy (nats) of every target of windows ``(B, T + 1)``, shape ``(B, T)``."""
        log_q = jax.nn.log_softmax(self.logits(w, windows[:, :-1]), axis=-1)
        targets = jax.nn.one_hot(windows[:, 1:], self.vocab_size, dtype=log_q.dtype)
        return -jnp.sum(targets * log_q, axis=-1)  # no gather (its transpose scatters)

    def batch_loss(self, w: jax.Array, windows: jax.Array) -> jax.Array:
        """Mean cross-entropy per token of windows ``(B, T + 1)``."""
        return jnp.mean(self.token_losses(w, windows))

    # -- the landscape protocol -------------------------------------------------------------
    def loss(self, w):
        return self.batch_loss(w, self.validation_tokens)

    def stochastic_grad(self, w, key):
        windows = self.corpus.sample(key, self.batch_size, self.context)
        return jax.grad(self.batch_loss)(w, windows)

    def init(self, key):
        std, mean = [], []
        for name, shape in self.param_shapes().items():
            size, leaf = math.prod(shape), name.rsplit(".", 1)[-1]
            if leaf in ("embed", "position", "qkv_weight", "mlp_in_weight", "unembed"):
                scale = 1.0
            elif leaf in ("out_weight", "mlp_out_weight"):
                scale = 1.0 / math.sqrt(2 * self.n_layers)
            else:  # biases and LayerNorm parameters
                scale = 0.0
            std.append(np.full(size, scale, np.float32))
            mean.append(np.full(size, 1.0 if leaf.endswith("scale") else 0.0, np.float32))
        xi = noise.normal(key, (self.n_params,))
        return jnp.asarray(np.concatenate(mean)) + self.init_scale * np.concatenate(std) * xi

    def curvature_bound(self, w: jax.Array) -> jax.Array:
        """``CURVATURE_MARGIN`` times the top Hessian eigenvalue of ``loss`` at ``w`` from
        ``curvature_iters`` Lanczos iterations (an estimate, not a guaranteed bound), kept
        above the smallest normal float so that ``1 / B`` is finite."""
        top = hessian.sharpness(self.loss, w, iters=self.curvature_iters)
        return jnp.maximum(CURVATURE_MARGIN * top, jnp.finfo(w.dtype).tiny)

    def decompose(self, w) -> Decomposition:
        """The relaxation split (module docstring); with ``relax_steps = 0`` the river point is
        ``w`` itself (hill 0) and no curvature is estimated: records then cost one loss."""
        if self.relax_steps == 0:
            zero = jnp.zeros_like(w)
            return Decomposition(jnp.linalg.norm(w), self.loss(w), jnp.sum(zero), zero)
        fixed = _FixedCurvature(self, self.curvature_bound(w))
        return by_relaxation(fixed, w, steps=self.relax_steps)

    def decomposition_method(self) -> str:
        return (
            f"relaxation (rivervalley.decompose): r(w) = {self.relax_steps} full-batch gradient "
            f"steps of size 1/B on the validation-batch loss, B = {CURVATURE_MARGIN} x the top "
            f"Hessian eigenvalue at w ({self.curvature_iters} Lanczos iterations)"
        )

    @property
    def class_names(self) -> tuple[str, ...]:
        """Labels of the uncertainty classes, e.g. ``("H<0.5", "0.5<=H<1.5", "H>=1.5")``."""
        b = [f"{x:g}" for x in self.entropy_bounds]
        if not b:
            return ("all",)
        middle = [f"{lo}<=H<{hi}" for lo, hi in itertools.pairwise(b)]
        return (f"H<{b[0]}", *middle, f"H>={b[-1]}")

    def observables(self, w) -> dict[str, jax.Array]:
        """``class_loss``: the mean validation cross-entropy of the targets of each uncertainty
        class, shape ``(n_classes,)`` (NaN for a class without targets)."""
        per_token = self.token_losses(w, self.validation_tokens)
        members = self.validation_class[..., None] == jnp.arange(len(self.class_names))
        totals = jnp.sum(per_token[..., None] * members, axis=(0, 1))
        return {"class_loss": totals / jnp.sum(members, axis=(0, 1))}

    def observable_dims(self) -> dict[str, tuple[str, list[str]]]:
        return {"class_loss": ("token_class", list(self.class_names))}

    def is_finite(self, w):
        """Only the parameters are checked (finite parameters give a finite cross-entropy), so
        no validation forward pass is spent per update."""
        return jnp.isfinite(jnp.sum(w))

    def validate(self) -> Transformer:
        super().validate()
        self.corpus.validate()
        owner = self.kind
        for name in ("context", "width", "n_layers", "n_heads", "mlp_ratio", "batch_size"):
            value = getattr(self, name)
            ok = isinstance(value, int | np.integer) and value >= 1
            require(ok, owner, name, value, "a positive integer")
        require(self.width % self.n_heads == 0, owner, "width", self.width, "a multiple of n_heads")
        n_train = np.shape(self.corpus.train)[-1]
        ok = self.context <= n_train - 1
        require(ok, owner, "context", self.context, f"at most N_train - 1 = {n_train - 1}")
        for name in ("relax_steps", "entropy_order"):
            value = getattr(self, name)
            ok = isinstance(value, int | np.integer) and value >= 0
            require(ok, owner, name, value, "a non-negative integer")
        ok = isinstance(self.curvature_iters, int | np.integer) and self.curvature_iters >= 1
        require(ok, owner, "curvature_iters", self.curvature_iters, "a positive integer")
        bounds = np.asarray(self.entropy_bounds, dtype=float)
        ok = bool(np.all(np.isfinite(bounds))) and bool(np.all(np.diff(bounds) > 0))
        require(ok, owner, "entropy_bounds", bounds, "finite and strictly increasing")
        at_least(owner, "init_scale", self.init_scale, 0.0)
        tokens = np.asarray(self.validation_tokens)
        ok = tokens.ndim >= 2 and tokens.shape[-2] >= 1 and tokens.shape[-1] == self.context + 1
        require(ok, owner, "validation_tokens", tokens.shape, "of shape (n >= 1, context + 1)")
        V = self.vocab_size
        ok = np.issubdtype(tokens.dtype, np.integer) and np.all((tokens >= 0) & (tokens < V))
        require(ok, owner, "validation_tokens", tokens, f"integer tokens in [0, V={V})")
        classes = np.asarray(self.validation_class)
        n_classes = len(self.class_names)
        shape = (*tokens.shape[:-1], self.context)
        ok = classes.shape == shape and np.all((classes >= 0) & (classes < n_classes))
        allowed = f"class indices in [0, {n_classes}) of shape {shape}"
        require(ok, owner, "validation_class", classes, allowed)
        return self


_ENTROPY_CACHE: dict[tuple[str, int], np.ndarray] = {}


def _corpus_entropy(tokens: np.ndarray, order: int) -> np.ndarray:
    """``next_token_entropy(tokens, order)``, remembered for the last few token sequences (by
    content digest), so that building many landscapes on one corpus counts it once."""
    key = (
        hashlib.blake2b(np.ascontiguousarray(tokens).tobytes(), digest_size=16).hexdigest(),
        order,
    )
    if key not in _ENTROPY_CACHE:
        if len(_ENTROPY_CACHE) >= 4:
            _ENTROPY_CACHE.pop(next(iter(_ENTROPY_CACHE)))
        _ENTROPY_CACHE[key] = next_token_entropy(tokens, order)
    return _ENTROPY_CACHE[key]


def token_classes(
    corpus: TextCorpus, starts: np.ndarray, context: int, order: int, bounds: Sequence[float]
) -> np.ndarray:
    """The uncertainty class of every target of the validation windows at ``starts``, int32
    ``(n, context)``: the index of the interval of ``bounds`` (nats) holding the target's
    ``next_token_entropy`` of the given order, estimated from the whole corpus (train and
    validation: a property of the text, not a fitted model)."""
    entropy = _corpus_entropy(corpus.tokens(), order)
    offset = np.shape(corpus.train)[-1]
    positions = offset + np.asarray(starts)[:, None] + 1 + np.arange(context)
    return np.digitize(entropy[positions], np.asarray(bounds, dtype=float)).astype(np.int32)


def transformer(
    corpus: TextCorpus | None = None,
    *,
    context: int = 64,
    width: int = 64,
    n_layers: int = 2,
    n_heads: int = 4,
    mlp_ratio: int = 4,
    batch_size: int = 8,
    validation_windows: int = 16,
    init_scale: float = 0.02,
    entropy_order: int = 3,
    entropy_bounds: Sequence[float] = DEFAULT_ENTROPY_BOUNDS,
    relax_steps: int = DEFAULT_RELAX_STEPS,
    curvature_iters: int = DEFAULT_CURVATURE_ITERS,
) -> Transformer:
    """The transformer landscape on ``corpus`` (default: ``text_corpus()``, the shipped King
    James Bible); see ``Transformer`` and the module docstring.  ``validation_windows``: the
    number of windows of the fixed validation batch of ``loss``; ``batch_size``: train windows
    per stochastic gradient (``batch_size * context`` tokens)."""
    source: TextCorpus = text_corpus() if corpus is None else corpus
    owner = "transformer"
    for name, value in (("context", context), ("validation_windows", validation_windows)):
        ok = isinstance(value, int | np.integer) and value >= 1
        require(ok, owner, name, value, "a positive integer")
    n_val = np.shape(source.validation)[-1]
    ok = context + 1 <= n_val
    require(ok, owner, "context", context, f"at most N_val - 1 = {n_val - 1}")
    ok = isinstance(entropy_order, int | np.integer) and entropy_order >= 0
    require(ok, owner, "entropy_order", entropy_order, "a non-negative integer")
    starts = source.validation_starts(validation_windows, context)
    bounds = tuple(float(b) for b in entropy_bounds)
    return Transformer(
        corpus=source,
        validation_tokens=source.validation_batch(validation_windows, context),
        validation_class=jnp.asarray(token_classes(source, starts, context, entropy_order, bounds)),
        init_scale=jnp.asarray(init_scale, jnp.float32),
        context=context,
        width=width,
        n_layers=n_layers,
        n_heads=n_heads,
        mlp_ratio=mlp_ratio,
        batch_size=batch_size,
        entropy_order=entropy_order,
        entropy_bounds=bounds,
        relax_steps=relax_steps,
        curvature_iters=curvature_iters,
    ).validate()
